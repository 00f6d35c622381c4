"""Hyperliquid engine: tick -> intent latency in process, and boot-to-warm time for 28 coins against the simulator.

tick -> intent: one book event through the live decision path (SignalEngine.on_book + evaluate, urgency
router, limit price, tick rounding, sizing, RiskGate.check) on modeled books of the 10 bundled coins;
percentiles over every tick. Goal p99 <= 50 us.
boot -> warm: HlExecution + HlData construction (meta, perpDexs, leverage facts) and the concurrent
240 x 1m candle preseed for 28 coins (10 native + 18 xyz equities) against the loopback simulator,
until every z-score window is full. Goal <= 3 s. Medians over repeats; the machine is shared.
Run: .venv/bin/python bench/bench_hl_engine.py [--repeats 3]
"""
from __future__ import annotations
import argparse, asyncio, dataclasses, math, statistics, time
import numpy as np
from eth_account import Account
from tri_engine.config import load_settings
from tri_engine.core import Side, IntentKind
from tri_engine.data import load_bars
from tri_engine.engine.orders import RouterPolicy, limit_price
from tri_engine.engines.hl import build_gate, order_notional_usd
from tri_engine.risk import MacroCalendar
from tri_engine.signals import SignalEngine
from tri_engine.sim.market import modeled_stream_from_bars
from tri_engine.sim.hyperliquid import HyperliquidSim, HlAsset, default_universe
from tri_engine.venues.hyperliquid import round_px
from tri_engine.venues.hyperliquid.config import hl_config
from tri_engine.venues.hyperliquid.data import HlData
from tri_engine.venues.hyperliquid.execution import HlExecution

COINS = ["BTC", "ETH", "SOL", "DOGE", "AVAX", "LINK", "LTC", "XRP", "BNB", "HYPE"]
EXTRA_XYZ = ["AMZN", "META", "GOOGL", "AMD", "NFLX", "JPM", "AVGO", "COST", "CRM", "ORCL", "ADBE", "PEP", "KO", "XOM", "LLY", "V", "MA", "WMT"]


def tick_to_intent() -> tuple[np.ndarray, int]:
    "Per-tick decision-path latency (ns) over modeled books of the bundled coins; and the intents produced."
    st = load_settings(env={})
    gate = build_gate(st, COINS, 10_000.0, MacroCalendar([]))
    gate.bucket.capacity = gate.bucket.tokens = 1e12                          # measure the path, not the rate limit
    se, router = SignalEngine(window_bars=60, theta=0.0, allow_short=True), RouterPolicy()
    lat, n_int = [], 0
    for c in COINS:
        bars = load_bars("hyperliquid", c, "1m")
        ms = modeled_stream_from_bars(bars, c, levels=20, sz_decimals=2)
        se.add_symbol(c, "crypto_major", sz_decimals=2)
        closes, bts = bars["close"].to_list(), bars["ts"].dt.epoch("ms").to_list()
        for b in range(60): se.on_bar(c, closes[b], bts[b])
        j = 60
        # the live feed hands the engine BookSnapshot tuples (parsed on the websocket thread), so the same here
        bsz, asz = [tuple(r) for r in ms.bid_sz.tolist()], [tuple(r) for r in ms.ask_sz.tolist()]
        bpx, apx, ts = ms.bid_px[:, 0].tolist(), ms.ask_px[:, 0].tolist(), ms.ts_ms.tolist()
        for i in range(len(ts)):
            while j < len(bts) and bts[j] + 60_000 <= ts[i]: se.on_bar(c, closes[j], bts[j]); j += 1
            t0 = time.perf_counter_ns()
            mid = (bpx[i] + apx[i]) / 2
            se.on_book(c, bsz[i], asz[i], ts[i], mid=mid)
            for it in se.evaluate(c, ts[i]):
                route = router.route(it.kind, it.z)
                px = round_px(bpx[i] if it.side is Side.BUY else apx[i], 2)
                sz = math.floor(order_notional_usd(st, c) / px * 100) / 100 if it.kind is IntentKind.ENTRY else abs(it.qty)
                gate.check(c, it.side, sz * px, 0.0, it.kind is IntentKind.EXIT, ts[i])
                n_int += 1
                (se.rollback_entry if it.kind is IntentKind.ENTRY else se.rollback_exit)(c)
            lat.append(time.perf_counter_ns() - t0)
    return np.array(lat), n_int


async def boot_to_warm(repeats: int) -> list[float]:
    "Seconds from adapter construction to every coin's z window full, 28 coins, against the simulator."
    uni = default_universe()
    natives = [a for a in uni if not a.dex]
    xyz = [a for a in uni if a.dex][:0] + [HlAsset(f"xyz:{t}", "xyz", i, 110000 + i, 3, 10, True, "yahoo", t) for i, t in enumerate(EXTRA_XYZ)]
    assets = natives + xyz
    coins = [a.name for a in assets]
    assert len(coins) == 28
    out = []
    acct = Account.create()
    async with HyperliquidSim(assets, speed=None, funded={acct.address: {"perp": 10_000}}) as sim:
        for _ in range(repeats):
            t0 = time.perf_counter()
            cfg = dataclasses.replace(hl_config(load_settings(env={}), sim.url), coins=tuple(coins), dexs=("xyz",))
            ex, data = await asyncio.gather(asyncio.to_thread(HlExecution, cfg, acct, acct.address), asyncio.to_thread(HlData, cfg, coins))
            se = SignalEngine(window_bars=60)
            for c in coins: se.add_symbol(c, sz_decimals=ex.instrument(c).sz_decimals)
            got = await data.preseed(coins, 240)
            for c, bars in got.items():
                for b in bars: se.on_bar(c, b.close, b.ts_ms)
            warm = sum(se.symbols[c].z.ready for c in coins)
            out.append(time.perf_counter() - t0)
            print(f"  boot: {out[-1]:.2f} s, {warm}/28 warm, bars {min(len(v) for v in got.values())}-{max(len(v) for v in got.values())} per coin")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()
    lat, n = tick_to_intent()
    p50, p99, p999 = np.percentile(lat, [50, 99, 99.9]) / 1000
    print(f"tick -> intent: {len(lat):,} ticks, {n} intents; p50 {p50:.1f} us, p99 {p99:.1f} us, p99.9 {p999:.1f} us (goal p99 <= 50 us: {'met' if p99 <= 50 else 'missed'})")
    b = asyncio.run(boot_to_warm(a.repeats))
    print(f"boot -> warm, 28 coins: median {statistics.median(b):.2f} s over {len(b)} runs (goal <= 3 s: {'met' if statistics.median(b) <= 3 else 'missed'})")


if __name__ == "__main__":
    main()
