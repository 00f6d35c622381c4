"""Load time of 30 days x 16 symbols of 1-minute bars through tri_engine.data.load_bars (target: < 1 s).

Uses the bundled Binance USDT-M set (16 symbols, May 2025). Prints the median of repeated cold loads
(each call re-reads and re-validates the Parquet file) and the row count.
Run: .venv/bin/python bench/bench_load_bars.py [--repeats 7]
"""
from __future__ import annotations
import argparse, statistics, time
import polars as pl
from tri_engine.data import load_bars, catalog


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeats", type=int, default=7)
    a = ap.parse_args()
    cat = catalog().filter((pl.col("venue") == "binance_usdm") & (pl.col("timeframe") == "1m"))
    symbols = cat["symbol"].to_list()
    times, n = [], 0
    for _ in range(a.repeats):
        t0 = time.perf_counter()
        df = load_bars("binance_usdm", symbols, "1m")            # each symbol's 30 days (ETH: 41)
        times.append(time.perf_counter() - t0); n = df.height
    days = df.group_by("symbol").agg(((pl.col("ts").max() - pl.col("ts").min()).dt.total_minutes() / 1440).alias("d"))["d"]
    print(f"symbols: {len(symbols)}  days per symbol: {days.min():.1f}-{days.max():.1f}  rows: {n:,}")
    print(f"load_bars median {statistics.median(times):.3f} s  (min {min(times):.3f}, max {max(times):.3f}, {a.repeats} runs)  target < 1 s")
    print(f"throughput {n / statistics.median(times) / 1e6:.2f} M bars/s")


if __name__ == "__main__":
    main()
