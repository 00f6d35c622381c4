"Data layer: the bundled catalog, loaders that fail loudly, resumable writes, resampling invariants."
from __future__ import annotations
import os, shutil, subprocess, sys
from datetime import datetime, timedelta, timezone
from pathlib import Path
import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings, strategies as st, HealthCheck
from conftest import ROOT
from tri_engine.core import DataError
from tri_engine.data import (load_bars, load_funding, load_macro_events, load_sector_map, write_bars, last_bar_ts, catalog,
                             find_gaps, bundle_from_shared, BAR_SCHEMA, read_parquet_checked)
from tri_engine.bars import resample_bars

SHARED = ROOT.parent / "shared"


def test_catalog_cli_prints_the_bundled_datasets():
    r = subprocess.run([sys.executable, "-m", "tri_engine.data", "catalog"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    for needle in ("hyperliquid", "binance_spot", "stand-in for alpaca_crypto", "yahoo", "stand-in for alpaca_stocks", "funding", "126 symbols"):
        assert needle in r.stdout


def test_load_bars_returns_real_hyperliquid_rows():
    df = load_bars("hyperliquid", ["BTC", "ETH"], "1m")
    assert df.schema == pl.Schema(BAR_SCHEMA)
    btc = df.filter(pl.col("symbol") == "BTC")
    assert btc.height == 6808 and 110_000 < btc["close"].median() < 125_000        # BTC in late July 2025
    assert df.select(pl.col("ts").is_sorted().over("symbol")).to_series().all()


@pytest.mark.parametrize("args, msg", [
    (("hyperliquid", ["BTC", "PEPE"], "1m"), "unknown symbol(s) ['PEPE']"),
    (("hyperliquid", "BTC", "1w"), "has no '1w' bars"),
    (("alpaca", "BTC", "1m"), "unknown venue 'alpaca'"),
    (("hyperliquid", [], "1m"), "no symbols"),
])
def test_bad_requests_raise_clear_errors(args, msg):
    with pytest.raises(DataError, match=None) as e: load_bars(*args)
    assert msg in str(e.value)


def test_empty_window_and_naive_timestamps_are_refused():
    with pytest.raises(DataError, match="no bars in"): load_bars("hyperliquid", "BTC", "1m", start="2020-01-01T00:00:00Z", end="2020-01-02T00:00:00Z")
    with pytest.raises(DataError, match="start .* >= end"): load_bars("hyperliquid", "BTC", "1m", start="2025-07-23T00:00:00Z", end="2025-07-22T00:00:00Z")
    with pytest.raises(DataError, match="naive"): load_bars("hyperliquid", "BTC", "1m", start=datetime(2025, 7, 22))
    with pytest.raises(DataError, match="naive"): load_bars("hyperliquid", "BTC", "1m", end="2025-07-22T00:00:00")


def _cache_with(tmp: Path) -> Path:
    "A cache whose bundled root links to the real bundled data."
    (tmp / "bundled").symlink_to(ROOT / "data_cache" / "bundled")
    return tmp


def test_corrupt_download_file_is_named_in_the_error(tmp_path):
    cache = _cache_with(tmp_path)
    bad = cache / "downloads/bars/hyperliquid/1m/BTC.parquet"
    bad.parent.mkdir(parents=True)
    bad.write_bytes(b"PAR1\x00garbage-truncated-download")
    with pytest.raises(DataError) as e: load_bars("hyperliquid", "BTC", "1m", cache=cache)
    assert str(bad) in str(e.value) and "not a readable Parquet file" in str(e.value)


def test_file_with_non_utc_timestamps_is_refused(tmp_path):
    cache = _cache_with(tmp_path)
    df = load_bars("hyperliquid", "SOL", "1m").head(5).with_columns(pl.col("ts").dt.convert_time_zone("America/New_York"))
    p = cache / "downloads/bars/hyperliquid/1m/SOL.parquet"; p.parent.mkdir(parents=True); df.write_parquet(p)
    with pytest.raises(DataError, match="SOL.parquet: column ts must be a UTC datetime"): load_bars("hyperliquid", "SOL", "1m", cache=cache)
    with pytest.raises(DataError, match="UTC"): write_bars(df, cache=cache)


def test_downloaded_bars_override_bundled_ones_with_the_same_key(tmp_path):
    cache = _cache_with(tmp_path)
    orig = load_bars("hyperliquid", "LINK", "1m").head(3)
    write_bars(orig.with_columns(pl.col("close") * 2), cache=cache)
    got = load_bars("hyperliquid", "LINK", "1m", cache=cache)
    assert got.height == load_bars("hyperliquid", "LINK", "1m").height
    assert got.head(3)["close"].to_list() == (orig["close"] * 2).to_list()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(chunks=st.lists(st.tuples(st.integers(0, 300), st.integers(1, 120)), min_size=1, max_size=6))
def test_write_bars_resumes_without_duplicates(tmp_path_factory, chunks):
    cache = tmp_path_factory.mktemp("cache")
    src = load_bars("hyperliquid", "DOGE", "1m").head(420)
    seen = set()
    for start, n in chunks:
        part = src.slice(start, n)
        added = write_bars(part, cache=cache).get(("hyperliquid", "1m", "DOGE"), 0)
        new = set(part["ts"].to_list()) - seen
        assert added == len(new)
        seen |= set(part["ts"].to_list())
    on_disk = read_parquet_checked(cache / "downloads/bars/hyperliquid/1m/DOGE.parquet", BAR_SCHEMA)
    assert on_disk.height == len(seen) == on_disk["ts"].n_unique()
    assert on_disk["ts"].is_sorted() and last_bar_ts("hyperliquid", "DOGE", "1m", cache=cache) == max(seen)


@settings(max_examples=30, deadline=None)
@given(sym=st.sampled_from(["BTC", "ETH", "SOL", "HYPE"]), tf=st.sampled_from(["5m", "15m", "1h", "4h"]), drop=st.integers(0, 30), seed=st.integers(0, 10**6))
def test_resample_invariants(sym, tf, drop, seed):
    one = load_bars("hyperliquid", sym, "1m").head(2_000)
    if drop:
        keep = np.ones(one.height, bool); keep[np.random.default_rng(seed).choice(one.height, drop, replace=False)] = False
        one = one.filter(pl.Series(keep))
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = resample_bars(one, tf)
    assert (out["high"] >= out[["open", "close"]].max_horizontal()).all() and (out["low"] <= out[["open", "close"]].min_horizontal()).all()
    step = {"5m": 5, "15m": 15, "1h": 60, "4h": 240}[tf]
    # every emitted bar is complete: its volume is exactly the sum of the source bars in it
    src = one.with_columns((pl.col("ts").dt.epoch("ms") // (step * 60_000)).alias("b")).group_by("b").agg(pl.col("volume").sum(), pl.len())
    joined = out.with_columns((pl.col("ts").dt.epoch("ms") // (step * 60_000)).alias("b")).join(src, on="b")
    assert (joined["len"] == step).all()
    np.testing.assert_allclose(joined["volume"], joined["volume_right"], rtol=1e-12)


def test_funding_macro_and_sector_map():
    f = load_funding("hyperliquid", "HYPE")
    assert f["ts"].min() >= datetime(2024, 12, 5, tzinfo=timezone.utc) and f["funding_rate"].abs().max() < 0.01
    with pytest.raises(DataError, match="unknown symbol"): load_funding("hyperliquid", "NOPE")
    m = load_macro_events()
    assert (m.filter(pl.col("event") == "FOMC")["time_et"] == "14:00").all() and (m.filter(pl.col("event") != "FOMC")["time_et"] == "08:30").all()
    sm = dict(load_sector_map({"CEG": "Nuclear"}).select("symbol", "sector").iter_rows())
    assert (sm["LMT"], sm["NOC"], sm["AMD"], sm["CEG"], sm["XOM"]) == ("Defense", "Defense", "Semis", "Nuclear", "Energy")


def test_bundle_is_reproducible_from_the_shared_data(tmp_path):
    assert (SHARED / "data" / "PROVENANCE.md").exists(), "this test needs ../shared beside the clone (as CI has it)"
    bundle_from_shared(SHARED, tmp_path)
    for p in sorted(tmp_path.rglob("*.parquet")):
        mine = pl.read_parquet(ROOT / "data_cache/bundled" / p.relative_to(tmp_path))
        assert pl.read_parquet(p).equals(mine), p
    assert (tmp_path / "bars/yahoo/PROVENANCE.md").read_text() == (ROOT / "data_cache/bundled/bars/yahoo/PROVENANCE.md").read_text()


def test_bundle_stays_under_40_mb():
    size = sum(p.stat().st_size for p in (ROOT / "data_cache" / "bundled").rglob("*") if p.is_file())
    assert size < 40 * 2**20, f"bundled data is {size / 2**20:.1f} MiB"
