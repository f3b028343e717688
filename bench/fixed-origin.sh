# Sourced by the benchmarks: the fixed answers nginx serves as a model server.
# Sets $completion (one chat completion) and writes $1/sse.txt (a stream of $2 token events,
# default 200, then usage and [DONE]).
completion='{"id":"chatcmpl-bench","object":"chat.completion","created":1700000000,"model":"bench","choices":[{"index":0,"message":{"role":"assistant","content":"The quick brown fox jumps over the lazy dog."},"finish_reason":"stop"}],"usage":{"prompt_tokens":12,"completion_tokens":10,"total_tokens":22}}'
write_fixed_sse() {
  local dir="$1" events="${2:-200}" sse="" i
  for i in $(seq "$events"); do
    sse+='data: {"id":"c","object":"chat.completion.chunk","model":"bench","choices":[{"index":0,"delta":{"content":"tok'$i' "},"finish_reason":null}]}\n\n'
  done
  sse+='data: {"id":"c","object":"chat.completion.chunk","model":"bench","choices":[],"usage":{"prompt_tokens":12,"completion_tokens":'$events',"total_tokens":'$((events + 12))'}}\n\ndata: [DONE]\n\n'
  printf "$sse" > "$dir/sse.txt"
}

# Starts nginx in $1 on 127.0.0.1:$2 answering every chat completion with $completion (and
# /health); its pid file is $1/nginx.pid.
start_fixed_nginx() {
  local dir="$1" port="$2"
  cat > "$dir/nginx.conf" <<NGINX
worker_processes 1;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 1000000;
  server {
    listen 127.0.0.1:$port;
    location = /health { return 200 'ok'; }
    location /v1/chat/completions { default_type application/json; return 200 '$completion'; }
  }
}
NGINX
  nginx -c "$dir/nginx.conf" -p "$dir"
}

# Writes $1/post.lua: wrk POSTs one small chat completion for model "bench".
write_post_lua() {
  cat > "$1/post.lua" <<'LUA'
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"model":"bench","messages":[{"role":"user","content":"Say something"}],"max_tokens":16}'
LUA
}

# CPU (utime+stime) process $1 spent, in clock ticks.
proc_ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }

# wrk against $3 with script $4 (CONNS connections, DURATION s) while timing process $2's CPU;
# wrk's report goes to $1. Prints "req/s CPU-us-per-request non-2xx".
wrk_cpu_run() {
  local out="$1" pid="$2" url="$3" script="$4" before cpu
  before=$(proc_ticks "$pid")
  wrk -t2 -c"$CONNS" -d"${DURATION}s" -s "$script" "$url" >"$out" 2>&1
  cpu=$(( $(proc_ticks "$pid") - before ))
  awk -v cpu="$cpu" -v hz="$(getconf CLK_TCK)" '/Requests\/sec/ { rps=$2 } / requests in / { n=$1 } /Non-2xx/ { bad=$NF }
    END { printf "%.0f %.1f %s\n", rps, cpu*1e6/hz/n, (bad==""?0:bad) }' "$out"
}

# A/B summary: $1 and $2 name the sides; $3/$4 their req/s lists, $5/$6 their CPU lists
# (space-separated, one per round). Prints the ratios of A to B.
ab_summary() {
  python3 - "$@" <<'PY'
import sys
a, b = sys.argv[1], sys.argv[2]
ar, br, ac, bc = ([float(x) for x in s.split()] for s in sys.argv[3:7])
print(f"{a} / {b} throughput: {sum(ar)/sum(br):.3f}")
print(f"CPU per request {a} / {b}: {sum(ac)/len(ac):.1f} / {sum(bc)/len(bc):.1f} us = {sum(ac)/sum(bc):.3f}")
PY
}

# The prologue of the nginx-fronted gateway benchmarks: nginx and wrk from Debian when missing,
# the release binary, a work folder in $work whose *.pid processes are killed (and the folder
# removed) on exit, and free_port.
bench_prologue() {
  command -v nginx >/dev/null && command -v wrk >/dev/null || {
    echo "installing nginx and wrk from Debian" >&2
    apt-get update -qq && apt-get install -y -qq nginx wrk >/dev/null
  }
  [ -x .build/release/switchyard ] || swift build -c release --product switchyard >&2
  work="$(mktemp -d)"
  chmod 755 "$work"
  trap 'kill $(cat "$work"/*.pid 2>/dev/null) 2>/dev/null || true; rm -rf "$work"' EXIT
}
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
