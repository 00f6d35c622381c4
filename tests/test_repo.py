"The repository's promises: README commands, CI = README (b), export sync check, the main job."
from __future__ import annotations
import base64, json, os, re, shutil, subprocess
import numpy as np
from pathlib import Path
import nbformat
import pytest
from conftest import ROOT, BIN


def readme_commands() -> list[str]:
    "The fenced bash one-liners in README.md, in order."
    return re.findall(r"```bash\n(.+?)\n```", (ROOT / "README.md").read_text())


def test_readme_has_the_two_commands_and_ci_runs_exactly_command_b():
    cmds = readme_commands()
    assert cmds[0] == "bash scripts/setup.sh && bash scripts/main.sh"
    assert "runbooks/hl_live.ipynb" in (ROOT / "scripts" / "main.sh").read_text()
    assert cmds[1] == "bash scripts/setup.sh && bash scripts/test.sh"
    ci_lines = [l for l in (ROOT / ".ci" / "run").read_text().splitlines() if l.strip() and not l.startswith("#")]
    assert ci_lines[-1] == cmds[1], "the last line of .ci/run must be README command (b)"
    assert "set -euo pipefail" in ci_lines


def _copy_repo(dst: Path) -> Path:
    "A git repo holding the project's current files (tracked and untracked, not ignored), committed."
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    for f in files:
        if (ROOT / f).is_file():
            (dst / f).parent.mkdir(parents=True, exist_ok=True); shutil.copy2(ROOT / f, dst / f)
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}
    for cmd in (["git", "init", "-q"], ["git", "add", "-A"], ["git", "commit", "-qm", "snapshot"]):
        subprocess.run(cmd, cwd=dst, check=True, env=env)
    return dst


def _check_sync(repo: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", "scripts/check_sync.sh"], cwd=repo, capture_output=True, text=True,
                          env={**os.environ, "TRI_BIN": str(BIN)})


def test_sync_check_passes_on_a_clean_tree_and_fails_when_export_is_stale(tmp_path):
    repo = _copy_repo(tmp_path)
    ok = _check_sync(repo)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    nb_path = repo / "nbs" / "02_signals.ipynb"
    nb = nbformat.read(nb_path, as_version=4)
    cell = next(c for c in nb.cells if c.cell_type == "code" and "def obi(" in c.source)
    cell.source = cell.source.replace("Imbalance of the first", "Imbalance (edited) of the first")
    nbformat.write(nb, nb_path)
    subprocess.run(["git", "commit", "-qam", "edit notebook, forget export"], cwd=repo, check=True,
                   env={**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"})
    bad = _check_sync(repo)
    assert bad.returncode == 1
    assert "tri_engine/signals.py" in bad.stderr


def test_sync_check_fails_on_a_new_module_that_was_never_committed(tmp_path):
    repo = _copy_repo(tmp_path)
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("#| default_exp killswitch"),
                                         nbformat.v4.new_code_cell("#| export\ndef kill(): 'Stop.'\n")])
    nb.metadata = {"kernelspec": {"display_name": "python3", "language": "python", "name": "python3"}}
    nbformat.write(nb, repo / "nbs" / "99_killswitch.ipynb")
    bad = _check_sync(repo)
    assert bad.returncode == 1
    assert "tri_engine/killswitch.py" in bad.stderr


def test_explore_runbook_leaves_an_output_notebook_with_plotly_charts(tmp_path, jupyter_env):
    out = tmp_path / "explore.ipynb"
    html = tmp_path / "explore.html"
    r = subprocess.run([str(BIN / "papermill"), "--no-progress-bar", str(ROOT / "runbooks" / "explore_hl.ipynb"), str(out),
                        "-p", "coin", "ETH", "-p", "html_out", str(html)],
                       cwd=ROOT, capture_output=True, text=True, env=jupyter_env, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    nb = nbformat.read(out, as_version=4)
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.output_type == "error"]
    charts = [o for o in outputs if "application/vnd.plotly.v1+json" in o.get("data", {})]
    assert len(charts) == 3                                          # z chart, rho panels, depth heatmap
    y = charts[0]["data"]["application/vnd.plotly.v1+json"]["data"][0]["y"]
    n = len(base64.b64decode(y["bdata"])) // np.dtype(y["dtype"]).itemsize if isinstance(y, dict) else len(y)
    assert n > 6_000                                                # the real ETH bars, not a toy series
    assert html.stat().st_size > 1_000_000                           # self-contained chart
    assert any("ETH:" in o.get("text", "") for o in outputs if o.output_type == "stream")


def test_main_job_trades_in_sim_and_reports(tmp_path, jupyter_env):
    out = tmp_path / "hl_live.ipynb"
    r = subprocess.run([str(BIN / "papermill"), "--no-progress-bar", str(ROOT / "runbooks" / "hl_live.ipynb"), str(out),
                        "-p", "duration_s", "45", "-p", "run_dir", str(tmp_path / "run")],
                       cwd=ROOT, capture_output=True, text=True, env=jupyter_env, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    nb = nbformat.read(out, as_version=4)
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.output_type == "error"]
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    n_fills = int(re.search(r"fills: (\d+)", text).group(1))
    assert n_fills > 0, text[-2000:]
    assert any("application/vnd.plotly.v1+json" in o.get("data", {}) for o in outputs)
    log = (tmp_path / "run" / "hl_engine.jsonl").read_text()
    assert '"event":"fill"' in log and '"event":"positions"' in log
    src = [json.loads(l) for l in log.splitlines() if '"event":"universe_source"' in l][0]
    assert src["source"] in ("default", str(ROOT / "universes" / "hl.toml"), "env")          # which universe source won is logged
    recal = [json.loads(l) for l in log.splitlines() if '"event":"tiers_recalibrated"' in l][0]
    assert set(recal["tiers"]) <= {c for c in src["coins"] if ":" in c} and recal["tiers"]    # HIP-3 tiers refined at boot


def test_explore_runbook_rejects_an_unknown_coin_clearly(tmp_path, jupyter_env):
    r = subprocess.run([str(BIN / "papermill"), "--no-progress-bar", str(ROOT / "runbooks" / "explore_hl.ipynb"),
                        str(tmp_path / "o.ipynb"), "-p", "coin", "NOPE"], cwd=ROOT, capture_output=True, text=True, env=jupyter_env, timeout=300)
    assert r.returncode != 0
    assert "is not bundled; choose one of" in r.stderr


def test_bundled_data_has_provenance_and_git_ignores_secrets_and_runs():
    bundled = ROOT / "data_cache" / "bundled"
    data_files = [p for p in bundled.rglob("*") if p.is_file() and p.name != "PROVENANCE.md"]
    assert data_files
    for f in data_files:
        assert any((d / "PROVENANCE.md").exists() for d in f.parents if bundled in d.parents or d == bundled), f"{f} has no PROVENANCE.md above it"
    ignored = subprocess.run(["git", "check-ignore", ".env", "runs/x.ipynb", "data_cache/downloads/x.parquet", ".venv/x"],
                             cwd=ROOT, capture_output=True, text=True).stdout.split()
    assert ignored == [".env", "runs/x.ipynb", "data_cache/downloads/x.parquet", ".venv/x"]
