"""Screener CLIs on bundled data: valid TOML, deterministic output, clear errors, z tiers and boot recalibration;
the Hyperliquid screeners over the unmodified SDK against the loopback simulator give what the data_cache path gives."""
from __future__ import annotations
import asyncio, math, socket, subprocess, sys, threading, tomllib
from pathlib import Path
import numpy as np
import polars as pl
import pytest
from tri_engine.core import iso_ms
from tri_engine.data import load_bars
from tri_engine.screeners import HlReader, Pacer, candles_weight
from tri_engine.screeners.hl import native_frames_sdk, screen_native
from tri_engine.screeners.hip3 import (HIP3_META, assign_z_tier, hip3_frames_cache, hip3_frames_sdk, hip3_metrics, rank_hip3,
                                       recalibrate_tiers, CRYPTO_MAJOR_MAX_CV, HIP3_INDEX_MAX_CV)
from tri_engine.sim.hyperliquid import HyperliquidSim

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


# ---------------------------------------------------------------- over the SDK, against the loopback simulator
# The simulator serves the bundled 1m bars (natives) and the modeled xyz sessions built from the same daily bars the
# data_cache path reads, so on a window both can see the two paths must agree. END: inside the bundled 1m bars
# (which end 2025-07-26 04:55), after the last xyz session of that week (Fri 07-25) and after the 07-25 Yahoo bar closed.
END_MS = 1_753_504_200_000                      # 2025-07-26T04:30:00Z
DAYS, BARS = 4, 10                              # the sim has 1m bars from 07-21 11:31 and xyz sessions from 07-14


@pytest.fixture(scope="module")
def sim():
    "A HyperliquidSim with its clock stopped at END_MS, served from its own event loop in a background thread."
    loop = asyncio.new_event_loop()
    th = threading.Thread(target=loop.run_forever, name="hl-sim", daemon=True)
    th.start()
    s = HyperliquidSim(speed=None, start_ms=END_MS)
    asyncio.run_coroutine_threadsafe(s.__aenter__(), loop).result(120)
    try: yield s
    finally:
        asyncio.run_coroutine_threadsafe(s.__aexit__(None, None, None), loop).result(30)
        loop.call_soon_threadsafe(loop.stop); th.join(10); loop.close()


def close(a, b, rel=1e-6) -> bool:
    return all(math.isclose(x, y, rel_tol=rel) for x, y in zip(a, b, strict=True))


def test_hl_native_over_sdk_ranks_as_data_cache(sim):
    via_sdk, asof_s, src_s = screen_native(days=DAYS, url=sim.url, end=END_MS, weight_per_min=None)
    cache, asof_c, src_c = screen_native(days=DAYS, end=END_MS)
    assert via_sdk["coin"].to_list() == cache["coin"].to_list() and via_sdk.height == 10
    assert via_sdk["tier"].to_list() == cache["tier"].to_list() and via_sdk["leverage"].to_list() == cache["leverage"].to_list()
    assert close(via_sdk["cv_4h"], cache["cv_4h"]) and close(via_sdk["adv_usd"], cache["adv_usd"])
    assert asof_s == asof_c == "2025-07-26" and sim.url in src_s and "data_cache" in src_c


def test_hip3_over_sdk_reads_perp_dexs_and_dex_meta_and_ranks_as_data_cache(sim):
    rd = HlReader(sim.url, weight_per_min=None)
    fr = hip3_frames_sdk(rd, None, BARS, END_MS)
    assert rd.builder_dexs() == ["xyz"]
    assert fr.meta.select("coin", "max_leverage").rows() == HIP3_META.select("coin", "max_leverage").rows()
    assert rd.info.name_to_asset("xyz:GOLD") == 110004                     # the dex meta is registered at the SDK's asset ids
    assert rd.pacer.requests == 1 + 1 + 5                                   # perpDexs, meta dex=xyz, one candleSnapshot per coin
    via_sdk = rank_hip3(hip3_metrics(frames=fr, n_bars=BARS))
    cache = rank_hip3(hip3_metrics(frames=hip3_frames_cache(None, END_MS), n_bars=BARS))
    assert via_sdk["coin"].to_list() == cache["coin"].to_list()
    assert via_sdk["tier"].to_list() == cache["tier"].to_list() and via_sdk["leverage"].to_list() == cache["leverage"].to_list()
    for col in ("cv_4h", "adv_usd", "px", "score"): assert close(via_sdk[col], cache[col]), col


def test_cli_over_sdk_writes_the_toml_the_data_cache_path_writes(sim, tmp_path):
    common = ["--end", iso_ms(END_MS), "--bars", str(BARS), "--days", str(DAYS), "--top", "3", "--apply"]
    r = run("hip3", *common, "--url", sim.url, "--pace", "0", "--out", str(tmp_path / "sdk.toml"))
    assert r.returncode == 0, r.stderr
    assert run("hip3", *common, "--out", str(tmp_path / "cache.toml")).returncode == 0
    a, b = (tomllib.loads((tmp_path / f).read_text()) for f in ("sdk.toml", "cache.toml"))
    assert sim.url in a["meta"].pop("source") and "data_cache" in b["meta"].pop("source")
    assert a == b and len(a["hip3"]["coins"]) == 3 and len(a["native"]["coins"]) == 10
    assert "export HIP3_UNIVERSE=" + ",".join(a["hip3"]["coins"]) in r.stdout
    r = run("hl", "--url", sim.url, "--pace", "0", "--days", str(DAYS), "--end", iso_ms(END_MS), "--out", str(tmp_path / "n.toml"))
    assert r.returncode == 0, r.stderr
    n = tomllib.loads((tmp_path / "n.toml").read_text())
    assert n["meta"]["ranked"] == a["native"]["coins"] and sorted(v["rank"] for v in n["coins"].values()) == list(range(1, 11))


def test_candles_are_paged_and_the_open_candle_is_dropped(sim):
    rd = HlReader(sim.url, weight_per_min=None)
    rd.perp_meta([""])
    raw = rd.info.candles_snapshot("BTC", "1m", END_MS - 3 * 3_600_000, END_MS)
    assert raw[-1]["t"] == END_MS                                            # the simulator serves the minute in progress...
    whole, n0 = rd.candles("BTC", "1m", END_MS - 3 * 3_600_000, END_MS), rd.pacer.requests
    paged = rd.candles("BTC", "1m", END_MS - 3 * 3_600_000, END_MS, page=50)
    assert whole.height == 180 and int(whole["ts"].max().timestamp() * 1000) == END_MS - 60_000   # ...which is not a closed bar
    assert paged.equals(whole) and rd.pacer.requests - n0 == 4               # 180 candles in pages of 50


def test_sdk_reads_are_paced_within_the_rate_budget(sim):
    t = [0.0]
    p = Pacer(600, burst=40, clock=lambda: t[0], sleep=lambda d: t.__setitem__(0, t[0] + d))
    fr = native_frames_sdk(HlReader(sim.url, pacer=p), ["BTC", "ETH"], DAYS, END_MS)
    n5 = fr.bars["5m"].group_by("symbol").len()["len"].to_list()            # one 5m and one 1h answer per coin (+1 open candle each)
    assert p.requests == 1 + 4
    assert p.spent == 20 + sum(candles_weight([0] * (k + 1)) for k in n5) + 2 * candles_weight([0] * (DAYS * 24 + 1))
    last = candles_weight([0] * (DAYS * 24 + 1))
    assert p.spent - last > p.burst and math.isclose(t[0], (p.spent - last - p.burst) * 60 / 600)   # waited exactly for the weight beyond the burst


def test_sdk_errors_are_clear(sim, tmp_path):
    r = run("hl", "--url", sim.url, "--pace", "0", "--coins", "BTC,NOPE", "--out", str(tmp_path / "x.toml"))
    assert r.returncode == 2 and "unknown native coin(s) ['NOPE']" in r.stderr and "BTC" in r.stderr
    r = run("hip3", "--url", sim.url, "--pace", "0", "--dexs", "flx", "--apply", "--out", str(tmp_path / "x.toml"))
    assert r.returncode == 2 and "unknown HIP-3 dex(es) ['flx']; " + sim.url + " lists: xyz" in r.stderr
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]                 # closed again before use: nothing listens there
    r = run("hl", "--url", f"http://127.0.0.1:{port}", "--out", str(tmp_path / "x.toml"))
    assert r.returncode == 2 and f"Hyperliquid meta dex='' from http://127.0.0.1:{port} failed: ConnectionError" in r.stderr
    assert "Traceback" not in r.stderr and not (tmp_path / "x.toml").exists()


def test_a_coin_too_new_to_measure_is_left_out_with_a_warning():
    from tri_engine.screeners import Frames, ScreenerError, ScreenerWarning
    from tri_engine.screeners.hl import native_frames_cache, score_native
    fr = native_frames_cache(["BTC", "ETH"])
    young = Frames({"5m": fr.bars["5m"].filter((pl.col("symbol") == "BTC") | (pl.col("ts") >= pl.col("ts").max() - pl.duration(hours=3))),
                    "1h": fr.bars["1h"]}, fr.meta, fr.end_ms, fr.source)      # ETH: 3 hours of 5m bars, no complete 4h window
    with pytest.warns(ScreenerWarning, match=r"1 of 2 coin\(s\) left out \(no complete 4h window.*\): ETH"):
        t, _ = score_native(young)
    assert t["coin"].to_list() == ["BTC"]
    fr1 = Frames(young.bars, fr.meta.filter(pl.col("coin") == "ETH"), fr.end_ms, fr.source)
    with pytest.raises(ScreenerError, match=r"1 of 1 coin\(s\) left out"): score_native(fr1)
