#!/usr/bin/env bash
# The README's picture: the demo's HTML report, as headless Chromium draws it.
# bash scripts/docs_picture.sh  →  docs/demo-report.png
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
(cd "$work" && OTEL_LIVEKIT_BACKEND=file "$OLDPWD/.venv/bin/otel-livekit" demo --calls 2 --turns 3 \
    --concurrency 2 --seed 7 --speed 8 --file "$work/calls.jsonl" > "$work/demo.log")
chromium --headless --no-sandbox --disable-gpu --no-first-run --hide-scrollbars \
    --user-data-dir="$work/profile" --window-size=1200,1500 \
    --screenshot="$PWD/docs/demo-report.png" "file://$work/calls.html" 2>/dev/null
echo "docs/demo-report.png"
