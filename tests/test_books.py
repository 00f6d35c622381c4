"Order books: L2 rebuild against a brute-force replay, bad input, the real Bitstamp verification and LOBSTER loading."
from __future__ import annotations
import dataclasses, math
from datetime import datetime, timezone
import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings, strategies as st
from polars.testing import assert_frame_equal

from tri_engine.core import DataError, data_cache_dir, dt_to_ms
from tri_engine.signals import obi as obi_ref
from tri_engine.books import (BookArrays, LOBSTER_DUMMY_PX, depth_heatmap, load_bitstamp_snapshots, load_bitstamp_updates,
                              load_lobster, rebuild_l2, verify_rebuild)

SCHEMA = {"ts": pl.Int64, "price": pl.Float64, "volume": pl.Float64, "side": pl.String}


def updates_frame(rows, ts_type=pl.Datetime("ms", "UTC")) -> pl.DataFrame:
    "An L2 update frame from (ts_ms, price, volume, side) rows."
    return pl.DataFrame(rows, schema=SCHEMA, orient="row").with_columns(pl.col("ts").cast(ts_type))


def brute_force(rows, levels: int, per_size: float):
    "Reference replay: two plain dicts, sorted from scratch after the last update of every timestamp."
    books = {"bid": {}, "ask": {}}
    out_ts, out = [], {k: [] for k in ("bid_px", "bid_sz", "ask_px", "ask_sz")}
    for k, (ts, px, vol, side) in enumerate(rows):
        if vol == 0: books[side].pop(px, None)
        else: books[side][px] = vol
        if k == len(rows) - 1 or rows[k + 1][0] != ts:
            out_ts.append(ts)
            for side, rev in (("bid", True), ("ask", False)):
                top = sorted(books[side].items(), reverse=rev)[:levels]
                pad = levels - len(top)
                out[f"{side}_px"].append([p for p, _ in top] + [math.nan] * pad)
                out[f"{side}_sz"].append([v / per_size for _, v in top] + [0.0] * pad)
    return np.array(out_ts, np.int64), {k: np.array(v, float).reshape(len(out_ts), levels) for k, v in out.items()}


update_row = st.tuples(st.integers(0, 3),                                    # ms after the previous update (0 = same timestamp)
                       st.sampled_from(["bid", "ask"]),
                       st.integers(1, 25),                                   # price tick: bids and asks overlap, so books cross
                       st.one_of(st.just(0), st.integers(1, 5 * 10**9)))     # volume in satoshis, 0 removes the level


@settings(max_examples=300, deadline=None)
@given(st.lists(update_row, max_size=150), st.integers(1, 6), st.sampled_from([1e-8, 1.0]), st.integers(0, 40))
def test_random_l2_stream_rebuilds_like_a_brute_force_replay_at_every_snapshot(steps, levels, size_scale, since_ms):
    t, rows = 1_000, []
    for dt, side, tick, vol in steps:
        t += dt
        rows.append((t, 100.0 + 0.25 * tick, float(vol), side))
    book = rebuild_l2(updates_frame(rows), levels=levels, size_scale=size_scale, since_ms=1_000 + since_ms)
    ts, want = brute_force(rows, levels, round(1 / size_scale))
    keep = ts >= 1_000 + since_ms
    np.testing.assert_array_equal(book.ts_ms, ts[keep])
    for k, v in want.items(): np.testing.assert_array_equal(getattr(book, k), v[keep], err_msg=k)
    if len(book):
        s = book.snapshot(-1)
        assert len(s.bid_px) == int((~np.isnan(want["bid_px"][keep][-1])).sum())


def test_bid_through_the_ask_stays_crossed_until_the_ask_is_removed():
    rows = [(1, 100.0, 1e8, "bid"), (1, 101.0, 2e8, "ask"),
            (2, 101.0, 5e7, "bid"),                   # locked: bid == ask
            (3, 101.5, 1e8, "bid"),                   # crossed: bid above the ask
            (4, 101.0, 0.0, "ask"), (4, 101.0, 0.0, "bid"), (4, 102.0, 3e8, "ask")]
    book = rebuild_l2(updates_frame(rows), levels=3)
    assert book.crossed().tolist() == [False, True, True, False]
    assert book.snapshot(2).bid_px == (101.5, 101.0, 100.0) and book.snapshot(2).ask_px == (101.0,)
    assert book.mid()[2] == pytest.approx(101.25)
    assert book.snapshot(3).bid_px == (101.5, 100.0) and book.snapshot(3).ask_px == (102.0,)
    rep = verify_rebuild(book, book)
    assert (rep.crossed_rebuilt, rep.crossed_reference, rep.crossed_rate_reference, rep.n_mismatch) == (2, 2, 0.5, 0)


GOOD = [(1, 100.0, 1e8, "bid"), (2, 101.0, 1e8, "ask"), (3, 100.5, 2e8, "bid")]


@pytest.mark.parametrize("rows, match", [
    ([GOOD[0], (2, 101.0, 1e8, "buy"), GOOD[2]], r"row 1: unknown side \(expected 'bid' or 'ask'\) \(got 'buy'\)"),
    ([GOOD[0], GOOD[1], (3, 100.5, -5.0, "bid")], r"row 2: volume must be finite and >= 0"),
    ([GOOD[0], GOOD[1], (3, 100.5, math.nan, "bid")], r"row 2: volume is null or NaN"),
    ([GOOD[0], (2, math.nan, 1e8, "ask"), GOOD[2]], r"row 1: price is null or NaN"),
    ([GOOD[0], (2, -101.0, 1e8, "ask"), GOOD[2]], r"row 1: price must be finite and > 0"),
    ([GOOD[0], GOOD[1], (1, 100.5, 2e8, "bid")], r"row 2: ts goes back"),
    ([GOOD[0], (2, 101.0, 1e8, None), GOOD[2]], r"row 1: unknown side"),
])
def test_bad_update_rows_are_rejected_naming_the_row_and_the_problem(rows, match):
    with pytest.raises(DataError, match=match):
        rebuild_l2(updates_frame(rows))


@pytest.mark.parametrize("ts_type, match", [
    (pl.Datetime("ms"), "naive"),
    (pl.Datetime("us"), "naive"),
    (pl.Datetime("ms", "Europe/London"), "'Europe/London', expected UTC"),
    (pl.Int64, "must be Datetime with time zone UTC, got Int64"),
])
def test_updates_whose_ts_is_not_utc_datetime_are_rejected(ts_type, match):
    with pytest.raises(DataError, match=match):
        rebuild_l2(updates_frame(GOOD, ts_type))


def test_updates_without_a_side_column_are_rejected():
    with pytest.raises(DataError, match=r"missing columns \['side'\]"):
        rebuild_l2(updates_frame(GOOD).drop("side"))


@pytest.mark.parametrize("load", [lambda p: load_bitstamp_updates(p), lambda p: load_bitstamp_snapshots(path=p),
                                  lambda p: load_lobster(path=p)], ids=["updates", "snapshots", "lobster"])
def test_a_corrupt_or_missing_parquet_file_is_a_data_error_naming_the_file(tmp_path, load):
    junk = tmp_path / "corrupt_book.parquet"
    junk.write_bytes(b"\x13\x37 definitely not parquet " * 40)
    with pytest.raises(DataError, match=r"corrupt_book\.parquet: not a readable Parquet file"):
        load(junk)
    with pytest.raises(DataError, match=r"nowhere\.parquet: no such file; that folder has \['corrupt_book\.parquet'\]"):
        load(tmp_path / "nowhere.parquet")


def test_a_parquet_file_with_the_wrong_columns_is_a_data_error_naming_the_file(tmp_path):
    p = tmp_path / "bars.parquet"
    pl.DataFrame({"ts": [1], "close": [1.0]}).write_parquet(p)
    with pytest.raises(DataError, match=r"bars\.parquet: missing columns \['price', 'volume', 'side'\]"):
        load_bitstamp_updates(p)


def test_book_arrays_reject_wrong_dtypes_shapes_and_unsorted_levels():
    ok = dict(venue="t", symbol="X", ts_ms=np.array([1, 2]), bid_px=np.array([[2.0, 1.0], [2.0, np.nan]]),
              bid_sz=np.array([[1.0, 1.0], [1.0, 0.0]]), ask_px=np.array([[3.0, 4.0], [3.0, 4.0]]), ask_sz=np.ones((2, 2)))
    BookArrays(**ok)
    for change, match in [({"ts_ms": np.array([1, 2], np.int32)}, "ts_ms must be a 1-d int64"),
                          ({"ask_sz": np.ones((3, 2))}, "shapes must all be"),
                          ({"ask_px": np.array([[3.0, 3.0], [3.0, 4.0]])}, "row 0 ask level 2: prices not strictly ascending"),
                          ({"bid_sz": np.array([[1.0, 1.0], [1.0, 2.0]])}, "row 1 bid level 2: missing level"),
                          ({"ask_sz": np.array([[1.0, np.inf], [1.0, 1.0]])}, "row 0 ask level 2: size must be finite")]:
        with pytest.raises(DataError, match=match):
            BookArrays(**{**ok, **change})


@pytest.fixture(scope="module")
def bitstamp():
    updates, reference = load_bitstamp_updates(), load_bitstamp_snapshots()
    return updates, reference, rebuild_l2(updates, levels=20)


def test_rebuilt_bitstamp_book_matches_the_reference_snapshots_at_every_level(bitstamp):
    _, reference, rebuilt = bitstamp
    rep = verify_rebuild(rebuilt, reference, rtol=0.0)                  # bit-for-bit, crossed books included
    assert (rep.n_reference, rep.n_compared, rep.levels) == (49_134, 49_134, 20)
    assert (rep.n_mismatch, rep.n_mismatch_uncrossed, rep.mismatch_ts_ms, rep.max_size_rel_err) == (0, 0, (), 0.0)
    assert (rep.crossed_rebuilt, rep.crossed_reference) == (147, 147)
    assert rep.crossed_rate_reference == pytest.approx(147 / 49_134)
    assert rep.ok
    assert reference.ts_ms[0] == dt_to_ms(datetime(2015, 5, 1, 0, 1, 4, 854_000, tzinfo=timezone.utc))
    np.testing.assert_array_equal(rebuild_l2(bitstamp[0], since_ms=int(reference.ts_ms[0])).ts_ms, reference.ts_ms)


def test_verification_reports_a_changed_level_in_a_clean_book(bitstamp):
    _, reference, rebuilt = bitstamp
    i = int(np.flatnonzero(~reference.crossed())[1000])
    px = reference.bid_px.copy(); px[i, 7] -= 0.005                     # still strictly between levels 7 and 9
    rep = verify_rebuild(rebuilt, dataclasses.replace(reference, bid_px=px))
    assert (rep.n_mismatch, rep.n_mismatch_uncrossed, rep.mismatch_ts_ms) == (1, 1, (int(reference.ts_ms[i]),))
    assert not rep.ok


def test_reference_snapshots_round_trip_through_the_wide_format(bitstamp):
    reference = bitstamp[1]
    raw = pl.read_parquet(data_cache_dir() / "bundled/books/bitstamp/btcusd_2015-05-01_l2_top20_snapshots.parquet")
    assert_frame_equal(reference.to_wide(), raw)


def test_vectorised_imbalance_equals_signals_obi_on_every_real_snapshot(bitstamp):
    reference = bitstamp[1]
    for n in (20, 3, 1):
        want = np.array([obi_ref(reference.bid_sz[i], reference.ask_sz[i], n) for i in range(len(reference))])
        np.testing.assert_allclose(reference.obi(n), want, rtol=0, atol=1e-12)


@pytest.mark.parametrize("name, symbol, depth, n", [("GOOG_2012-06-21_L10", "GOOG", 10, 147_916),
                                                    ("AMZN_2012-06-21_L5", "AMZN", 5, 155_935)])
def test_lobster_books_load_in_utc_with_bid_below_ask_on_every_row(name, symbol, depth, n):
    book = load_lobster(name)
    assert (book.venue, book.symbol, book.depth, len(book)) == ("lobster", symbol, depth, n)
    open_utc = dt_to_ms(datetime(2012, 6, 21, 13, 30, tzinfo=timezone.utc))     # 09:30 EDT
    assert open_utc <= book.ts_ms[0] < open_utc + 1_000
    assert book.ts_ms[-1] < dt_to_ms(datetime(2012, 6, 21, 20, 0, tzinfo=timezone.utc))
    assert (book.bid_px[:, 0] < book.ask_px[:, 0]).all()
    assert not np.isnan(book.bid_px).any() and not np.isnan(book.ask_px).any()  # the samples have no empty levels
    assert 100 < np.median(book.mid()) < 1_000                                   # USD, not USD x 10,000


def test_lobster_dummy_prices_become_missing_levels(tmp_path):
    src = pl.read_parquet(data_cache_dir() / "bundled/books/lobster/GOOG_2012-06-21_L10.parquet").head(5)
    src = src.with_columns(*(pl.lit(-LOBSTER_DUMMY_PX, pl.Int64).alias(f"bid_px_{i}") for i in (9, 10)),
                           *(pl.lit(0, pl.Int32).alias(f"bid_sz_{i}") for i in (9, 10)),
                           pl.lit(LOBSTER_DUMMY_PX, pl.Int64).alias("ask_px_10"), pl.lit(0, pl.Int32).alias("ask_sz_10"))
    p = tmp_path / "GOOG_2012-06-21_L10.parquet"
    src.write_parquet(p)
    book = load_lobster(path=p)
    s = book.snapshot(0)
    assert (len(s.bid_px), len(s.ask_px)) == (8, 9)
    assert np.isnan(book.bid_px[:, 8:]).all() and (book.bid_sz[:, 8:] == 0).all()
    assert s.bid_px[0] == 579.40 and s.ask_px[0] == 580.23


def test_depth_heatmap_puts_every_level_within_range_into_one_bin():
    nan = math.nan
    book = BookArrays(venue="t", symbol="X", ts_ms=np.array([0, 1_000]),
                      bid_px=np.array([[99.88, 99.8], [99.95, nan]]), bid_sz=np.array([[1.0, 2.0], [4.0, 0.0]]),
                      ask_px=np.array([[100.12, 100.2], [100.05, 100.3]]), ask_sz=np.array([[3.0, 5.0], [6.0, 7.0]]))
    fig = depth_heatmap(book, max_points=2, bps_range=50, bin_bps=5)
    z = np.asarray(fig.data[0].z, float)
    assert z.shape == (20, 2) and len(fig.data) == 3
    assert np.nansum(z, axis=0).tolist() == [11.0, 17.0]
    assert z[12, 0] == 3.0 and z[7, 0] == 1.0                   # mid 100: +12 bps -> bin 12 of 5 bps, -12 bps -> bin 7
