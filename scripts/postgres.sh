#!/usr/bin/env bash
# A throwaway PostgreSQL for the tests, on a free loopback port, in a temporary data folder.
#   scripts/postgres.sh start   → prints export lines: SWITCHYARD_TEST_POSTGRES (URL), SWITCHYARD_TEST_PG_DIR
#   scripts/postgres.sh stop DIR
# Installs Debian's postgresql when it is missing. Runs the server as the `postgres` user when
# started as root (PostgreSQL refuses to run as root).
set -euo pipefail
cmd="${1:-start}"
bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)
if [ -z "$bin" ]; then
  echo "postgres: installing Debian's postgresql" >&2
  apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
  bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
fi
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
case "$cmd" in
  start)
    dir=$(mktemp -d /tmp/switchyard-pg.XXXXXX)
    chmod 755 "$dir"
    [ "$(id -u)" = 0 ] && chown postgres "$dir"
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    as_pg "$bin/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 >"$dir/initdb.log" 2>&1 \
      || { cat "$dir/initdb.log" >&2; exit 1; }
    as_pg "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
      -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200" start >&2 \
      || { cat "$dir/server.log" >&2; exit 1; }
    as_pg "$bin/createdb" -h 127.0.0.1 -p "$port" -U postgres switchyard_test
    echo "export SWITCHYARD_TEST_POSTGRES=postgres://postgres@127.0.0.1:$port/switchyard_test?sslmode=disable"
    echo "export SWITCHYARD_TEST_PG_DIR=$dir"
    ;;
  stop)
    dir="${2:?usage: postgres.sh stop DIR}"
    as_pg "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >&2 || true
    rm -rf "$dir"
    ;;
esac
