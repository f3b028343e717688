#!/usr/bin/env bash
# Scheduler cost: enqueue+dispatch decisions/s on one core with 1,000 tenants (release build).
set -euo pipefail
cd "$(dirname "$0")/.."
export SWITCHYARD_BENCHMARKS=1
swift build -c release --product scheduler-cost --scratch-path .build-bench >&2
taskset -c 0 .build-bench/release/scheduler-cost 2>/dev/null || .build-bench/release/scheduler-cost
