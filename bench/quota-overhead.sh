#!/usr/bin/env bash
# Quota overhead: the same gateway with 1,000 tenants, once with every tenant under quotas
# (requests/min, tokens/min and a daily budget, set high enough that nothing is refused: the cost
# of the bookkeeping itself) and once without, in front of nginx's fixed answer. wrk at 32
# connections sends each request with a random one of the 1,000 keys. Runs alternate (off, on,
# off, on) so drift on a shared machine hits both alike. Loopback only; each run is DURATION s.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION="${DURATION:-10}"
CONNS="${CONNS:-32}"
TENANTS="${TENANTS:-1000}"
source bench/fixed-origin.sh
bench_prologue
UP=$(free_port); ON=$(free_port); OFF=$(free_port)
start_fixed_nginx "$work" "$UP"
# 1,000 tenants with their keys; the same tenants with and without limits.
python3 - "$work" "$TENANTS" "$UP" <<'PY'
import hashlib, secrets, sys
work, n, up = sys.argv[1], int(sys.argv[2]), sys.argv[3]
keys = [f"sk-bench-{secrets.token_hex(16)}" for _ in range(n)]
for name, limits in (("on", ", limits: { requests_per_minute: 100000000, tokens_per_minute: 1000000000, tokens_per_day: 1000000000000 }"), ("off", "")):
    with open(f"{work}/{name}.yaml", "w") as f:
        f.write("tenants:\n")
        for i, k in enumerate(keys):
            f.write(f"  - {{ name: t{i}, api_key_sha256: {hashlib.sha256(k.encode()).hexdigest()}{limits} }}\n")
        f.write(f"models: [{{ name: bench, backends: [{{ url: 'http://127.0.0.1:{up}/v1' }}] }}]\n")
with open(f"{work}/keys.lua", "w") as f:
    f.write("keys = {" + ",".join(f'"{k}"' for k in keys) + "}\n")
    f.write('body = \'{"model":"bench","messages":[{"role":"user","content":"Say something"}],"max_tokens":16}\'\n')
    f.write('request = function()\n  return wrk.format("POST", "/v1/chat/completions", {["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. keys[math.random(#keys)]}, body)\nend\n')
PY
for mode in on off; do
  port=$([ $mode = on ] && echo "$ON" || echo "$OFF")
  .build/release/switchyard serve --config "$work/$mode.yaml" --host 127.0.0.1 --port "$port" --log-level error --data-dir "$work/data-$mode" \
    >"$work/$mode.log" 2>&1 &
  echo $! > "$work/$mode.pid"
done
for port in "$ON" "$OFF"; do
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && break; sleep 0.1; done
done
echo "== $TENANTS tenants, random key per request, wrk -c$CONNS, ${DURATION}s per run"
printf "%-10s %10s %12s %8s\n" quotas "req/s" "CPU us/req" "non-2xx"
declare -a on_rps off_rps on_cpu off_cpu
for round in 1 2; do
  for mode in off on; do
    port=$([ $mode = on ] && echo "$ON" || echo "$OFF")
    read -r rps cpu bad < <(wrk_cpu_run "$work/$mode-$round.txt" "$(cat "$work/$mode.pid")" "http://127.0.0.1:$port/v1/chat/completions" "$work/keys.lua")
    printf "%-10s %10s %12s %8s\n" "$mode" "$rps" "$cpu" "$bad"
    if [ $mode = on ]; then on_rps+=("$rps"); on_cpu+=("$cpu"); else off_rps+=("$rps"); off_cpu+=("$cpu"); fi
  done
done
ab_summary "quotas on" off "${on_rps[*]}" "${off_rps[*]}" "${on_cpu[*]}" "${off_cpu[*]}"
echo "(target: quotas on / off throughput >= 0.95)"
for mode in off on; do
  port=$([ $mode = on ] && echo "$ON" || echo "$OFF")
  echo "$mode: $(curl -s "http://127.0.0.1:$port/metrics" | grep '^switchyard_fast_path_total' | tr '\n' ' ')"
done
grep -q "x-ratelimit" <(curl -si "http://127.0.0.1:$ON/v1/chat/completions" -H 'content-type: application/json' \
  -H "authorization: Bearer $(sed -n 's/^keys = {"\([^"]*\)".*/\1/p' "$work/keys.lua")" \
  -d '{"model":"bench","messages":[{"role":"user","content":"hi"}]}') && echo "check: the quota gateway answers with x-ratelimit-* headers" \
  || { echo "check FAILED: no x-ratelimit headers from the quota gateway" >&2; exit 1; }
