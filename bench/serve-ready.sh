#!/usr/bin/env bash
# Time from `switchyard serve` (embedded default, warm data folder) to ready, with the breakdown
# the supervisor measures: process start → /health answered (model load), warmup, ready.
# Runs RUNS times (default 3) on a loopback port; the first run installs if the folder is cold.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS="${RUNS:-3}"
DATA="${DATA_DIR:-.switchyard}"
swift build -c release --product switchyard >&2
bin=.build/release/switchyard
printf "%-4s %10s %10s %10s %10s\n" run "total s" "load s" "warmup s" "ready s"
for run in $(seq "$RUNS"); do
  out="$(mktemp)"; err="$(mktemp)"
  start=$(date +%s.%N)
  "$bin" serve --port 0 --data-dir "$DATA" >"$out" 2>"$err" &
  pid=$!
  for _ in $(seq 3000); do grep -q "ready in" "$out" && break; kill -0 $pid 2>/dev/null || break; sleep 0.01; done
  end=$(date +%s.%N)
  line=$(grep "managed replica ready" "$err" | tail -1)
  kill -TERM $pid; wait $pid || true
  load=$(sed -n 's/.*load_s=\([0-9.]*\).*/\1/p' <<<"$line")
  warm=$(sed -n 's/.*warmup_s=\([0-9.]*\).*/\1/p' <<<"$line")
  ready=$(sed -n 's/.*ready_s=\([0-9.]*\).*/\1/p' <<<"$line")
  printf "%-4s %10.2f %10s %10s %10s\n" "$run" "$(python3 -c "print($end - $start)")" "$load" "$warm" "$ready"
  rm -f "$out" "$err"
done
echo "target: total <= 10 s on a warm data folder"
