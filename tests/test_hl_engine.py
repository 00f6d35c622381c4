"Scenarios a user of the Hyperliquid engine lived through, against the simulator with the unmodified SDK."
from __future__ import annotations
import asyncio, contextlib, dataclasses, json
from pathlib import Path
import pytest
from eth_account import Account
from hyperliquid.exchange import Exchange
from hyperliquid.info import Info
from tri_engine.config import load_settings, SettingsError
from tri_engine.core import EventLog, IntentKind, Side, Tif, ExecutionStyle, BookSnapshot, Bar
from tri_engine.signals import SignalIntent
from tri_engine.engine.core import Engine
from tri_engine.engines.hl import hl_engine_config, build_gate, run_hl
from tri_engine.risk import MacroCalendar
from tri_engine.sim.hyperliquid import HyperliquidSim
from tri_engine.venues.hyperliquid.config import hl_config
from tri_engine.venues.hyperliquid.data import HlData
from tri_engine.venues.hyperliquid.execution import HlExecution



class SimClock:
    "The engine reads the simulator's replay time (tests step it explicitly)."
    def __init__(self, sim): self.sim = sim
    def now_ms(self) -> int: return self.sim.now_ms


@contextlib.asynccontextmanager
async def engine_on_sim(tmp_path, coins=("ETH", "SOL", "xyz:TSLA"), **cfg_kw):
    "An Engine wired to the HL adapter over a step-driven simulator, with the fill stream feeding on_fill."
    acct = Account.create()
    async with HyperliquidSim(list(coins), speed=None, funded={acct.address: {"perp": 10_000, "xyz": 5_000}}) as sim:
        settings = load_settings(env={})
        cfg = dataclasses.replace(hl_config(settings, sim.url), coins=tuple(coins), dexs=("xyz",) if any(":" in c for c in coins) else ())
        log = EventLog(tmp_path / "hl_engine.jsonl", "hl", SimClock(sim))
        ex = await asyncio.to_thread(HlExecution, cfg, acct, acct.address, log)
        data = await asyncio.to_thread(HlData, cfg, list(coins), log)
        ecfg = dataclasses.replace(hl_engine_config(settings, coins, "test-run"), **cfg_kw)
        gate = build_gate(settings, coins, await ex.account_value(), MacroCalendar([]))
        eng = Engine(ecfg, data, ex, gate, log, SimClock(sim))
        loop, q = asyncio.get_running_loop(), asyncio.Queue()
        fills = asyncio.create_task(ex.run_fills(lambda ev: loop.call_soon_threadsafe(q.put_nowait, ev)))

        async def pump(wait_s: float = 0.6):
            "Let pushed fills arrive and hand them to the engine."
            await asyncio.sleep(wait_s)
            while not q.empty(): await eng.on_fill(q.get_nowait())
        eng.pump, eng.sim, eng.acct = pump, sim, acct
        for c in coins: await refresh_book(eng, c)
        await pump(1.0)
        try: yield eng
        finally:
            fills.cancel()
            with contextlib.suppress(BaseException): await fills
            log.close()


async def refresh_book(eng, coin):
    "Give the engine the venue's current book (as the l2Book feed would)."
    raw = await asyncio.to_thread(eng.data.http.l2_snapshot, coin)
    from tri_engine.venues.hyperliquid.parsing import parse_l2book
    eng.books[coin] = parse_l2book(raw)
    return eng.books[coin]


async def decide(eng, coin, kind, side, z=-1.5, tag="default"):
    "What the strategy decides: put the signal core in the pending state and act on the intent."
    ts = eng.signals._tag(coin, tag)
    ts.pending, ts.pending_side = kind, side
    it = SignalIntent(symbol=coin, tag=tag, kind=kind, side=side, reason="test", ts_ms=eng.now_ms(), z=z, ref_px=eng.books[coin].mid)
    return await eng.act(it)


def entry_size(eng, coin, notional=250.0, lot=1e-4) -> float:
    "The size the engine will send for a maker buy at the current best bid."
    import math
    return round(math.floor(notional / eng.books[coin].best_bid / lot + 1e-9) * lot, 10)


async def sdk(fn, *a, **kw):
    "Call the blocking SDK off the event loop (the simulator serves from the same loop)."
    return await asyncio.to_thread(fn, *a, **kw)


async def venue_info(eng) -> Info:
    return await sdk(Info, eng.sim.url, skip_ws=True, perp_dexs=eng.data.cfg.perp_dexs)


async def venue_position(eng, coin) -> float:
    info = await venue_info(eng)
    dex = coin.split(":")[0] if ":" in coin else ""
    st = await sdk(info.user_state, eng.acct.address, dex)
    return {p["position"]["coin"]: float(p["position"]["szi"]) for p in st["assetPositions"]}.get(coin, 0.0)


def events(eng, name):
    return [json.loads(l) for l in Path(eng.log.path).read_text().splitlines() if f'"event":"{name}"' in l]


async def step_until(eng, cond, max_steps=60, ms=5_000, watchdog=True):
    "Advance the venue in steps, feeding books and fills (and the 1 s sweep) until `cond()`."
    for _ in range(max_steps):
        if cond(): return True
        await eng.sim.advance_ms(ms)
        for c in eng.cfg.symbols: await refresh_book(eng, c)
        await eng.pump(0.3)
        if watchdog: await eng.on_timer()
    return cond()


async def test_maker_entry_filled_in_three_chunks_then_exit_leaves_no_dust(tmp_path):
    async with engine_on_sim(tmp_path) as eng:
        q = entry_size(eng, "ETH")
        eng.sim.partial_fill_schedule(eng.acct.address, [0.03, 0.02, round(q - 0.05, 4)])
        o = await decide(eng, "ETH", IntentKind.ENTRY, Side.BUY)
        assert o is not None and o.route.tif is Tif.ALO and o.target_sz == pytest.approx(q)
        assert await step_until(eng, lambda: o.settled, watchdog=False)                  # no reprice: the order waits for its chunks
        assert eng.signals.position("ETH", "default") == pytest.approx(q)                # cumulative, booked once
        assert len([e for e in events(eng, "fill") if e["cid"] == o.cid]) == 3
        assert await venue_position(eng, "ETH") == pytest.approx(q)
        eng.sim.partial_fill_schedule(eng.acct.address, [0.04, round(q - 0.04, 4)])
        x = await decide(eng, "ETH", IntentKind.EXIT, Side.SELL, z=-0.2)
        assert await step_until(eng, lambda: x.settled, watchdog=False)
        assert eng.signals.position("ETH", "default") == 0.0 and await venue_position(eng, "ETH") == 0.0
        assert eng.signals._tag("ETH", "default").flat


async def test_inner_error_inside_status_ok_rolls_back_without_phantom(tmp_path):
    async with engine_on_sim(tmp_path) as eng:
        eng.sim.force_order_error("Insufficient margin to place order. asset=1")
        o = await decide(eng, "ETH", IntentKind.ENTRY, Side.BUY)
        assert o.settled and o.filled_sz == 0
        rej = events(eng, "hl_order_inner_rejection")
        assert rej and rej[-1]["error"].startswith("Insufficient margin")
        assert eng.signals._tag("ETH", "default").flat and eng.signals.positions() == {}
        await eng.reconcile(None)
        assert eng.signals.positions() == {} and await venue_position(eng, "ETH") == 0.0


async def test_manual_trade_at_the_venue_is_caught_by_the_flip_guard_and_adopted(tmp_path):
    async with engine_on_sim(tmp_path) as eng:
        manual = await sdk(Exchange, eng.acct, eng.sim.url, perp_dexs=["", "xyz"])
        px = eng.books["SOL"].best_ask * 1.01
        resp = await asyncio.to_thread(manual.order, "SOL", True, 2.0, round(px, 2), {"limit": {"tif": "Ioc"}})
        assert "filled" in resp["response"]["data"]["statuses"][0]
        o = await decide(eng, "SOL", IntentKind.ENTRY, Side.BUY)
        assert o is None                                                              # the guard refused the order
        assert events(eng, "flip_guard_block")[-1]["live"] == pytest.approx(2.0)
        assert events(eng, "reconcile")[-1]["action"] == "adopted"
        assert eng.signals.position("SOL", "default") == pytest.approx(2.0)
        await asyncio.to_thread(manual.order, "SOL", False, 2.0, round(eng.books["SOL"].best_bid * 0.99, 2), {"limit": {"tif": "Ioc"}}, True)
        await eng.reconcile(None)
        assert eng.signals.positions() == {}                                          # the venue went flat: memory wiped


async def test_ws_drop_during_a_resting_order_misses_no_fill_and_counts_none_twice(tmp_path):
    async with engine_on_sim(tmp_path) as eng:
        q = entry_size(eng, "ETH")
        eng.sim.partial_fill_schedule(eng.acct.address, [0.03, round(q - 0.03, 4)])
        o = await decide(eng, "ETH", IntentKind.ENTRY, Side.BUY)
        await eng.sim.drop_ws()                                                       # the SDK never reconnects by itself
        assert await step_until(eng, lambda: o.settled, ms=5_000)
        await eng.pump(2.5)                                                           # the watchdog rebuild + backfill
        fills = [e for e in events(eng, "fill") if e["cid"] == o.cid]
        assert len(fills) == 2 and sum(f["sz"] for f in fills) == pytest.approx(q)
        assert eng.signals.position("ETH", "default") == pytest.approx(q) == await venue_position(eng, "ETH")
        assert events(eng, "hl_ws_rebuild")


async def test_stale_book_blocks_entries_until_fresh(tmp_path):
    async with engine_on_sim(tmp_path) as eng:
        st = eng.signals.symbols["SOL"]
        for i in range(60): eng.signals.on_bar("SOL", 180.0 + (i % 3) * 0.1, eng.now_ms() - (61 - i) * 60_000)
        book = eng.books["SOL"]
        await eng.on_book(BookSnapshot(venue="hl", symbol="SOL", ts_ms=eng.now_ms() - 60_000, bid_px=book.bid_px,
                                       bid_sz=tuple(s * 5 for s in book.bid_sz), ask_px=book.ask_px, ask_sz=book.ask_sz))
        eng.signals.on_bar("SOL", 170.0, eng.now_ms() - 60_000)                       # a deep dip: z << -1.25
        assert st.last_z < -1.25 and st.rho > 0
        await eng.evaluate("SOL")
        assert not events(eng, "hl_order_intent")                                         # the book is a minute old
        fresh = BookSnapshot(venue="hl", symbol="SOL", ts_ms=eng.now_ms(), bid_px=book.bid_px, bid_sz=tuple(s * 5 for s in book.bid_sz),
                             ask_px=book.ask_px, ask_sz=book.ask_sz)
        await eng.on_book(fresh)
        assert [e["coin"] for e in events(eng, "hl_order_intent")] == ["SOL"]


async def test_dust_residual_is_flat(tmp_path):
    async with engine_on_sim(tmp_path) as eng:
        changes = await eng.reconcile({"ETH": 0.0001, "SOL": 0.004})                  # below 1.5e-4 ETH and 1.5e-2 SOL
        assert changes == [] and eng.signals.positions() == {}


async def test_hip3_gets_isolated_leverage_and_its_exit_goes_ioc(tmp_path):
    async with engine_on_sim(tmp_path) as eng:
        assert await eng.ex.pin_leverage(["xyz:TSLA", "ETH"]) == {"xyz:TSLA": None, "ETH": None}
        info = await venue_info(eng)
        o = await decide(eng, "xyz:TSLA", IntentKind.ENTRY, Side.BUY, z=-3.2)        # |z| >= 3: urgent, IOC
        assert o.route.tif is Tif.IOC and o.settled and o.filled_sz > 0
        lev = [p["position"]["leverage"] for p in (await sdk(info.user_state, eng.acct.address, "xyz"))["assetPositions"]][0]
        assert lev["type"] == "isolated" and lev["value"] == 5
        x = await decide(eng, "xyz:TSLA", IntentKind.EXIT, Side.SELL, z=0.0)
        assert x.route.tif is Tif.IOC and x.route.style is ExecutionStyle.TAKER
        assert await venue_position(eng, "xyz:TSLA") == 0.0 and eng.signals.positions() == {}


async def test_kill_switch_cancels_every_resting_order(tmp_path):
    async with engine_on_sim(tmp_path, coins=("ETH", "SOL", "BTC")) as eng:
        a = await decide(eng, "ETH", IntentKind.ENTRY, Side.BUY)
        b = await decide(eng, "SOL", IntentKind.ENTRY, Side.BUY)
        c = await decide(eng, "BTC", IntentKind.ENTRY, Side.BUY)
        info = await venue_info(eng)
        assert len(await sdk(info.open_orders, eng.acct.address)) == 3
        signed = eng.sim.n_requests[eng.acct.address.lower()]
        eng.kill.request_flatten("operator KILL", eng.now_ms())
        await eng.on_timer()
        assert await sdk(info.open_orders, eng.acct.address) == [] and a.settled and b.settled and c.settled
        assert eng.sim.n_requests[eng.acct.address.lower()] - signed == 1          # the three cancels went out as one signed action
        assert eng.kill.halted


async def test_live_without_keys_fails_before_connecting(monkeypatch, tmp_path):
    for k in ("HL_WALLET_ADDRESS", "HL_PRIVATE_KEY"): monkeypatch.delenv(k, raising=False)
    with pytest.raises(SettingsError) as e:
        await run_hl(mode="LIVE", duration_s=1, run_dir=tmp_path / "r")
    assert {"HL_WALLET_ADDRESS", "HL_PRIVATE_KEY"} <= set(e.value.keys)
    assert not (tmp_path / "r").exists()                                              # nothing was started, nothing written


async def test_fund_perp_moves_spot_usdc_to_perp_with_the_key_from_the_environment(tmp_path):
    import os, sys
    acct = Account.create()
    async with HyperliquidSim(["ETH"], speed=None, funded={acct.address: {"spot": 100.0}}) as sim:
        env = {**os.environ, "HL_PRIVATE_KEY": acct.key.hex(), "EXECUTION_MODE": "SIM"}
        p = await asyncio.create_subprocess_exec(sys.executable, "-m", "tri_engine.fund_perp", "40", "--base-url", sim.url, env=env,
                                                 stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await asyncio.wait_for(p.communicate(), 120)
        assert p.returncode == 0, err.decode()
        assert "spot -> perp: ok" in out.decode() and acct.key.hex()[-40:] not in (out + err).decode()
        info = await sdk(Info, sim.url, skip_ws=True)
        assert float((await sdk(info.user_state, acct.address))["marginSummary"]["accountValue"]) == pytest.approx(40.0)
        p = await asyncio.create_subprocess_exec(sys.executable, "-m", "tri_engine.fund_perp", "1000", "--base-url", sim.url, env=env,
                                                 stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await asyncio.wait_for(p.communicate(), 120)
        assert p.returncode == 2 and "transfer refused" in err.decode()          # only 60 USDC left in spot


async def test_shadow_mode_logs_intents_and_sends_nothing(tmp_path):
    from tri_engine.core import Mode
    async with engine_on_sim(tmp_path, mode=Mode.SHADOW) as eng:
        o = await decide(eng, "ETH", IntentKind.ENTRY, Side.BUY)
        assert o.settled and o.filled_sz == 0 and events(eng, "shadow_order")
        info = await venue_info(eng)
        assert await sdk(info.open_orders, eng.acct.address) == [] and eng.signals._tag("ETH", "default").flat
        assert (await sdk(info.user_fills, eng.acct.address)) == []


async def test_shadow_coins_are_logged_not_sent_while_other_coins_trade(tmp_path):
    async with engine_on_sim(tmp_path, shadow_symbols=frozenset({"SOL"})) as eng:
        s = await decide(eng, "SOL", IntentKind.ENTRY, Side.BUY)
        e = await decide(eng, "ETH", IntentKind.ENTRY, Side.BUY)
        assert [x["coin"] for x in events(eng, "shadow_order")] == ["SOL"]
        info = await venue_info(eng)
        assert [o["coin"] for o in await sdk(info.open_orders, eng.acct.address)] == ["ETH"]


async def test_a_stale_book_on_a_live_connection_makes_the_data_watchdog_resubscribe(tmp_path):
    async with engine_on_sim(tmp_path, coins=("ETH", "SOL")) as eng:
        eng.data.cfg = dataclasses.replace(eng.data.cfg, book_stale_s=1.5)
        eng.sim.speed = None
        got = []
        task = asyncio.create_task(eng.data.run(got.append))
        try:
            for _ in range(20):                                                   # books flowing on both coins
                await eng.sim.advance_ms(1_000); await asyncio.sleep(0.1)
            eng.sim.stall_book("SOL")
            for _ in range(40):
                await eng.sim.advance_ms(1_000); await asyncio.sleep(0.1)
            eng.sim.stall_book("SOL", on=False)
            n_before = sum(1 for b in got if getattr(b, "symbol", "") == "SOL")
            for _ in range(20):
                await eng.sim.advance_ms(1_000); await asyncio.sleep(0.1)
        finally:
            task.cancel()
            with contextlib.suppress(BaseException): await task
        rebuilds = events(eng, "hl_ws_rebuild")
        assert any(r["why"].startswith("stale_book:") and "SOL" in r["why"] for r in rebuilds)
        assert sum(1 for b in got if getattr(b, "symbol", "") == "SOL") > n_before    # SOL books flow again


async def test_hybrid_bars_candles_for_alpaca_listed_coins_mid_synthesis_for_the_rest(tmp_path):
    from tri_engine.core import Bar
    async with engine_on_sim(tmp_path, coins=("BTC", "HYPE", "xyz:TSLA")) as eng:
        assert eng.data.source == {"BTC": "candles", "HYPE": "mid", "xyz:TSLA": "mid"}
        got = []
        task = asyncio.create_task(eng.data.run(got.append))
        try:
            await asyncio.sleep(1.0)
            for _ in range(40):                                                   # 4 market minutes
                await eng.sim.advance_ms(6_000); await asyncio.sleep(0.1)
        finally:
            task.cancel()
            with contextlib.suppress(BaseException): await task
        bars = [b for b in got if isinstance(b, Bar)]
        by = {c: [b for b in bars if b.symbol == c] for c in ("BTC", "HYPE", "xyz:TSLA")}
        assert by["BTC"] and by["HYPE"], {c: len(v) for c, v in by.items()}
        assert all(b.volume > 0 for b in by["BTC"])                              # the venue's candles
        assert all(b.volume == 0.0 for b in by["HYPE"] + by["xyz:TSLA"])          # synthesised from the mid
        for v in by.values(): assert [b.ts_ms for b in v] == sorted({b.ts_ms for b in v})   # closed once each, in order


# ---- generic engine features the Alpaca books use (macro freeze, session close, long only, status) ----

def warm(eng, coin, closes, last):
    "Fill the z window with `closes` and end on `last` (one bar per minute, ending a minute ago)."
    for i, c in enumerate(closes): eng.signals.on_bar(coin, c, eng.now_ms() - (len(closes) + 1 - i) * 60_000)
    eng.signals.on_bar(coin, last, eng.now_ms() - 60_000)


def leaning_book(eng, coin, bid_heavy: bool):
    "The venue's book re-stamped now, with its imbalance leaning to one side."
    b = eng.books[coin]
    k = (5, 1) if bid_heavy else (1, 5)
    return BookSnapshot(venue="hl", symbol=coin, ts_ms=eng.now_ms(), bid_px=b.bid_px, bid_sz=tuple(s * k[0] for s in b.bid_sz),
                        ask_px=b.ask_px, ask_sz=tuple(s * k[1] for s in b.ask_sz))


async def test_macro_freeze_cancels_what_rests_and_decides_nothing_until_the_window_ends(tmp_path):
    from tri_engine.risk import MacroEvent
    async with engine_on_sim(tmp_path, macro_freeze=True) as eng:
        t_cpi = eng.now_ms() + 10 * 60_000
        eng.gate.macro = MacroCalendar([MacroEvent(ts_ms=t_cpi, kind="CPI", description="CPI m/m")], halt_window_min=5)
        a = await decide(eng, "ETH", IntentKind.ENTRY, Side.BUY)
        assert a.live
        await eng.sim.step_to(t_cpi - 4 * 60_000)
        await refresh_book(eng, "SOL"); await eng.on_timer()
        assert events(eng, "macro_halt_start")[0]["macro"] == "CPI"
        assert a.settled and await sdk((await venue_info(eng)).open_orders, eng.acct.address) == []
        warm(eng, "SOL", [180.0 + (i % 3) * 0.1 for i in range(60)], 170.0)          # a deep dip with the book leaning bid
        n_bars = eng.signals.symbols["SOL"].z.count
        await eng.on_book(leaning_book(eng, "SOL", bid_heavy=True))
        assert not [e for e in events(eng, "hl_order_intent") if e["coin"] == "SOL"]     # frozen: nothing decided
        await eng.on_bar(Bar(venue="hl", symbol="SOL", timeframe="1m", ts_ms=eng.now_ms() - 30_000, open=170, high=170, low=169, close=169.5))
        assert eng.signals.symbols["SOL"].z.count >= n_bars and eng.status()["macro"]["frozen"]   # ... while the buffers stay warm
        await eng.sim.step_to(t_cpi + 6 * 60_000)
        await refresh_book(eng, "SOL"); await eng.on_timer()
        assert events(eng, "macro_halt_end") and not eng.status()["macro"]["frozen"]
        warm(eng, "SOL", [180.0 + (i % 3) * 0.1 for i in range(60)], 170.0)
        await eng.on_book(leaning_book(eng, "SOL", bid_heavy=True))
        assert [e["coin"] for e in events(eng, "hl_order_intent")][-1] == "SOL"          # trading again


async def test_session_close_flattens_before_the_close_and_sends_nothing_after_it(tmp_path):
    async with engine_on_sim(tmp_path, coins=("ETH", "SOL")) as eng:
        close = eng.now_ms() + 20 * 60_000
        eng.cfg = dataclasses.replace(eng.cfg, session_open=lambda ts: ts < close, session_close_ms=lambda ts: close if ts < close else None,
                                      flatten_before_close_ms=5 * 60_000)
        q = entry_size(eng, "ETH")
        eng.sim.partial_fill_schedule(eng.acct.address, [q])
        o = await decide(eng, "ETH", IntentKind.ENTRY, Side.BUY)
        assert await step_until(eng, lambda: o.settled, watchdog=False)
        s = await decide(eng, "SOL", IntentKind.ENTRY, Side.BUY)                          # an entry resting into the pre-close window
        assert s.live and await venue_position(eng, "ETH") == pytest.approx(q)
        await eng.sim.step_to(close - 4 * 60_000)
        for c in ("ETH", "SOL"): await refresh_book(eng, c)
        await eng.on_timer(); await eng.pump(0.5)
        assert events(eng, "session_flatten") and s.settled
        assert await venue_position(eng, "ETH") == 0.0 and eng.signals.positions() == {}
        assert await sdk((await venue_info(eng)).open_orders, eng.acct.address) == []
        await eng.sim.step_to(close + 60_000)                                             # the session is closed
        for c in ("ETH", "SOL"): await refresh_book(eng, c)
        n_sent = len(events(eng, "hl_order_intent"))
        assert await decide(eng, "SOL", IntentKind.ENTRY, Side.BUY) is None
        manual = await sdk(Exchange, eng.acct, eng.sim.url)                               # someone opens a position by hand
        await sdk(manual.order, "SOL", True, 1.0, round(eng.books["SOL"].best_ask * 1.01, 2), {"limit": {"tif": "Ioc"}})
        await eng.reconcile(None)
        assert await decide(eng, "SOL", IntentKind.EXIT, Side.SELL, z=0.0) is None        # not even an exit leaves outside the session
        await eng.on_timer()
        assert len(events(eng, "hl_order_intent")) == n_sent and {e["what"] for e in events(eng, "session_block")} >= {"order"}
        assert eng.signals._tag("SOL", "default").pending is None and await venue_position(eng, "SOL") == 1.0


async def test_a_long_only_book_never_evaluates_the_short_gate(tmp_path):
    for allow_short, expect in ((False, []), (True, ["sell"])):
        async with engine_on_sim(tmp_path / str(allow_short), allow_short=allow_short) as eng:
            warm(eng, "SOL", [180.0 + (i % 3) * 0.1 for i in range(60)], 190.0)          # a spike: z >> +1.25
            await eng.on_book(leaning_book(eng, "SOL", bid_heavy=False))                 # and the book leans ask: a short signal
            assert eng.signals.symbols["SOL"].last_z > 1.25 and eng.signals.symbols["SOL"].rho < 0
            assert [e["side"] for e in events(eng, "hl_order_intent")] == expect
            assert [o["side"] for o in await sdk((await venue_info(eng)).open_orders, eng.acct.address)] == [{"sell": "A"}[s] for s in expect]


async def test_status_snapshot_and_the_operators_halt_and_resume(tmp_path):
    async with engine_on_sim(tmp_path) as eng:
        q = entry_size(eng, "ETH")
        eng.sim.partial_fill_schedule(eng.acct.address, [q])
        o = await decide(eng, "ETH", IntentKind.ENTRY, Side.BUY)
        assert await step_until(eng, lambda: o.settled, watchdog=False)
        r = await decide(eng, "SOL", IntentKind.ENTRY, Side.BUY)
        st = json.loads(json.dumps(eng.status()))                                         # JSON-able as served
        assert st["mode"] == "SIM" and st["symbols"] == 3 and st["positions"] == {"ETH": pytest.approx(q)}
        assert [(x["symbol"], x["side"], x["status"]) for x in st["open_orders"]] == [("SOL", "buy", "open")]
        assert st["kill"]["halted"] is False and st["breaker"]["halted"] is False and st["macro"] == {"halted": False, "event": None, "frozen": False}
        assert isinstance(st["unrealized_pnl_usd"], float) and st["last_event_ms"] is not None
        eng.halt("operator: check the venue")
        assert await decide(eng, "xyz:TSLA", IntentKind.ENTRY, Side.BUY) is None
        assert events(eng, "risk_block")[-1]["reason"] == "killed" and eng.status()["kill"]["reason"] == "operator: check the venue"
        eng.resume()
        assert (await decide(eng, "xyz:TSLA", IntentKind.ENTRY, Side.BUY)) is not None
        assert [e["on"] for e in events(eng, "kill_switch")] == [True, False]
        eng.halt("operator: flatten", flatten=True)
        await eng.on_timer(); await eng.pump(0.5)
        assert eng.status()["positions"] == {} and eng.status()["open_orders"] == [] and await venue_position(eng, "ETH") == 0.0
