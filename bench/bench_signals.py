"""Signal-core throughput: medians over repeated runs (machines are shared and noisy; read ratios, not absolutes).

Run: .venv/bin/python bench/bench_signals.py [--n 200000] [--repeats 5]
"""
from __future__ import annotations
import argparse, statistics, time
import numpy as np
import polars as pl
from tri_engine.signals import RollingZ, obi, SignalEngine


def median_rate(fn, n: int, repeats: int) -> float:
    "Median events per second of `fn()` processing `n` events."
    rates = []
    for _ in range(repeats):
        t0 = time.perf_counter(); fn(); rates.append(n / (time.perf_counter() - t0))
    return statistics.median(rates)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=200_000)
    ap.add_argument("--repeats", type=int, default=5)
    a = ap.parse_args()
    rng = np.random.default_rng(0)
    xs = (100_000.0 * np.exp(np.cumsum(rng.normal(0, 1e-4, a.n)))).tolist()
    bids, asks = rng.uniform(0, 5, (a.n, 20)).tolist(), rng.uniform(0, 5, (a.n, 20)).tolist()

    def rolling_z():
        rz = RollingZ(60)
        for x in xs: rz.push(x)

    def polars_z():
        s = pl.Series(xs); (s - s.rolling_mean(60)) / s.rolling_std(60)

    def obi20():
        for b, k in zip(bids, asks): obi(b, k, 20)

    def engine():
        se = SignalEngine(window_bars=60, theta=0.1); se.add_symbol("BTC")
        for i, (x, b, k) in enumerate(zip(xs, bids, asks)):
            se.on_bar("BTC", x, i * 60_000); se.on_book("BTC", b, k, i * 60_000)
            for it in se.evaluate("BTC", i * 60_000):
                if it.kind == "entry": se.rollback_entry("BTC")
                else: se.rollback_exit("BTC")

    r_push, r_pl = median_rate(rolling_z, a.n, a.repeats), median_rate(polars_z, a.n, a.repeats)
    r_obi, r_eng = median_rate(obi20, a.n, a.repeats), median_rate(engine, a.n, a.repeats)
    print(f"events: {a.n:,}  repeats: {a.repeats} (medians)")
    print(f"RollingZ.push (window 60, O(1), exact)      {r_push:12,.0f} /s")
    print(f"polars vectorised rolling z (reference)      {r_pl:12,.0f} /s   ratio polars/RollingZ {r_pl / r_push:6.1f}x")
    print(f"obi, 20 levels                               {r_obi:12,.0f} /s")
    print(f"SignalEngine bar + book + evaluate           {r_eng:12,.0f} /s   ({1e6 / r_eng:.1f} us per event)")


if __name__ == "__main__":
    main()
