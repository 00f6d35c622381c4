"Screener CLIs on bundled data: valid TOML, deterministic output, clear errors, z tiers and boot recalibration."
from __future__ import annotations
import subprocess, sys, tomllib
from pathlib import Path
import numpy as np
import polars as pl
import pytest
from tri_engine.data import load_bars
from tri_engine.screeners.hip3 import assign_z_tier, recalibrate_tiers, CRYPTO_MAJOR_MAX_CV, HIP3_INDEX_MAX_CV

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable

def run(mod: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([PY, "-m", f"tri_engine.screeners.{mod}", *args], cwd=ROOT, capture_output=True, text=True, timeout=120)

def test_equities_screener_writes_same_valid_toml_twice(tmp_path):
    a, b = tmp_path / "a.toml", tmp_path / "b.toml"
    assert run("equities", "--out", str(a)).returncode == 0
    assert run("equities", "--out", str(b)).returncode == 0
    assert a.read_bytes() == b.read_bytes()
    doc = tomllib.loads(a.read_text())
    assert doc["symbols"] and all(v["price"] > 20 and v["adv"] > 1_000_000 for v in doc["symbols"].values())
    assert all(v["zone"] == ("long" if v["z"] < -1.25 else "short" if v["z"] > 1.25 else "neutral") for v in doc["symbols"].values())

def test_equities_sector_and_min_z_filters(tmp_path):
    p = tmp_path / "e.toml"
    assert run("equities", "--sector", "Energy", "--min-z", "0.5", "--out", str(p)).returncode == 0
    syms = tomllib.loads(p.read_text())["symbols"].values()
    assert all(v["sector"] == "Energy" and abs(v["z"]) >= 0.5 for v in syms)

def test_new_only_leaves_out_the_current_universe(tmp_path):
    cur, new = tmp_path / "cur.toml", tmp_path / "new.toml"
    assert run("equities", "--out", str(cur)).returncode == 0
    assert run("equities", "--new-only", "--current", str(cur), "--out", str(new)).returncode == 0
    assert tomllib.loads(new.read_text())["meta"]["count"] == 0

def test_unknown_sector_is_a_clear_error(tmp_path):
    r = run("equities", "--sector", "Crypto Miners", "--out", str(tmp_path / "x.toml"))
    assert r.returncode != 0 and "unknown sector 'Crypto Miners'" in r.stderr and "Energy" in r.stderr
    assert not (tmp_path / "x.toml").exists()

def test_unknown_symbol_or_coin_is_a_clear_error(tmp_path):
    r = run("equities", "--symbols", "AAPL,NOPE", "--out", str(tmp_path / "x.toml"))
    assert r.returncode != 0 and "unknown symbol(s) ['NOPE']" in r.stderr
    r = run("hl", "--coins", "NOPE", "--out", str(tmp_path / "y.toml"))
    assert r.returncode != 0 and "unknown native coin(s) ['NOPE']" in r.stderr

def test_hl_native_screener_ranks_all_ten_coins(tmp_path):
    p = tmp_path / "n.toml"
    assert run("hl", "--out", str(p)).returncode == 0
    doc = tomllib.loads(p.read_text())
    assert len(doc["coins"]) == 10 and sorted(v["rank"] for v in doc["coins"].values()) == list(range(1, 11))
    assert run("hl", "--print").stdout.startswith("# universes/hl_native.toml")

def test_hip3_apply_writes_hl_toml_that_the_engine_reads(tmp_path):
    p = tmp_path / "hl.toml"
    r = run("hip3", "--top", "3", "--apply", "--out", str(p))
    assert r.returncode == 0, r.stderr
    doc = tomllib.loads(p.read_text())
    assert len(doc["hip3"]["coins"]) == 3 and len(doc["native"]["coins"]) == 10
    for c in [*doc["native"]["coins"], *doc["hip3"]["coins"]]: assert c in doc["tiers"] and c in doc["leverage"]
    assert "export HIP3_UNIVERSE=" + ",".join(doc["hip3"]["coins"]) in r.stdout and "export HIP3_DEXS=xyz" in r.stdout

def test_hip3_without_apply_writes_nothing(tmp_path):
    r = run("hip3", "--top", "2", "--out", str(tmp_path / "hl.toml"))
    assert r.returncode == 0 and not (tmp_path / "hl.toml").exists()

@pytest.mark.parametrize("cv,hip3,tier", [(0.0, False, "crypto_major"), (CRYPTO_MAJOR_MAX_CV - 1e-9, False, "crypto_major"),
                                          (CRYPTO_MAJOR_MAX_CV, False, "crypto_alt"), (0.0, True, "hip3_index"),
                                          (HIP3_INDEX_MAX_CV - 1e-9, True, "hip3_index"), (HIP3_INDEX_MAX_CV, True, "hip3_equity")])
def test_assign_z_tier_cut_points(cv, hip3, tier):
    assert assign_z_tier(cv, hip3) == tier

def test_recalibrate_tiers_on_a_preseed_buffer():
    b = load_bars("hyperliquid", ["BTC", "HYPE"], "1m")
    pre = {c: b.filter(pl.col("symbol") == c).tail(240) for c in ("BTC", "HYPE")}
    pre["xyz:TSLA"] = 330 * (1 + 0.02 * np.sin(np.arange(240) / 30))      # a 1.4% RMSD: equity-like
    pre["xyz:GOLD"] = 3600 * (1 + 0.001 * np.sin(np.arange(240) / 30))    # calm: index-like
    pre["xyz:NEW"] = [10.0] * 20                                           # too short: keeps its configured tier
    t = recalibrate_tiers(pre)
    assert set(t) == {"BTC", "HYPE", "xyz:TSLA", "xyz:GOLD"}
    assert t["xyz:TSLA"] == "hip3_equity" and t["xyz:GOLD"] == "hip3_index"
    assert t["BTC"] in ("crypto_major", "crypto_alt")
