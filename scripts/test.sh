#!/usr/bin/env bash
# All tests: export/clean sync check, every notebook (nbdev-test), then pytest. Any failure fails the run.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="$ROOT/.venv/bin"
cd "$ROOT"
bash scripts/check_sync.sh
"$BIN/nbdev-test"
"$BIN/pytest" -q
