#!/usr/bin/env bash
# `switchyard plan` against reality on the real llama.cpp (SmolLM2-135M on CPU, 4 slots):
#   1. calibrate: closed-loop `bench` with 1, 2 and 4 clients (prompts 32–384 tokens, outputs
#      16–64, ignore_eos) through the gateway, so the host is as busy as in the measured run (on
#      2 cores the client and gateway take CPU from llama.cpp; calibrating straight at llama.cpp
#      made the model 40–60% optimistic) → `plan profile --slots 4`;
#   2. measure another load, with lanes, through `switchyard serve` (`accept`): realtime at RT_RATE
#      (prompts 64–256, 32 out) and a preemptible batch lane at BATCH_RATE (prompt 300, 64 out);
#   3. predict that load with `plan whatif` (the same gateway config, prompts in server tokens:
#      the chat template's tokens added) and print prediction
#      error of p50 and p99 TTFT (from the schedule) and throughput per lane (target ≤ 15%).
# Knobs: CAL_SECONDS (per calibration level, default 90), SECONDS_RUN (measured run, default 300),
# RT_RATE (default 0.15), BATCH_RATE (default 0.05), CAL_CLIENTS (default "1 2 4"). At 0.3 + 0.1
# req/s this CPU's replica runs near saturation, where a few percent of speed decides everything.
set -euo pipefail
cd "$(dirname "$0")/.."
CAL_SECONDS="${CAL_SECONDS:-90}"
SECONDS_RUN="${SECONDS_RUN:-300}"
RT_RATE="${RT_RATE:-0.15}"
BATCH_RATE="${BATCH_RATE:-0.05}"
CAL_CLIENTS="${CAL_CLIENTS:-1 2 4}"
scripts/bootstrap.sh >&2
swift build -c release --product switchyard >&2
bin=.build/release/switchyard
py=.venv/bin/python
work="${WORK:-$(mktemp -d)}"
cleanup() { kill "${gw_pid:-}" "${llama_pid:-}" 2>/dev/null || true; }
trap cleanup EXIT

"$py" scripts/llama_server.py --parallel 4 --ctx 4096 >"$work/llama.out" 2>"$work/llama.err" &
llama_pid=$!
for _ in $(seq 600); do grep -q PORT "$work/llama.out" && break; sleep 0.1; done
lport=$(awk '/PORT/{print $2}' "$work/llama.out")
for _ in $(seq 600); do curl -sf "http://127.0.0.1:$lport/health" >/dev/null && break; sleep 0.1; done
slots=$(curl -s "http://127.0.0.1:$lport/props" | "$py" -c 'import json,sys; print(json.load(sys.stdin)["total_slots"])')

cat >"$work/gateway.yaml" <<YAML
server: { host: 127.0.0.1, port: 0 }
lanes:
  realtime: { priority: 0, slo: { ttft: 5s } }
  batch: { priority: 1, min_share: 0.1, preemptible: true, queue: { timeout_action: delay } }
models:
  - name: smollm2
    backends: [{ url: "http://127.0.0.1:$lport/v1", max_inflight: $slots }]
YAML
"$bin" serve --config "$work/gateway.yaml" --data-dir "$work/data" >"$work/gw.out" 2>"$work/gw.err" &
gw_pid=$!
for _ in $(seq 600); do grep -q "ready in" "$work/gw.out" && break; sleep 0.1; done
gport=$(grep "ready in" "$work/gw.out" | grep -oE "127\.0\.0\.1:[0-9]+" | head -1 | cut -d: -f2)
for _ in $(seq 600); do curl -sf "http://127.0.0.1:$gport/readyz" >/dev/null && break; sleep 0.1; done

bundles=()
for clients in $CAL_CLIENTS; do
    # A reused WORK folder keeps its calibration runs.
    [ -f "$work/cal-$clients/requests.jsonl" ] || {
    echo "calibration: $clients closed-loop clients for $CAL_SECONDS s through the gateway ($slots slots, so nothing queues in it) ..." >&2
    "$bin" bench --url "http://127.0.0.1:$gport/v1" --model smollm2 --concurrency "$clients" --duration "${CAL_SECONDS}s" --warmup 5s \
        --input-tokens uniform:32:384 --output-tokens uniform:16:64 --ignore-eos --threads 1 --seed "$((100 + clients))" --out "$work/cal-$clients" >/dev/null 2>&1
    }
    bundles+=(--bundle "$work/cal-$clients")
done
"$bin" plan profile "${bundles[@]}" --slots "$slots" --name "llama.cpp SmolLM2-135M, $slots slots (this host)" --out "$work/profile.json"

cat >"$work/accept.yaml" <<YAML
target: { url: "http://127.0.0.1:$gport/v1", model: smollm2 }
seed: 5
lanes:
  - { name: realtime, load: { rate: $RT_RATE, arrival: poisson }, input_tokens: uniform:64:256, output_tokens: 32, ignore_eos: true }
  - { name: batch, load: { rate: $BATCH_RATE, arrival: poisson }, input_tokens: 300, output_tokens: 64, ignore_eos: true }
phases:
  - { name: steady, duration: ${SECONDS_RUN}s }
YAML
echo "measured: realtime $RT_RATE req/s + batch $BATCH_RATE req/s for $SECONDS_RUN s through switchyard serve ..." >&2
"$bin" accept "$work/accept.yaml" --out "$work/measured" >"$work/accept.out" 2>&1 || true

# Demand is in tokens as the server counts them: the bench's prompts (one word per token) plus
# what the chat template adds, measured once with a 96-word prompt.
words=$(for _ in 1 2 3 4; do printf 'time river stone light paper green house music cloud table north bread glass metal field train sound water horse plant night dream smile earth '; done)
template=$(curl -s "http://127.0.0.1:$gport/v1/chat/completions" -H 'content-type: application/json' \
    -d "{\"model\": \"smollm2\", \"max_tokens\": 1, \"messages\": [{\"role\": \"user\", \"content\": \"${words% }\"}]}" |
    "$py" -c 'import json,sys; print(json.load(sys.stdin)["usage"]["prompt_tokens"] - 96)')
echo "chat template: $template tokens per prompt" >&2
cat >"$work/demand.yaml" <<YAML
duration: $((SECONDS_RUN * 20))s
lanes:
  realtime: { rate: $RT_RATE, arrival: poisson, prompt_tokens: uniform:$((64 + template)):$((256 + template)), output_tokens: 32 }
  batch: { rate: $BATCH_RATE, arrival: poisson, prompt_tokens: $((300 + template)), output_tokens: 64 }
YAML
"$bin" plan whatif --profile "$work/profile.json" --demand "$work/demand.yaml" --config "$work/gateway.yaml" --format json >"$work/predicted.json"

"$py" - "$work/measured/requests.jsonl" "$work/predicted.json" "$work/profile.json" <<'PY'
import json, sys
records = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
predicted = {l["lane"]: l for l in json.load(open(sys.argv[2]))["runs"][0]["lanes"]}
run = json.load(open(sys.argv[2]))["runs"][0]
def q(values, p):
    v = sorted(values)
    return v[min(len(v) - 1, max(0, int(p * len(v) + 0.999999) - 1))] if v else float("nan")
print(f"{'lane':10}{'metric':16}{'measured':>10}{'predicted':>11}{'error':>9}")
worst = 0
for lane in ("realtime", "batch"):
    ok = [r for r in records if r["lane"] == lane and r["ok"] and not r["warmup"] and r["ttft_sched"] is not None]
    if not ok:
        print(f"{lane}: no measured requests"); continue
    span = max(r["t_last"] for r in ok) - min(r["t_sched"] for r in ok)
    measured = {"TTFT p50 (s)": q([r["ttft_sched"] for r in ok], 0.5), "TTFT p99 (s)": q([r["ttft_sched"] for r in ok], 0.99),
                "throughput (/s)": len(ok) / span}
    p = predicted[lane]
    pred = {"TTFT p50 (s)": p["ttft_p50"], "TTFT p99 (s)": p["ttft_p99"], "throughput (/s)": p["completed"] / run["span_seconds"]}
    for k in measured:
        err = (pred[k] - measured[k]) / measured[k]
        worst = max(worst, abs(err))
        print(f"{lane:10}{k:16}{measured[k]:>10.3f}{pred[k]:>11.3f}{err * 100:>8.1f}%")
    failed = sum(1 for r in records if r["lane"] == lane and not r["ok"] and not r["warmup"])
    print(f"{lane:10}{'failed':16}{failed:>10}")
print(f"worst error {worst * 100:.1f}% (target 15%): {'MET' if worst <= 0.15 else 'MISSED'}")
PY
echo "work folder: $work" >&2
