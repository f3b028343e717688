#!/usr/bin/env bash
# `switchyard probe storage` against fio (Debian) on the same path in the same run: sequential read
# of a cold model-sized file (one stream) and sequential write with fsync (N writers), same size
# and 4 MiB blocks. Target: within 10% of fio for both.
# Usage: bench/storage-fio.sh [PATH] [SIZE_MIB] [STREAMS]   (defaults: a temp folder on /, 1024, 4)
set -euo pipefail
cd "$(dirname "$0")/.."
path="${1:-$(mktemp -d -p /var/tmp)}"
size="${2:-1024}"
streams="${3:-4}"
command -v fio >/dev/null || { echo "installing fio from Debian (once)" >&2; apt-get update -qq && apt-get install -y -qq fio >/dev/null; }
swift build -c release --product switchyard >/dev/null
bin=.build/release/switchyard
work=$(mktemp -d -p "$path" fio-XXXXXX)
trap 'rm -rf "$work"' EXIT

# Three rounds, probe and fio taking turns (this VM's disk varies ±20% from minute to minute);
# medians compared.
per=$((size / streams))
for round in 1 2 3; do
    "$bin" probe storage "$path" --size-mib "$size" --streams "$streams" --files 500 --random-reads 1000 --format json >"$work/probe-$round.json" 2>/dev/null
    # fio: lay the file out, then read it with its cache invalidated first; then N writers with fsync at the end.
    fio --name=read --directory="$work" --filename=model.bin --rw=read --bs=4M --size="${size}M" --fallocate=none --ioengine=psync \
        --invalidate=1 --output-format=json >"$work/read-$round.json"
    fio --name=write --directory="$work" --rw=write --bs=4M --size="${per}M" --numjobs="$streams" --end_fsync=1 --fallocate=none --ioengine=psync \
        --group_reporting --output-format=json >"$work/write-$round.json"
    rm -f "$work"/model.bin "$work"/write.*
done
python3 - "$work" "$path" <<'PY'
import json, sys
work, path = sys.argv[1:]
from statistics import median
def probe(name):
    return median({r["name"]: r for r in json.load(open(f"{work}/probe-{i}.json"))["results"]}[name]["value"] for i in (1, 2, 3))
def fio(name, kind):
    jobs = [json.load(open(f"{work}/{name}-{i}.json"))["jobs"][0][kind] for i in (1, 2, 3)]
    return median(j["io_bytes"] / (j["runtime"] / 1000) / 1e6 for j in jobs)  # bytes over ms: MB/s (10^6)
rows = [("sequential read, cold, 1 stream", probe("model_load_single"), fio("read", "read")),
        ("sequential write + fsync, N writers", probe("checkpoint_write"), fio("write", "write"))]
print(f"storage probe vs fio on {path} (medians of 3 rounds)")
worst = 0
for name, mine, ref in rows:
    ratio = mine / ref
    worst = max(worst, abs(ratio - 1))
    print(f"  {name:38} probe {mine:9.1f} MB/s   fio {ref:9.1f} MB/s   ratio {ratio:.3f}")
print(f"worst difference {worst * 100:.1f}% (target 10%): {'MET' if worst <= 0.10 else 'MISSED'}")
PY
