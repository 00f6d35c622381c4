"""Event-driven backtest on the live code path: events/s against a plain-Python loop over the same events, and where the time goes.

What runs: tri_engine.backtest.run_backtest("hl"): the generic Engine (SignalEngine, RiskGate, router, maker watchdog, order
tracker) over the bundled Hyperliquid data, five native coins over the whole bundled window (4.6 days), maker routing,
100 ms feed / 150 ms order latency, queue-aware maker fills, fees and funding in the matching core.
Events/s counts (a) the engine events delivered (bars, books, fills, timer sweeps) and (b) the market events replayed by
the matching core (book events and trade prints). Medians over repeats.
The plain-Python loop is the live SignalEngine alone (on_bar / on_book / evaluate, immediate fills) over the same bars and
books: what a bare Python event loop costs before any engine, venue or accounting.
The profile (cProfile, one day) is summed by layer, then the top functions. Goal: >= 5 M events/s (hftbacktest's level).
Run: .venv/bin/python bench/bench_backtest.py [--repeats 3]
"""
from __future__ import annotations
import argparse, cProfile, pstats, statistics, sys, time
from pathlib import Path
sys.path.insert(0, str(Path(__file__).parent))
from bench_kernel import plain_python
from tri_engine.backtest import run_backtest
from tri_engine.backtest.kernel import kernel_inputs
from tri_engine.config import load_settings
from tri_engine.sim.hyperliquid import native_window, replay_start_ms

GOAL = 5e6
COINS = "BTC,ETH,SOL,DOGE,LINK"
LAYERS = [("engine (engine/core, engine/orders)", ("engine/core.py", "engine/orders.py")), ("signal core", ("signals.py",)),
          ("risk gate", ("risk.py",)), ("matching core (sim/matching)", ("sim/matching.py",)), ("backtest driver + venue client", ("backtest/__init__.py",)),
          ("core types (Bar, BookSnapshot, ids)", ("tri_engine/core.py",)), ("numpy, polars, builtins", ("numpy", "polars", "{", "<", "~"))]


def profile(settings, t0: int) -> None:
    "cProfile of one day, summed by layer, then the ten most expensive functions by own time."
    pr = cProfile.Profile()
    pr.enable()
    res = run_backtest("hl", t0, t0 + 86_400_000, {"symbols": COINS}, settings=settings)
    pr.disable()
    st = pstats.Stats(pr)
    total = sum(v[2] for v in st.stats.values())
    by = {name: 0.0 for name, _ in LAYERS} | {"other": 0.0}
    for (file, line, fn), v in st.stats.items():
        name = next((n for n, keys in LAYERS if any(k in file for k in keys)), "other")
        by[name] += v[2]
    print(f"profile of one day ({res.stats['engine_events']} engine events, {total:.2f} s of own time under cProfile):")
    for k, v in sorted(by.items(), key=lambda kv: -kv[1]): print(f"  {v / total:6.1%}  {k}")
    print("  top functions by own time:")
    top = sorted(st.stats.items(), key=lambda kv: -kv[1][2])[:10]
    for (file, line, fn), v in top:
        print(f"    {v[2] / total:6.1%}  {v[1]:>8} calls  {fn} ({'/'.join(file.split('/')[-2:])}:{line})")


def main(repeats: int) -> None:
    settings = load_settings(env={})
    t0, t1 = replay_start_ms(), native_window()[1] + 60_000
    walls, res = [], None
    for _ in range(repeats):
        res = run_backtest("hl", t0, t1, {"symbols": COINS}, settings=settings)
        walls.append(res.stats["wall_s"])
    wall = statistics.median(walls)
    eng, mkt = res.stats["engine_events"], res.stats["market_events"]
    d = res.stats["delivered"]
    py_ev, py_s = 0, 0.0
    bt = res.backtest
    for c in COINS.split(","):
        inp = kernel_inputs(bt.data, c, bt.cfg, bt.latency)
        s, _ = plain_python(inp, bt.cfg)
        py_ev += len(inp); py_s += s
    py_rate = py_ev / py_s
    print(f"hl backtest, {COINS}, {(t1 - t0) / 86_400_000:.1f} days, maker routing, latency 100/150 ms; median of {repeats} runs: {wall:.2f} s")
    print(f"  engine events  {eng:>8}  ({d['bars']} bars, {d['books']} books, {d['fills']} fills, {d['timers']} sweeps)  "
          f"{eng / wall / 1e3:8.1f} k/s   {eng / wall / GOAL:.4f}x the 5 M/s goal")
    print(f"  market events  {mkt:>8}  (book events + prints replayed by the matching core)            "
          f"{mkt / wall / 1e3:8.1f} k/s   {mkt / wall / GOAL:.4f}x the 5 M/s goal")
    print(f"  plain-Python loop (live SignalEngine only, same bars and books): {py_rate / 1e3:.1f} k events/s -> the full engine path runs at "
          f"{eng / wall / py_rate:.2f}x a bare Python loop")
    m = res.metrics
    print(f"  run: {m['trades']} trades, {m['fills']} fills, maker share {m['maker_share']:.1%}, net {m['net_pnl']:+.2f} USD, "
          f"{res.stats['orders']} orders, {res.stats['reprices']} reprices")
    profile(settings, t0)


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    main(ap.parse_args().repeats)
