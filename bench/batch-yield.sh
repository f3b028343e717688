#!/usr/bin/env bash
# Does a batch job stay out of real-time traffic's way? The real llama.cpp (4 slots) behind
# `switchyard serve --upstream smollm2=URL` (no other configuration: the defaults under test),
# streamed realtime requests at RT_RATE/s measured three ways in one run:
#   idle        realtime only
#   batch job   while a BATCH_ITEMS-line batch runs through /v1/batches (default share: the batch
#               lane holds at most half of the slots)
#   share 1     the same with batch.max_inflight_share: 1 (the batch lane may fill every slot)
# and the batch's items/s for both. Knobs: DURATION (s, default 30), RT_RATE (0.5), BATCH_ITEMS (400).
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION="${DURATION:-30}"
RT_RATE="${RT_RATE:-0.5}"
BATCH_ITEMS="${BATCH_ITEMS:-400}"
scripts/bootstrap.sh >&2
[ -x .build/release/switchyard ] || swift build -c release --product switchyard >&2
py=.venv/bin/python
work="$(mktemp -d)"
cleanup() { kill $(cat "$work"/*.pid 2>/dev/null) 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

"$py" scripts/llama_server.py --parallel 4 --ctx 4096 >"$work/llama.out" 2>"$work/llama.err" &
echo $! > "$work/llama.pid"
for _ in $(seq 600); do grep -q PORT "$work/llama.out" && break; sleep 0.1; done
lport=$(awk '/PORT/{print $2}' "$work/llama.out")
for _ in $(seq 600); do curl -sf "http://127.0.0.1:$lport/health" >/dev/null && break; sleep 0.1; done

"$py" - "$work/batch.jsonl" "$BATCH_ITEMS" <<'PY'
import json, sys
topics = ["bridges", "rivers", "robots", "castles", "comets", "forests", "harbors", "lighthouses", "trains", "volcanoes"]
with open(sys.argv[1], "w") as f:
    for i in range(int(sys.argv[2])):
        f.write(json.dumps({"custom_id": f"r{i}", "method": "POST", "url": "/v1/chat/completions", "body": {
            "model": "smollm2", "max_tokens": 64,
            "messages": [{"role": "user", "content": f"Write a long essay about {topics[i % 10]} number {i}."}]}}) + "\n")
PY

start_gateway() { # NAME [CONFIG] → prints its port
  local name=$1 port
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  .build/release/switchyard serve --port "$port" --data-dir "$work/data-$name" ${2:+--config "$2"} --log-level error \
    --upstream "smollm2=http://127.0.0.1:$lport/v1" >"$work/$name.out" 2>"$work/$name.err" &
  echo $! >"$work/$name.pid"
  for _ in $(seq 600); do curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && break; sleep 0.1; done
  echo "$port"
}
realtime() { "$py" bench/lane_isolation.py --url "http://127.0.0.1:$1/v1" --model smollm2 --duration "$DURATION" --warmup 3 --rt-rate "$RT_RATE" --batch-clients 0; }
submit() { # PORT → batch id
  local file
  file=$(curl -sf "http://127.0.0.1:$1/v1/files" -F purpose=batch -F "file=@$work/batch.jsonl" | "$py" -c 'import sys,json; print(json.load(sys.stdin)["id"])')
  curl -sf "http://127.0.0.1:$1/v1/batches" -H 'content-type: application/json' \
    -d "{\"input_file_id\":\"$file\",\"endpoint\":\"/v1/chat/completions\",\"completion_window\":\"24h\"}" | "$py" -c 'import sys,json; print(json.load(sys.stdin)["id"])'
}
done_items() { curl -sf "http://127.0.0.1:$1/v1/batches/$2" | "$py" -c 'import sys,json; c=json.load(sys.stdin)["request_counts"]; print(c["completed"] + c["failed"])'; }
with_batch() { # PORT → realtime JSON, then "items/s"
  local id t0 n0 n1 t1 rt
  id=$(submit "$1")
  sleep 3
  n0=$(done_items "$1" "$id"); t0=$(date +%s.%N)
  rt=$(realtime "$1")
  n1=$(done_items "$1" "$id"); t1=$(date +%s.%N)
  curl -sf -X POST "http://127.0.0.1:$1/v1/batches/$id/cancel" >/dev/null
  echo "$rt"
  awk -v a="$n0" -v b="$n1" -v t0="$t0" -v t1="$t1" 'BEGIN { printf "%.2f\n", (b - a) / (t1 - t0) }'
}

port=$(start_gateway defaults)
echo "realtime alone ($DURATION s) ..." >&2
idle=$(realtime "$port")
echo "realtime while a batch job runs, default share ($DURATION s) ..." >&2
mapfile -t shared < <(with_batch "$port")
kill "$(cat "$work/defaults.pid")"
printf 'batch:\n  max_inflight_share: 1\n' > "$work/full.yaml"
port=$(start_gateway full "$work/full.yaml")
echo "realtime while a batch job runs, share 1 ($DURATION s) ..." >&2
mapfile -t full < <(with_batch "$port")

"$py" - "$idle" "${shared[0]}" "${shared[1]}" "${full[0]}" "${full[1]}" <<'PY'
import json, sys
idle, shared, shared_rate, full, full_rate = json.loads(sys.argv[1]), json.loads(sys.argv[2]), sys.argv[3], json.loads(sys.argv[4]), sys.argv[5]
def f(v): return "-" if v is None else f"{v:.3f}"
print(f"{'':30}{'idle':>10}{'batch job':>12}{'share 1':>10}")
for key, label in [("realtime_ttft_p50_s", "realtime TTFT p50 (s)"), ("realtime_ttft_p99_s", "realtime TTFT p99 (s)")]:
    print(f"{label:30}{f(idle[key]):>10}{f(shared[key]):>12}{f(full[key]):>10}")
print(f"{'realtime sent / failed':30}{str(idle['realtime_sent']) + '/' + str(idle['realtime_failed']):>10}"
      f"{str(shared['realtime_sent']) + '/' + str(shared['realtime_failed']):>12}{str(full['realtime_sent']) + '/' + str(full['realtime_failed']):>10}")
print(f"{'batch items/s':30}{'-':>10}{shared_rate:>12}{full_rate:>10}")
PY
