#!/usr/bin/env bash
# Lane isolation on the real llama.cpp server (4 slots): 16 closed-loop batch clients plus
# realtime requests at a fixed rate, sent straight to llama.cpp, through Switchyard configured
# (max_inflight 4, realtime lane with a 2 s TTFT SLO, batch lane preemptible), and through
# Switchyard with no configuration at all (`serve --upstream smollm2=URL`: the slot count comes
# from llama.cpp's /props), all against the same warm server in one run.
# Target for both gateways: realtime p99 TTFT <= 1/3 of direct; batch throughput >= 80% of direct.
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
cleanup() { kill "${gw_pid:-}" "${bare_pid:-}" "${llama_pid:-}" 2>/dev/null || true; rm -rf "$work"; }
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
start_gateway() {  # NAME ARGS...: starts `switchyard serve ARGS`, prints its port
  local name=$1; shift
  .build/release/switchyard serve --data-dir "$work/data-$name" "$@" >"$work/$name.out" 2>"$work/$name.err" &
  echo $! >"$work/$name.pid"
  for _ in $(seq 600); do grep -q "ready in" "$work/$name.out" && break; sleep 0.1; done
  local port; port=$(grep "ready in" "$work/$name.out" | grep -oE "127\.0\.0\.1:[0-9]+" | head -1 | cut -d: -f2)
  for _ in $(seq 600); do curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && break; sleep 0.1; done
  echo "$port"
}
gport=$(start_gateway configured --config "$work/gateway.yaml"); gw_pid=$(cat "$work/configured.pid")
bport=$(start_gateway bare --port 0 --upstream "smollm2=http://127.0.0.1:$lport/v1"); bare_pid=$(cat "$work/bare.pid")
grep -h "capacity" "$work/bare.err" >&2 || true
capacity=$(curl -s "http://127.0.0.1:$bport/readyz" | "$py" -c 'import json,sys; b=json.load(sys.stdin)["models"]["smollm2"]["backends"][0]["capacity"]; print(b["limit"], "(" + b["source"] + ")")')

run() { "$py" bench/lane_isolation.py --url "$1" --model "$2" --duration "$DURATION" --rt-rate "$RT_RATE" --batch-clients "$BATCH_CLIENTS"; }
echo "direct to llama.cpp ($DURATION s) ..." >&2
direct=$(run "http://127.0.0.1:$lport/v1" smollm2)
echo "through Switchyard, configured ($DURATION s) ..." >&2
gateway=$(run "http://127.0.0.1:$gport/v1" smollm2)
echo "through Switchyard, --upstream only ($DURATION s) ..." >&2
bare=$(run "http://127.0.0.1:$bport/v1" smollm2)
preemptions() { curl -s "http://127.0.0.1:$1/metrics" | awk '/^switchyard_preemptions_total/{s+=$2} END{print s+0}'; }

"$py" - "$direct" "$gateway" "$bare" "$(preemptions "$gport")" "$(preemptions "$bport")" "$capacity" <<'PY'
import json, sys
d, g, b = (json.loads(a) for a in sys.argv[1:4])
pre_g, pre_b, capacity = sys.argv[4:7]
def f(v): return "-" if v is None else f"{v:.3f}"
def r(x, y): return f"{x / y:.2f}" if y and x is not None else "-"
print(f"{'':28}{'direct':>10}{'configured':>12}{'ratio':>8}{'--upstream':>12}{'ratio':>8}")
for key, label in [("realtime_ttft_p50_s", "realtime TTFT p50 (s)"), ("realtime_ttft_p99_s", "realtime TTFT p99 (s)"),
                   ("batch_rps", "batch requests/s"), ("batch_tokens_per_s", "batch tokens/s")]:
    print(f"{label:28}{f(d[key]):>10}{f(g[key]):>12}{r(g[key], d[key]):>8}{f(b[key]):>12}{r(b[key], d[key]):>8}")
def sent(x): return f"{x['realtime_sent']}/{x['realtime_failed']}"
print(f"{'realtime sent / failed':28}{sent(d):>10}{sent(g):>12}{'':>8}{sent(b):>12}")
print(f"{'batch failed':28}{d['batch_failed']:>10}{g['batch_failed']:>12}{'':>8}{b['batch_failed']:>12}")
print(f"preemptions: configured {pre_g}, --upstream {pre_b}; --upstream capacity in force: {capacity}")
for name, x in [("configured", g), ("--upstream", b)]:
    p99 = x["realtime_ttft_p99_s"] / d["realtime_ttft_p99_s"]
    thr = x["batch_rps"] / d["batch_rps"]
    print(f"target ({name}): realtime p99 ratio <= 0.33 -> {p99:.2f} {'MET' if p99 <= 1/3 else 'MISSED'}; "
          f"batch throughput ratio >= 0.80 -> {thr:.2f} {'MET' if thr >= 0.8 else 'MISSED'}")
PY
