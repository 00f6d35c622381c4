"""Research kernel: events/s of rho_N + rolling z + gate decisions over flat arrays, against a plain-Python loop in the same run.

Data: the ten bundled Hyperliquid coins over the whole bundled window, modeled depth-20 books (4 per minute) and 1-minute bars,
merged per coin in the backtest's delivery order (kernel_inputs over the backtest's ReplayData): about 330 000 events.
Measured, medians over repeats:
  - kernel, exact mode (bit-identical to the live signal code) and fast mode (plain sums), events/s;
  - plain-Python loop: the live SignalEngine (on_bar / on_book / evaluate, immediate fills) over the same events of one coin;
  - the memory-bound reference: a compiled loop that only reads each book row's 2 x 20 sizes once (the bandwidth ceiling);
  - where the time goes: the fast kernel with decisions off, with depth 1 instead of 20, and the bars alone.
Goal: >= 40 M events/s. Run: .venv/bin/python bench/bench_kernel.py [--repeats 5]
"""
from __future__ import annotations
import argparse, statistics, time
import numpy as np
from numba import njit
from tri_engine.backtest import ReplayData, hl_markets
from tri_engine.backtest.kernel import _replay, kernel, kernel_inputs
from tri_engine.config import load_settings
from tri_engine.core import ExecutionStyle, IntentKind, Side
from tri_engine.engines.hl import hl_engine_config
from tri_engine.signals import SignalEngine
from tri_engine.sim.hyperliquid import NATIVE_PERPS, native_window, replay_start_ms

GOAL = 40e6


@njit(cache=True)
def touch_rows(kind, row, bsz, asz, L):
    "Read each book event's 2 x L sizes once (four chains per side): the memory-bound reference."
    acc = 0.0
    for e in range(len(kind)):
        if kind[e] != 2: continue
        r = row[e]
        b0 = b1 = b2 = b3 = 0.0
        j = 0
        while j + 4 <= L:
            b0 += bsz[r, j] - asz[r, j]; b1 += bsz[r, j + 1] - asz[r, j + 1]; b2 += bsz[r, j + 2] - asz[r, j + 2]; b3 += bsz[r, j + 3] - asz[r, j + 3]
            j += 4
        acc += (b0 + b1) + (b2 + b3)
    return acc


def plain_python(inp, cfg) -> tuple[float, int]:
    "The live SignalEngine over one coin's events with immediate fills at buy_px / sell_px: (seconds, decisions)."
    se = SignalEngine(window_bars=inp.window, theta=inp.theta, levels=inp.levels, stop_loss_pct=inp.stop_loss, time_stop=cfg.time_stop, allow_short=inp.allow_short)
    sym = inp.symbol
    from tri_engine.signals import Thresholds
    se.add_symbol(sym, Thresholds(inp.s_entry, inp.s_exit))
    bsz, asz = inp.bsz.tolist(), inp.asz.tolist()
    closes, bar_ts, bid1, ask1, book_ts = inp.closes.tolist(), inp.bar_ts.tolist(), inp.bid1.tolist(), inp.ask1.tolist(), inp.book_ts.tolist()
    for k, c in enumerate(inp.pre_close.tolist()): se.on_bar(sym, c, inp.pre_last_ts - (len(inp.pre_close) - 1 - k) * 60_000)
    n = 0
    t0 = time.perf_counter()
    for e, (t, kind, r) in enumerate(zip(inp.t.tolist(), inp.kind.tolist(), inp.row.tolist())):
        if kind == 1: se.on_bar(sym, closes[r], bar_ts[r])
        else: se.on_book(sym, bsz[r], asz[r], book_ts[r], mid=(bid1[r] + ask1[r]) / 2)
        for it in se.evaluate(sym, t):
            n += 1
            px = inp.buy_px[e] if it.side is Side.BUY else inp.sell_px[e]
            qty = abs(se.position(sym)) if it.kind is IntentKind.EXIT else 250.0 / px
            se.on_fill(sym, it.tag, it.kind, it.side, qty, px, t)
    return time.perf_counter() - t0, n


def main(repeats: int) -> None:
    st = load_settings(env={})
    coins = [c for c, *_ in NATIVE_PERPS]
    t0, t1 = replay_start_ms(), native_window()[1] + 60_000
    cfg = hl_engine_config(st, coins, "bench-kernel", ExecutionStyle.TAKER)
    data = ReplayData(hl_markets(coins, t0, t1, cfg.preseed_bars, settings=st), t0, t1)
    inputs = [kernel_inputs(data, c, cfg) for c in coins]
    n_ev = sum(len(i) for i in inputs)
    n_books = sum(int((i.kind == 2).sum()) for i in inputs)
    print(f"{len(coins)} coins, {n_ev} events ({n_books} depth-20 books, {n_ev - n_books} bars), {(t1 - t0) / 86_400_000:.1f} days")

    prm = {ex: [i.prm(ex) for i in inputs] for ex in (True, False)}
    bars = [(i, [a[np.flatnonzero(i.kind == 1)] for a in (i.t, i.kind, i.row, i.buy_px, i.sell_px, i.entry_ok, i.blocked, i.time_stop_s)]) for i in inputs]
    variants = {
        "exact": lambda: [kernel(*i.args(), p) for i, p in zip(inputs, prm[True])],
        "fast": lambda: [kernel(*i.args(), p) for i, p in zip(inputs, prm[False])],
        "signals": lambda: [_replay(*i.args(), p, False, False) for i, p in zip(inputs, prm[False])],
        "depth1": lambda: [_replay(*i.args(), i.prm(False, levels=1), False, False) for i in inputs],
        "bars": lambda: [_replay(b[0], b[1], b[2], i.pre_close, i.pre_last_ts, i.bar_ts, i.closes, i.bsz, i.asz, i.bid1, i.ask1,
                                 i.book_ts, b[3], b[4], b[5], b[6], b[7], p, False, False) for (i, b), p in zip(bars, prm[False])],
        "memory": lambda: [touch_rows(i.kind, i.row, i.bsz, i.asz, 20) for i in inputs],
    }
    for f in variants.values(): f()                                           # compile / warm up
    times = {k: [] for k in variants}
    for _ in range(repeats):                                                  # interleaved, so machine noise hits every variant alike
        for k, f in variants.items():
            t = time.perf_counter(); f(); times[k].append(time.perf_counter() - t)
    med = {k: statistics.median(v) for k, v in times.items()}
    ns = {k: v * 1e9 / n_ev for k, v in med.items()}
    py_s, py_n = plain_python(inputs[0], cfg)
    py_rate = len(inputs[0]) / py_s
    k_dec = kernel(*inputs[0].args(), inputs[0].prm(True))[1].shape[0]
    print(f"plain-Python loop (the live SignalEngine, {coins[0]} only): {py_rate / 1e3:,.0f} k events/s ({py_n} decisions; the kernel makes {k_dec})")
    for k in ("exact", "fast"):
        rate = n_ev / med[k]
        print(f"kernel {k:5s}: {rate / 1e6:6.1f} M events/s  {ns[k]:5.1f} ns/event  x{rate / py_rate:,.0f} vs plain Python  "
              f"{rate / GOAL:.2f}x the 40 M/s goal   (median of {repeats})")
    print(f"memory-bound reference (read the 2 x 20 sizes of each book once): {n_ev / med['memory'] / 1e6:.1f} M events/s  {ns['memory']:.1f} ns/event")
    print("where the time goes, fast kernel, ns per event of the merged stream:")
    print(f"  signals (z + rho)            {ns['signals']:5.1f}   of which bars' z {ns['bars']:4.1f}; books' rho at depth 20 {ns['signals'] - ns['depth1']:4.1f} "
          f"more than at depth 1 (memory reference {ns['memory']:.1f})")
    print(f"  decisions (state machine)    {ns['fast'] - ns['signals']:5.1f}")
    print(f"  exact mode on top            {ns['exact'] - ns['fast']:5.1f}   (certified fsum of 2 x 20 sizes, libm pow in z)")


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=5)
    main(ap.parse_args().repeats)
