#!/usr/bin/env bash
# Batch throughput and store overhead: a 10,000-line batch against a fixed-response upstream
# (nginx), on SQLite and on PostgreSQL, beside the live path (wrk through the same gateway) as the
# reference; then a 100,000-line upload with the gateway's peak RSS before and after.
#   items/s            batch items finished per second (created → completed)
#   CPU us/item        the gateway's utime+stime per item (/proc/PID/stat); PostgreSQL's own CPU
#                      per item beside it (its server processes)
#   live CPU us/req    the same gateway answering the same request on the live path (wrk -c64)
#   store us/item      CPU us/item − live CPU us/req: what batching adds per item in the gateway
# Loopback only; every load is bounded (ITEMS items, DURATION seconds of wrk).
set -euo pipefail
cd "$(dirname "$0")/.."
ITEMS="${ITEMS:-10000}"
UPLOAD_LINES="${UPLOAD_LINES:-100000}"
DURATION="${DURATION:-5}"
command -v nginx >/dev/null && command -v wrk >/dev/null || {
  echo "installing nginx and wrk from Debian" >&2
  apt-get update -qq && apt-get install -y -qq nginx wrk >/dev/null
}
[ -x .build/release/switchyard ] || swift build -c release --product switchyard >&2
work="$(mktemp -d)"
chmod 755 "$work"
pg_dir=""
cleanup() {
  kill $(cat "$work"/*.pid 2>/dev/null) 2>/dev/null || true
  [ -n "$pg_dir" ] && bash scripts/postgres.sh stop "$pg_dir" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
UP=$(free_port)
source bench/fixed-origin.sh
start_fixed_nginx "$work" "$UP"

python3 - "$work" "$ITEMS" "$UPLOAD_LINES" <<'PY'
import json, sys
work, items, upload = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
def write(path, n):
    with open(path, "w") as f:
        for i in range(n):
            f.write(json.dumps({"custom_id": f"r{i}", "method": "POST", "url": "/v1/chat/completions",
                                "body": {"model": "bench", "messages": [{"role": "user", "content": "Say something"}], "max_tokens": 16}}) + "\n")
write(f"{work}/batch.jsonl", items)
write(f"{work}/upload.jsonl", upload)
PY

ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }
HZ=$(getconf CLK_TCK)
hwm_kb() { awk '/VmHWM/ {print $2}' "/proc/$1/status"; }
pg_ticks() { # CPU ticks of the PostgreSQL server under $pg_dir: the postmaster and its children
  local total=0 pid master
  master=$(head -1 "$pg_dir/data/postmaster.pid")
  for pid in "$master" $(pgrep -P "$master" || true); do total=$((total + $(ticks "$pid" 2>/dev/null || echo 0))); done
  echo "$total"
}

start_gateway() { # name config → sets $pid $port
  port=$(free_port)
  .build/release/switchyard serve --config "$2" --host 127.0.0.1 --port "$port" --data-dir "$work/data-$1" --log-level error \
    --upstream bench=http://127.0.0.1:$UP/v1 >"$work/$1.log" 2>&1 &
  pid=$!
  echo $pid > "$work/$1.pid"
  for _ in $(seq 300); do curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && return 0; sleep 0.1; done
  echo "gateway $1 did not start:" >&2; tail -20 "$work/$1.log" >&2; exit 1
}

run_batch() { # name → "items/s cpu_us_per_item pg_cpu_us_per_item live_cpu_us_per_req"
  local name=$1 file batch t0 t1 c0 c1 p0 p1 status
  file=$(curl -sf "http://127.0.0.1:$port/v1/files" -F purpose=batch -F "file=@$work/batch.jsonl" | python3 -c 'import sys,json; print(json.load(sys.stdin)["id"])')
  c0=$(ticks "$pid"); p0=$([ -n "$pg_dir" ] && pg_ticks || echo 0); t0=$(date +%s.%N)
  batch=$(curl -sf "http://127.0.0.1:$port/v1/batches" -H 'content-type: application/json' \
    -d "{\"input_file_id\":\"$file\",\"endpoint\":\"/v1/chat/completions\",\"completion_window\":\"24h\"}" | python3 -c 'import sys,json; print(json.load(sys.stdin)["id"])')
  for _ in $(seq 6000); do
    status=$(curl -sf "http://127.0.0.1:$port/v1/batches/$batch" | python3 -c 'import sys,json; b=json.load(sys.stdin); print(b["status"], b["request_counts"]["completed"])')
    case "$status" in completed*|failed*|expired*|cancelled*) break ;; esac
    sleep 0.1
  done
  t1=$(date +%s.%N); c1=$(ticks "$pid"); p1=$([ -n "$pg_dir" ] && pg_ticks || echo 0)
  [ "${status%% *}" = completed ] && [ "${status##* }" = "$ITEMS" ] || { echo "batch on $name ended as '$status'" >&2; tail -5 "$work/$name.log" >&2; exit 1; }
  # The live path of the same gateway, for reference.
  local l0 l1 n
  l0=$(ticks "$pid")
  wrk -t2 -c64 -d"${DURATION}s" -s "$work/post.lua" "http://127.0.0.1:$port/v1/chat/completions" >"$work/$name-wrk.txt" 2>&1
  l1=$(ticks "$pid")
  n=$(awk '/ requests in / {print $1}' "$work/$name-wrk.txt")
  awk -v t0="$t0" -v t1="$t1" -v c="$((c1 - c0))" -v p="$((p1 - p0))" -v l="$((l1 - l0))" -v n="$n" -v items="$ITEMS" -v hz="$HZ" 'BEGIN {
    printf "%.0f %.1f %.1f %.1f\n", items / (t1 - t0), c * 1e6 / hz / items, p * 1e6 / hz / items, l * 1e6 / hz / n }'
}
cat > "$work/post.lua" <<'LUA'
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"model":"bench","messages":[{"role":"user","content":"Say something"}],"max_tokens":16}'
LUA

printf 'batch:\n  concurrency: 64\n' > "$work/sqlite.yaml"
start_gateway sqlite "$work/sqlite.yaml"
read -r s_rate s_cpu _ s_live < <(run_batch sqlite)
kill "$pid"

eval "$(bash scripts/postgres.sh start)"
pg_dir="$SWITCHYARD_TEST_PG_DIR"
printf 'batch:\n  store: "%s"\n  concurrency: 64\n' "$SWITCHYARD_TEST_POSTGRES" > "$work/pg.yaml"
start_gateway postgres "$work/pg.yaml"
read -r p_rate p_cpu p_pg p_live < <(run_batch postgres)
kill "$pid"

echo "== batch of $ITEMS items against a fixed-response upstream (nginx), worker concurrency 64, $(nproc) cores shared"
printf "%-10s %8s %12s %14s %16s %14s\n" store "items/s" "CPU us/item" "PG CPU us/item" "live CPU us/req" "store us/item"
printf "%-10s %8s %12s %14s %16s %14s\n" sqlite "$s_rate" "$s_cpu" "-" "$s_live" "$(awk -v a="$s_cpu" -v b="$s_live" 'BEGIN{printf "%.1f", a-b}')"
printf "%-10s %8s %12s %14s %16s %14s\n" postgres "$p_rate" "$p_cpu" "$p_pg" "$p_live" "$(awk -v a="$p_cpu" -v b="$p_live" -v c="$p_pg" 'BEGIN{printf "%.1f (+%.1f in PG)", a-b, c}')"

# Upload memory: the gateway's peak RSS must not grow with the file's size (a fresh gateway per
# upload; the small file first, for comparison).
echo "== uploads: the gateway's peak RSS (VmHWM) before and after"
for f in batch upload; do
  start_gateway "upload-$f" "$work/sqlite.yaml"
  before=$(hwm_kb "$pid")
  size=$(stat -c %s "$work/$f.jsonl")
  lines=$(wc -l < "$work/$f.jsonl")
  curl -sf "http://127.0.0.1:$port/v1/files" -F purpose=batch -F "file=@$work/$f.jsonl" >/dev/null
  after=$(hwm_kb "$pid")
  printf "%8d lines %6.1f MiB: %5.1f MiB before, %5.1f MiB after (+%.1f MiB)\n" "$lines" "$(awk -v s="$size" 'BEGIN{print s/1048576}')" \
    "$(awk -v k="$before" 'BEGIN{print k/1024}')" "$(awk -v k="$after" 'BEGIN{print k/1024}')" "$(awk -v a="$after" -v b="$before" 'BEGIN{print (a-b)/1024}')"
  kill "$pid"
done
