#!/usr/bin/env bash
# Lane isolation on the real llama.cpp server (4 slots): 16 closed-loop batch clients plus
# realtime requests at a fixed rate, sent once straight to llama.cpp and once through Switchyard
# (realtime lane with a 2 s TTFT SLO, batch lane preemptible), against the same warm server.
# Target: realtime p99 TTFT through Switchyard <= 1/3 of direct; batch throughput >= 80% of direct.
# Knobs: DURATION (s, default 60), RT_RATE (req/s, default 0.5), BATCH_CLIENTS (16), PREEMPT (1/0).
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION="${DURATION:-60}"
RT_RATE="${RT_RATE:-0.5}"
BATCH_CLIENTS="${BATCH_CLIENTS:-16}"
PREEMPT="${PREEMPT:-1}"
scripts/bootstrap.sh >&2
swift build -c release --product switchyard >&2
py=.venv/bin/python
work="$(mktemp -d)"
cleanup() { kill "${gw_pid:-}" "${llama_pid:-}" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

"$py" scripts/llama_server.py --parallel 4 --ctx 4096 >"$work/llama.out" 2>"$work/llama.err" &
llama_pid=$!
for _ in $(seq 600); do grep -q PORT "$work/llama.out" && break; sleep 0.1; done
lport=$(awk '/PORT/{print $2}' "$work/llama.out")
for _ in $(seq 600); do curl -sf "http://127.0.0.1:$lport/health" >/dev/null && break; sleep 0.1; done

preemptible=$([ "$PREEMPT" = 1 ] && echo true || echo false)
cat >"$work/gateway.yaml" <<YAML
server: { host: 127.0.0.1, port: 0 }
lanes:
  realtime: { priority: 0, slo: { ttft: 2s } }
  streaming: { priority: 1 }
  batch: { priority: 2, min_share: 0.05, preemptible: $preemptible, queue: { timeout_action: delay } }
models:
  - name: smollm2
    backends: [{ url: "http://127.0.0.1:$lport/v1", max_inflight: 4 }]
YAML
.build/release/switchyard serve --config "$work/gateway.yaml" >"$work/gw.out" 2>"$work/gw.err" &
gw_pid=$!
for _ in $(seq 600); do grep -q "ready in" "$work/gw.out" && break; sleep 0.1; done
gport=$(grep "ready in" "$work/gw.out" | grep -oE "127\.0\.0\.1:[0-9]+" | head -1 | cut -d: -f2)
for _ in $(seq 600); do curl -sf "http://127.0.0.1:$gport/readyz" >/dev/null && break; sleep 0.1; done

run() { "$py" bench/lane_isolation.py --url "$1" --model "$2" --duration "$DURATION" --rt-rate "$RT_RATE" --batch-clients "$BATCH_CLIENTS"; }
echo "direct to llama.cpp ($DURATION s) ..." >&2
direct=$(run "http://127.0.0.1:$lport/v1" smollm2)
echo "through Switchyard ($DURATION s) ..." >&2
gateway=$(run "http://127.0.0.1:$gport/v1" smollm2)
preemptions=$(curl -s "http://127.0.0.1:$gport/metrics" | awk '/^switchyard_preemptions_total/{s+=$2} END{print s+0}')

"$py" - "$direct" "$gateway" "$preemptions" <<'PY'
import json, sys
d, g, pre = json.loads(sys.argv[1]), json.loads(sys.argv[2]), sys.argv[3]
def f(v): return "-" if v is None else f"{v:.3f}"
print(f"{'':28}{'direct':>12}{'switchyard':>12}{'ratio':>10}")
for key, label in [("realtime_ttft_p50_s", "realtime TTFT p50 (s)"), ("realtime_ttft_p99_s", "realtime TTFT p99 (s)"),
                   ("batch_rps", "batch requests/s"), ("batch_tokens_per_s", "batch tokens/s")]:
    a, b = d[key], g[key]
    ratio = f"{b / a:.2f}" if a and b is not None else "-"
    print(f"{label:28}{f(a):>12}{f(b):>12}{ratio:>10}")
print(f"{'realtime sent / failed':28}{d['realtime_sent']:>6}/{d['realtime_failed']:<5}{g['realtime_sent']:>6}/{g['realtime_failed']:<5}")
print(f"{'batch failed':28}{d['batch_failed']:>12}{g['batch_failed']:>12}")
print(f"preemptions through Switchyard: {pre}")
p99 = g["realtime_ttft_p99_s"] / d["realtime_ttft_p99_s"]
thr = g["batch_rps"] / d["batch_rps"]
print(f"target: realtime p99 ratio <= 0.33 -> {p99:.2f} {'MET' if p99 <= 1/3 else 'MISSED'}; "
      f"batch throughput ratio >= 0.80 -> {thr:.2f} {'MET' if thr >= 0.8 else 'MISSED'}")
PY
