#!/usr/bin/env bash
# The what-if simulator at scale, and against Erlang C, with the release binary on one core:
#   1. 1,000 replicas × 8 slots, 10 million requests at 80% load: wall time and events per second
#      (target: under 60 s);
#   2. M/M/c (exponential service, one FIFO lane, no refusals) against Erlang C's mean wait at
#      80% load, 10 million requests.
# Usage: bench/plan-sim.sh [REQUESTS]   (default 10000000)
set -euo pipefail
cd "$(dirname "$0")/.."
requests=${1:-10000000}
swift build -c release --product switchyard >/dev/null
bin=.build/release/switchyard
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

profile() { # slots mean-seconds
    cat <<JSON
{"name": "exponential service, $1 slots", "gpus_per_replica": 1, "accelerator": "bench",
 "slots": {"value": $1, "source": "bench"}, "ttft_base": {"value": $2, "source": "bench"},
 "ttft_per_prompt_token": {"value": 0, "source": "bench"}, "ttft_per_concurrent": {"value": 0, "source": "bench"},
 "tpot_base": {"value": 0, "source": "bench"}, "tpot_per_concurrent": {"value": 0, "source": "bench"},
 "ttft_spread": "exponential", "tpot_spread": "none", "prefill": "parallel", "notes": []}
JSON
}
# One lane that never refuses: an unbounded queue and an hour to start.
cat >"$work/fifo.yaml" <<'YAML'
lanes:
  realtime: { queue: { max_size: 0, timeout: 1h } }
models:
  - { name: m, queue_timeout: 1h, backends: [{ url: "http://127.0.0.1:9/v1" }] }
YAML
demand() { # rate seconds
    printf 'duration: %ss\nlanes:\n  realtime: { rate: %s, arrival: poisson, prompt_tokens: 1, output_tokens: 1 }\n' "$2" "$1"
}
run() { # name profile-args rate replicas
    local name=$1 slots=$2 mean=$3 rate=$4 replicas=$5
    profile "$slots" "$mean" >"$work/$name.json"
    local seconds
    seconds=$(python3 -c "print(round($requests / $rate, 3))")
    demand "$rate" "$seconds" >"$work/$name-demand.yaml"
    local start end
    start=$(date +%s.%N)
    taskset -c 0 "$bin" plan whatif --profile "$work/$name.json" --demand "$work/$name-demand.yaml" --config "$work/fifo.yaml" \
        --replicas "$replicas" --format json >"$work/$name-out.json"
    end=$(date +%s.%N)
    python3 - "$work/$name-out.json" "$start" "$end" "$name" "$replicas" "$slots" "$mean" "$rate" <<'PY'
import json, math, sys
out, start, end, name, replicas, slots, mean, rate = sys.argv[1:]
run = json.load(open(out))["runs"][0]
lane = run["lanes"][0]
wall = float(end) - float(start)
c, mu, lam = int(replicas) * int(slots), 1 / float(mean), float(rate)
a = lam / mu
term, total = 1.0, 0.0
for k in range(c):
    total += term
    term *= a / (k + 1)
top = term * c / (c - a)
wq = top / (total + top) / (c * mu - lam)
print(f"{name}: {lane['completed']:,} requests, {run['events']:,} events in {wall:.1f} s on one core "
      f"({run['events'] / wall:,.0f} events/s, {lane['completed'] / wall:,.0f} requests/s); utilization {run['utilization']:.3f} (λ/cμ {lam / (c * mu):.3f})")
if math.isfinite(wq) and wq > 0:
    print(f"  mean queue wait {lane['mean_queue_wait'] * 1000:.3f} ms, Erlang C {wq * 1000:.3f} ms: "
          f"{(lane['mean_queue_wait'] - wq) / wq * 100:+.2f}%")
else:
    print(f"  mean queue wait {lane['mean_queue_wait'] * 1000:.3f} ms (Erlang C not computed: {c} servers overflow its terms)")
PY
}
echo "simulating $requests requests per case"
run scale 8 1 6400 1000
run mmc8 1 1 6.4 8
