#!/usr/bin/env bash
# Opens an evidence bundle's report.html in headless Chromium (Debian's package, installed when
# missing), takes a screenshot and checks that the charts rendered: the DOM Chromium built holds
# SVG paths with real drawing commands, and the PNG is not blank.
# Usage: scripts/report-screenshot.sh BUNDLE_DIR [OUT.png]
set -euo pipefail
bundle="${1:?usage: $0 BUNDLE_DIR [OUT.png]}"
png="${2:-$bundle/report.png}"
report="$(cd "$bundle" && pwd)/report.html"
[ -f "$report" ] || { echo "no report.html in $bundle" >&2; exit 1; }
if ! command -v chromium >/dev/null; then
  echo "installing chromium from Debian (once)" >&2
  apt-get update -qq && apt-get install -y -qq chromium >/dev/null
fi
flags=(--headless --no-sandbox --disable-gpu --hide-scrollbars --window-size=1300,2400)
chromium "${flags[@]}" --screenshot="$png" "file://$report" >/dev/null 2>&1
dom="$(chromium "${flags[@]}" --dump-dom "file://$report" 2>/dev/null)"
paths=$(grep -oE '<path d="M[0-9.]+ [0-9.]+[HLh][^"]*"' <<<"$dom" | wc -l)
python3 - "$png" "$paths" <<'PY'
import struct, sys, zlib
png, paths = sys.argv[1], int(sys.argv[2])
data = open(png, "rb").read()
assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
w, h = struct.unpack(">II", data[16:24])
# Decode enough of the image to see more than one colour (a blank page is one colour).
idat = b"".join(data[i + 8:i + 8 + struct.unpack(">I", data[i:i + 4])[0]]
                for i in range(8, len(data)) if data[i + 4:i + 8] == b"IDAT")
raw = zlib.decompress(idat)
colours = len(set(raw[:200000]))
print(f"screenshot {png}: {w}x{h}, {len(data)} bytes, {colours} distinct byte values; {paths} drawn SVG paths")
if paths < 3 or colours < 8:
    sys.exit("the report did not render its charts")
PY
