"Shared pytest fixtures: project paths and hermetic Jupyter dirs."
from __future__ import annotations
import os
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parent.parent
BIN = ROOT / ".venv" / "bin"


@pytest.fixture
def jupyter_env(tmp_path):
    "Environment for subprocesses that start kernels, with Jupyter's dirs inside tmp_path."
    env = dict(os.environ)
    for k in ("JUPYTER_CONFIG_DIR", "JUPYTER_DATA_DIR", "JUPYTER_RUNTIME_DIR", "IPYTHONDIR"):
        env[k] = str(tmp_path / k.lower())
    env["JUPYTER_PATH"] = str(ROOT / ".venv" / "share" / "jupyter")
    return env
