#!/usr/bin/env bash
# libFuzzer runs of the parsers that take outside input: JSON (parser and scanner, checked
# against each other), SSE (decoder, checked against any cut of the stream), the config loader
# (YAML → validated config) and the request head (the client guard and NIO's HTTP/1 decoder with
# the gateway's limits: only 2xx/4xx answers, refusals in OpenAI's shape). Built with `--sanitize=fuzzer` in .build/fuzz (SWITCHYARD_FUZZ=1 adds
# the targets to the package), each run for SECONDS (default 60) from the seeds in Fuzz/corpus.
# A crash leaves its input in .build/fuzz/artifacts and fails the script.
# Usage: scripts/fuzz.sh [SECONDS] [FuzzJSON FuzzSSE FuzzConfig FuzzRequestHead]
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_EACH="${1:-60}"
shift || true
TARGETS=("${@:-FuzzJSON FuzzSSE FuzzConfig FuzzRequestHead}")
read -r -a TARGETS <<< "${TARGETS[*]}"
for t in "${TARGETS[@]}"; do
  SWITCHYARD_FUZZ=1 swift build -c release --sanitize=fuzzer --scratch-path .build/fuzz --product "$t" 2>&1 | grep -E "error|warning: unre|Compiling|complete" | grep -v Compiling || true
done
mkdir -p .build/fuzz/artifacts
status=0
for t in "${TARGETS[@]}"; do
  seeds="Fuzz/corpus/$(echo "${t#Fuzz}" | tr 'A-Z' 'a-z')"
  corpus=".build/fuzz/corpus-$t"
  mkdir -p "$corpus"
  # Swift's own crash backtrace would end the process before libFuzzer saves the input.
  out=$(SWIFT_BACKTRACE=enable=no ".build/fuzz/release/$t" "$corpus" "$seeds" -max_total_time="$SECONDS_EACH" -timeout=10 \
    -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix=.build/fuzz/artifacts/"$t"- 2>&1) || status=1
  runs=$(echo "$out" | sed -n 's/^stat::number_of_executed_units: *//p')
  if echo "$out" | grep -q "Test unit written"; then
    echo "$t: CRASH after ${runs:-?} executions" >&2
    echo "$out" | grep -E "Fatal error|ERROR|Test unit written|Base64" >&2
    status=1
  else
    echo "$t: ${runs:-?} executions in ${SECONDS_EACH}s, crashes: 0, corpus: $(ls "$corpus" | wc -l) inputs"
  fi
done
exit $status
