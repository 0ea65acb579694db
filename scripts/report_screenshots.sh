#!/usr/bin/env bash
# The screenshots in docs/img/: the top 1280 x 2000 px of each application's HTML report, as headless
# Chromium draws it. Write the reports first (python examples/APP/run.py, which needs ../shared/data), then:
#   bash scripts/report_screenshots.sh [fraud] [intrusion] [cancer]     (default: all three)
set -euo pipefail
cd "$(dirname "$0")/.."
browser=${ODDKIT_CHROMIUM:-$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)}
[ -n "$browser" ] || { echo "no Chromium found: install Debian's chromium, or set ODDKIT_CHROMIUM" >&2; exit 1; }
apps=("$@")
[ ${#apps[@]} -gt 0 ] || apps=(fraud intrusion cancer)
profile=$(mktemp -d)
trap 'rm -rf "$profile"' EXIT
for app in "${apps[@]}"; do
  report="examples/$app/out/report.html"
  [ -f "$report" ] || { echo "$report is missing: run python examples/$app/run.py first" >&2; exit 1; }
  "$browser" --headless --no-sandbox --disable-gpu --no-first-run --disable-extensions --hide-scrollbars \
    --user-data-dir="$profile" --window-size=1280,2000 --screenshot="docs/img/$app-report.png" \
    "file://$PWD/$report" 2>/dev/null
  echo "wrote docs/img/$app-report.png from $report"
done
