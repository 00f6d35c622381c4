#!/usr/bin/env bash
# Fail unless the exported package and the cleaned notebooks are exactly what is committed:
# notebooks are the source, so tri_engine/ must be what nbdev-export makes of them.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="${TRI_BIN:-$ROOT/.venv/bin}"
cd "$ROOT"
"$BIN/nbdev-export"
"$BIN/nbdev-clean"
"$BIN/nbdev-clean" --fname runbooks
dirty="$(git status --porcelain --untracked-files=all -- tri_engine nbs runbooks pyproject.toml)"
if [ -n "$dirty" ]; then
  echo "nbdev sync check FAILED: run nbdev-export and nbdev-clean, then commit:" >&2
  echo "$dirty" >&2
  git --no-pager diff --stat -- tri_engine nbs runbooks pyproject.toml >&2 || true
  exit 1
fi
echo "nbdev sync check: OK"
