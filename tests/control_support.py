"A running Hyperliquid engine in SIM with its control plane, for the control tests, the browser test and bench_kill."
from __future__ import annotations
import asyncio, contextlib, dataclasses, time
from pathlib import Path
from eth_account import Account
from hyperliquid.exchange import Exchange
from hyperliquid.info import Info
from tri_engine.config import load_settings
from tri_engine.control import control_server
from tri_engine.core import EventLog, IntentKind, Side
from tri_engine.engine.core import Engine, MarketClock
from tri_engine.engines.hl import hl_engine_config, build_gate
from tri_engine.risk import MacroCalendar
from tri_engine.signals import SignalIntent
from tri_engine.sim.hyperliquid import HyperliquidSim
from tri_engine.venues.hyperliquid.config import hl_config
from tri_engine.venues.hyperliquid.data import HlData
from tri_engine.venues.hyperliquid.execution import HlExecution

COINS = ("ETH", "SOL", "BTC", "DOGE", "LINK")


@dataclasses.dataclass
class Running:
    "An engine running live against an in-process simulator, with its control server."
    engine: Engine
    sim: HyperliquidSim
    acct: object
    ctl: object
    task: asyncio.Task
    run_dir: Path


async def sdk(fn, *a, **kw):
    "Blocking SDK calls go to a thread: the simulator serves from this event loop."
    return await asyncio.to_thread(fn, *a, **kw)


async def venue_open_orders(r: Running) -> list[dict]:
    "The simulator's resting orders of the engine's account, as the unmodified SDK reads them."
    info = await sdk(Info, r.sim.url, skip_ws=True, perp_dexs=[""])
    return await sdk(info.open_orders, r.acct.address)


async def venue_positions(r: Running) -> dict[str, float]:
    info = await sdk(Info, r.sim.url, skip_ws=True, perp_dexs=[""])
    st = await sdk(info.user_state, r.acct.address)
    return {p["position"]["coin"]: float(p["position"]["szi"]) for p in st["assetPositions"] if float(p["position"]["szi"])}


async def wait_for(cond, timeout: float = 30.0, every: float = 0.05) -> bool:
    "Poll an (a)sync predicate until true or timeout; returns its last value."
    t0 = time.monotonic()
    while True:
        v = cond()
        if asyncio.iscoroutine(v): v = await v
        if v or time.monotonic() - t0 > timeout: return bool(v)
        await asyncio.sleep(every)


@contextlib.asynccontextmanager
async def running_engine(run_dir: Path, coins=COINS, speed: float = 1.0, name: str | None = None, strategy: bool = False):
    """The HL engine (maker style) live on a real-time simulator, run by Engine.run with its control server around it.

    With `strategy=False` there is no preseed, so the z-score stays in its 60-bar warm-up (an hour at speed 1) and the
    strategy neither enters nor exits on z: the only orders are the ones a test decides; everything else (feeds, maker
    watchdog, reconcile, risk gate, kill switch) runs as live."""
    acct = Account.create()
    run_dir.mkdir(parents=True, exist_ok=True)
    async with HyperliquidSim(list(coins), speed=speed, funded={acct.address: {"perp": 10_000.0}}) as sim:
        settings = load_settings(env={})
        cfg = dataclasses.replace(hl_config(settings, sim.url), coins=tuple(coins), dexs=())
        clock = MarketClock(speed=speed)
        log = EventLog(run_dir / "hl_engine.jsonl", "hl", clock)
        ex = await sdk(HlExecution, cfg, acct, acct.address, log)
        data = await sdk(HlData, cfg, list(coins), log)
        clock.observe(await sdk(data.venue_now_ms))
        gate = build_gate(settings, coins, await ex.account_value(), MacroCalendar([]))
        ecfg = hl_engine_config(settings, coins, run_dir.name, recalibrate=False)
        if not strategy: ecfg = dataclasses.replace(ecfg, preseed_bars=0)
        eng = Engine(ecfg, data, ex, gate, log, clock)
        async with control_server(eng, run_dir, name) as ctl:                          # the one line run_hl needs
            task = asyncio.create_task(eng.run(duration_s=None, stop=ctl.stop, fills=ex.run_fills))
            r = Running(eng, sim, acct, ctl, task, run_dir)
            try:
                ok = await wait_for(lambda: all(c in eng.books for c in coins) or task.done(), 60)
                if task.done(): task.result()
                assert ok, f"no books after 60 s: {sorted(eng.books)}"
                yield r
            finally:
                ctl.stop.set()
                with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError): await asyncio.wait_for(asyncio.shield(task), 30)
                if not task.done():
                    task.cancel()
                    with contextlib.suppress(BaseException): await task
        log.close()


async def rest_maker_buys(r: Running, coins=None) -> list:
    "What the strategy does on an entry signal: a post-only buy at the touch per coin, left resting at the venue."
    eng, out = r.engine, []
    for coin in coins or eng.cfg.symbols:
        ts = eng.signals._tag(coin, "default")
        if not ts.flat: continue
        ts.pending, ts.pending_side = IntentKind.ENTRY, Side.BUY
        book = eng.books[coin]
        it = SignalIntent(symbol=coin, tag="default", kind=IntentKind.ENTRY, side=Side.BUY, reason="operator_test", ts_ms=eng.now_ms(),
                          z=-2.5, ref_px=book.mid)
        o = await eng.act(it)
        if o is not None: out.append(o)
    return out


async def take_position(r: Running, coin: str = "SOL", sz: float = 1.0) -> float:
    "A fill at the venue on the engine's account (an IOC lifting the ask), adopted by the engine's reconcile."
    ex = await sdk(Exchange, r.acct, r.sim.url, perp_dexs=[""])
    px = r.engine.books[coin].best_ask * 1.01
    resp = await sdk(ex.order, coin, True, sz, r.engine.ex.round_px(coin, px), {"limit": {"tif": "Ioc"}})
    assert "filled" in resp["response"]["data"]["statuses"][0], resp
    await r.engine.reconcile(None, reason="test")
    return r.engine.signals.positions()[coin]
