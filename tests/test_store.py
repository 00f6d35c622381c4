"Restart scenarios on the write-ahead journal, against the Hyperliquid simulator with the unmodified SDK."
from __future__ import annotations
import asyncio, json, sqlite3
from pathlib import Path
import pytest
from hyperliquid.exchange import Exchange
from tri_engine.core import IntentKind, Side, ReplayClock, make_cid
from tri_engine.sim.hyperliquid import HyperliquidSim
from tri_engine.store import Journal, JournalError
from campaign_support import Crash, sdk, log_events
from test_fault_campaign import HlHarness as Harness

COINS = ("ETH", "SOL", "xyz:TSLA")


async def harness(sim, tmp_path, **kw) -> Harness:
    h = Harness(sim, tmp_path / "run", seed=1, coins=COINS, **kw)
    await h.start()
    return h


def entry_q(h: Harness, coin: str) -> float:
    "The size of a maker entry of `coin` at its current price."
    info = h.eng.info[coin]
    return round(int(h.eng.cfg.notional_usd(coin) / h.eng.books[coin].best_bid / info.lot + 1e-9) * info.lot, info.sz_decimals)


async def settle(h: Harness, cond, steps: int = 40, ms: int = 5_000) -> bool:
    for _ in range(steps):
        if cond(): return True
        await h.tick(ms)
    return cond()


async def test_crash_between_journal_and_send_never_sends_that_intent(tmp_path):
    async with HyperliquidSim(list(COINS), speed=None) as sim:
        h = await harness(sim, tmp_path)
        try:
            h.eng.ex.crash_at = "before_submit"
            with pytest.raises(Crash): await h.decide("ETH", IntentKind.ENTRY, Side.BUY, -1.5)
            cid = h.eng.journal.live_orders()[0]["cid"]                          # the intent is on disk, nothing was sent
            await h.crash_and_restart("before_submit")
            r = h.eng.recovered
            assert r["never_sent"] == [cid] and r["next_seq"] == 1
            pos, orders = await h.venue()
            assert orders == [] and h.eng.signals._tag("ETH", "default").flat
            await h.decide("ETH", IntentKind.ENTRY, Side.BUY, -1.5)                 # the strategy decides afresh, under a new id
            assert list(h.submits) == [make_cid(h.eng.cfg.run_id, 1)]
            assert [cid for _, _, cid in (await h.venue())[1]] == [make_cid(h.eng.cfg.run_id, 1)]
        finally: await h.close()


async def test_crash_after_send_finds_the_order_by_client_id_and_cancels_the_stale_entry(tmp_path):
    async with HyperliquidSim(list(COINS), speed=None) as sim:
        h = await harness(sim, tmp_path)
        try:
            h.eng.ex.crash_at = "after_submit"
            with pytest.raises(Crash): await h.decide("SOL", IntentKind.ENTRY, Side.BUY, -1.5)
            assert h.eng.journal.live_orders()[0]["venue_oid"] is None           # the venue's answer never reached the journal
            assert len((await h.venue())[1]) == 1                                # but the order rests at the venue
            await h.crash_and_restart("after_submit")
            assert len(h.eng.recovered["cancelled"]) == 1
            pos, orders = await h.venue()
            assert orders == [] and pos == {} and h.eng.believed_positions() == {}
            assert h.eng.journal.check() == []
        finally: await h.close()


async def test_a_resting_exit_is_adopted_after_a_crash_and_closes_the_position(tmp_path):
    async with HyperliquidSim(list(COINS), speed=None) as sim:
        h = await harness(sim, tmp_path)
        try:
            q = entry_q(h, "ETH")
            sim.partial_fill_schedule(h.acct.address, [q])
            await h.decide("ETH", IntentKind.ENTRY, Side.BUY, -1.5)
            assert await settle(h, lambda: h.eng.signals.position("ETH", "default") > 0)
            entry_px = h.eng.signals._tag("ETH", "default").entry_px
            await h.decide("ETH", IntentKind.EXIT, Side.SELL, 0.0)              # a maker exit, resting
            (exit_cid,) = [o.cid for o in h.eng.tracker.open_orders()]
            await h.crash_and_restart("between_steps")
            assert h.eng.recovered["adopted"] == [exit_cid]
            ts = h.eng.signals._tag("ETH", "default")
            assert ts.qty == pytest.approx(q) and ts.entry_px == entry_px        # the stop-loss keeps its reference
            assert ts.pending is IntentKind.EXIT                                 # and the exit keeps working
            assert await settle(h, lambda: not h.eng.tracker.open_orders(), steps=60)
            pos, orders = await h.venue()
            assert pos == {} and orders == [] and h.eng.believed_positions() == {}
        finally: await h.close()


async def test_fills_made_while_the_engine_was_down_are_booked_once(tmp_path):
    async with HyperliquidSim(list(COINS), speed=None) as sim:
        h = await harness(sim, tmp_path)
        try:
            q = entry_q(h, "SOL")
            sim.partial_fill_schedule(h.acct.address, [0.3, 0.4, round(q - 0.7, 2)])
            await h.decide("SOL", IntentKind.ENTRY, Side.BUY, -1.5)
            (o,) = h.eng.tracker.open_orders()
            await h.crash_and_restart("between_steps", down_ms=120_000)        # all three chunks fill while nobody watches
            r = h.eng.recovered
            assert r["settled"] == [o.cid] and r["fills_backfilled"] == 3
            assert h.eng.believed_positions() == {"SOL": pytest.approx(q)} == (await h.venue())[0]
            await h.crash_and_restart("between_steps")                          # a second restart books nothing again
            fills = h.eng.journal.rows("SELECT fill_id, sz FROM fills WHERE cid=?", (o.cid,))
            assert len(fills) == 3 and sum(f["sz"] for f in fills) == pytest.approx(q)
            assert h.eng.recovered["fills_backfilled"] == 0 and h.eng.believed_positions() == {"SOL": pytest.approx(q)}
        finally: await h.close()


async def test_a_manual_trade_while_down_is_adopted_and_every_restart_logs_what_it_found(tmp_path):
    async with HyperliquidSim(list(COINS), speed=None) as sim:
        h = await harness(sim, tmp_path)
        try:
            eng = h.eng
            await eng.shutdown()                                                  # a clean stop logs the positions it leaves
            manual = await sdk(Exchange, h.acct, sim.url, perp_dexs=["", "xyz"])
            px = eng.ex.round_px("SOL", eng.books["SOL"].best_ask * 1.01)
            resp = await sdk(manual.order, "SOL", True, 2.0, px, {"limit": {"tif": "Ioc"}})
            assert "filled" in resp["response"]["data"]["statuses"][0]
            await h.crash_and_restart("between_steps")
            r = h.eng.recovered
            assert [(c["symbol"], c["action"], c["after"]) for c in r["reconciled"]] == [("SOL", "adopted", 2.0)]
            recs = log_events(h.run_dir / "hl_engine.jsonl", "recovered")
            pos = log_events(h.run_dir / "hl_engine.jsonl", "positions")
            assert len(recs) == 1 and recs[0]["session"] == 2
            assert [p["reason"] for p in pos] == ["start", "shutdown", "recovered"] and pos[-1]["positions"] == {"SOL": 2.0}
        finally: await h.close()


async def test_kill_switch_and_tripped_breaker_survive_a_restart(tmp_path):
    async with HyperliquidSim(list(COINS), speed=None) as sim:
        h = await harness(sim, tmp_path, breaker_loss_usd=0.01)
        try:
            h.eng.halt("operator: investigating")
            h.killed = True
            manual = await sdk(Exchange, h.acct, sim.url, perp_dexs=["", "xyz"])
            await sdk(manual.order, "ETH", True, 0.01, h.eng.ex.round_px("ETH", h.eng.books["ETH"].best_ask * 1.01),
                      {"limit": {"tif": "Ioc"}})                                   # the taker fee alone trips a $0.01 loss limit
            await h.eng.reconcile(None, reason="sweep")
            assert h.eng.gate.breaker.halted
            await h.crash_and_restart("between_steps")
            assert h.eng.kill.halted and h.eng.kill.reason == "operator: investigating" and h.eng.gate.breaker.halted
            await h.decide("SOL", IntentKind.ENTRY, Side.BUY, -1.5)
            assert list(h.submits) == [] and h.eng.status()["kill"]["halted"] and h.eng.status()["breaker"]["halted"]
        finally: await h.close()


async def test_a_send_whose_answer_was_lost_is_found_by_client_id_not_sent_again(tmp_path):
    async with HyperliquidSim(list(COINS), speed=None) as sim:
        h = await harness(sim, tmp_path)
        try:
            h.eng.ex.crash_at = "lose_answer"                                     # the venue took the order; its answer never came back
            await h.decide("ETH", IntentKind.ENTRY, Side.BUY, -1.5)
            (o,) = h.eng.tracker.open_orders()
            assert h.eng.stats["send_failed"] == 1 and o.venue_oid is not None and o.live   # found by its client id at once
            pos, orders = await h.venue()
            assert [cid for _, _, cid in orders] == [o.cid] and sum(h.submits.values()) == 1
            assert [e["event"] for e in h.eng.journal.rows("SELECT event FROM order_events WHERE cid=? ORDER BY id", (o.cid,))] == \
                   ["intent", "send_failed", "resolved_open"]
        finally: await h.close()


async def test_a_lost_request_holds_the_intent_until_the_grace_period_then_is_declared_never_placed(tmp_path):
    async with HyperliquidSim(list(COINS), speed=None) as sim:
        h = await harness(sim, tmp_path)
        try:
            h.eng.ex.crash_at = "lose_request"
            await h.decide("SOL", IntentKind.ENTRY, Side.BUY, -1.5)
            (o,) = h.eng.tracker.open_orders()
            await h.eng.on_timer()
            assert o.live and h.eng.signals._tag("SOL", "default").pending is IntentKind.ENTRY   # a slow request may still land:
            await h.decide("SOL", IntentKind.ENTRY, Side.BUY, -1.5)                              # no second order meanwhile
            assert h.eng.tracker.open_orders() == [o]
            await asyncio.sleep(1.1)                                              # the campaign's grace is 1 s (live: 30 s)
            await h.eng.on_timer()
            assert o.settled and h.eng.signals._tag("SOL", "default").flat and (await h.venue())[1] == []
            assert log_events(h.run_dir / "hl_engine.jsonl", "order_never_placed")[0]["cid"] == o.cid
        finally: await h.close()


def test_a_journal_that_is_not_a_database_is_refused_with_a_clear_error(tmp_path):
    (tmp_path / "journal.sqlite").write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(sqlite3.DatabaseError, match="not a database"):
        Journal.open(tmp_path, "r", ReplayClock(0), engine="hl")
    d = tmp_path / "other"
    Journal.open(d, "r", ReplayClock(0), engine="hl").close()
    with sqlite3.connect(d / "journal.sqlite") as c: c.execute("UPDATE meta SET value='99' WHERE key='schema'")
    with pytest.raises(JournalError, match="schema 99"): Journal.open(d, "r", ReplayClock(0), engine="hl")
