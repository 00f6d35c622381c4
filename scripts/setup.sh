#!/usr/bin/env bash
# Set up everything tri_engine needs on a fresh machine (idempotent):
# uv, the locked virtualenv in .venv (uv.lock, bytecode compiled) and the package in editable mode.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export UV_COMPILE_BYTECODE=1          # these machines set PYTHONDONTWRITEBYTECODE=1: compile once at install
PY="$(command -v python3.11 || command -v python3 || true)"
[ -n "$PY" ] || { echo "setup: python3 (>= 3.11) not found" >&2; exit 1; }
"$PY" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' || { echo "setup: Python >= 3.11 required, found $("$PY" -V)" >&2; exit 1; }
if ! command -v uv >/dev/null 2>&1 && [ ! -x "$HOME/.local/bin/uv" ]; then
  "$PY" -m pip install --quiet --user "uv==0.13.9" 2>&1 | grep -v "is ignored" || true
fi
UV="$(command -v uv || echo "$HOME/.local/bin/uv")"
"$UV" sync --frozen --python "$PY" --quiet
# The panel's browser test drives Debian's Chromium with Playwright (installed above from uv.lock); Playwright never
# downloads a browser. Install Chromium with apt when it is missing (root, or passwordless sudo); TRI_CHROMIUM overrides.
if [ -z "${TRI_CHROMIUM:-}" ] && ! command -v chromium >/dev/null 2>&1 && [ "$(uname -s)" = "Linux" ]; then
  if command -v apt-get >/dev/null 2>&1 && { [ "$(id -u)" -eq 0 ] || sudo -n true 2>/dev/null; }; then
    SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo -n"
    echo "setup: installing chromium (apt) for tests/test_panel_browser.py"
    $SUDO apt-get update -qq
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "setup: WARNING: chromium is missing and cannot be installed here (needs apt-get as root or sudo);" \
         "tests/test_panel_browser.py needs it (or TRI_CHROMIUM=/path/to/chromium)" >&2
  fi
fi
echo "setup: OK ($("$ROOT/.venv/bin/python" -V), $("$UV" --version), chromium: $(command -v chromium || echo "${TRI_CHROMIUM:-missing}"))"
