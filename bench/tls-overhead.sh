#!/usr/bin/env bash
# TLS overhead on the listener: the same gateway config served over plain HTTP and over HTTPS
# (server.tls with an ECDSA P-256 certificate from a throwaway CA), in front of nginx's fixed
# answer. wrk keeps CONNS connections open (so handshakes are a small part: the per-request cost
# of encryption is what is measured), alternating plain, tls, plain, tls.
# Fresh connections (the handshake) are timed after, with curl. Loopback only;
# each run is DURATION s.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION="${DURATION:-10}"
CONNS="${CONNS:-32}"
source bench/fixed-origin.sh
bench_prologue
UP=$(free_port); TLS=$(free_port); PLAIN=$(free_port)
start_fixed_nginx "$work" "$UP"
ec() { openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "$@" 2>/dev/null; }
ec -x509 -keyout "$work/ca.key" -out "$work/ca.pem" -days 1 -subj "/CN=bench CA"
ec -keyout "$work/server.key" -out "$work/server.csr" -subj "/CN=127.0.0.1"
echo "subjectAltName=IP:127.0.0.1" > "$work/ext"
openssl x509 -req -in "$work/server.csr" -CA "$work/ca.pem" -CAkey "$work/ca.key" -set_serial 1 -days 1 \
  -extfile "$work/ext" -out "$work/server.pem" 2>/dev/null
models="models: [{ name: bench, backends: [{ url: 'http://127.0.0.1:$UP/v1' }] }]"
echo "$models" > "$work/plain.yaml"
printf "server: { tls: { cert: %s, key: %s } }\n%s\n" "$work/server.pem" "$work/server.key" "$models" > "$work/tls.yaml"
for mode in tls plain; do
  port=$([ $mode = tls ] && echo "$TLS" || echo "$PLAIN")
  .build/release/switchyard serve --config "$work/$mode.yaml" --host 127.0.0.1 --port "$port" --log-level error --data-dir "$work/data-$mode" \
    >"$work/$mode.log" 2>&1 &
  echo $! > "$work/$mode.pid"
done
url() { [ "$1" = tls ] && echo "https://127.0.0.1:$TLS" || echo "http://127.0.0.1:$PLAIN"; }
for mode in tls plain; do
  for _ in $(seq 100); do curl -sf --cacert "$work/ca.pem" "$(url $mode)/readyz" >/dev/null && break; sleep 0.1; done
done
write_post_lua "$work"
echo "== keep-alive, wrk -c$CONNS, ${DURATION}s per run, ECDSA P-256, TLS 1.3"
printf "%-10s %10s %12s %8s\n" listener "req/s" "CPU us/req" "non-2xx"
declare -a tls_rps plain_rps tls_cpu plain_cpu
for round in 1 2; do
  for mode in plain tls; do
    read -r rps cpu bad < <(wrk_cpu_run "$work/$mode-$round.txt" "$(cat "$work/$mode.pid")" "$(url $mode)/v1/chat/completions" "$work/post.lua")
    printf "%-10s %10s %12s %8s\n" "$mode" "$rps" "$cpu" "$bad"
    if [ $mode = tls ]; then tls_rps+=("$rps"); tls_cpu+=("$cpu"); else plain_rps+=("$rps"); plain_cpu+=("$cpu"); fi
  done
done
ab_summary TLS plain "${tls_rps[*]}" "${plain_rps[*]}" "${tls_cpu[*]}" "${plain_cpu[*]}"
# New connections: one request each, the handshake included (curl, sequential).
for mode in plain tls; do
  start=$(date +%s%N)
  for _ in $(seq 200); do curl -s --cacert "$work/ca.pem" -o /dev/null "$(url $mode)/healthz"; done
  echo "$mode: 200 fresh connections (curl, one request each): $(( ($(date +%s%N) - start) / 200000 )) us per connection"
done
