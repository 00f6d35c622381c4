"Scenarios a user of the crypto-spot and equities engines lived through, against the Alpaca simulator with the unmodified alpaca-py."
from __future__ import annotations
import asyncio, contextlib, dataclasses, json, math
import msgspec
from pathlib import Path
import pytest
from tri_engine.config import load_settings, SettingsError
from tri_engine.core import EventLog, IntentKind, Side, Tif, ExecutionStyle, BookSnapshot, Mode, project_root
from tri_engine.signals import SignalIntent
from tri_engine.risk import MacroCalendar, MacroEvent
from tri_engine.engine.core import Engine
from tri_engine.engine.orders import RouterPolicy, MAKER_GTC
from tri_engine.engines.alpaca import CRYPTO, EQUITIES, alpaca_universe, alpaca_engine_config, book_gate, run_alpaca
from tri_engine.sim.alpaca import AlpacaSim
from tri_engine.venues.alpaca.config import alpaca_config
from tri_engine.venues.alpaca.data import AlpacaData
from tri_engine.venues.alpaca.execution import AlpacaExecution
from tri_engine.venues.alpaca.parsing import ts_ms

KEY, SECRET = "PKTEST0000000000001", "sim-secret-" + "q" * 29


class SimClock:
    "The engine reads the simulator's replay time (tests step it explicitly)."
    def __init__(self, sim): self.sim = sim
    def now_ms(self) -> int: return self.sim.now_ms


@contextlib.asynccontextmanager
async def engine_on_alpaca(tmp_path, book, symbols, start=None, macro=(), settings=None, **cfg_kw):
    "An Engine wired to the Alpaca adapter over a step-driven simulator, with the trade stream feeding on_fill."
    crypto, stocks = (list(symbols), []) if book is CRYPTO else ([], list(symbols))
    async with AlpacaSim(crypto=crypto, stocks=stocks, speed=None, start=start, key=KEY, secret=SECRET) as sim:
        settings = settings or load_settings(env={})
        cfg = alpaca_config(settings, book.name, sim.url, sim_keys=(KEY, SECRET))
        log = EventLog(tmp_path / book.log_name, book.engine, SimClock(sim), secrets=[KEY, SECRET])
        ex = await asyncio.to_thread(AlpacaExecution, cfg, list(symbols), log, 2.0)
        data = AlpacaData(cfg, list(symbols), log, preseed_source="none", now_ms=lambda: sim.now_ms, stale_s=cfg_kw.pop("stale_s", None))
        uni = alpaca_universe(book, settings, list(symbols))
        gate = book_gate(settings, book, uni, await ex.account_value(), MacroCalendar(list(macro)))
        ecfg = dataclasses.replace(alpaca_engine_config(settings, book, symbols, "test-run"), **cfg_kw)
        eng = Engine(ecfg, data, ex, gate, log, SimClock(sim))
        loop, q = asyncio.get_running_loop(), asyncio.Queue()
        fills = asyncio.create_task(ex.run_fills(lambda ev: loop.call_soon_threadsafe(q.put_nowait, ev)))

        async def pump(wait_s: float = 0.4):
            "Let pushed fills arrive and hand them to the engine."
            await asyncio.sleep(wait_s)
            while not q.empty(): await eng.on_fill(q.get_nowait())
        eng.pump, eng.sim = pump, sim
        for s in symbols: refresh_book(eng, s)
        await pump(0.8)
        try:
            async with asyncio.timeout(120):                                    # a stuck await fails the test with its stack, never hangs CI
                yield eng
        finally:
            fills.cancel()
            with contextlib.suppress(BaseException): await fills
            log.close()


def refresh_book(eng, sym, bid_shift: float = 0.0):
    "Give the engine the venue's current book (as the orderbook / quote stream would); `bid_shift` moves the bids (a stale view)."
    if "/" in sym:
        lv = eng.sim.book_levels(sym)
        bids, asks = lv["b"], lv["a"]
        t = lv["t"]
    else:
        qt = eng.sim.quote(sym)
        bids, asks, t = [(qt["bp"], qt["bs"])], [(qt["ap"], qt["as"])], qt["t"]
    eng.books[sym] = BookSnapshot(venue="alpaca", symbol=sym, ts_ms=eng.now_ms(), bid_px=tuple(p * (1 + bid_shift) for p, _ in bids),
                                  bid_sz=tuple(s for _, s in bids), ask_px=tuple(p for p, _ in asks), ask_sz=tuple(s for _, s in asks))
    return eng.books[sym]


async def decide(eng, sym, kind, side, z=-1.5, tag="default"):
    "What the strategy decides: put the signal core in the pending state and act on the intent."
    ts = eng.signals._tag(sym, tag)
    ts.pending, ts.pending_side = kind, side
    it = SignalIntent(symbol=sym, tag=tag, kind=kind, side=side, reason="test", ts_ms=eng.now_ms(), z=z, ref_px=eng.books[sym].mid)
    return await eng.act(it)


async def step_until(eng, cond, max_steps=60, ms=10_000, watchdog=True):
    "Advance the venue in steps, feeding books and fills (and the 1 s sweep) until `cond()`."
    for _ in range(max_steps):
        if cond(): return True
        await eng.sim.advance_ms(ms)
        for s in eng.cfg.symbols: refresh_book(eng, s)
        await eng.pump(0.2)
        if watchdog: await eng.on_timer()
    return cond()


def venue_position(eng, sym) -> float:
    rows = eng.sim.positions_json(KEY)
    p = {r["symbol"]: abs(float(r["qty"])) * (-1 if r["side"] == "short" else 1) for r in rows}
    return p.get(sym.replace("/", ""), 0.0)


def venue_open_orders(eng) -> list:
    return eng.sim.orders_json(KEY, "open")


def events(eng, name):
    return [json.loads(l) for l in Path(eng.log.path).read_text().splitlines() if f'"event":"{name}"' in l]


# ---------------------------------------------------------------- crypto spot

async def test_crypto_long_entry_walks_with_the_market_by_replace_then_exits_flat(tmp_path):
    async with engine_on_alpaca(tmp_path, CRYPTO, ["BTC/USD"]) as eng:
        refresh_book(eng, "BTC/USD", bid_shift=-0.002)                       # our view is a little behind: the order rests under the touch
        o = await decide(eng, "BTC/USD", IntentKind.ENTRY, Side.BUY)
        assert o is not None and o.route == MAKER_GTC and o.venue_oid
        first_oid = o.venue_oid
        assert await step_until(eng, lambda: o.settled, ms=15_000)
        assert o.reprices >= 1 and o.filled_sz > 0
        events_sent = [u["event"] for u in eng.sim.trade_updates[KEY]]
        assert "replaced" in events_sent and o.venue_oid != first_oid           # the walk is a replace: a new venue order, same intent
        held = eng.signals.position("BTC/USD", "default")
        assert held == pytest.approx(venue_position(eng, "BTC/USD"), abs=eng.info["BTC/USD"].dust)   # the fee was paid in BTC
        assert held < o.filled_sz
        x = await decide(eng, "BTC/USD", IntentKind.EXIT, Side.SELL, z=-0.2)
        assert x is not None
        assert await step_until(eng, lambda: x.settled, ms=15_000)
        assert eng.signals.positions() == {} and abs(venue_position(eng, "BTC/USD")) <= eng.info["BTC/USD"].dust
        assert venue_open_orders(eng) == [] and not events(eng, "alpaca_order_inner_rejection")


async def test_crypto_short_signal_produces_nothing_while_the_long_mirror_trades(tmp_path):
    async with engine_on_alpaca(tmp_path, CRYPTO, ["ETH/USD"]) as eng:
        st, now = eng.signals.symbols["ETH/USD"], eng.now_ms()
        assert not st.allow_short
        for i in range(60): eng.signals.on_bar("ETH/USD", 2000.0 + (i % 3), now - (61 - i) * 60_000)
        book = refresh_book(eng, "ETH/USD")
        ask_heavy = msgspec.structs.replace(book, ts_ms=now, ask_sz=tuple(s * 10 for s in book.ask_sz))
        eng.signals.on_bar("ETH/USD", 2100.0, now - 30_000)                    # a spike: z >> +1.25
        await eng.on_book(ask_heavy)
        assert st.last_z > 1.25 and st.rho < 0
        assert not events(eng, "entry_signal") and not events(eng, "alpaca_order_intent") and venue_open_orders(eng) == []
        bid_heavy = msgspec.structs.replace(book, ts_ms=now, bid_sz=tuple(s * 10 for s in book.bid_sz))
        eng.signals.on_bar("ETH/USD", 1900.0, now - 10_000)                    # the mirror image: a dip with a bid-heavy book
        await eng.on_book(bid_heavy)
        assert [e["side"] for e in events(eng, "alpaca_order_intent")] == ["buy"]


async def test_crypto_partial_fill_then_reprice_resubmits_only_the_remainder(tmp_path):
    async with engine_on_alpaca(tmp_path, CRYPTO, ["SOL/USD"]) as eng:
        refresh_book(eng, "SOL/USD", bid_shift=-0.003)
        o = await decide(eng, "SOL/USD", IntentKind.ENTRY, Side.BUY)
        eng.sim.partial_fill_schedule(KEY, [round(o.target_sz / 2, 2)])
        assert await step_until(eng, lambda: o.settled, ms=15_000)
        legs = eng.ex.intents[o.cid].legs
        total = sum(f for f, _ in eng.ex.intents[o.cid].filled.values())
        assert total == pytest.approx(o.filled_sz) and o.filled_sz <= o.target_sz + 1e-9     # never bought twice
        assert len(legs) >= 2


# ---------------------------------------------------------------- equities

def taker(**kw):
    return dict(router=RouterPolicy(style=ExecutionStyle.TAKER, maker_route=MAKER_GTC), **kw)


async def test_equities_short_entry_and_cover(tmp_path):
    async with engine_on_alpaca(tmp_path, EQUITIES, ["TSLA"], start="2026-04-02T11:00:00-04:00", **taker()) as eng:
        o = await decide(eng, "TSLA", IntentKind.ENTRY, Side.SELL, z=1.6)
        assert o is not None and o.settled and o.filled_sz >= 1
        await eng.pump(0.5)
        assert eng.signals.position("TSLA", "default") == -o.filled_sz == venue_position(eng, "TSLA")
        x = await decide(eng, "TSLA", IntentKind.EXIT, Side.BUY, z=0.2)
        assert x is not None and x.settled and x.filled_sz == o.filled_sz
        await eng.pump(0.5)
        assert eng.signals.positions() == {} and venue_position(eng, "TSLA") == 0.0


async def test_equities_order_at_15_59_59_is_allowed_and_at_16_00_00_blocked(tmp_path):
    async with engine_on_alpaca(tmp_path, EQUITIES, ["AAPL", "MSFT"], start="2026-04-02T15:59:59-04:00", flatten_before_close_ms=0, **taker()) as eng:
        o = await decide(eng, "AAPL", IntentKind.ENTRY, Side.BUY)
        assert o is not None and o.filled_sz >= 1
        await eng.sim.step_to("2026-04-02T16:00:00-04:00")
        refresh_book(eng, "MSFT")
        assert await decide(eng, "MSFT", IntentKind.ENTRY, Side.BUY) is None
        assert events(eng, "session_block")[-1]["coin"] == "MSFT"
        assert [e["coin"] for e in events(eng, "alpaca_order_intent")] == ["AAPL"]


async def test_equities_holiday_is_blocked(tmp_path):
    async with engine_on_alpaca(tmp_path, EQUITIES, ["SPY"], start="2026-04-03T11:00:00-04:00", **taker()) as eng:   # Good Friday
        assert await decide(eng, "SPY", IntentKind.ENTRY, Side.BUY) is None
        assert events(eng, "session_block") and not events(eng, "alpaca_order_intent") and venue_open_orders(eng) == []


async def test_equities_half_day_closes_at_13_00_and_the_position_is_flattened_before(tmp_path):
    async with engine_on_alpaca(tmp_path, EQUITIES, ["QQQ"], start="2025-11-28T12:40:00-05:00", **taker()) as eng:
        o = await decide(eng, "QQQ", IntentKind.ENTRY, Side.BUY)
        assert o is not None and o.filled_sz >= 1
        await eng.pump(0.3)
        await eng.sim.step_to("2025-11-28T12:56:00-05:00")                    # inside the 5-minute flatten window of a 13:00 close
        refresh_book(eng, "QQQ")
        await eng.on_timer()
        await eng.pump(0.5)
        assert events(eng, "session_flatten")
        assert eng.signals.positions() == {} and venue_position(eng, "QQQ") == 0.0
        await eng.sim.step_to("2025-11-28T13:00:00-05:00")
        refresh_book(eng, "QQQ")
        assert await decide(eng, "QQQ", IntentKind.ENTRY, Side.BUY) is None
        assert events(eng, "session_block")


async def test_equities_sector_at_its_cap_blocks_the_next_entry_in_that_sector(tmp_path):
    ini = (project_root() / "settings.ini").read_text().replace("[sector_caps]\n", "[sector_caps]\nInformation Technology = 1\n")
    (tmp_path / "settings.ini").write_text(ini)
    settings = load_settings(tmp_path / "settings.ini", env={})
    assert settings.sector_caps.cap("Information Technology") == 1
    async with engine_on_alpaca(tmp_path, EQUITIES, ["AAPL", "MSFT", "NVDA"], start="2026-04-02T11:00:00-04:00", settings=settings, **taker()) as eng:
        a = await decide(eng, "AAPL", IntentKind.ENTRY, Side.BUY)
        assert a is not None and a.filled_sz >= 1
        assert await decide(eng, "MSFT", IntentKind.ENTRY, Side.BUY) is None
        assert events(eng, "risk_block")[-1]["reason"] == "sector_cap"
        n = await decide(eng, "NVDA", IntentKind.ENTRY, Side.BUY)              # Semis has room
        assert n is not None and n.filled_sz >= 1
        x = await decide(eng, "AAPL", IntentKind.EXIT, Side.SELL, z=0.0)
        assert x is not None and x.settled
        m = await decide(eng, "MSFT", IntentKind.ENTRY, Side.BUY)              # the slot is free again
        assert m is not None and m.filled_sz >= 1


async def test_equities_macro_event_cancels_pending_orders_freezes_then_resumes(tmp_path):
    cpi = MacroEvent(ts_ms=ts_ms("2026-04-02T15:00:00Z"), kind="CPI", description="test CPI")    # 11:00 ET; halt 10:45-11:15
    async with engine_on_alpaca(tmp_path, EQUITIES, ["AAPL"], start="2026-04-02T10:30:00-04:00", macro=[cpi]) as eng:
        refresh_book(eng, "AAPL", bid_shift=-0.01)                             # a maker buy well under the market: it rests
        o = await decide(eng, "AAPL", IntentKind.ENTRY, Side.BUY)
        assert o is not None and len(venue_open_orders(eng)) == 1
        await eng.sim.step_to("2026-04-02T10:46:00-04:00")
        refresh_book(eng, "AAPL")
        await eng.on_timer(); await eng.pump(0.3)
        assert events(eng, "macro_halt_start") and venue_open_orders(eng) == []
        assert o.settled
        st, now = eng.signals.symbols["AAPL"], eng.now_ms()
        for i in range(60): eng.signals.on_bar("AAPL", 250.0 + (i % 3), now - (61 - i) * 86_400_000)
        book = refresh_book(eng, "AAPL")
        await eng.on_book(msgspec.structs.replace(book, bid_px=(200.0,), ask_px=(200.1,), bid_sz=(900.0,), ask_sz=(100.0,)))   # z << -1.25, bid-heavy
        assert st.last_z < -1.25 and not events(eng, "entry_signal")          # frozen: no evaluation
        await eng.sim.step_to("2026-04-02T11:16:00-04:00")
        refresh_book(eng, "AAPL")
        await eng.on_timer()
        assert events(eng, "macro_halt_end")
        await eng.on_book(msgspec.structs.replace(book, ts_ms=eng.now_ms(), bid_px=(200.0,), ask_px=(200.1,), bid_sz=(900.0,), ask_sz=(100.0,)))
        assert events(eng, "entry_signal")                                      # evaluating again


# ---------------------------------------------------------------- config and data

async def test_paper_live_mismatch_raises_before_connecting(tmp_path, monkeypatch):
    for k, v in {"EXECUTION_MODE": "LIVE", "ALPACA_API_KEY_ID": "PK" + "Z" * 18, "ALPACA_API_SECRET_KEY": "s" * 40, "ALPACA_TRADING_MODE": "paper"}.items():
        monkeypatch.setenv(k, v)
    with pytest.raises(SettingsError, match="ALPACA_TRADING_MODE"):
        await run_alpaca("crypto", run_dir=tmp_path / "r", duration_s=1)
    assert not (tmp_path / "r").exists()                                      # nothing was created, nothing connected
    monkeypatch.setenv("EXECUTION_MODE", "PAPER"); monkeypatch.setenv("ALPACA_TRADING_MODE", "live")
    with pytest.raises(SettingsError, match="ALPACA_TRADING_MODE"):
        await run_alpaca("equities", run_dir=tmp_path / "r", duration_s=1)


async def test_a_silent_data_stall_triggers_the_watchdog_and_the_stream_comes_back(tmp_path):
    async with AlpacaSim(crypto=["BTC/USD"], stocks=[], speed=20.0, key=KEY, secret=SECRET) as sim:
        cfg = alpaca_config(load_settings(env={}), "crypto", sim.url, sim_keys=(KEY, SECRET))
        log = EventLog(tmp_path / "engine.jsonl", "crypto_spot", SimClock(sim), secrets=[KEY, SECRET])
        data = AlpacaData(cfg, ["BTC/USD"], log, stale_s=1.0)
        got = []
        task = asyncio.create_task(data.run(got.append))
        for _ in range(50):
            await asyncio.sleep(0.1)
            if data.stats["books"]: break
        assert data.stats["books"] > 0
        sim.stall_channel("orderbooks"); sim.stall_channel("bars")
        for _ in range(60):
            await asyncio.sleep(0.1)
            if data.stats["stale_reconnects"]: break
        assert data.stats["stale_reconnects"] >= 1
        sim.stall_channel("orderbooks", on=False); sim.stall_channel("bars", on=False)
        before = data.stats["snapshots"]
        for _ in range(80):
            await asyncio.sleep(0.1)
            if data.stats["snapshots"] > before: break
        assert data.stats["snapshots"] > before                               # a fresh r:true snapshot after the reconnect
        task.cancel()
        with contextlib.suppress(BaseException): await task
        log.close()
        assert [e for e in map(json.loads, (tmp_path / "engine.jsonl").read_text().splitlines()) if e["event"] == "alpaca_ws_stale"]
        assert SECRET not in (tmp_path / "engine.jsonl").read_text()
