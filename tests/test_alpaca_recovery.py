"""Restart recovery and idempotent sends on Alpaca, case by case (the seeded campaign is tests/test_fault_campaign_alpaca.py):
what a user of the crypto book lived through, against the Alpaca simulator with the unmodified alpaca-py."""
from __future__ import annotations
import asyncio, contextlib
import pytest
from tri_engine.core import IntentKind, Side
from tri_engine.sim.alpaca import AlpacaSim
from campaign_support import log_events
from test_fault_campaign_alpaca import AlpacaHarness, KEY, SECRET

PAIRS = ("BTC/USD", "ETH/USD")


@contextlib.asynccontextmanager
async def harness(tmp_path):
    "A step-driven Alpaca simulator and an engine incarnation on a fresh run directory (closed afterwards)."
    async with AlpacaSim(crypto=list(PAIRS), stocks=[], speed=None, key=KEY, secret=SECRET) as sim:
        h = AlpacaHarness(sim, tmp_path / "run", seed=1, pairs=PAIRS)
        await h.start()
        try: yield h, sim
        finally: await h.close()


async def settle(h: AlpacaHarness, cond, steps: int = 40, ms: int = 5_000) -> bool:
    for _ in range(steps):
        if cond(): return True
        await h.tick(ms)
    return cond()


def venue_orders(sim) -> list[dict]:
    return sim.orders_json(KEY)


def order_events(h, cid) -> list[str]:
    return [r["event"] for r in h.eng.journal.rows("SELECT event FROM order_events WHERE cid=? ORDER BY id", (cid,))]


async def test_an_order_placed_whose_answer_was_a_500_is_found_by_client_id_not_sent_again(tmp_path):
    async with harness(tmp_path) as (h, sim):
        sim.fail_after(1, 500, "/v2/orders", "POST")                          # the venue placed it; the client saw a 500
        await h.decide("BTC/USD", IntentKind.ENTRY, Side.BUY, -1.5)
        (o,) = h.eng.tracker.open_orders()
        assert h.eng.stats["send_failed"] == 1 and o.venue_oid is not None and o.live   # looked up by its client id at once
        assert [v["client_order_id"] for v in venue_orders(sim)] == [o.cid] and sum(h.submits.values()) == 1
        assert order_events(h, o.cid) == ["intent", "send_failed", "resolved_open"]


async def test_a_504_that_alpaca_py_retries_into_a_duplicate_client_id_is_the_order_already_placed(tmp_path):
    async with harness(tmp_path) as (h, sim):
        sim.fail_after(1, 504, "/v2/orders", "POST")                          # alpaca-py sleeps 3 s and sends it again: 422 unique
        await h.decide("ETH/USD", IntentKind.ENTRY, Side.BUY, -1.5)
        (o,) = h.eng.tracker.open_orders()
        assert o.venue_oid == venue_orders(sim)[0]["id"] and len(venue_orders(sim)) == 1 and h.eng.stats["send_failed"] == 0
        assert log_events(h.run_dir / "engine.jsonl", "alpaca_send_was_placed")[0]["client_id"] == o.cid


async def test_a_replace_whose_answer_was_lost_is_found_and_nothing_is_left_working(tmp_path):
    async with harness(tmp_path) as (h, sim):
        await h.decide("BTC/USD", IntentKind.ENTRY, Side.BUY, -1.5)
        (o,) = h.eng.tracker.open_orders()
        first = o.venue_oid
        sim.fail_after(1, 500, "/v2/orders", "PATCH")                         # the venue replaced it; the client saw a 500
        await h.eng.reprice(o, h.eng.books["BTC/USD"].best_bid * 0.999)
        assert o.venue_oid == first and o.reprices == 1 and "reprice_sent" in order_events(h, o.cid)
        legs = [v for v in venue_orders(sim) if v["status"] == "new"]
        assert [v["client_order_id"] for v in legs] == [f"{o.cid}-r1"]          # the new leg rests, unknown to the engine so far
        await h.check()                                                       # every invariant holds: the leg is the order's
        assert not h.rep.violations, h.rep.violations
        await h.eng.cancel_all("operator")                                    # and a cancel reaches the leg that rests
        assert [v for v in venue_orders(sim) if v["status"] in ("new", "partially_filled")] == []
        assert o.settled


async def test_a_maker_exit_that_filled_partly_while_the_engine_was_down_is_adopted_and_trued_up(tmp_path):
    async with harness(tmp_path) as (h, sim):
        await h.decide("ETH/USD", IntentKind.ENTRY, Side.BUY, -1.5)
        assert await settle(h, lambda: h.eng.signals.position("ETH/USD", "default") > 0)
        held = h.eng.signals.position("ETH/USD", "default")
        part = round(held * 0.4, 6)
        sim.partial_fill_schedule(KEY, [part])                                # the exit's first fill comes while nobody listens
        await h.decide("ETH/USD", IntentKind.EXIT, Side.SELL, 0.0)
        (x,) = h.eng.tracker.open_orders()
        assert x.filled_sz == 0
        await h._stop_fills(); h.eng.log.close(); h.eng = None                # killed: no cleanup, the journal simply dropped
        filled = lambda: float(next(v["filled_qty"] for v in venue_orders(sim) if v["client_order_id"] == x.cid))
        for _ in range(60):                                                   # the market runs on until the first fill
            if filled() > 0: break
            await sim.advance_ms(1_000)
        assert filled() == pytest.approx(part)
        h.restarted = True
        await h.start()
        r = h.eng.recovered
        assert r["adopted"] == [x.cid] and r["reconciled"] == [], r
        o = h.eng.tracker.find(x.cid)
        assert o.live and [v["filled_qty"] for v in venue_orders(sim) if v["client_order_id"] == x.cid] == [str(part)] and o.filled_sz == pytest.approx(part)                   # the venue's total, not the stream's silence
        pos, _ = await h.venue()
        assert h.eng.believed_positions() == {"ETH/USD": pytest.approx(pos["ETH/USD"], abs=1e-9)}
        assert await settle(h, lambda: not h.eng.tracker.open_orders(), steps=60)
        pos, orders = await h.venue()
        assert orders == [] and pos.get("ETH/USD", 0.0) == pytest.approx(0.0, abs=1e-8) and h.eng.believed_positions() == {}
        assert not h.rep.violations
