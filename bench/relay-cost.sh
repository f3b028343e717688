#!/usr/bin/env bash
# Relay cost: the SSE relay's CPU per event in process (release build), on the stream
# bench/proxy-overhead.sh serves, against copying the same bytes. READ=bytes per read (16384).
set -euo pipefail
cd "$(dirname "$0")/.."
export SWITCHYARD_BENCHMARKS=1
swift build -c release --product relay-cost --scratch-path .build-bench >&2
taskset -c 0 .build-bench/release/relay-cost 2>/dev/null || .build-bench/release/relay-cost
