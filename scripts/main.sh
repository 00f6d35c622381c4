#!/usr/bin/env bash
# The main job, headless via papermill on bundled real data (no credentials, no network).
# Until the Hyperliquid engine lands this is the z-score / OBI exploration runbook.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
stamp="$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p runs
out="runs/explore_hl-$stamp.ipynb"
"$ROOT/.venv/bin/papermill" --no-progress-bar runbooks/explore_hl.ipynb "$out" -p html_out "runs/explore_hl-$stamp.html" "$@"
echo "main job done: output notebook $out, chart runs/explore_hl-$stamp.html"
