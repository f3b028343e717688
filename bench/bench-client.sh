#!/usr/bin/env bash
# Load generator capacity: one `switchyard bench` process against nginx serving a fixed chat
# completion (and a fixed 200-event SSE stream), on loopback.
#   1. open loop at RATE req/s (default 10000), constant arrivals, non-streaming: achieved rate and
#      schedule lag p99 (target >= 10,000 req/s with lag p99 < 2 ms);
#   2. closed loop, 64 clients streaming: SSE chunks parsed per second (target >= 100,000).
# THREADS sets the client's event loops (default: the cores). KEEP=1 keeps the bundles.
# Reference: GuideLLM's maintainers cite about 1,000 req/s for one client.
set -euo pipefail
cd "$(dirname "$0")/.."
RATE="${RATE:-10000}"
DURATION="${DURATION:-10}"
command -v nginx >/dev/null || { echo "installing nginx from Debian" >&2; apt-get update -qq && apt-get install -y -qq nginx >/dev/null; }
swift build -c release --product switchyard >&2
work="$(mktemp -d)"; chmod 755 "$work"
trap 'kill $(cat "$work"/nginx.pid 2>/dev/null) 2>/dev/null || true; [ -n "${KEEP:-}" ] && echo "kept $work" || rm -rf "$work"' EXIT
UP=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
source bench/fixed-origin.sh
write_fixed_sse "$work" 200
cat > "$work/nginx.conf" <<NGINX
worker_processes 1;
pid $work/nginx.pid;
error_log $work/error.log warn;
events { worker_connections 8192; }
http {
  access_log off;
  keepalive_requests 1000000;
  server {
    listen 127.0.0.1:$UP backlog=4096;
    location /v1/chat/completions { default_type application/json; return 200 '$completion'; }
    location /sse/v1/chat/completions { default_type text/event-stream; alias $work/sse.txt; error_page 405 =200 \$uri; }
  }
}
NGINX
nginx -c "$work/nginx.conf" -p "$work"
bin=.build/release/switchyard
echo "== open loop, $RATE req/s constant, ${DURATION}s, non-streaming"
"$bin" bench --url "http://127.0.0.1:$UP/v1" --model bench ${THREADS:+--threads "$THREADS"} --rate "$RATE" --arrival constant --duration "${DURATION}s" --no-stream \
  --out "$work/rate" 2>/dev/null | sed -n '1p;/schedule_lag/p;/e2e /p'
echo "== closed loop, 64 streaming clients, ${DURATION}s, 200 events per stream"
"$bin" bench --url "http://127.0.0.1:$UP/sse/v1" --model bench --concurrency 64 --duration "${DURATION}s" \
  --out "$work/sse" 2>/dev/null | sed -n '1p'
python3 - "$work" "$RATE" <<'PY'
import json, sys
work, rate = sys.argv[1], float(sys.argv[2])
r = json.load(open(f"{work}/rate/summary.json"))["lanes"][0]
lag = r["metrics"]["schedule_lag"]["p99"]
print(f"open loop: offered {rate:.0f} req/s, sent {r['send_rate']:.0f} req/s, completed {r['request_throughput']:.0f} req/s, "
      f"schedule lag p99 {lag*1000:.2f} ms  (target >= 10000 req/s, lag p99 < 2 ms)")
s = json.load(open(f"{work}/sse/summary.json"))["lanes"][0]
chunks = sum(json.loads(l)["n_out_client"] for l in open(f"{work}/sse/requests.jsonl"))
print(f"SSE: {s['succeeded']} streams, {chunks} token chunks parsed in {s['window_s']:.1f} s = {chunks / s['window_s']:.0f} chunks/s  (target >= 100000)")
PY
