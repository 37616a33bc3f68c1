#!/usr/bin/env bash
# Copies the console's third-party files from the npm registry, at pinned
# versions, into console/vendor/ with their licences. Run by hand when a
# version changes; the result is committed, so neither the build nor the
# tests need npm. Reproducible: the same versions give the same files
# (npm checks each tarball's integrity).
#
#   scripts/vendor-console.sh
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT=$ROOT/console/vendor

# Preact 10 is the last line with UMD builds: the page loads plain scripts,
# so the vendored files need no import map (an inline script the CSP forbids).
PREACT=10.29.8
HTM=3.1.1
UPLOT=1.6.32

command -v npm >/dev/null 2>&1 || { echo "vendor-console.sh: npm is required" >&2; exit 1; }
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
cd "$WORK"
npm init -y >/dev/null
npm install --no-audit --no-fund --ignore-scripts --save-exact \
    "preact@$PREACT" "htm@$HTM" "uplot@$UPLOT" >/dev/null

rm -rf "$OUT"
mkdir -p "$OUT/licenses"
M=node_modules
cp "$M/preact/dist/preact.umd.js" "$M/preact/hooks/dist/hooks.umd.js" "$M/htm/dist/htm.umd.js" \
    "$M/uplot/dist/uPlot.iife.min.js" "$M/uplot/dist/uPlot.min.css" "$OUT/"
# The source maps' comments point at files we do not ship; browsers would
# request them (a failed request) when devtools are open.
sed -i -e '/^\/\/# sourceMappingURL=/d' -e 's|//# sourceMappingURL=[^ ]*$||' "$OUT"/*.js
cp "$M/preact/LICENSE" "$OUT/licenses/preact-LICENSE"
cp "$M/htm/LICENSE" "$OUT/licenses/htm-LICENSE"
cp "$M/uplot/LICENSE" "$OUT/licenses/uplot-LICENSE"
cat >"$OUT/README.md" <<MD
# Vendored front-end libraries

Written by \`scripts/vendor-console.sh\` from the npm registry; do not edit by hand
(only the \`sourceMappingURL\` comments are removed: the maps are not shipped).

| package | version | licence | files |
| --- | --- | --- | --- |
| preact | $PREACT | MIT | preact.umd.js, hooks.umd.js |
| htm | $HTM | Apache-2.0 | htm.umd.js |
| uplot | $UPLOT | MIT | uPlot.iife.min.js, uPlot.min.css |

The licence texts are in \`licenses/\`.
MD
echo "vendored into ${OUT#"$ROOT"/}:" >&2
ls -l "$OUT" >&2
