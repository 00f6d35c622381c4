"The Hyperliquid simulator driven by the unmodified hyperliquid-python-sdk over 127.0.0.1 (no mocks, no network)."
from __future__ import annotations
import asyncio, json, math, os, select, signal, subprocess, sys, time
from decimal import Decimal
from pathlib import Path
import pytest
import yaml
import aiohttp
from eth_account import Account
from hyperliquid.exchange import Exchange
from hyperliquid.info import Info
from hyperliquid.utils.error import ClientError, ServerError
from hyperliquid.utils.signing import get_timestamp_ms, sign_l1_action, sign_usd_class_transfer_action
from hyperliquid.utils.types import Cloid
from conftest import ROOT, BIN
from tri_engine.sim.hyperliquid import HyperliquidSim, wire_num, float_to_wire

DEXES = ["", "xyz"]
CASSETTES = ROOT.parent / "shared" / "fixtures" / "hyperliquid" / "info_test"


# ---------------------------------------------------------------- helpers

async def sdk(fn, *args, timeout: float = 20.0, **kw):
    "Run one blocking SDK call in a thread (the simulator lives on this event loop), bounded."
    return await asyncio.wait_for(asyncio.to_thread(fn, *args, **kw), timeout)


async def eventually(pred, timeout: float = 10.0, what: str = "condition"):
    "Poll `pred` until truthy (returns its value) or fail after `timeout` seconds."
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        v = pred()
        if v: return v
        await asyncio.sleep(0.02)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


class Clients:
    "An Exchange and an Info (optionally with its WebSocket) for one wallet; WS threads are stopped on close."
    def __init__(self): self.infos = []

    async def info(self, sim, ws: bool = False) -> Info:
        i = await sdk(Info, sim.url, not ws, None, None, DEXES)
        if ws: self.infos.append(i)
        return i

    async def exchange(self, sim, wallet, account_address=None) -> Exchange:
        return await sdk(Exchange, wallet, sim.url, None, None, account_address, None, DEXES)

    def close(self):
        for i in self.infos:
            try: i.disconnect_websocket()
            except Exception: pass


@pytest.fixture(autouse=True)
def bounded_test():
    "No test may run longer than 120 s (SIGALRM interrupts a hung SDK call or event loop)."
    def hung(*_): raise TimeoutError("test exceeded 120 s")
    old = signal.signal(signal.SIGALRM, hung)
    signal.alarm(120)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, old)


@pytest.fixture
def clients():
    c = Clients()
    yield c
    c.close()


@pytest.fixture
def wallet():
    return Account.create()


@pytest.fixture
async def sim(wallet):
    async with HyperliquidSim(speed=None, funded={wallet.address: 100_000.0}) as s:
        yield s


def statuses(resp):
    assert resp["status"] == "ok", resp
    return resp["response"]["data"]["statuses"]


async def touch(info, coin):
    "(best bid, best ask) of the simulator's book as the SDK sees it."
    l2 = await sdk(info.l2_snapshot, coin)
    return float(l2["levels"][0][0]["px"]), float(l2["levels"][1][0]["px"])


def px_round(px: float, sz_decimals: int) -> float:
    "The SDK's rounding recipe (5 significant figures, at most 6 - szDecimals decimals)."
    return round(float(f"{px:.5g}"), 6 - sz_decimals)


# ---------------------------------------------------------------- orders

async def test_maker_order_rests_then_fills_in_three_scheduled_chunks(clients, sim, wallet):
    info, ex = await clients.info(sim), await clients.exchange(sim, wallet)
    bid, _ = await touch(info, "ETH")
    sim.partial_fill_schedule(wallet.address, [0.01, 0.02, 0.03])
    r = statuses(await sdk(ex.order, "ETH", True, 0.06, px_round(bid, 4), {"limit": {"tif": "Gtc"}}, False, Cloid.from_int(42)))
    assert "resting" in r[0], r
    oid = r[0]["resting"]["oid"]
    assert r[0]["resting"]["cloid"] == Cloid.from_int(42).to_raw()
    for _ in range(60):
        await sim.advance_ms(5_000)
        st = await sdk(info.query_order_by_oid, wallet.address, oid)
        if st["order"]["status"] == "filled": break
    assert st["order"]["status"] == "filled", st
    fills = [f for f in await sdk(info.user_fills, wallet.address) if f["oid"] == oid]
    assert sorted(Decimal(f["sz"]) for f in fills) == [Decimal("0.01"), Decimal("0.02"), Decimal("0.03")]
    assert all(not f["crossed"] and f["side"] == "B" and Decimal(f["px"]) == Decimal(str(px_round(bid, 4))) for f in fills)
    pos = (await sdk(info.user_state, wallet.address))["assetPositions"]
    assert [(p["position"]["coin"], Decimal(p["position"]["szi"])) for p in pos] == [("ETH", Decimal("0.06"))]
    assert await sdk(info.open_orders, wallet.address) == []


async def test_cancel_by_oid_and_by_cloid_leaves_no_order_at_the_venue(clients, sim, wallet):
    info, ex = await clients.info(sim), await clients.exchange(sim, wallet)
    bid, _ = await touch(info, "SOL")
    px = px_round(bid * 0.98, 2)
    a = statuses(await sdk(ex.order, "SOL", True, 1.0, px, {"limit": {"tif": "Gtc"}}))[0]["resting"]["oid"]
    statuses(await sdk(ex.order, "SOL", True, 1.0, px, {"limit": {"tif": "Gtc"}}, False, Cloid.from_int(7)))
    assert len(await sdk(info.open_orders, wallet.address)) == 2
    assert statuses(await sdk(ex.cancel, "SOL", a)) == ["success"]
    assert statuses(await sdk(ex.cancel_by_cloid, "SOL", Cloid.from_int(7))) == ["success"]
    assert await sdk(info.open_orders, wallet.address) == []
    assert statuses(await sdk(ex.cancel, "SOL", a)) == [{"error": "Order was never placed, already canceled, or filled."}]
    assert statuses(await sdk(ex.cancel_by_cloid, "SOL", Cloid.from_int(7))) == [{"error": "Order was never placed, already canceled, or filled."}]
    assert (await sdk(info.query_order_by_oid, wallet.address, a))["order"]["status"] == "canceled"
    assert (await sdk(info.query_order_by_cloid, wallet.address, Cloid.from_int(7)))["order"]["status"] == "canceled"
    assert await sdk(info.query_order_by_oid, wallet.address, 123456789) == {"status": "unknownOid"}


async def test_modify_moves_a_resting_order_and_refuses_a_canceled_one(clients, sim, wallet):
    info, ex = await clients.info(sim), await clients.exchange(sim, wallet)
    bid, _ = await touch(info, "ETH")
    px1, px2 = px_round(bid * 0.99, 4), px_round(bid * 0.985, 4)
    oid = statuses(await sdk(ex.order, "ETH", True, 0.05, px1, {"limit": {"tif": "Gtc"}}, False, Cloid.from_int(9)))[0]["resting"]["oid"]
    r = statuses(await sdk(ex.modify_order, oid, "ETH", True, 0.04, px2, {"limit": {"tif": "Gtc"}}, False, Cloid.from_int(9)))
    assert "resting" in r[0], r
    oo = await sdk(info.open_orders, wallet.address)
    assert [(Decimal(o["limitPx"]), Decimal(o["sz"])) for o in oo] == [(Decimal(str(px2)), Decimal("0.04"))]
    new_oid = r[0]["resting"]["oid"]
    statuses(await sdk(ex.cancel, "ETH", new_oid))
    r = statuses(await sdk(ex.modify_order, new_oid, "ETH", True, 0.04, px1, {"limit": {"tif": "Gtc"}}))
    assert r == [{"error": "Cannot modify canceled or filled order"}]


async def test_hip3_isolated_leverage_is_accepted_and_cross_is_rejected(clients, sim, wallet):
    info, ex = await clients.info(sim), await clients.exchange(sim, wallet)
    assert await sdk(ex.update_leverage, 5, "xyz:TSLA", True) == {"status": "err", "response": "Cross margin is not allowed for this asset."}
    assert await sdk(ex.update_leverage, 3, "xyz:TSLA", False) == {"status": "ok", "response": {"type": "default"}}
    assert (await sdk(ex.update_leverage, 11, "xyz:TSLA", False))["status"] == "err"          # above maxLeverage 10
    # xyz has its own collateral: move 1000 USDC from the main dex, then open a position there
    assert (await sdk(ex.send_asset, wallet.address, "", "xyz", "USDC", 1000.0))["status"] == "ok"
    xyz_state = await sdk(info.user_state, wallet.address, "xyz")
    assert Decimal(xyz_state["marginSummary"]["accountValue"]) == Decimal("1000")
    _, ask = await touch(info, "xyz:TSLA")
    r = statuses(await sdk(ex.order, "xyz:TSLA", True, 0.5, px_round(ask * 1.01, 3), {"limit": {"tif": "Ioc"}}))
    assert "filled" in r[0], r
    pos = (await sdk(info.user_state, wallet.address, "xyz"))["assetPositions"]
    assert pos[0]["position"]["coin"] == "xyz:TSLA"
    assert pos[0]["position"]["leverage"]["type"] == "isolated" and pos[0]["position"]["leverage"]["value"] == 3
    assert (await sdk(info.user_state, wallet.address))["assetPositions"] == []                 # main dex untouched


async def test_usd_class_transfer_moves_spot_usdc_to_perp(clients):
    w = Account.create()
    async with HyperliquidSim(speed=None, funded={w.address: {"spot": 100.0}}) as sim:
        info, ex = await clients.info(sim), await clients.exchange(sim, w)
        assert (await sdk(info.spot_user_state, w.address))["balances"][0]["total"] == "100.0"
        assert await sdk(ex.usd_class_transfer, 40.0, True) == {"status": "ok", "response": {"type": "default"}}
        assert (await sdk(info.spot_user_state, w.address))["balances"][0]["total"] == "60.0"
        st = await sdk(info.user_state, w.address)
        assert Decimal(st["withdrawable"]) == Decimal("40") and Decimal(st["marginSummary"]["accountValue"]) == Decimal("40")
        assert (await sdk(ex.usd_class_transfer, 500.0, True))["status"] == "err"              # more than the spot balance
        ledger = await sdk(info.user_non_funding_ledger_updates, w.address, 0)
        assert [e["delta"]["type"] for e in ledger] == ["deposit", "accountClassTransfer"]


async def test_post_only_that_would_cross_is_rejected_quoting_the_bbo(clients, sim, wallet):
    info, ex = await clients.info(sim), await clients.exchange(sim, wallet)
    bid, ask = await touch(info, "BTC")
    r = statuses(await sdk(ex.order, "BTC", True, 0.001, ask, {"limit": {"tif": "Alo"}}))
    assert r == [{"error": f"Post only order would have immediately matched, bbo was {float_to_wire(bid)}@{float_to_wire(ask)}."}]
    assert await sdk(info.open_orders, wallet.address) == []


async def test_order_worth_less_than_ten_dollars_is_rejected(clients, sim, wallet):
    info, ex = await clients.info(sim), await clients.exchange(sim, wallet)
    bid, _ = await touch(info, "ETH")
    r = statuses(await sdk(ex.order, "ETH", True, 0.002, px_round(bid * 0.99, 4), {"limit": {"tif": "Gtc"}}))   # ~$7.5
    assert r == [{"error": "Order must have minimum value of $10."}]


async def test_prices_and_sizes_beyond_hl_precision_are_rejected_per_order(clients, sim, wallet):
    info, ex = await clients.info(sim), await clients.exchange(sim, wallet)
    bid, _ = await touch(info, "ETH")                                     # ETH: szDecimals 4 -> at most 2 price decimals, 5 sig figs
    base = px_round(bid * 0.99, 4)
    r = statuses(await sdk(ex.bulk_orders, [
        {"coin": "ETH", "is_buy": True, "sz": 0.01, "limit_px": base + 0.05, "order_type": {"limit": {"tif": "Gtc"}}, "reduce_only": False},  # 6 sig figs
        {"coin": "ETH", "is_buy": True, "sz": 0.00501, "limit_px": base, "order_type": {"limit": {"tif": "Gtc"}}, "reduce_only": False},      # 5 size decimals
        {"coin": "DOGE", "is_buy": True, "sz": 100.5, "limit_px": 0.2, "order_type": {"limit": {"tif": "Gtc"}}, "reduce_only": False},        # DOGE lots are whole
        {"coin": "ETH", "is_buy": True, "sz": 0.01, "limit_px": base, "order_type": {"limit": {"tif": "Gtc"}}, "reduce_only": False},         # valid
    ]))
    assert r[:3] == [{"error": "Order has invalid price."}, {"error": "Order has invalid size."}, {"error": "Order has invalid size."}]
    assert "resting" in r[3], r
    assert len(await sdk(info.open_orders, wallet.address)) == 1


async def test_unfunded_signer_is_refused_unless_auto_fund_is_on(clients):
    stranger = Account.create()
    async with HyperliquidSim(["ETH", "xyz:TSLA"], speed=None) as sim:
        ex = await clients.exchange(sim, stranger)
        r = await sdk(ex.order, "ETH", True, 0.01, 1000.0, {"limit": {"tif": "Gtc"}})
        assert r == {"status": "err", "response": f"L1 error: User or API Wallet {stranger.address.lower()} does not exist."}
    async with HyperliquidSim(["ETH", "xyz:TSLA"], speed=None, auto_fund=5_000.0) as sim:
        info, ex = await clients.info(sim), await clients.exchange(sim, stranger)
        bid, _ = await touch(info, "ETH")
        assert "resting" in statuses(await sdk(ex.order, "ETH", True, 0.01, px_round(bid * 0.99, 4), {"limit": {"tif": "Gtc"}}))[0]
        assert Decimal((await sdk(info.user_state, stranger.address))["marginSummary"]["accountValue"]) == Decimal("5000")


async def test_a_replayed_nonce_is_rejected_as_duplicate(clients, sim, wallet):
    ex = await clients.exchange(sim, wallet)
    nonce = get_timestamp_ms()
    action = {"type": "updateLeverage", "asset": 1, "isCross": True, "leverage": 5}
    sig = sign_l1_action(wallet, action, None, nonce, None, False)
    assert await sdk(ex._post_action, action, sig, nonce) == {"status": "ok", "response": {"type": "default"}}
    assert await sdk(ex._post_action, action, sig, nonce) == {"status": "err", "response": f"Invalid nonce: duplicate nonce {nonce}"}


async def test_usd_class_transfer_must_carry_the_request_nonce(clients, sim, wallet):
    ex = await clients.exchange(sim, wallet)
    nonce = get_timestamp_ms()
    action = {"type": "usdClassTransfer", "amount": "5", "toPerp": False, "nonce": nonce - 1}
    sig = sign_usd_class_transfer_action(wallet, action, False)
    r = await sdk(ex._post_action, action, sig, nonce)
    assert r["status"] == "err" and "nonce" in r["response"]


async def test_signature_made_for_mainnet_recovers_to_an_unknown_wallet(clients, sim, wallet):
    ex = await clients.exchange(sim, wallet)
    nonce = get_timestamp_ms()
    action = {"type": "updateLeverage", "asset": 1, "isCross": True, "leverage": 5}
    r = await sdk(ex._post_action, action, sign_l1_action(wallet, action, None, nonce, None, True), nonce)
    assert r["status"] == "err" and "does not exist" in r["response"] and wallet.address.lower() not in r["response"]


async def test_approved_agent_trades_for_its_master(clients, sim, wallet):
    info, ex = await clients.info(sim), await clients.exchange(sim, wallet)
    resp, agent_key = await sdk(ex.approve_agent, "bot")
    assert resp == {"status": "ok", "response": {"type": "default"}}
    agent = Account.from_key(agent_key)
    ex_agent = await clients.exchange(sim, agent, account_address=wallet.address)
    bid, _ = await touch(info, "ETH")
    assert "resting" in statuses(await sdk(ex_agent.order, "ETH", True, 0.01, px_round(bid * 0.99, 4), {"limit": {"tif": "Gtc"}}))[0]
    assert len(await sdk(info.open_orders, wallet.address)) == 1
    assert await sdk(info.open_orders, agent.address) == []
    assert (await sdk(ex_agent.usd_class_transfer, 1.0, False))["status"] == "err"          # agents cannot move funds
    assert (await sdk(info.user_role, agent.address)) == {"role": "agent", "data": {"user": wallet.address.lower()}}


async def test_forced_inner_error_arrives_inside_an_ok_response(clients, sim, wallet):
    info, ex = await clients.info(sim), await clients.exchange(sim, wallet)
    bid, _ = await touch(info, "ETH")
    sim.force_order_error("Order price cannot be more than 80% away from the reference price")
    r = await sdk(ex.order, "ETH", True, 0.01, px_round(bid * 0.99, 4), {"limit": {"tif": "Gtc"}})
    assert r["status"] == "ok"
    assert statuses(r) == [{"error": "Order price cannot be more than 80% away from the reference price"}]
    assert await sdk(info.open_orders, wallet.address) == []


async def test_ioc_that_cannot_match_is_rejected(clients, sim, wallet):
    info, ex = await clients.info(sim), await clients.exchange(sim, wallet)
    bid, _ = await touch(info, "ETH")
    r = statuses(await sdk(ex.order, "ETH", True, 0.01, px_round(bid * 0.97, 4), {"limit": {"tif": "Ioc"}}))
    assert r == [{"error": "Order could not immediately match against any resting orders."}]


# ---------------------------------------------------------------- HTTP behaviour

async def test_http_faults_surface_as_sdk_errors_then_recover(clients, sim):
    info = await clients.info(sim)
    sim.fail_next(1, 429, "/info")
    with pytest.raises(ClientError) as e: await sdk(info.all_mids)
    assert e.value.status_code == 429
    sim.fail_next(1, 503)
    with pytest.raises(ServerError) as e: await sdk(info.all_mids)
    assert e.value.status_code == 503
    assert "ETH" in await sdk(info.all_mids)
    sim.set_delay(300, "/info")
    t0 = time.monotonic(); await sdk(info.all_mids); assert time.monotonic() - t0 >= 0.3
    sim.set_delay(0, "/info")


async def test_malformed_info_request_gets_422_text(clients, sim):
    info = await clients.info(sim)
    with pytest.raises(ClientError) as e: await sdk(info.post, "/info", {"type": "noSuchThing"})
    assert e.value.status_code == 422 and e.value.error_message.startswith("Failed to deserialize the JSON body")
    with pytest.raises(ClientError) as e: await sdk(info.post, "/info", {"type": "l2Book"})
    assert e.value.status_code == 422


async def test_candle_snapshot_serves_the_preseed_and_never_the_future(clients, sim):
    info = await clients.info(sim)
    now = sim.now_ms
    cs = await sdk(info.candles_snapshot, "BTC", "1m", now - 240 * 60_000 - 30_000, now + 3_600_000)
    assert len(cs) >= 240
    assert cs[0]["t"] <= now - 240 * 60_000 - 30_000 < cs[0]["T"]          # the candle containing startTime comes first
    assert all(c["t"] <= now for c in cs) and cs[-1]["t"] == now // 60_000 * 60_000
    assert {type(c[k]) for c in cs for k in "ohlcv"} == {str} and {c["s"] for c in cs} == {"BTC"}
    await sim.advance_ms(120_000)
    later = await sdk(info.candles_snapshot, "BTC", "1m", now - 60_000, sim.now_ms)
    assert later[-1]["t"] == sim.now_ms // 60_000 * 60_000                  # time moved, the snapshot followed it
    h = await sdk(info.candles_snapshot, "xyz:TSLA", "1h", now - 3 * 86_400_000, now)
    assert h and all(c["i"] == "1h" and c["T"] - c["t"] == 3_599_999 for c in h)


async def test_asset_contexts_per_dex_carry_the_documented_fields(clients, sim):
    info = await clients.info(sim)
    meta, ctxs = await sdk(info.meta_and_asset_ctxs)
    assert [u["name"] for u in meta["universe"]][:2] == ["BTC", "ETH"] and len(ctxs) == len(meta["universe"]) == 10
    keys = {"dayNtlVlm", "funding", "impactPxs", "markPx", "midPx", "openInterest", "oraclePx", "premium", "prevDayPx"}
    assert all(set(c) == keys for c in ctxs)
    assert all(isinstance(c[k], str) for c in ctxs for k in keys - {"impactPxs"})
    btc = ctxs[0]
    assert Decimal(btc["funding"]) != 0 and Decimal(btc["dayNtlVlm"]) > 0         # bundled funding and bars, not placeholders
    xmeta, xctxs = await sdk(info.post, "/info", {"type": "metaAndAssetCtxs", "dex": "xyz"})
    assert [u["name"] for u in xmeta["universe"]] == ["xyz:TSLA", "xyz:NVDA", "xyz:MSFT", "xyz:AAPL", "xyz:GOLD"]
    assert all(u["onlyIsolated"] and u["marginMode"] == "strictIsolated" for u in xmeta["universe"])
    assert all(set(c) == keys | {"dayBaseVlm"} for c in xctxs)
    dexs = await sdk(info.perp_dexs)
    assert dexs[0] is None and dexs[1]["name"] == "xyz" and dexs[1]["deployerFeeScale"] == "1.0"


async def test_replay_clock_follows_wall_time_times_speed(wallet):
    async with HyperliquidSim(["ETH"], speed=120.0, tick_ms=20) as s:
        t0, w0 = s.now_ms, time.monotonic()
        await asyncio.sleep(1.0)
        advanced, wall = s.now_ms - t0, time.monotonic() - w0
        assert 120_000 * wall - 15_000 <= advanced <= 120_000 * wall + 5_000     # within a few ticks of K x wall time


async def test_max_speed_replays_event_by_event_and_keeps_pushing(clients):
    async with HyperliquidSim(["ETH", "xyz:TSLA"], speed=math.inf) as s:
        info = await clients.info(s, ws=True)
        books = []
        info.subscribe({"type": "l2Book", "coin": "ETH"}, books.append)
        t0 = s.now_ms
        await eventually(lambda: s.now_ms - t0 > 3_600_000, timeout=20, what="an hour of replay")
        await eventually(lambda: len(books) > 5, what="books at max speed")
        times = [m["data"]["time"] for m in books]
        assert times == sorted(times) and times[-1] - times[0] > 60_000


# ---------------------------------------------------------------- WebSocket

async def test_ws_channels_reach_sdk_callbacks(clients, sim, wallet):
    info = await clients.info(sim, ws=True)
    ex = await clients.exchange(sim, wallet)
    got: dict[str, list] = {k: [] for k in ("l2Book", "userFills", "orderUpdates", "allMids", "candle", "trades")}
    info.subscribe({"type": "l2Book", "coin": "ETH"}, lambda m: got["l2Book"].append(m))
    info.subscribe({"type": "userFills", "user": wallet.address}, lambda m: got["userFills"].append(m))
    info.subscribe({"type": "orderUpdates", "user": wallet.address}, lambda m: got["orderUpdates"].append(m))
    info.subscribe({"type": "allMids"}, lambda m: got["allMids"].append(m))
    info.subscribe({"type": "candle", "coin": "ETH", "interval": "1m"}, lambda m: got["candle"].append(m))
    info.subscribe({"type": "trades", "coin": "ETH"}, lambda m: got["trades"].append(m))
    await eventually(lambda: got["l2Book"] and got["userFills"] and got["allMids"] and got["candle"], what="snapshots")
    assert got["userFills"][0]["data"]["isSnapshot"] is True and got["userFills"][0]["data"]["user"] == wallet.address
    assert got["l2Book"][0]["data"]["coin"] == "ETH" and len(got["l2Book"][0]["data"]["levels"][0]) == 20
    _, ask = await touch(info, "ETH")
    r = statuses(await sdk(ex.order, "ETH", True, 0.01, px_round(ask * 1.002, 4), {"limit": {"tif": "Ioc"}}))
    assert "filled" in r[0], r
    oid = r[0]["filled"]["oid"]
    live = await eventually(lambda: [m for m in got["userFills"][1:] if any(f["oid"] == oid for f in m["data"]["fills"])], what="userFills push")
    assert live[0]["data"]["isSnapshot"] is False and live[0]["data"]["fills"][0]["crossed"] is True
    await eventually(lambda: any(u["order"]["oid"] == oid for m in got["orderUpdates"] for u in m["data"]), what="orderUpdates push")
    await eventually(lambda: any(t["coin"] == "ETH" for m in got["trades"] for t in m["data"]), what="trades push")
    n_books = len(got["l2Book"])
    await sim.advance_ms(60_000)
    await eventually(lambda: len(got["l2Book"]) > n_books and len(got["candle"]) > 1, what="book and candle updates")
    times = [m["data"]["time"] for m in got["l2Book"]]
    assert all(b - a >= 500 for a, b in zip(times, times[1:]))
    assert got["candle"][-1]["data"]["s"] == "ETH" and got["candle"][-1]["data"]["i"] == "1m"
    assert "xyz:TSLA" not in got["allMids"][0]["data"]["mids"] and "BTC" in got["allMids"][0]["data"]["mids"]


async def test_ws_acks_subscriptions_and_answers_ping(sim):
    async with aiohttp.ClientSession() as s, s.ws_connect(sim.ws_url) as ws:
        assert (await ws.receive_str(timeout=5)) == "Websocket connection established."
        await ws.send_json({"method": "ping"})
        assert await ws.receive_json(timeout=5) == {"channel": "pong"}
        sub = {"type": "trades", "coin": "BTC"}
        await ws.send_json({"method": "subscribe", "subscription": sub})
        assert await ws.receive_json(timeout=5) == {"channel": "subscriptionResponse", "data": {"method": "subscribe", "subscription": sub}}
        await ws.send_json({"method": "unsubscribe", "subscription": sub})
        assert (await ws.receive_json(timeout=5))["data"]["method"] == "unsubscribe"
        await ws.send_json({"method": "subscribe", "subscription": {"type": "l2Book", "coin": "NOPE"}})
        assert (await ws.receive_json(timeout=5))["channel"] == "error"
        books = {}
        for name, sub in (("fast", {"type": "l2Book", "coin": "BTC", "fast": True}), ("full", {"type": "l2Book", "coin": "BTC"}),
                          ("agg", {"type": "l2Book", "coin": "BTC", "nSigFigs": 4})):
            await ws.send_json({"method": "subscribe", "subscription": sub})
            assert (await ws.receive_json(timeout=5))["channel"] == "subscriptionResponse"
            books[name] = (await ws.receive_json(timeout=5))["data"]["levels"][0]
        assert len(books["fast"]) == 5 and books["fast"] == books["full"][:5]
        assert all(Decimal(l["px"]) % 100 == 0 for l in books["agg"])         # BTC ~1.2e5 at 4 significant figures: hundreds
        assert sum(Decimal(l["sz"]) for l in books["agg"]) == sum(Decimal(l["sz"]) for l in books["full"])


@pytest.mark.parametrize("how", ["drop", "close"])
async def test_losing_one_ws_connection_is_visible_to_that_sdk_client_only(clients, sim, how):
    victim, bystander = await clients.info(sim, ws=True), await clients.info(sim, ws=True)
    got_v, got_b = [], []
    victim.subscribe({"type": "l2Book", "coin": "BTC"}, got_v.append)
    bystander.subscribe({"type": "l2Book", "coin": "ETH"}, got_b.append)
    await eventually(lambda: got_v and got_b, what="first books")
    conn = next(i for i, subs in sim.ws_connections.items() if {"type": "l2Book", "coin": "BTC"} in subs)
    assert await (sim.drop_ws(conn) if how == "drop" else sim.close_ws(conn)) == 1
    await eventually(lambda: not victim.ws_manager.is_alive(), timeout=15, what="the SDK websocket thread to end")
    assert not victim.ws_manager.ws.keep_running and bystander.ws_manager.is_alive()
    n_v, n_b = len(got_v), len(got_b)
    await sim.advance_ms(5_000)
    await eventually(lambda: len(got_b) > n_b, what="the other client's books")
    assert len(got_v) == n_v                                               # no reconnect in the SDK: the victim hears nothing


async def test_closing_every_ws_connection_stops_every_sdk_client(clients, sim):
    infos = [await clients.info(sim, ws=True) for _ in range(2)]
    for i in infos: i.subscribe({"type": "allMids"}, lambda m: None)
    await eventually(lambda: len(sim.ws_connections) == 2, what="two connections")
    assert await sim.close_ws() == 2
    await eventually(lambda: not any(i.ws_manager.is_alive() for i in infos), timeout=15, what="both SDK threads to end")


async def test_stalled_book_goes_stale_on_ws_while_http_stays_live(clients, sim):
    info = await clients.info(sim, ws=True)
    eth, btc = [], []
    info.subscribe({"type": "l2Book", "coin": "ETH"}, eth.append)
    info.subscribe({"type": "l2Book", "coin": "BTC"}, btc.append)
    await eventually(lambda: eth and btc, what="snapshots")
    sim.stall_book("ETH")
    n_eth, n_btc = len(eth), len(btc)
    for _ in range(4): await sim.advance_ms(20_000)
    await eventually(lambda: len(btc) > n_btc, what="BTC books")
    await asyncio.sleep(0.3)
    assert len(eth) == n_eth
    assert (await sdk(info.l2_snapshot, "ETH"))["time"] == sim.now_ms     # HTTP is live
    sim.stall_book("ETH", on=False)
    await sim.advance_ms(20_000)
    await eventually(lambda: len(eth) > n_eth, what="ETH books after the stall")


async def test_user_fills_pushes_can_be_duplicated_and_reordered(clients, sim, wallet):
    info = await clients.info(sim, ws=True)
    ex = await clients.exchange(sim, wallet)
    pushes = []
    info.subscribe({"type": "userFills", "user": wallet.address}, pushes.append)
    await eventually(lambda: pushes, what="snapshot")
    _, ask = await touch(info, "ETH")
    async def take(cloid):
        r = statuses(await sdk(ex.order, "ETH", True, 0.01, px_round(ask * 1.01, 4), {"limit": {"tif": "Ioc"}}, False, Cloid.from_int(cloid)))
        return r[0]["filled"]["oid"]
    sim.duplicate_user_fills(1)
    a = await take(1)
    await eventually(lambda: len(pushes) >= 3, what="duplicated push")
    assert pushes[1] == pushes[2] and pushes[1]["data"]["fills"][0]["oid"] == a
    sim.reorder_user_fills(1)
    b = await take(2)
    await asyncio.sleep(0.3)
    assert len(pushes) == 3                                                # held back
    c = await take(3)
    await eventually(lambda: len(pushes) >= 5, what="reordered pushes")
    assert [p["data"]["fills"][0]["oid"] for p in pushes[3:5]] == [c, b]


async def test_stalled_channel_stops_only_that_channel(clients, sim, wallet):
    info = await clients.info(sim, ws=True)
    mids, books = [], []
    info.subscribe({"type": "allMids"}, mids.append)
    info.subscribe({"type": "l2Book", "coin": "BTC"}, books.append)
    await eventually(lambda: mids and books, what="snapshots")
    sim.stall_channel("allMids")
    n_m, n_b = len(mids), len(books)
    for _ in range(3): await sim.advance_ms(20_000)
    await eventually(lambda: len(books) > n_b, what="books")
    assert len(mids) == n_m


# ---------------------------------------------------------------- conformance with recorded responses

def cassette_pairs():
    "(file stem, request body, parsed response) of every /info interaction recorded upstream."
    out = []
    for p in sorted(CASSETTES.glob("*.yaml")):
        for it in yaml.safe_load(p.read_text())["interactions"]:
            out.append((p.stem, json.loads(it["request"]["body"]), json.loads(it["response"]["body"]["string"])))
    return out


def _tname(x):
    return {bool: "bool", int: "int", float: "float", str: "str", type(None): "null"}.get(type(x), type(x).__name__)


def shape(x, s=None):
    "Merged structural shape of a JSON value: scalar type names, dict keys (with how often), list item shape."
    s = s if s is not None else {"t": set(), "keys": {}, "n": 0, "kc": {}, "item": None}
    if isinstance(x, dict):
        s["t"].add("dict"); s["n"] += 1
        for k, v in x.items():
            s["kc"][k] = s["kc"].get(k, 0) + 1
            s["keys"][k] = shape(v, s["keys"].get(k))
    elif isinstance(x, list):
        s["t"].add("list")
        for v in x: s["item"] = shape(v, s["item"])
    else: s["t"].add(_tname(x))
    return s


def conform(sim, rec, path, extra_keys, extra_types, maps, errors):
    "Collect differences: sim types must be recorded types, recorded always-present keys must exist, new keys must be documented."
    allowed = rec["t"] | extra_types.get(path, set())
    if not sim["t"] <= allowed: errors.append(f"{path or '<root>'}: types {sorted(sim['t'])} vs recorded {sorted(rec['t'])}")
    if "dict" in sim["t"] and "dict" in rec["t"]:
        if path in maps:                                                   # a mapping keyed by coin: compare values only
            sv = rec_v = None
            for v in sim["keys"].values(): sv = v
            for v in rec["keys"].values(): rec_v = v
            if sv and rec_v: conform(sv, rec_v, path + ".*", extra_keys, extra_types, maps, errors)
        else:
            for k, c in rec["kc"].items():
                if c == rec["n"] and sim["kc"].get(k, 0) != sim["n"]: errors.append(f"{path}.{k}: recorded always, missing here")
            for k in sim["keys"]:
                if k not in rec["keys"]:
                    if k not in extra_keys.get(path, set()): errors.append(f"{path}.{k}: not in the recording and not documented")
                else: conform(sim["keys"][k], rec["keys"][k], f"{path}.{k}", extra_keys, extra_types, maps, errors)
    if sim["item"] is not None and rec["item"] is not None:
        conform(sim["item"], rec["item"], path + "[]", extra_keys, extra_types, maps, errors)


# newer fields the reference documents (reference/hyperliquid-protocol.md §2) that the old recordings lack
EXTRA_KEYS = {
    "meta": {"": {"marginTables", "collateralToken"}, ".universe[]": {"marginTableId", "onlyIsolated", "marginMode", "growthMode"}},
    "clearinghouseState": {"": {"time", "crossMaintenanceMarginUsed"}, ".assetPositions[].position": {"cumFunding", "maxLeverage"},
                           ".assetPositions[].position.leverage": {"rawUsd"}},
    "frontendOpenOrders": {"[]": {"cloid"}},
    "userFills": {"[]": {"tid", "feeToken", "cloid", "builderFee"}},
    "userFillsByTime": {"[]": {"tid", "feeToken", "cloid", "builderFee"}},
    "userNonFundingLedgerUpdates": {"[].delta": {"sourceDex", "destinationDex"}},
}
EXTRA_TYPES = {"historicalOrders": {"[].order.cloid": {"str"}}, "clearinghouseState": {".assetPositions[].position.liquidationPx": {"null"}}}
MAPS = {"allMids": {""}}
SERVED = {"meta", "allMids", "l2Book", "candleSnapshot", "clearinghouseState", "openOrders", "frontendOpenOrders", "userFills",
          "userFillsByTime", "fundingHistory", "userFunding", "historicalOrders", "userNonFundingLedgerUpdates", "extraAgents", "userRole",
          "userRateLimit", "delegatorHistory", "userTwapSliceFills", "userVaultEquities", "portfolio"}
EMPTY_BY_DESIGN = {"delegatorHistory", "userTwapSliceFills", "userVaultEquities"}     # staking, TWAPs and vaults are not simulated


async def test_info_responses_have_the_recorded_keys_and_types(clients, sim, wallet):
    info, ex = await clients.info(sim), await clients.exchange(sim, wallet)
    # give the account every kind of record: a position, a resting order, fills, a transfer and an agent
    bid, ask = await touch(info, "ETH")
    statuses(await sdk(ex.order, "ETH", True, 0.05, px_round(ask * 1.01, 4), {"limit": {"tif": "Ioc"}}))
    statuses(await sdk(ex.order, "ETH", True, 0.05, px_round(bid * 0.9, 4), {"limit": {"tif": "Gtc"}}, False, Cloid.from_int(5)))
    statuses(await sdk(ex.order, "ETH", True, 0.05, px_round(bid * 0.9, 4), {"limit": {"tif": "Ioc"}}, False, Cloid.from_int(6)))  # rejected IOC: history
    await sdk(ex.usd_class_transfer, 10.0, False)
    await sdk(ex.approve_agent, "ops")
    await sim.advance_ms(2 * 3_600_000)
    user = wallet.address
    served, checked = set(), []
    for stem, req, rec in cassette_pairs():
        typ = req["type"]
        if not hasattr(sim, f"_info_{typ}"): continue
        served.add(typ)
        body = dict(req)
        if "user" in body: body["user"] = user
        if typ == "l2Book": body["coin"] = "ETH"
        if typ == "candleSnapshot": body["req"] = {**req["req"], "coin": "ETH", "startTime": sim.now_ms - 86_400_000, "endTime": sim.now_ms}
        if typ == "fundingHistory": body.update(coin="BTC", startTime=sim.start_ms - 86_400_000, endTime=sim.now_ms)
        if typ in ("userFillsByTime", "userFunding"): body.update(startTime=0, endTime=sim.now_ms if "endTime" in req else None)
        if typ in ("userNonFundingLedgerUpdates",): body.update(startTime=0, endTime=None)
        got = await sdk(info.post, "/info", body)
        if typ not in EMPTY_BY_DESIGN and rec not in ([], {}):
            assert got not in ([], {}), f"{stem}: the simulator answered empty"
        errors = []
        x = EXTRA_KEYS.get(typ, {})
        conform(shape(got), shape(rec), "", {k: v for k, v in x.items()}, EXTRA_TYPES.get(typ, {}), MAPS.get(typ, set()), errors)
        assert not errors, f"{stem} ({typ}):\n" + "\n".join(errors)
        checked.append(stem)
    assert served >= SERVED, f"not served: {sorted(SERVED - served)}"
    assert len(checked) >= 20, checked
    print("conformance checked:", sorted(set(checked)), "not served:", sorted({r["type"] for _, r, _ in cassette_pairs()} - served))


def test_conformance_check_catches_a_missing_key_and_a_wrong_type():
    rec = [{"coin": "ETH", "px": "1.0", "time": 1}]
    errors = []
    conform(shape([{"coin": "ETH", "px": 1.0}]), shape(rec), "", {}, {}, set(), errors)
    assert any(".time" in e for e in errors) and any(".px" in e and "float" in e for e in errors)


# ---------------------------------------------------------------- command line

def test_cli_serves_the_sdk_until_terminated(tmp_path):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    p = subprocess.Popen([str(BIN / "python"), "-m", "tri_engine.sim", "hyperliquid", "--port", "0", "--coins", "ETH,xyz:GOLD",
                          "--speed", "30", "--auto-fund", "1000"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        ready, _, _ = select.select([p.stdout], [], [], 60)
        assert ready, "the simulator printed nothing within 60 s"
        line = p.stdout.readline()
        assert line.startswith("hyperliquid simulator listening on http://127.0.0.1:"), line + p.stderr.read()
        url = line.split()[-1]
        info = Info(url, True, None, None, DEXES, timeout=10)
        assert info.coin_to_asset == {"ETH": 0, "xyz:GOLD": 110000}
        w = Account.create()
        ex = Exchange(w, url, perp_dexs=DEXES, timeout=10)
        bid = float(info.l2_snapshot("ETH")["levels"][0][0]["px"])
        assert "resting" in ex.order("ETH", True, 0.01, px_round(bid * 0.99, 4), {"limit": {"tif": "Gtc"}})["response"]["data"]["statuses"][0]
        mid0 = float(info.all_mids("xyz")["xyz:GOLD"])
        assert 2000 < mid0 < 5000                                       # GLD scaled to a gold price
    finally:
        p.terminate()
        assert p.wait(timeout=20) == 0
