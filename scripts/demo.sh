#!/usr/bin/env bash
# Install (first time only) and run the demo: cancer detection on scikit-learn's breast-cancer data.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/oddkit demo "$@"
