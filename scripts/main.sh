#!/usr/bin/env bash
# The main job: the Hyperliquid perps engine, headless via papermill, in SIM on bundled real data
# (an in-process venue simulator, a throwaway key, no credentials, no network).
# Extra arguments go to papermill, e.g.: bash scripts/main.sh -p duration_s 120 -p speed 30
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
stamp="$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p runs
out="runs/hl_live-$stamp.ipynb"
"$ROOT/.venv/bin/papermill" --no-progress-bar runbooks/hl_live.ipynb "$out" -p run_dir "runs/hl-$stamp" "$@"
echo "main job done: output notebook $out, engine log runs/hl-$stamp/hl_engine.jsonl"
