"""Downloaders and the L2 recorder, through the unmodified alpaca-py and hyperliquid-python-sdk, against a loopback server.

The server (tests/loopback_venues.py) serves the bundled real data in the venues' wire shapes; every
download is compared with the bundled rows it came from.
"""
from __future__ import annotations
import json, os, re, subprocess, sys, threading, time, warnings
from datetime import datetime, timedelta, timezone
from pathlib import Path
import numpy as np
import polars as pl
import pytest
from loopback_venues import LoopbackVenues
from tri_engine.core import DataError
from tri_engine.data import download_path, load_bars
from tri_engine.download import (BookRecorder, DownloadWarning, download_alpaca_crypto_bars, download_alpaca_stock_bars,
                                 download_hl_candles, record_hl_books)

ROOT = Path(__file__).resolve().parent.parent
UTC = timezone.utc
DAY = timedelta(days=1)
KEYS = ("test-key-id", "test-secret-key")
OHLCV = ["ts", "open", "high", "low", "close", "volume"]


@pytest.fixture(scope="module")
def server():
    with LoopbackVenues(page_limit=500, book_interval_s=0.05, api_keys=KEYS) as s:
        yield s


@pytest.fixture
def venues(server):
    "The module's server with its knobs back at their defaults."
    server.fail_after_pages, server.page_limit, server.hl_cap, server.hl_history = None, 500, 5000, None
    yield server
    server.fail_after_pages, server.page_limit, server.hl_cap, server.hl_history = None, 500, 5000, None


def until(cond, timeout: float, what: str) -> None:
    "Wait (bounded) for `cond()`."
    t = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > t: raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.02)


def source(server, venue, symbol, tf, start, end) -> pl.DataFrame:
    return load_bars(venue, [symbol], tf, start, end, cache=server.cache).select(OHLCV)


def downloaded(venue, symbol, tf, cache) -> pl.DataFrame:
    return pl.read_parquet(download_path(venue, tf, symbol, cache))


# ---- Alpaca crypto -------------------------------------------------------------------------------

def test_crypto_download_over_several_pages_equals_the_bundled_rows(venues, tmp_path):
    t0, t1 = datetime(2026, 3, 25, tzinfo=UTC), datetime(2026, 3, 28, tzinfo=UTC)
    n0 = len(venues.bar_pages)
    reps = download_alpaca_crypto_bars(["BTC/USD", "ETH/USD"], t0, t1, url_override=venues.url, cache=tmp_path, progress=False, chunk=DAY)
    pages = venues.bar_pages[n0:]
    for sym, src in (("BTC/USD", "BTCUSDT"), ("ETH/USD", "ETHUSDT")):
        got = load_bars("alpaca_crypto", [sym], "1m", cache=tmp_path)
        want = source(venues, "binance_spot", src, "1m", t0, t1)
        assert got.height == want.height == 3 * 1440
        assert got.select(OHLCV).equals(want)                       # every value, every bar, same order
        assert got["ts"].is_unique().all()
        assert reps[sym].rows_added == 4320 and reps[sym].chunks == 3
    assert len(pages) == 2 * 3 * 3                                  # 2 symbols x 3 chunks x 3 pages of <= 500
    assert all(p["bars"] <= 500 for p in pages) and sum(p["bars"] for p in pages) == 2 * 4320
    assert sum(p["page_token"] is not None for p in pages) == 2 * 3 * 2   # the SDK followed next_page_token


def test_resume_fetches_only_the_missing_bars_and_never_duplicates(venues, tmp_path):
    t0 = datetime(2026, 3, 25, tzinfo=UTC)
    download_alpaca_crypto_bars("BTC/USD", t0, t0 + DAY, url_override=venues.url, cache=tmp_path, progress=False)
    n0 = len(venues.bar_pages)
    rep = download_alpaca_crypto_bars("BTC/USD", t0, t0 + 2 * DAY, url_override=venues.url, cache=tmp_path, progress=False)["BTC/USD"]
    assert min(p["start"] for p in venues.bar_pages[n0:]) == int((t0 + DAY).timestamp() * 1000)   # asked only the second day
    assert rep.rows_added == rep.rows_fetched == 1440 and "resumed" in rep.notes[0]
    df = downloaded("alpaca_crypto", "BTC/USD", "1m", tmp_path)
    assert df.height == 2880 and df["ts"].is_unique().all()
    assert df.select(OHLCV).equals(source(venues, "binance_spot", "BTCUSDT", "1m", t0, t0 + 2 * DAY))
    n1 = len(venues.bar_pages)
    again = download_alpaca_crypto_bars("BTC/USD", t0, t0 + 2 * DAY, url_override=venues.url, cache=tmp_path, progress=False)["BTC/USD"]
    assert len(venues.bar_pages) == n1 and "already up to date" in again.notes
    full = download_alpaca_crypto_bars("BTC/USD", t0 - DAY, t0 + 2 * DAY, url_override=venues.url, cache=tmp_path, progress=False, full=True)["BTC/USD"]
    df = downloaded("alpaca_crypto", "BTC/USD", "1m", tmp_path)
    assert (full.rows_fetched, full.rows_added, df.height) == (4320, 1440, 4320) and df["ts"].is_unique().all()
    assert df.select(OHLCV).equals(source(venues, "binance_spot", "BTCUSDT", "1m", t0 - DAY, t0 + 2 * DAY))


def test_interrupted_download_keeps_completed_chunks_and_the_rerun_completes(venues, tmp_path):
    t0 = datetime(2026, 3, 25, tzinfo=UTC)
    venues.fail_after_pages = len(venues.bar_pages) + 4              # chunk 1 = pages 1-3, chunk 2 dies on its 2nd page
    with pytest.raises(DataError) as e:
        download_alpaca_crypto_bars("BTC/USD", t0, t0 + 3 * DAY, url_override=venues.url, cache=tmp_path, progress=False, chunk=DAY)
    msg = str(e.value)
    assert "chunk 2/3" in msg and "500" in msg and "(1440 new rows) are saved" in msg and "run the same download again" in msg, msg
    kept = downloaded("alpaca_crypto", "BTC/USD", "1m", tmp_path)
    assert kept.height == 1440 and kept["ts"].max() == t0 + DAY - timedelta(minutes=1)
    venues.fail_after_pages = None
    n0 = len(venues.bar_pages)
    rep = download_alpaca_crypto_bars("BTC/USD", t0, t0 + 3 * DAY, url_override=venues.url, cache=tmp_path, progress=False, chunk=DAY)["BTC/USD"]
    assert venues.bar_pages[n0]["start"] == int((t0 + DAY).timestamp() * 1000) and rep.rows_added == 2880
    df = downloaded("alpaca_crypto", "BTC/USD", "1m", tmp_path)
    assert df.select(OHLCV).equals(source(venues, "binance_spot", "BTCUSDT", "1m", t0, t0 + 3 * DAY))


def test_bad_symbols_and_windows_fail_before_any_request(venues, tmp_path):
    n0 = len(venues.bar_pages)
    with pytest.raises(DataError, match="BASE/QUOTE"): download_alpaca_crypto_bars("BTCUSD", "2026-03-25", "2026-03-26", url_override=venues.url, cache=tmp_path)
    with pytest.raises(DataError, match="empty window"): download_alpaca_crypto_bars("BTC/USD", "2026-03-26", "2026-03-25", url_override=venues.url, cache=tmp_path)
    with pytest.raises(DataError, match="has no timezone"): download_alpaca_crypto_bars("BTC/USD", datetime(2026, 3, 25), "2026-03-26", url_override=venues.url, cache=tmp_path)
    assert len(venues.bar_pages) == n0


# ---- Alpaca stocks -------------------------------------------------------------------------------

def test_stock_daily_bars_with_keys_from_the_environment_equal_the_bundled_rows(venues, tmp_path, monkeypatch):
    monkeypatch.setenv("ALPACA_API_KEY_ID", KEYS[0]); monkeypatch.setenv("ALPACA_API_SECRET_KEY", KEYS[1])
    venues.page_limit = 100
    n0 = len(venues.bar_pages)
    t0, t1 = datetime(2023, 1, 1, tzinfo=UTC), datetime(2025, 1, 1, tzinfo=UTC)
    reps = download_alpaca_stock_bars(["SPY", "AAPL"], t0, t1, url_override=venues.url, cache=tmp_path, progress=False)
    for sym in ("SPY", "AAPL"):
        got = downloaded("alpaca_stocks", sym, "1d", tmp_path)
        assert got.height == 502 and got.select(OHLCV).equals(source(venues, "yahoo", sym, "1d", t0, t1))
        assert got["ts"].dt.convert_time_zone("America/New_York").dt.hour().unique().to_list() == [0]   # stamped at midnight New York
        assert reps[sym].rows_added == 502
    assert len(venues.bar_pages) - n0 >= 2 * 6 and all(p["path"] == "/v2/stocks/bars" for p in venues.bar_pages[n0:])


def test_stock_bars_refuse_missing_keys_and_never_echo_wrong_ones(venues, tmp_path, monkeypatch):
    for k in ("ALPACA_API_KEY_ID", "ALPACA_API_SECRET_KEY"): monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("TRI_ENGINE_ROOT", str(tmp_path))             # no .env, no settings.ini there
    with pytest.raises(DataError, match="needs keys: set ALPACA_API_KEY_ID and ALPACA_API_SECRET_KEY"):
        download_alpaca_stock_bars("SPY", "2024-01-01", "2024-02-01", url_override=venues.url, cache=tmp_path)
    with pytest.raises(DataError) as e:
        download_alpaca_stock_bars("SPY", "2024-01-01", "2024-02-01", api_key="wrong-id", secret_key="hunter2-secret",
                                   url_override=venues.url, cache=tmp_path, progress=False)
    assert "unauthorized" in str(e.value) and "hunter2" not in str(e.value)
    assert not download_path("alpaca_stocks", "1d", "SPY", tmp_path).exists()


# ---- Hyperliquid candles -------------------------------------------------------------------------

def test_hl_candles_page_across_the_5000_cap_without_duplicates(venues, tmp_path):
    t0, t1 = datetime(2024, 9, 4, 11, tzinfo=UTC), datetime(2025, 7, 26, 4, tzinfo=UTC)
    want = source(venues, "hyperliquid", "BTC", "1h", t0, t1)
    assert want.height == 7793 > 5000
    n0 = len(venues.candle_requests)
    rep = download_hl_candles("BTC", t0, t1, interval="1h", base_url=venues.url, cache=tmp_path, progress=False)["BTC"]
    reqs = venues.candle_requests[n0:]
    got = downloaded("hyperliquid", "BTC", "1h", tmp_path)
    assert got.select(OHLCV).equals(want) and got["ts"].is_unique().all()
    assert rep.notes == [] and rep.chunks == 2 and len(reqs) == 2
    assert all((r["endTime"] - r["startTime"]) // 3_600_000 < 5000 for r in reqs)     # never asks for more than the cap
    venues.hl_cap = 2000                                           # a lower server cap is paged through within each window
    rep2 = download_hl_candles("BTC", t0, t1, interval="1h", base_url=venues.url, cache=tmp_path / "capped", progress=False)["BTC"]
    assert rep2.requests >= 4 and downloaded("hyperliquid", "BTC", "1h", tmp_path / "capped").select(OHLCV).equals(want)


def test_hl_short_history_is_reported_not_silently_accepted(venues, tmp_path):
    venues.hl_history = 5000                                        # like the real API: only the most recent 5000 candles
    t0, t1 = datetime(2024, 9, 4, 11, tzinfo=UTC), datetime(2025, 7, 26, 4, tzinfo=UTC)
    with pytest.warns(DownloadWarning) as w:
        rep = download_hl_candles("BTC", t0, t1, interval="1h", base_url=venues.url, cache=tmp_path, progress=False)["BTC"]
    assert [str(x.message) for x in w] == [f"hyperliquid BTC 1h: {n}" for n in rep.notes]
    want = source(venues, "hyperliquid", "BTC", "1h", t0, t1).tail(5000)
    got = downloaded("hyperliquid", "BTC", "1h", tmp_path)
    assert got.select(OHLCV).equals(want) and rep.first_ts == want["ts"][0]
    assert any("later than the requested start" in n for n in rep.notes) and any("2793 of 7793 expected candles missing" in n for n in rep.notes), rep.notes


def test_hl_hip3_coin_loads_its_dex_and_unknown_coins_fail_clearly(venues, tmp_path):
    n0 = len(venues.info_requests)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DownloadWarning)            # weekends: the stand-in stock bars have gaps
        rep = download_hl_candles("xyz:TSLA", "2025-01-06", "2025-02-01", interval="1d", base_url=venues.url, cache=tmp_path, progress=False)["xyz:TSLA"]
    assert venues.info_requests[n0:n0 + 4] == ["spotMeta", "perpDexs", "meta", "meta"]
    df = downloaded("hyperliquid", "xyz:TSLA", "1d", tmp_path)
    assert download_path("hyperliquid", "1d", "xyz:TSLA", tmp_path).name == "xyz_TSLA.parquet"
    assert df["symbol"].unique().to_list() == ["xyz:TSLA"] and df.height == rep.rows_added == 18
    assert (df["ts"].dt.hour() == 0).all()
    with pytest.raises(DataError, match=r"unknown Hyperliquid coin\(s\) \['NOPE'\]"):
        download_hl_candles("NOPE", "2025-01-01", "2025-01-02", base_url=venues.url, cache=tmp_path)
    with pytest.raises(DataError, match="no perp dex"):
        download_hl_candles("abc:TSLA", "2025-01-01", "2025-01-02", base_url=venues.url, cache=tmp_path)


# ---- L2 book recorder ----------------------------------------------------------------------------

def book_rows(files) -> pl.DataFrame:
    return pl.concat([pl.read_parquet(f).with_columns(pl.lit(f.parent.name).alias("coin")) for f in files])


def assert_rows_are_the_sent_books(server, df: pl.DataFrame, levels: int) -> None:
    "Every recorded row is exactly the Bitstamp snapshot the server sent at that time, level by level."
    assert df.schema["ts"] == pl.Datetime("ms", "UTC")
    for r in df.with_columns(pl.col("ts").dt.epoch("ms").alias("ts_ms")).iter_rows(named=True):
        row = server.sent[(r["coin"], r["ts_ms"])]
        for k in ("bid_px", "bid_sz", "ask_px", "ask_sz"):
            want = server._book[k][row][:levels]
            got = np.array([r[f"{k}_{i}"] if r[f"{k}_{i}"] is not None else np.nan for i in range(1, levels + 1)])
            np.testing.assert_array_equal(got, want)


def test_recorder_rotates_files_whose_rows_parse_back_to_the_sent_books(venues, tmp_path):
    t_start = datetime.now(UTC)
    rep = record_hl_books(["BTC", "ETH"], base_url=venues.url, duration_s=3.0, rotate_rows=25, rotate_s=1.0, cache=tmp_path, progress=False)
    assert rep.reconnects == 0 and rep.bad_messages == 0
    for coin in ("BTC", "ETH"):
        files = sorted((tmp_path / "downloads/books/hyperliquid/l2" / coin).glob("*.parquet"))
        assert len(files) >= 3 and files == sorted(f for f in rep.files if f.parent.name == coin)
        assert all(re.fullmatch(r"\d{8}T\d{9}Z-\d{6}\.parquet", f.name) for f in files)
        sizes = [pl.read_parquet(f).height for f in files]
        assert max(sizes) <= 25 and sum(sizes) == rep.rows[coin] >= 30
        df = book_rows(files)
        assert df["ts"].is_sorted() and df["ts"].min() >= t_start - timedelta(seconds=1)
        assert_rows_are_the_sent_books(venues, df, 20)
    assert rep.messages == sum(rep.rows.values())


def test_watchdog_rebuilds_a_silent_feed_and_a_closed_one(venues, tmp_path):
    stop, out = threading.Event(), []
    rec = BookRecorder(["BTC", "SOL"], base_url=venues.url, levels=5, stale_s=0.6, rotate_s=60, cache=tmp_path)
    th = threading.Thread(target=lambda: out.append(rec.run(stop_event=stop, progress=False)))
    conns0 = venues.ws_connections
    th.start()
    try:
        until(lambda: rec.messages >= 10, 5, "first books")
        t_mute = time.time(); venues.mute_ws()                      # connected, pinging, silent
        until(lambda: rec.reconnects >= 1, 5, "a rebuild of the silent feed")
        n = rec.messages; until(lambda: rec.messages >= n + 10, 5, "books after the rebuild")
        venues.drop_ws()                                            # the server closes the socket
        until(lambda: rec.reconnects >= 2, 5, "a rebuild of the closed feed")
        n = rec.messages; until(lambda: rec.messages >= n + 10, 5, "books after the second rebuild")
    finally:
        stop.set(); th.join(15)
    assert not th.is_alive() and out, "recorder did not stop"
    rep = out[0]
    assert rep.reconnects >= 2 and rep.failed_reconnects == 0 and venues.ws_connections - conns0 >= 3
    df = book_rows(rep.files).sort("ts")
    assert_rows_are_the_sent_books(venues, df, 5)
    assert df.width == 1 + 4 * 5 + 1
    btc = df.filter(pl.col("coin") == "BTC")["ts"].dt.epoch("ms").to_numpy() / 1000
    gap = np.diff(btc).max()
    assert gap >= 0.5 and (btc > t_mute + 0.5).sum() >= 10          # a silent stretch, then data again
    assert rep.rows == {"BTC": (df["coin"] == "BTC").sum(), "SOL": (df["coin"] == "SOL").sum()}


# ---- CLI -----------------------------------------------------------------------------------------

def cli(args, tmp_path, env_extra=None, timeout=60) -> subprocess.CompletedProcess:
    "Run `python -m tri_engine.data ...` with the data cache in tmp_path (bundled data linked in)."
    cache = tmp_path / "cache"
    if not cache.exists():
        cache.mkdir(); (cache / "bundled").symlink_to(ROOT / "data_cache" / "bundled")
    env = {**os.environ, "TRI_DATA_CACHE": str(cache), "PYTHONUNBUFFERED": "1", **(env_extra or {})}
    for k in ("ALPACA_API_KEY_ID", "ALPACA_API_SECRET_KEY"):
        if k not in (env_extra or {}): env.pop(k, None)
    return subprocess.run([sys.executable, "-m", "tri_engine.data", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


def test_cli_download_prints_progress_and_lands_in_the_catalog(venues, tmp_path):
    r = cli(["download", "alpaca-crypto", "--symbols", "BTC/USD,ETH/USD", "--start", "2026-03-25", "--end", "2026-03-26", "--base-url", venues.url], tmp_path)
    assert r.returncode == 0, r.stderr
    assert "alpaca_crypto BTC/USD 1m" in r.stderr and "100%" in r.stderr          # tqdm bars
    assert re.search(r"alpaca_crypto BTC/USD 1m: \+1440 new rows", r.stdout) and re.search(r"ETH/USD 1m: \+1440 new rows", r.stdout), r.stdout
    cat = [json.loads(l) for l in cli(["catalog", "--json"], tmp_path).stdout.splitlines()]
    mine = {(c["venue"], c["symbol"]): c["rows"] for c in cat if c["source"] == "downloads"}
    assert mine == {("alpaca_crypto", "BTC/USD"): 1440, ("alpaca_crypto", "ETH/USD"): 1440}
    again = cli(["download", "alpaca-crypto", "--symbols", "BTC/USD", "--start", "2026-03-25", "--end", "2026-03-26", "--base-url", venues.url, "--no-progress"], tmp_path)
    assert again.returncode == 0 and "already up to date" in again.stdout


def test_cli_bad_dates_and_venues_exit_nonzero_with_a_clear_message(venues, tmp_path):
    bad = cli(["download", "alpaca-crypto", "--symbols", "BTC/USD", "--start", "2025-13-01", "--base-url", venues.url], tmp_path)
    assert bad.returncode == 2 and "argument --start: date='2025-13-01' is not a valid date (YYYY-MM-DD)" in bad.stderr, bad.stderr
    naive = cli(["download", "hl", "--symbols", "BTC", "--start", "2025-07-01T09:30", "--base-url", venues.url], tmp_path)
    assert naive.returncode == 2 and "has no timezone" in naive.stderr
    empty = cli(["download", "hl", "--symbols", "BTC", "--start", "2025-07-02", "--end", "2025-07-01", "--base-url", venues.url], tmp_path)
    assert empty.returncode == 2 and "error: empty window" in empty.stderr
    venue = cli(["download", "binance", "--symbols", "BTC", "--start", "2025-07-01"], tmp_path)
    assert venue.returncode == 2 and "invalid choice: 'binance'" in venue.stderr


def test_cli_stock_keys_come_from_the_environment_and_are_never_printed(venues, tmp_path):
    args = ["download", "alpaca-stocks", "--symbols", "SPY", "--start", "2024-01-01", "--end", "2024-07-01", "--base-url", venues.url]
    ok = cli(args, tmp_path, {"ALPACA_API_KEY_ID": KEYS[0], "ALPACA_API_SECRET_KEY": KEYS[1]})
    assert ok.returncode == 0 and "alpaca_stocks SPY 1d: +124 new rows" in ok.stdout, ok.stderr
    assert KEYS[1] not in ok.stdout + ok.stderr and KEYS[0] not in ok.stdout + ok.stderr
    nokeys = cli(args, tmp_path, {"TRI_ENGINE_ROOT": str(tmp_path)})
    assert nokeys.returncode == 2 and "needs keys" in nokeys.stderr


def test_cli_records_books_for_a_while(venues, tmp_path):
    r = cli(["record", "hl-books", "--coins", "BTC", "--duration", "1.5", "--base-url", venues.url, "--no-progress"], tmp_path)
    assert r.returncode == 0, r.stderr
    files = list((tmp_path / "cache/downloads/books/hyperliquid/l2/BTC").glob("*.parquet"))
    assert len(files) == 1 and f"into 1 file(s)" in r.stdout and pl.read_parquet(files[0]).height >= 15
