"""Matching-core replay throughput in book events/s with resting maker orders: medians over repeats, ratio to the 1M/s goal.

Scenarios (all in-process, bundled data, no network):
  hl10 quoting   - the 10 Hyperliquid coins' modeled books over their ~5 days in one MatchingCore, 6 resting ALO
                   orders per coin (bid and ask at the touch, 10 bps and 30 bps away), each re-placed at the
                   current book as soon as it fills (event-driven: advance(..., stop_on_fill=True))
  hl10 quoting 10/30 - the same without the touch quotes (4 orders per coin, fewer fills)
  bitstamp quoting - the real Bitstamp BTC/USD L2 replay (5 hours) with the same quoting on a spot account
  hl10 resting   - the same 60 orders placed far away (never fill): the pure kernel scan, one advance to the end
  hl10 idle      - no resting orders: advance only moves indexes (np.searchsorted)

Run: .venv/bin/python bench/bench_matching.py [--repeats 5]
"""
from __future__ import annotations
import argparse, math, statistics, time
from tri_engine.data import load_bars
from tri_engine.sim.market import bitstamp_stream, hl_tick, modeled_stream_from_bars
from tri_engine.sim.matching import ALPACA_CRYPTO_FEES, InstrumentSpec, MatchingCore, hl_fees

GOAL = 1_000_000
COINS = {"BTC": 5, "ETH": 4, "SOL": 2, "DOGE": 0, "AVAX": 2, "LINK": 1, "LTC": 2, "XRP": 0, "BNB": 3, "HYPE": 2}   # szDecimals


def hl_universe():
    "(spec, stream) for the 10 native coins, modeled from the bundled 1m bars."
    bars = load_bars("hyperliquid", list(COINS), "1m")
    return [(InstrumentSpec(c, "perp", d, 20, hl_fees(), min_notional=10.0), modeled_stream_from_bars(bars, c, sz_decimals=d, seed=i))
            for i, (c, d) in enumerate(COINS.items())]


def quote_px(core, sym, is_buy, off_bps, tick):
    "A post-only price `off_bps` behind the current touch, on the tick grid."
    ref = core.bbo(sym)[0 if is_buy else 1]
    if ref != ref: return None
    px = ref * (1 - off_bps / 1e4) if is_buy else ref * (1 + off_bps / 1e4)
    n = math.floor(px / tick + 1e-9) if is_buy else math.ceil(px / tick - 1e-9)
    return round(n * tick, 10)


def run(universe, offsets_bps, notional, spot=False, stop_on_fill=True):
    "One replay of every stream with quotes at `offsets_bps`: (book events, prints, fills, seconds)."
    core = MatchingCore(seed=0)
    for spec, stream in universe: core.add_instrument(spec, stream, funding="auto")
    acct = "0xbench"
    core.accounts.fund(acct, 1e12, "spot" if spot else "perp")
    start = min(int(s.ts_ms[0]) for _, s in universe); end = max(int(s.ts_ms[-1]) for _, s in universe)
    t0 = time.perf_counter()
    core.advance(start + 60_000)
    ticks = {spec.symbol: (hl_tick(float(s.trade_px.mean())) if not spot else 0.01) for spec, s in universe}
    if spot:                                                # inventory so asks can rest (spot never goes short)
        for spec, _ in universe: core.submit(acct, spec.symbol, True, core.book(spec.symbol).best_ask * 1.01, 1e3 * notional / core.mark_px(spec.symbol), "ioc")
    slot_of, missing = {}, set()                           # oid -> quote slot; slots without a live order

    first = {spec.symbol: int(s.ts_ms[0]) for spec, s in universe}

    def place(key):
        sym, is_buy, off = key
        if core.now_ms < first[sym]: missing.add(key); return   # that stream has not started yet
        px = quote_px(core, sym, is_buy, off, ticks[sym])
        lot = core.spec(sym).lot
        r = core.submit(acct, sym, is_buy, px, max(lot, round(notional / px / lot) * lot), "alo") if px else None
        if r is not None and r.status == "resting": slot_of[r.oid] = key; missing.discard(key)
        else: missing.add(key)                             # would cross now: try again after the next fill

    for spec, _ in universe:
        for off in offsets_bps:
            for is_buy in (True, False): place((spec.symbol, is_buy, off))
    n_fills = 0
    while core.now_ms < end:
        got = core.advance(end, stop_on_fill=stop_on_fill)
        n_fills += len(got)
        for f in got:
            if f.oid in slot_of and core.order(acct, f.oid).status != "open": missing.add(slot_of.pop(f.oid))
        for key in list(missing): place(key)
    dt = time.perf_counter() - t0
    return sum(len(s) for _, s in universe), sum(s.n_trades for _, s in universe), n_fills, dt


def median_run(label, universe, repeats, **kw):
    "Median events/s over repeats of `run`, printed with fills and the ratio to the goal."
    run(universe, **kw)                                    # warm-up: numba cache load, page faults
    res = [run(universe, **kw) for _ in range(repeats)]
    ev, pr, fills = res[0][:3]
    rate = statistics.median(ev / r[3] for r in res)
    secs = statistics.median(r[3] for r in res)
    print(f"{label:<19}{ev:>9,} book events + {pr:>7,} prints  {fills:>6,} maker fills  {secs:7.3f} s  "
          f"{rate:>12,.0f} book events/s  ({rate / GOAL:5.2f}x the 1M/s goal)")
    return rate


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=5)
    a = ap.parse_args()
    hl = hl_universe()
    bs = [(InstrumentSpec("BTC/USD", "spot", 8, 1, ALPACA_CRYPTO_FEES), bitstamp_stream())]
    print(f"median of {a.repeats} runs (after one warm-up); each run replays the whole data set once")
    median_run("hl10 quoting", hl, a.repeats, offsets_bps=(0, 10, 30), notional=200.0)
    median_run("hl10 quoting 10/30", hl, a.repeats, offsets_bps=(10, 30), notional=200.0)
    median_run("bitstamp quoting", bs, a.repeats, offsets_bps=(0, 10, 30), notional=50.0, spot=True)
    median_run("hl10 resting", hl, a.repeats, offsets_bps=(5_000,), notional=200.0, stop_on_fill=False)
    median_run("hl10 idle", hl, a.repeats, offsets_bps=(), notional=200.0, stop_on_fill=False)


if __name__ == "__main__":
    main()
