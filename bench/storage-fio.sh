#!/usr/bin/env bash
# `switchyard probe storage` against fio (Debian) on the same path in the same run: sequential read
# of a cold model-sized file (one stream) and sequential write with fsync (N writers), same size
# and 4 MiB blocks, incompressible data on both sides. Target: within 10% of fio for both.
#
# This VM's disk varies ±20% from one run to the next, so the tools are compared in pairs: each
# round runs one probe phase (--phases) and the same fio job back to back, in alternating order,
# after `sync` and dropping the page cache; the verdict is the median of the rounds' ratios.
# Usage: bench/storage-fio.sh [PATH] [SIZE_MIB] [STREAMS] [ROUNDS]   (defaults: a temp folder on
# /var/tmp, 1024, 4, 11)
set -euo pipefail
cd "$(dirname "$0")/.."
made=""
if [ -n "${1:-}" ]; then path="$1"; else path=$(mktemp -d -p /var/tmp) && made="$path"; fi
size="${2:-1024}"
streams="${3:-4}"
rounds="${4:-11}"
command -v fio >/dev/null || { echo "installing fio from Debian (once)" >&2; apt-get update -qq && apt-get install -y -qq fio >/dev/null; }
swift build -c release --product switchyard >/dev/null
bin=.build/release/switchyard
work=$(mktemp -d -p "$path" fio-XXXXXX)
trap 'rm -rf "$work"; if [ -n "$made" ]; then rmdir "$made"; fi' EXIT

settle() {
    sync
    if [ -w /proc/sys/vm/drop_caches ]; then echo 3 >/proc/sys/vm/drop_caches; fi
}
per=$((size / streams))
probe() { # phase round
    "$bin" probe storage "$path" --size-mib "$size" --streams "$streams" --phases "$1" --format json >"$work/probe-$1-$2.json" 2>/dev/null
}
fio_read() { # round: lay the file out, then read it with its cache invalidated first
    fio --name=read --directory="$work" --filename=model.bin --rw=read --bs=4M --size="${size}M" --fallocate=none --ioengine=psync \
        --invalidate=1 --output-format=json >"$work/read-$1.json"
    rm -f "$work/model.bin"
}
fio_write() { # round: N writers, fsync at the end of each (inside fio's runtime)
    fio --name=write --directory="$work" --rw=write --bs=4M --size="${per}M" --numjobs="$streams" --end_fsync=1 --fallocate=none \
        --ioengine=psync --group_reporting --output-format=json >"$work/write-$1.json"
    rm -f "$work"/write.*
}
for round in $(seq 1 "$rounds"); do
    echo "round $round of $rounds" >&2
    for pair in "model_load_single fio_read" "checkpoint_write fio_write"; do
        set -- $pair
        settle
        if ((round % 2)); then probe "$1" "$round"; settle; "$2" "$round"; else "$2" "$round"; settle; probe "$1" "$round"; fi
    done
done
python3 - "$work" "$path" "$rounds" <<'PY'
import json, sys
from statistics import median
work, path, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3])
def probe(name, i):
    return json.load(open(f"{work}/probe-{name}-{i}.json"))["results"][0]["value"]
def fio(name, kind, i):
    j = json.load(open(f"{work}/{name}-{i}.json"))["jobs"][0][kind]
    return j["io_bytes"] / (j["runtime"] / 1000) / 1e6  # bytes over ms: MB/s (10^6)
print(f"storage probe vs fio on {path}: {rounds} rounds, each a probe phase and the fio job back to back")
worst = 0
for label, phase, job, kind in [("sequential read, cold, 1 stream", "model_load_single", "read", "read"),
                                ("sequential write + fsync, N writers", "checkpoint_write", "write", "write")]:
    pairs = [(probe(phase, i), fio(job, kind, i)) for i in range(1, rounds + 1)]
    ratios = sorted(p / f for p, f in pairs)
    ratio = median(ratios)
    worst = max(worst, abs(ratio - 1))
    print(f"  {label:36} probe {median(p for p, _ in pairs):7.0f} MB/s  fio {median(f for _, f in pairs):7.0f} MB/s  (medians)"
          f"  paired ratio: median {ratio:.3f}, range {ratios[0]:.2f}-{ratios[-1]:.2f}")
print(f"worst difference {worst * 100:.1f}% (target 10%): {'MET' if worst <= 0.10 else 'MISSED'}")
PY
