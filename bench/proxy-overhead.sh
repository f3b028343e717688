#!/usr/bin/env bash
# Proxy overhead: the same fixed-response upstream (nginx) measured in one run
#   1. directly, 2. through nginx as a reverse proxy, 3. through Switchyard,
# with wrk at 32 connections (POST, JSON body); then an SSE relay figure: 256 concurrent streams
# of a 200-event stream, through nginx-proxy and through Switchyard.
# Loopback only; every wrk run is bounded by DURATION seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION="${DURATION:-10}"
CONNS="${CONNS:-32}"
STREAMS="${STREAMS:-256}"
EVENTS=200

command -v nginx >/dev/null && command -v wrk >/dev/null || {
  echo "installing nginx and wrk from Debian" >&2
  apt-get update -qq && apt-get install -y -qq nginx wrk >/dev/null
}
[ -x .build/release/switchyard ] || swift build -c release --product switchyard >&2
# The floor: a bare SwiftNIO reverse proxy with none of the gateway's logic (bench/nio-floor).
FLOOR=bench/nio-floor/.build/release/nio-floor
[ -x "$FLOOR" ] || { echo "building bench/nio-floor (first run only)" >&2; swift build -c release --package-path bench/nio-floor >&2; }

trap 'kill $(cat "$work"/*.pid 2>/dev/null) 2>/dev/null || true; rm -rf "$work"' EXIT
work="$(mktemp -d)"
chmod 755 "$work"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
UP=$(free_port); PX=$(free_port); SY=$(free_port); SR=$(free_port); FL=$(free_port)

source bench/fixed-origin.sh
write_fixed_sse "$work" $EVENTS

cat > "$work/nginx.conf" <<NGINX
worker_processes 1;
pid $work/nginx.pid;
error_log $work/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 1000000;
  upstream origin { server 127.0.0.1:$UP; keepalive 512; }
  server {
    listen 127.0.0.1:$UP;
    location = /health { return 200 'ok'; }
    location /v1/chat/completions { default_type application/json; return 200 '$completion'; }
    # The SSE body is too long for a config string: a static file. nginx answers POST to static
    # files with 405, so that 405 is turned into an internal GET of the same file.
    location /sse/v1/chat/completions { default_type text/event-stream; alias $work/sse.txt; error_page 405 =200 \$uri; }
  }
  server {
    listen 127.0.0.1:$PX;
    location / {
      proxy_pass http://origin;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering off;
    }
  }
}
NGINX
nginx -c "$work/nginx.conf" -p "$work" || { sed -n 10,16p "$work/nginx.conf" | cut -c1-200; exit 1; }
.build/release/switchyard serve --host 127.0.0.1 --port "$SY" --log-level error --data-dir "$work/data-sy" \
  --upstream bench=http://127.0.0.1:$UP/v1 --upstream sse=http://127.0.0.1:$UP/sse/v1 >"$work/sy.log" 2>&1 &
echo $! > "$work/switchyard.pid"
# The same gateway with every request on the router path (server.fast_path: false), for comparison.
printf 'server:\n  fast_path: false\n' > "$work/router-path.yaml"
.build/release/switchyard serve --config "$work/router-path.yaml" --host 127.0.0.1 --port "$SR" --log-level error --data-dir "$work/data-sr" \
  --upstream bench=http://127.0.0.1:$UP/v1 --upstream sse=http://127.0.0.1:$UP/sse/v1 >"$work/sr.log" 2>&1 &
echo $! > "$work/switchyard-router.pid"
"$FLOOR" "$FL" "$UP" >"$work/floor.log" 2>&1 &
echo $! > "$work/floor.pid"
for port in "$SY" "$SR"; do
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && break; sleep 0.1; done
done

write_post_lua "$work"
cat > "$work/stream.lua" <<'LUA'
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"model":"sse","messages":[{"role":"user","content":"Say something"}],"stream":true}'
LUA

# CPU (utime+stime) a process spent, in clock ticks.
ticks() { [ -n "${1:-}" ] && awk '{print $14+$15}' "/proc/$1/stat" || echo 0; }
HZ=$(getconf CLK_TCK)
nginx_worker() { pgrep -P "$(cat "$work/nginx.pid")" | head -1; }
run() { # name url script conns [pid] -> "rps p50_ms p99_ms non2xx cpu_us_per_request"
  local before; before=$(ticks "${5:-}")
  if [ "$3" = /dev/null ]; then
    wrk -t2 -c"$4" -d"${DURATION}s" --latency "$2" >"$work/$1.txt" 2>&1
  else
    wrk -t2 -c"$4" -d"${DURATION}s" --latency -s "$3" "$2" >"$work/$1.txt" 2>&1
  fi
  local cpu=$(( $(ticks "${5:-}") - before ))
  awk -v name="$1" -v cpu="$cpu" -v hz="$HZ" -v pid="${5:-}" '
    function ms(v) { if (v ~ /us$/) return v/1000; if (v ~ /ms$/) return v+0; if (v ~ /s$/) return v*1000; return v }
    /Requests\/sec/ { rps=$2 } / 50%/ { p50=ms($2) } / 99%/ { p99=ms($2) } /Non-2xx/ { bad=$NF } / requests in / { n=$1 }
    END { printf "%s %.0f %.3f %.3f %s %s\n", name, rps, p50, p99, (bad==""?0:bad), (pid=="" || n==0 ? "-" : sprintf("%.1f", cpu*1e6/hz/n)) }' "$work/$1.txt"
}

echo "== request/response, wrk -c$CONNS, ${DURATION}s each (loopback, $(nproc) cores shared by client, proxy and origin)"
read -r _ d_rps d_p50 d_p99 d_bad < <(run direct "http://127.0.0.1:$UP/v1/chat/completions" "$work/post.lua" "$CONNS")
read -r _ n_rps n_p50 n_p99 n_bad n_cpu < <(run nginx-proxy "http://127.0.0.1:$PX/v1/chat/completions" "$work/post.lua" "$CONNS" "$(nginx_worker)")
read -r _ s_rps s_p50 s_p99 s_bad s_cpu < <(run switchyard "http://127.0.0.1:$SY/v1/chat/completions" "$work/post.lua" "$CONNS" "$(cat "$work/switchyard.pid")")
read -r _ r_rps r_p50 r_p99 r_bad r_cpu < <(run switchyard-router "http://127.0.0.1:$SR/v1/chat/completions" "$work/post.lua" "$CONNS" "$(cat "$work/switchyard-router.pid")")
read -r _ f_rps f_p50 f_p99 f_bad f_cpu < <(run nio-floor "http://127.0.0.1:$FL/v1/chat/completions" "$work/post.lua" "$CONNS" "$(cat "$work/floor.pid")")
printf "%-12s %10s %10s %10s %8s %12s\n" path "req/s" "p50 ms" "p99 ms" "non-2xx" "CPU us/req"
printf "%-12s %10s %10s %10s %8s %12s\n" direct "$d_rps" "$d_p50" "$d_p99" "$d_bad" "-"
printf "%-12s %10s %10s %10s %8s %12s\n" nginx-proxy "$n_rps" "$n_p50" "$n_p99" "$n_bad" "$n_cpu"
printf "%-12s %10s %10s %10s %8s %12s\n" switchyard "$s_rps" "$s_p50" "$s_p99" "$s_bad" "$s_cpu"
printf "%-12s %10s %10s %10s %8s %12s\n" "(router)" "$r_rps" "$r_p50" "$r_p99" "$r_bad" "$r_cpu"
printf "%-12s %10s %10s %10s %8s %12s\n" "(NIO floor)" "$f_rps" "$f_p50" "$f_p99" "$f_bad" "$f_cpu"
# CPU us/req: the proxy process's utime+stime over the run / requests (nginx: its worker).
# Context: "(router)" is Switchyard with server.fast_path off (Hummingbird handler, the same
# upstream exchange and connections);
# "(NIO floor)" is bench/nio-floor, a SwiftNIO proxy that only forwards: what any gateway on NIO's
# HTTP/1.1 codec can reach here, before parsing, routing, metrics or timeouts.
# The HTTP server alone (GET /healthz, no upstream, no body) bounds what any proxy on it can do.
read -r _ h_rps h_p50 _ _ _ < <(run switchyard-healthz "http://127.0.0.1:$SY/healthz" /dev/null "$CONNS")
printf "%-12s %10s %10s %10s %8s\n" "(healthz)" "$h_rps" "$h_p50" "-" "-"
python3 - "$d_p50" "$n_rps" "$n_p50" "$s_rps" "$s_p50" "$f_rps" "$f_p50" <<'PY'
import sys
d50, nrps, n50, srps, s50, frps, f50 = map(float, sys.argv[1:])
nadd, sadd, fadd = max(n50 - d50, 1e-6), s50 - d50, f50 - d50
print(f"switchyard/nginx-proxy throughput: {srps/nrps:.2f}  (target >= 0.50; the NIO floor reaches {frps/nrps:.2f})")
print(f"added p50 latency: nginx-proxy {nadd:.3f} ms, switchyard {sadd:.3f} ms, ratio {sadd/nadd:.2f}  (target <= 2.0; NIO floor {fadd/nadd:.2f})")
print(f"switchyard/NIO floor throughput: {srps/frps:.2f}")
PY

echo "== SSE relay, $STREAMS concurrent streams of $EVENTS events, ${DURATION}s each"
read -r _ ns_rps _ _ ns_bad ns_cpu < <(run sse-nginx-proxy "http://127.0.0.1:$PX/sse/v1/chat/completions" "$work/stream.lua" "$STREAMS" "$(nginx_worker)")
read -r _ ss_rps _ _ ss_bad ss_cpu < <(run sse-switchyard "http://127.0.0.1:$SY/v1/chat/completions" "$work/stream.lua" "$STREAMS" "$(cat "$work/switchyard.pid")")
read -r _ sr_rps _ _ sr_bad sr_cpu < <(run sse-switchyard-router "http://127.0.0.1:$SR/v1/chat/completions" "$work/stream.lua" "$STREAMS" "$(cat "$work/switchyard-router.pid")")
python3 - "$ns_rps" "$ss_rps" "$EVENTS" "$ns_bad" "$ss_bad" "$sr_rps" "$sr_bad" "$ns_cpu" "$ss_cpu" "$sr_cpu" <<'PY'
import sys
n, s, ev, r = float(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3]), float(sys.argv[6])
def per_event(v):
    return "-" if v == "-" else f"{float(v)/ev:.2f}"
print(f"nginx-proxy: {n:.0f} streams/s = {n*ev:,.0f} chunks/s relayed (non-2xx {sys.argv[4]}); CPU {sys.argv[8]} us/stream, {per_event(sys.argv[8])} us/event")
print(f"switchyard:  {s:.0f} streams/s = {s*ev:,.0f} chunks/s relayed, each parsed and model-checked (non-2xx {sys.argv[5]}); CPU {sys.argv[9]} us/stream, {per_event(sys.argv[9])} us/event")
print(f"(router):    {r:.0f} streams/s = {r*ev:,.0f} chunks/s (non-2xx {sys.argv[7]}); CPU {sys.argv[10]} us/stream, {per_event(sys.argv[10])} us/event")
print(f"ratio switchyard/nginx-proxy: {s/n:.2f}  (target >= 0.70)")
PY
