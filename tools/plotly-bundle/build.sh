#!/usr/bin/env bash
# Rebuild assets/vendor/plotly/plotly-lulupay.min.js from entry.js: plotly.js's core and the trace
# types the pages draw (1.2 MB instead of the full bundle's 4.8 MB). Needs Node.js and the npm
# registry; the output is committed, so running or testing the app needs neither.
#
#   tools/plotly-bundle/build.sh [plotly.js version]
#
# Use the plotly.js version of the installed `plotly` package (first lines of
# plotly/package_data/plotly.min.js), which is the one dcc.Graph is tested with.
set -euo pipefail
version="${1:-4.1.1}"
here="$(cd "$(dirname "$0")" && pwd)"
out="$here/../../assets/vendor/plotly/plotly-lulupay.min.js"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cp "$here/entry.js" "$work/"
cd "$work"
npm install --no-audit --no-fund --silent "plotly.js@$version" esbuild@0.28.2
npx esbuild entry.js --bundle --minify --format=iife --global-name=Plotly --target=es2016 \
  --define:global=window --define:define.amd=false --loader:.css=empty --legal-comments=none \
  --banner:js="/* plotly.js v$version (MIT licence: assets/vendor/LICENSE-plotly) - core, bar, heatmap, indicator; tools/plotly-bundle/build.sh */" \
  --footer:js="$(cat "$here/footer.js")" --outfile="$out"
ls -l "$out"
