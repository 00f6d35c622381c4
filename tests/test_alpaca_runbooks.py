"Both Alpaca runbooks run headless in SIM under papermill and end with a report: fills, P&L and a chart."
from __future__ import annotations
import json, re, subprocess
import nbformat
import pytest
from conftest import ROOT, BIN


@pytest.mark.parametrize("runbook, log_name", [("crypto_live", "engine.jsonl"), ("equities_live", "equities_engine.jsonl")])
def test_alpaca_runbook_trades_in_sim_and_reports(tmp_path, jupyter_env, runbook, log_name):
    out = tmp_path / f"{runbook}.ipynb"
    r = subprocess.run([str(BIN / "papermill"), "--no-progress-bar", str(ROOT / "runbooks" / f"{runbook}.ipynb"), str(out),
                        "-p", "duration_s", "40", "-p", "run_dir", str(tmp_path / "run")],
                       cwd=ROOT, capture_output=True, text=True, env=jupyter_env, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    nb = nbformat.read(out, as_version=4)
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.output_type == "error"]
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert int(re.search(r"fills: (\d+)", text).group(1)) > 0, text[-2000:]
    assert "skipped" in text                                           # names without SIM data are listed, not silently dropped
    assert any("application/vnd.plotly.v1+json" in o.get("data", {}) for o in outputs)
    log = [json.loads(l) for l in (tmp_path / "run" / log_name).read_text().splitlines()]
    names = {e["event"] for e in log}
    assert {"universe_source", "symbol_skipped", "fill", "positions", "engine_stop"} <= names
    src = next(e for e in log if e["event"] == "universe_source")
    assert src["source"].endswith(("crypto_spot.toml", "equities.toml"))
