"The Alpaca simulator driven by the unmodified alpaca-py 0.44.0 over 127.0.0.1 (url_override; no mocks, no network)."
from __future__ import annotations
import asyncio, contextlib, json, math, select, signal, subprocess, sys, threading, time
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
import aiohttp
import msgpack
import numpy as np
import pytest
from alpaca.common.exceptions import APIError
from alpaca.data.enums import DataFeed
from alpaca.data.historical import CryptoHistoricalDataClient, StockHistoricalDataClient
from alpaca.data.live import CryptoDataStream, StockDataStream
from alpaca.data.requests import (CryptoBarsRequest, CryptoLatestOrderbookRequest, StockBarsRequest, StockLatestQuoteRequest)
from alpaca.data.timeframe import TimeFrame, TimeFrameUnit
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import OrderSide, QueryOrderStatus, TimeInForce
from alpaca.trading.requests import (ClosePositionRequest, GetCalendarRequest, GetOrdersRequest, LimitOrderRequest,
                                     MarketOrderRequest, ReplaceOrderRequest)
from alpaca.trading.stream import TradingStream
from conftest import ROOT, BIN
from tri_engine.core import dt_to_ms, ms_to_dt
from tri_engine.data import load_bars
from tri_engine.sim.alpaca import AlpacaSim, NY, default_start_ms

KEY, SECRET = "AKSIMTEST", "sim-secret-test"
CRYPTO_WS, IEX_WS = "/v1beta3/crypto/us", "/v2/iex"


# ---------------------------------------------------------------- helpers

async def sdk(fn, *args, timeout: float = 30.0, **kw):
    "One blocking SDK call in a thread (the simulator lives on this event loop), bounded."
    return await asyncio.wait_for(asyncio.to_thread(fn, *args, **kw), timeout)


async def eventually(pred, timeout: float = 10.0, what: str = "condition"):
    "Poll `pred` until truthy (returns its value) or fail after `timeout` seconds."
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        v = pred()
        if v: return v
        await asyncio.sleep(0.02)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


async def api_error(fn, *args) -> APIError:
    "The APIError an SDK call raises (fails the test if it does not)."
    try: await sdk(fn, *args)
    except APIError as e: return e
    raise AssertionError(f"{fn.__name__} did not raise APIError")


class StreamThread:
    "An alpaca-py stream run in its own thread with its own loop, as an engine runs it."
    def __init__(self, stream):
        self.stream = stream
        self.thread = threading.Thread(target=stream.run, daemon=True, name=f"sdk-{type(stream).__name__}")
        self.thread.start()

    def stop(self):
        "Signal the SDK to stop (from a worker thread: it blocks on the stream's loop)."
        t0 = time.monotonic()
        while getattr(self.stream, "_loop", None) is None and time.monotonic() - t0 < 5: time.sleep(0.01)
        if getattr(self.stream, "_loop", None) is not None and self.stream._loop.is_running(): self.stream.stop()


@contextlib.asynccontextmanager
async def running(sim, *streams):
    "Run SDK streams for the block; on exit stop them, close their sockets (the SDK waits 5 s in recv otherwise) and join."
    ts = [StreamThread(s) for s in streams]
    try: yield ts
    finally:
        for t in ts: await asyncio.to_thread(t.stop)
        await sim.close_ws()
        for t in ts: await asyncio.to_thread(t.thread.join, 15)
        assert not any(t.thread.is_alive() for t in ts), "an SDK stream thread did not stop"


def auths(sim, path, code=None):
    "Auth events logged by the simulator on one stream path (optionally with one result code)."
    return [e for e in sim.ws_log if e["event"] == "auth" and e["path"] == path and (code is None or e["code"] == code)]


def et(*a) -> int:
    return dt_to_ms(datetime(*a, tzinfo=NY))


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
async def csim():
    "A crypto-only simulator at the default start, time driven by the test."
    async with AlpacaSim(crypto=["BTC/USD", "ETH/USD"], stocks=[], speed=None, key=KEY, secret=SECRET, span_days=1) as s:
        yield s


@pytest.fixture
async def ssim():
    "A stocks-only simulator at the default start (Monday 2026-03-23 12:09 New York, market open)."
    async with AlpacaSim(crypto=[], stocks=["AAPL", "SPY", "UPRO"], speed=None, key=KEY, secret=SECRET, span_days=1) as s:
        yield s


def trading(sim, key=KEY, secret=SECRET) -> TradingClient:
    return TradingClient(key, secret, url_override=sim.url)


# ---------------------------------------------------------------- trading REST + trade_updates

async def test_submit_replace_cancel_and_cancel_all_are_observed_on_the_trading_stream_in_order(csim):
    tc, got = trading(csim), []
    async def on_update(u): got.append((u.event, str(u.order.id), u.order.status.value))
    ts = TradingStream(KEY, SECRET, url_override=csim.trading_stream_url)
    ts.subscribe_trade_updates(on_update)
    async with running(csim, ts):
        await eventually(lambda: any(c.get("listening") for c in csim.ws_connections.values()), what="trade stream listening")
        bid_btc, bid_eth = csim.book_levels("BTC/USD")["b"][0][0], csim.book_levels("ETH/USD")["b"][0][0]
        o1 = await sdk(tc.submit_order, LimitOrderRequest(symbol="BTC/USD", qty=0.001, side=OrderSide.BUY, time_in_force=TimeInForce.GTC,
                                                          limit_price=bid_btc - 200, client_order_id="coid-1"))
        assert (o1.status.value, o1.symbol, o1.qty, o1.limit_price, o1.client_order_id) == ("new", "BTC/USD", "0.001", str(int(bid_btc - 200)), "coid-1")
        r1 = await sdk(tc.replace_order_by_id, o1.id, ReplaceOrderRequest(limit_price=bid_btc - 300))
        assert r1.id != o1.id and str(r1.replaces) == str(o1.id) and r1.status.value == "new" and float(r1.limit_price) == bid_btc - 300
        assert await sdk(tc.cancel_order_by_id, r1.id) is None                      # 204, empty body
        o2 = await sdk(tc.submit_order, LimitOrderRequest(symbol="ETH/USD", qty=0.02, side=OrderSide.BUY, time_in_force=TimeInForce.GTC,
                                                          limit_price=round(bid_eth - 100, 1)))
        o3 = await sdk(tc.submit_order, LimitOrderRequest(symbol="BTC/USD", qty=0.001, side=OrderSide.BUY, time_in_force=TimeInForce.IOC,
                                                          limit_price=bid_btc - 500))
        assert o3.status.value == "canceled"                                        # an IOC below the book: nothing filled
        o4 = await sdk(tc.submit_order, LimitOrderRequest(symbol="BTC/USD", qty=0.002, side=OrderSide.BUY, time_in_force=TimeInForce.GTC,
                                                          limit_price=bid_btc - 400))
        assert {str(o["id"]) for o in csim.open_orders(KEY)} == {str(o2.id), str(o4.id)}   # the engine-side view of resting orders
        res = await sdk(tc.cancel_orders)                                           # 207 multi-status
        assert sorted((str(r.id), r.status) for r in res) == sorted([(str(o2.id), 200), (str(o4.id), 200)])
        await eventually(lambda: len(got) >= 10, what="10 trade updates")
    i = lambda o: str(o.id)
    assert [(e, oid) for e, oid, _ in got] == [
        ("new", i(o1)), ("replaced", i(o1)), ("new", i(r1)), ("canceled", i(r1)), ("new", i(o2)),
        ("new", i(o3)), ("canceled", i(o3)), ("new", i(o4)), ("canceled", i(o2)), ("canceled", i(o4))]
    assert [s for e, _, s in got] == ["new", "replaced", "new", "canceled", "new", "new", "canceled", "new", "canceled", "canceled"]
    old = await sdk(tc.get_order_by_id, o1.id)
    assert (old.status.value, str(old.replaced_by)) == ("replaced", str(r1.id))
    assert str((await sdk(tc.get_order_by_client_id, "coid-1")).id) == str(o1.id)
    assert len(await sdk(tc.get_orders, GetOrdersRequest(status=QueryOrderStatus.ALL, limit=500, nested=True))) == 5
    assert await sdk(tc.get_orders, GetOrdersRequest(status=QueryOrderStatus.OPEN)) == []
    e = await api_error(tc.cancel_order_by_id, o1.id)                                # replaced: not cancelable
    assert (e.status_code, e.code) == (422, 42210000)
    e = await api_error(tc.get_order_by_id, "00000000-0000-4000-8000-000000000000")
    assert (e.status_code, json.loads(str(e))) == (404, {"code": 40410000, "message": "order not found"})


async def test_crypto_day_order_gets_the_real_422_and_a_crypto_short_the_real_403(csim):
    tc = trading(csim)
    e = await api_error(tc.submit_order, MarketOrderRequest(symbol="BTC/USD", qty=0.001, side=OrderSide.BUY, time_in_force=TimeInForce.DAY))
    assert (e.status_code, json.loads(str(e))) == (422, {"code": 42210000, "message": "invalid crypto time_in_force"})
    e = await api_error(tc.submit_order, MarketOrderRequest(symbol="BTC/USD", qty=0.001, side=OrderSide.SELL, time_in_force=TimeInForce.GTC))
    assert (e.status_code, json.loads(str(e))) == (403, {"code": 40310000, "message": "insufficient balance for BTC (requested: 0.001, available: 0)"})
    e = await api_error(tc.submit_order, MarketOrderRequest(symbol="ETH/USD", qty=0.001, side=OrderSide.BUY, time_in_force=TimeInForce.GTC))
    assert (e.status_code, e.message) == (403, "cost basis must be >= minimal amount of order 10")     # about $2 of ETH
    e = await api_error(tc.submit_order, MarketOrderRequest(symbol="BTC/USD", qty=0.00005, side=OrderSide.BUY, time_in_force=TimeInForce.GTC))
    assert e.status_code == 403 and "min_order_size 0.0001" in e.message
    e = await api_error(tc.submit_order, LimitOrderRequest(symbol="BTC/USD", qty=0.001, side=OrderSide.BUY, time_in_force=TimeInForce.GTC, limit_price=60000.5))
    assert e.status_code == 422 and "price increment is 1" in e.message
    e = await api_error(tc.submit_order, MarketOrderRequest(symbol="BTC/USD", qty=5, side=OrderSide.BUY, time_in_force=TimeInForce.GTC))
    assert (e.status_code, e.message) == (403, "insufficient balance for USD")      # $350k of BTC on $100k cash
    assert csim.orders_json(KEY) == [] and csim.trade_updates[KEY] == []             # refused orders never existed


async def test_crypto_buy_pays_its_fee_in_btc_and_the_position_is_btcusd(csim):
    tc = trading(csim)
    o = await sdk(tc.submit_order, MarketOrderRequest(symbol="BTC/USD", qty=0.01, side=OrderSide.BUY, time_in_force=TimeInForce.GTC))
    assert (o.status.value, o.filled_qty) == ("filled", "0.01")
    fill = csim.trade_updates[KEY][-1]
    assert (fill["event"], fill["qty"], fill["position_qty"]) == ("fill", "0.01", "0.009975")     # 0.25 % taker fee taken in BTC
    [pos] = await sdk(tc.get_all_positions)
    assert (pos.symbol, pos.qty, pos.exchange.value, pos.asset_class.value, pos.side.value) == ("BTCUSD", "0.009975", "CRYPTO", "crypto", "long")
    e = await api_error(tc.get_open_position, "BTC/USD")                           # /v2/positions/BTC/USD: 404 as on Alpaca (#537)
    assert (e.status_code, e.message) == (404, "position does not exist")
    assert (await sdk(tc.get_open_position, "BTCUSD")).qty == "0.009975"
    assert (await sdk(tc.get_open_position, str(pos.asset_id))).symbol == "BTCUSD"
    cash = float((await sdk(tc.get_account)).cash)
    assert cash == pytest.approx(100_000 - float(o.filled_avg_price) * 0.01, abs=0.01)             # no USD fee on a buy
    e = await api_error(tc.submit_order, MarketOrderRequest(symbol="BTC/USD", qty=0.01, side=OrderSide.SELL, time_in_force=TimeInForce.GTC))
    assert e.message == "insufficient balance for BTC (requested: 0.01, available: 0.009975)"
    closing = await sdk(tc.close_position, "BTCUSD", ClosePositionRequest(percentage="100"))
    assert (closing.side.value, closing.qty, closing.status.value) == ("sell", "0.009975", "filled")
    assert await sdk(tc.get_all_positions) == []
    assert csim.positions_json(KEY) == []


async def test_selling_exactly_the_reported_crypto_position_is_accepted_and_more_gets_the_real_403(csim):
    "Regression: the fee taken in ETH left a holding 0.4 nano-ETH below the shown qty, so selling it got 403 'insufficient balance for USD'."
    tc = trading(csim)
    bid = csim.book_levels("ETH/USD")["b"][0][0]
    b = await sdk(tc.submit_order, LimitOrderRequest(symbol="ETH/USD", qty=0.704820975, side=OrderSide.BUY, time_in_force=TimeInForce.GTC, limit_price=bid))
    for _ in range(240):
        if (await sdk(tc.get_order_by_id, b.id)).status.value == "filled": break
        await csim.advance_ms(10_000)
    assert (await sdk(tc.get_order_by_id, b.id)).filled_qty == "0.704820975"
    pos = await sdk(tc.get_open_position, "ETHUSD")
    assert (pos.qty, pos.qty_available) == ("0.703763744", "0.703763744")      # less the 0.15 % maker fee 0.0010572314625, to 1e-9
    assert csim.trade_updates[KEY][-1]["position_qty"] == "0.703763744"
    ask = csim.book_levels("ETH/USD")["a"][0][0]
    g = await sdk(tc.submit_order, LimitOrderRequest(symbol="ETH/USD", qty=float(pos.qty), side=OrderSide.SELL, time_in_force=TimeInForce.GTC, limit_price=ask))
    assert g.status.value == "new"                                                  # the whole holding, resting at the ask
    e = await api_error(tc.submit_order, LimitOrderRequest(symbol="ETH/USD", qty=float(pos.qty), side=OrderSide.SELL, time_in_force=TimeInForce.IOC,
                                                           limit_price=round(bid * 0.99, 1)))
    assert (e.status_code, json.loads(str(e))) == (403, {"code": 40310000, "message": "insufficient balance for ETH (requested: 0.703763744, available: 0)"})
    await sdk(tc.cancel_order_by_id, g.id)
    bid = csim.book_levels("ETH/USD")["b"][0][0]
    e = await api_error(tc.submit_order, LimitOrderRequest(symbol="ETH/USD", qty=0.703763745, side=OrderSide.SELL, time_in_force=TimeInForce.IOC,
                                                           limit_price=round(bid * 0.99, 1)))
    assert (e.status_code, json.loads(str(e))) == (403, {"code": 40310000, "message": "insufficient balance for ETH (requested: 0.703763745, available: 0.703763744)"})
    s = await sdk(tc.submit_order, LimitOrderRequest(symbol="ETH/USD", qty=float(pos.qty), side=OrderSide.SELL, time_in_force=TimeInForce.IOC,
                                                     limit_price=round(bid * 0.99, 1)))
    assert (s.status.value, s.filled_qty) == ("filled", "0.703763744")
    assert await sdk(tc.get_all_positions) == [] and csim.trade_updates[KEY][-1]["position_qty"] == "0"
    # two taker buys whose float sum is 2e-15 below the shown decimal (11.082225 + 0.01995 = 11.102174999999999): still all sellable
    for q in (11.11, 0.02):
        await sdk(tc.submit_order, MarketOrderRequest(symbol="ETH/USD", qty=q, side=OrderSide.BUY, time_in_force=TimeInForce.GTC))
    pos = await sdk(tc.get_open_position, "ETHUSD")
    assert pos.qty == "11.102175"
    s = await sdk(tc.submit_order, MarketOrderRequest(symbol="ETH/USD", qty=float(pos.qty), side=OrderSide.SELL, time_in_force=TimeInForce.GTC))
    assert (s.status.value, s.filled_qty) == ("filled", "11.102175")
    assert await sdk(tc.get_all_positions) == [] and csim.positions_json(KEY) == []


async def test_close_all_positions_answers_207_per_position(csim):
    tc = trading(csim)
    for sym, q in (("BTC/USD", 0.01), ("ETH/USD", 0.1)):
        await sdk(tc.submit_order, MarketOrderRequest(symbol=sym, qty=q, side=OrderSide.BUY, time_in_force=TimeInForce.GTC))
    ask = csim.book_levels("ETH/USD")["a"][0][0]
    await sdk(tc.submit_order, LimitOrderRequest(symbol="ETH/USD", qty=0.05, side=OrderSide.SELL, time_in_force=TimeInForce.GTC, limit_price=round(ask + 50, 1)))
    res = await sdk(tc.close_all_positions, cancel_orders=True)
    assert sorted((r.symbol, r.status) for r in res) == [("BTCUSD", 200), ("ETHUSD", 200)]
    assert all(r.body.status.value == "filled" for r in res)
    assert await sdk(tc.get_all_positions) == [] and csim.open_orders(KEY) == []
    assert ("DELETE", "/v2/positions", "cancel_orders=True") in csim.requests                    # Python's bool text, read case-insensitively


# ---------------------------------------------------------------- equities rules and the session

async def test_equity_rules_fractional_sub_penny_shorts_and_extended_hours(ssim):
    tc = trading(ssim)
    buy = lambda **kw: sdk(tc.submit_order, MarketOrderRequest(**({"symbol": "AAPL", "side": OrderSide.BUY, "time_in_force": TimeInForce.DAY} | kw)))
    e = await api_error(tc.submit_order, MarketOrderRequest(symbol="AAPL", qty=0.5, side=OrderSide.BUY, time_in_force=TimeInForce.GTC))
    assert (e.status_code, json.loads(str(e))) == (422, {"code": 42210000, "message": "fractional orders must be DAY orders"})
    e = await api_error(tc.submit_order, MarketOrderRequest(symbol="AAPL", notional=100, side=OrderSide.BUY, time_in_force=TimeInForce.GTC))
    assert e.message == "fractional orders must be DAY orders"
    e = await api_error(tc.submit_order, LimitOrderRequest(symbol="AAPL", qty=1, side=OrderSide.BUY, time_in_force=TimeInForce.DAY, limit_price=200.123))
    assert (e.status_code, e.message) == (422, "invalid limit_price 200.123. sub-penny increment does not fulfill minimum pricing criteria")
    e = await api_error(tc.submit_order, MarketOrderRequest(symbol="AAPL", qty=1, side=OrderSide.BUY, time_in_force=TimeInForce.DAY, extended_hours=True))
    assert (e.status_code, e.message) == (422, 'only type="limit" is allowed for extended hours orders')
    e = await api_error(tc.submit_order, MarketOrderRequest(symbol="UPRO", qty=0.5, side=OrderSide.BUY, time_in_force=TimeInForce.DAY))
    assert (e.status_code, e.message) == (403, 'asset "UPRO" is not fractionable')
    e = await api_error(tc.submit_order, MarketOrderRequest(symbol="UPRO", qty=1, side=OrderSide.SELL, time_in_force=TimeInForce.DAY))
    assert (e.status_code, e.message) == (403, "asset UPRO is not shortable")      # not easy to borrow
    e = await api_error(tc.submit_order, MarketOrderRequest(symbol="AAPL", qty=0.5, side=OrderSide.SELL, time_in_force=TimeInForce.DAY))
    assert (e.status_code, e.message) == (403, "fractional orders are not allowed to short")
    o = await buy(notional=1000)                                                     # fractional by notional, day: fine
    assert (o.status.value, o.notional, o.qty) == ("filled", "1000", None) and 0 < float(o.filled_qty) < 10
    held = Decimal(o.filled_qty)
    e = await api_error(tc.submit_order, MarketOrderRequest(symbol="AAPL", qty=float(held) + 1, side=OrderSide.SELL, time_in_force=TimeInForce.DAY))
    body = json.loads(str(e))
    assert (e.status_code, body["code"], body["existing_qty"], body["available"], body["symbol"]) == (403, 40310000, str(held), str(held), "AAPL")
    assert body["message"] == f"insufficient qty available for order (requested: {held + 1}, available: {held})"
    short = await sdk(tc.submit_order, MarketOrderRequest(symbol="SPY", qty=2, side=OrderSide.SELL, time_in_force=TimeInForce.DAY))
    assert (short.status.value, short.position_intent.value) == ("filled", "sell_to_open")
    spy = await sdk(tc.get_open_position, "SPY")
    assert (spy.side.value, spy.qty, spy.exchange.value) == ("short", "-2", "ARCA")
    ssim.add_key("SMALL", "small-secret", cash=1_500.0)                              # under $2,000: no shorting
    e = await api_error(trading(ssim, "SMALL", "small-secret").submit_order, MarketOrderRequest(symbol="AAPL", qty=1, side=OrderSide.SELL, time_in_force=TimeInForce.DAY))
    assert (e.status_code, json.loads(str(e))) == (403, {"code": 40310000, "message": "account is not allowed to short"})
    bid = ssim.book_levels("AAPL")["b"][0][0]
    await sdk(tc.submit_order, LimitOrderRequest(symbol="AAPL", qty=1, side=OrderSide.BUY, time_in_force=TimeInForce.DAY, limit_price=round(bid - 1, 2)))
    e = await api_error(tc.submit_order, LimitOrderRequest(symbol="AAPL", qty=1, side=OrderSide.SELL, time_in_force=TimeInForce.DAY, limit_price=round(bid - 2, 2)))
    assert e.message == "potential wash trade detected. use complex orders"
    acct = await sdk(tc.get_account)
    assert (acct.multiplier, acct.shorting_enabled, acct.status.value) == ("2", True, "ACTIVE")


async def test_equity_orders_follow_the_nyse_session_across_the_close_and_good_friday():
    async with AlpacaSim(crypto=[], stocks=["AAPL"], speed=None, key=KEY, secret=SECRET, start="2026-04-02T15:59:59-04:00", span_days=5) as sim:
        tc = trading(sim)
        clock = await sdk(tc.get_clock)
        assert (clock.is_open, clock.next_close, clock.timestamp) == (True, datetime(2026, 4, 2, 16, tzinfo=NY), datetime(2026, 4, 2, 15, 59, 59, tzinfo=NY))
        bid = sim.book_levels("AAPL")["b"][0][0]
        limit = LimitOrderRequest(symbol="AAPL", qty=1, side=OrderSide.BUY, time_in_force=TimeInForce.DAY, limit_price=round(bid - 2, 2))
        o1 = await sdk(tc.submit_order, limit)                                      # 15:59:59: live
        assert o1.status.value == "new"
        await sim.step_to("2026-04-02T16:00:00-04:00")
        assert (await sdk(tc.get_order_by_id, o1.id)).status.value == "expired"      # a day order ends at the close
        o2 = await sdk(tc.submit_order, limit)                                      # 16:00:00: closed, queued for the open
        o3 = await sdk(tc.submit_order, MarketOrderRequest(symbol="AAPL", qty=1, side=OrderSide.BUY, time_in_force=TimeInForce.DAY))
        assert (o2.status.value, o3.status.value) == ("accepted", "accepted")
        clock = await sdk(tc.get_clock)
        assert (clock.is_open, clock.next_open) == (False, datetime(2026, 4, 6, 9, 30, tzinfo=NY))   # Friday 3 April: Good Friday
        cal = await sdk(tc.get_calendar, GetCalendarRequest(start=date(2026, 4, 1), end=date(2026, 4, 7)))
        assert [c.date for c in cal] == [date(2026, 4, 1), date(2026, 4, 2), date(2026, 4, 6), date(2026, 4, 7)]
        await sim.step_to("2026-04-06T09:29:59-04:00")
        assert (await sdk(tc.get_order_by_id, o2.id)).status.value == "accepted"
        await sim.step_to("2026-04-06T09:30:00-04:00")
        assert (await sdk(tc.get_order_by_id, o2.id)).status.value == "new"
        assert (await sdk(tc.get_order_by_id, o3.id)).status.value == "filled"       # the market order went at the open
        events = [(e["event"], e["order"]["id"]) for e in sim.trade_updates[KEY]]
        assert events[:2] == [("new", str(o1.id)), ("expired", str(o1.id))] and ("new", str(o2.id)) in events
        assert events.index(("new", str(o2.id))) > events.index(("expired", str(o1.id)))


async def test_half_day_closes_at_13_00_and_thanksgiving_is_not_a_session():
    async with AlpacaSim(stocks=["AAPL"], speed=None, key=KEY, secret=SECRET, start="2025-11-28T12:59:59-05:00", span_days=1) as sim:
        assert list(sim.assets) == ["AAPL"]                                          # no crypto data in November 2025: left out
        tc = trading(sim)
        assert (await sdk(tc.get_clock)).next_close == datetime(2025, 11, 28, 13, tzinfo=NY)
        cal = await sdk(tc.get_calendar, GetCalendarRequest(start=date(2025, 11, 26), end=date(2025, 11, 28)))
        assert [(c.date, c.close.time()) for c in cal] == [(date(2025, 11, 26), datetime(2000, 1, 1, 16).time()), (date(2025, 11, 28), datetime(2000, 1, 1, 13).time())]
        bid = sim.book_levels("AAPL")["b"][0][0]
        o = await sdk(tc.submit_order, LimitOrderRequest(symbol="AAPL", qty=1, side=OrderSide.BUY, time_in_force=TimeInForce.DAY, limit_price=round(bid - 2, 2)))
        assert o.status.value == "new"
        await sim.advance_ms(1_000)
        assert (await sdk(tc.get_order_by_id, o.id)).status.value == "expired"
        late = await sdk(tc.submit_order, LimitOrderRequest(symbol="AAPL", qty=1, side=OrderSide.BUY, time_in_force=TimeInForce.DAY, limit_price=round(bid - 2, 2)))
        assert late.status.value == "accepted"


# ---------------------------------------------------------------- market-data REST

async def test_crypto_bars_paginate_and_match_the_bundled_binance_bars():
    async with AlpacaSim(crypto=["BTC/USD", "ETH/USD"], stocks=[], speed=None, key=KEY, secret=SECRET, span_days=1, max_page_size=100) as sim:
        md = CryptoHistoricalDataClient(url_override=sim.url)                      # keyless, as a real client may be
        start = ms_to_dt(sim.start_ms - 240 * 60_000)
        bars = (await sdk(md.get_crypto_bars, CryptoBarsRequest(symbol_or_symbols=["BTC/USD", "ETH/USD"], timeframe=TimeFrame.Minute, start=start))).data
        pages = [q for m, p, q in sim.requests if p == "/v1beta3/crypto/us/bars"]
        assert len(pages) == 5 and all("page_token=" in q for q in pages[1:])      # 480 bars at 100 a page
        for sym, src in (("BTC/USD", "BTCUSDT"), ("ETH/USD", "ETHUSDT")):
            ref = load_bars("binance_spot", src, "1m", start=start, end=ms_to_dt(sim.now_ms - 60_000 + 1))   # [start, end)
            got = bars[sym]
            assert len(got) == ref.height == 240
            assert [b.timestamp for b in got] == ref["ts"].to_list()
            for k, col in (("open", "open"), ("high", "high"), ("low", "low"), ("close", "close"), ("volume", "volume")):
                assert [getattr(b, k) for b in got] == ref[col].to_list(), k
        await sim.advance_ms(30 * 60_000)
        t5 = ms_to_dt(sim.start_ms + 60_000)                                         # 16:10 UTC: buckets align on the UTC clock
        five = (await sdk(md.get_crypto_bars, CryptoBarsRequest(symbol_or_symbols="BTC/USD", timeframe=TimeFrame(5, TimeFrameUnit.Minute), start=t5))).data["BTC/USD"]
        ref = load_bars("binance_spot", "BTCUSDT", "1m", start=t5, end=ms_to_dt(sim.now_ms))
        assert len(five) == 5 and five[-1].timestamp + timedelta(minutes=5) <= ms_to_dt(sim.now_ms)   # closed bars only: no look-ahead
        assert five[0].high == ref["high"][:5].max() and five[0].close == ref["close"][4] and five[0].volume == pytest.approx(ref["volume"][:5].sum())
        e = await api_error(md.get_crypto_bars, CryptoBarsRequest(symbol_or_symbols="BTCUSD", timeframe=TimeFrame.Minute))
        assert e.status_code == 400 and "BTCUSD does not match" in str(e)


async def test_stock_bars_paginate_match_the_bundled_daily_bars_and_the_modeled_minutes_rebuild_them():
    async with AlpacaSim(crypto=[], stocks=["AAPL", "SPY"], speed=None, key=KEY, secret=SECRET, span_days=1, max_page_size=50) as sim:
        md = StockHistoricalDataClient(KEY, SECRET, url_override=sim.url)
        req = StockBarsRequest(symbol_or_symbols=["SPY", "AAPL"], timeframe=TimeFrame.Day, start=datetime(2025, 9, 1, tzinfo=timezone.utc), feed=DataFeed.IEX)
        bars = (await sdk(md.get_stock_bars, req)).data
        ref = {s: load_bars("yahoo", s, "1d", start=datetime(2025, 9, 1, tzinfo=timezone.utc), end=datetime(2026, 3, 21, tzinfo=timezone.utc)) for s in ("AAPL", "SPY")}
        for s in ("AAPL", "SPY"):
            assert [b.timestamp for b in bars[s]] == ref[s]["ts"].to_list()            # through Friday 20 March: today's bar is not closed
            assert [(b.open, b.high, b.low, b.close, b.volume) for b in bars[s]] == list(zip(*(ref[s][c].to_list() for c in ("open", "high", "low", "close", "volume"))))
        pages = [q for m, p, q in sim.requests if p == "/v2/stocks/bars"]
        assert len(pages) == math.ceil(2 * ref["AAPL"].height / 50) and all("feed=iex" in q for q in pages)
        day = bars["AAPL"][-1]
        mins = (await sdk(md.get_stock_bars, StockBarsRequest(symbol_or_symbols="AAPL", timeframe=TimeFrame.Minute, start=day.timestamp,
                                                               end=day.timestamp + timedelta(days=1), feed=DataFeed.IEX))).data["AAPL"]
        assert len(mins) == 390 and mins[0].timestamp == datetime(2026, 3, 20, 9, 30, tzinfo=NY)
        assert (mins[0].open, max(b.high for b in mins), min(b.low for b in mins), mins[-1].close) == pytest.approx((day.open, day.high, day.low, day.close))
        assert sum(b.volume for b in mins) == pytest.approx(day.volume)
        q = (await sdk(md.get_stock_latest_quote, StockLatestQuoteRequest(symbol_or_symbols="AAPL", feed=DataFeed.IEX)))["AAPL"]
        top = sim.quote("AAPL")
        assert (q.bid_price, q.ask_price, q.bid_size, q.ask_exchange, q.tape) == (top["bp"], top["ap"], top["bs"], "V", "C")


async def test_latest_orderbook_is_the_simulators_book(csim):
    md = CryptoHistoricalDataClient(KEY, SECRET, url_override=csim.url)
    ob = (await sdk(md.get_crypto_latest_orderbook, CryptoLatestOrderbookRequest(symbol_or_symbols=["BTC/USD", "ETH/USD"])))
    for s in ("BTC/USD", "ETH/USD"):
        book = csim.book_levels(s)
        assert [(q.price, q.size) for q in ob[s].bids] == book["b"] and [(q.price, q.size) for q in ob[s].asks] == book["a"]
        assert len(book["b"]) == len(book["a"]) == 20 and book["b"][0][0] < book["a"][0][0]


# ---------------------------------------------------------------- market-data streams

async def test_crypto_orderbook_rebuilt_from_snapshot_and_diffs_equals_the_simulators_book(csim):
    books, resets = {}, []
    async def on_book(ob):
        if ob.reset:
            resets.append(ob.symbol)
            books[ob.symbol] = ({}, {})
        for side, quotes in zip(books[ob.symbol], (ob.bids, ob.asks)):
            for q in quotes:
                if q.size == 0: side.pop(q.price, None)
                else: side[q.price] = q.size
    def rebuilt(s):
        if s not in books: return None
        b, a = books[s]
        return {"b": sorted(b.items(), reverse=True), "a": sorted(a.items())}
    def expected(s):
        bk = csim.book_levels(s)
        return {"b": bk["b"], "a": bk["a"]}
    stream = CryptoDataStream(KEY, SECRET, url_override=csim.crypto_stream_url)
    stream.subscribe_orderbooks(on_book, "BTC/USD", "ETH/USD")
    async with running(csim, stream):
        for s in ("BTC/USD", "ETH/USD"): await eventually(lambda: rebuilt(s) == expected(s), what=f"{s} snapshot")
        tc = trading(csim)
        for step in range(24):
            if step == 10:                                                           # our taker order eats the top of the asks
                await sdk(tc.submit_order, MarketOrderRequest(symbol="BTC/USD", qty=0.5, side=OrderSide.BUY, time_in_force=TimeInForce.GTC))
                await csim.advance_ms(0)
            else: await csim.advance_ms(5_000)
            for s in ("BTC/USD", "ETH/USD"): await eventually(lambda: rebuilt(s) == expected(s), what=f"{s} after step {step}")
    assert sorted(resets) == ["BTC/USD", "ETH/USD"]                                  # one r:true snapshot each, then diffs only


async def test_stock_quotes_and_bars_arrive_on_the_iex_stream(ssim):
    quotes, bars = [], []
    async def on_quote(q): quotes.append(q)
    async def on_bar(b): bars.append(b)
    stream = StockDataStream(KEY, SECRET, url_override=ssim.stock_stream_url)
    stream.subscribe_quotes(on_quote, "AAPL", "SPY")
    stream.subscribe_bars(on_bar, "AAPL")
    async with running(ssim, stream):
        await eventually(lambda: any(c.get("subs") for c in ssim.ws_connections.values()), what="subscription")
        for _ in range(12):
            await ssim.advance_ms(15_000)
            for s in ("AAPL", "SPY"):
                top = ssim.quote(s)
                await eventually(lambda: any(q.symbol == s and q.timestamp == ms_to_dt(top["t"]) for q in quotes), what=f"{s} quote")
        await eventually(lambda: len(bars) >= 2, what="two AAPL minute bars")
    last = [q for q in quotes if q.symbol == "AAPL"][-1]
    top = ssim.quote("AAPL")
    assert (last.bid_price, last.ask_price, last.bid_size, last.ask_size, last.bid_exchange, last.tape) == (top["bp"], top["ap"], top["bs"], top["as"], "V", "C")
    assert last.bid_price < last.ask_price
    minutes = ssim.markets["AAPL"].minutes
    for b in bars:
        i = int(np.searchsorted(minutes.ts, dt_to_ms(b.timestamp)))
        assert (b.open, b.close, b.volume, b.trade_count) == (minutes.o[i], minutes.c[i], minutes.v[i], 3)


async def test_wrong_keys_are_refused_on_rest_and_on_every_stream(csim):
    e = await api_error(trading(csim, KEY, "wrong").get_account)
    assert (e.status_code, json.loads(str(e))) == (401, {"message": "unauthorized."})
    e = await api_error(trading(csim, "NOKEY", SECRET).get_clock)
    assert e.status_code == 401
    md = CryptoHistoricalDataClient("NOKEY", "x", url_override=csim.url)
    e = await api_error(md.get_crypto_latest_orderbook, CryptoLatestOrderbookRequest(symbol_or_symbols="BTC/USD"))
    assert e.status_code == 401
    got = []
    async def on_quote(q): got.append(q)
    async def on_update(u): got.append(u)
    ds = CryptoDataStream(KEY, "wrong", url_override=csim.crypto_stream_url)
    ds.subscribe_quotes(on_quote, "BTC/USD")
    ts = TradingStream(KEY, "wrong", url_override=csim.trading_stream_url)
    ts.subscribe_trade_updates(on_update)
    async with running(csim, ds, ts):
        await eventually(lambda: auths(csim, CRYPTO_WS, 402) and auths(csim, "/stream", 401), what="both refusals")
        await csim.advance_ms(60_000)
        await sdk(trading(csim).submit_order, MarketOrderRequest(symbol="BTC/USD", qty=0.001, side=OrderSide.BUY, time_in_force=TimeInForce.GTC))
        await asyncio.sleep(0.3)
    assert got == [] and not auths(csim, CRYPTO_WS, 200) and not auths(csim, "/stream", 200)


async def test_one_data_connection_per_key_the_second_gets_406(csim):
    a, b = [], []
    async def on_a(q): a.append(q)
    async def on_b(q): b.append(q)
    first = CryptoDataStream(KEY, SECRET, url_override=csim.crypto_stream_url)
    first.subscribe_quotes(on_a, "BTC/USD")
    second = CryptoDataStream(KEY, SECRET, url_override=csim.crypto_stream_url)
    second.subscribe_quotes(on_b, "BTC/USD")
    async with running(csim, first):
        await eventually(lambda: auths(csim, CRYPTO_WS, 200), what="first auth")
        async with running(csim, second):
            await eventually(lambda: auths(csim, CRYPTO_WS, 406), what="406 for the second connection")
            for _ in range(8): await csim.advance_ms(15_000)
            await eventually(lambda: len(a) >= 4, what="quotes on the first connection")
            assert b == [] and len(auths(csim, CRYPTO_WS, 200)) == 1
    async with aiohttp.ClientSession() as http:                                     # the frame itself, and the free plan's 409 on SIP
        csim.hold_slot(KEY, CRYPTO_WS)
        assert await raw_auth(http, csim.crypto_stream_url) == [{"T": "error", "code": 406, "msg": "connection limit exceeded"}]
        csim.hold_slot(KEY, CRYPTO_WS, on=False)
        assert await raw_auth(http, csim.ws_base + "/v2/sip") == [{"T": "error", "code": 409, "msg": "insufficient subscription"}]
        assert await raw_auth(http, csim.crypto_stream_url, secret="bad") == [{"T": "error", "code": 402, "msg": "auth failed"}]


async def raw_auth(http, url, secret=SECRET):
    "Connect with alpaca-py's headers, authenticate, return the answer to auth."
    async with http.ws_connect(url, headers={"Content-Type": "application/msgpack"}) as ws:
        assert msgpack.unpackb((await ws.receive(timeout=5)).data) == [{"T": "success", "msg": "connected"}]
        await ws.send_bytes(msgpack.packb({"action": "auth", "key": KEY, "secret": secret}))
        return msgpack.unpackb((await ws.receive(timeout=5)).data)


async def test_wire_frames_are_msgpack_with_timestamp_ext_and_json_without_the_header(csim):
    async with aiohttp.ClientSession() as http:
        async with http.ws_connect(csim.crypto_stream_url, headers={"Content-Type": "application/msgpack"}) as ws:
            first = await ws.receive(timeout=5)
            assert first.type == aiohttp.WSMsgType.BINARY and msgpack.unpackb(first.data) == [{"T": "success", "msg": "connected"}]
            await ws.send_bytes(msgpack.packb({"action": "auth", "key": KEY, "secret": SECRET}))
            assert msgpack.unpackb((await ws.receive(timeout=5)).data) == [{"T": "success", "msg": "authenticated"}]
            await ws.send_bytes(msgpack.packb({"trades": ["BTC/USD"], "orderbooks": ["BTC/USD"], "action": "subscribe"}))
            ack = msgpack.unpackb((await ws.receive(timeout=5)).data)
            assert ack == [{"T": "subscription", "trades": ["BTC/USD"], "quotes": [], "orderbooks": ["BTC/USD"], "bars": [], "updatedBars": [], "dailyBars": []}]
            [snap] = msgpack.unpackb((await ws.receive(timeout=5)).data)
            assert list(snap)[0] == "T" and snap["r"] is True and isinstance(snap["t"], msgpack.Timestamp)
            assert len(snap["b"]) == len(snap["a"]) == 20
            await csim.advance_ms(60_000)
            msgs = msgpack.unpackb((await ws.receive(timeout=5)).data)
            trades = [m for m in msgs if m["T"] == "t"]
            assert trades and all(isinstance(m["t"], msgpack.Timestamp) and m["tks"] in ("B", "S") for m in trades)
            assert any(m["T"] == "o" and "b" in m and "a" in m and "r" not in m for m in msgs)
        async with http.ws_connect(csim.crypto_stream_url) as ws:                       # no msgpack header: JSON text, t as RFC 3339
            first = await ws.receive(timeout=5)
            assert first.type == aiohttp.WSMsgType.TEXT and json.loads(first.data) == [{"T": "success", "msg": "connected"}]
        csim.ws_symbol_limit = 1
        async with http.ws_connect(csim.crypto_stream_url, headers={"Content-Type": "application/msgpack"}) as ws:
            await ws.receive(timeout=5)
            await ws.send_bytes(msgpack.packb({"action": "auth", "key": KEY, "secret": SECRET}))
            await ws.receive(timeout=5)
            await ws.send_bytes(msgpack.packb({"quotes": ["BTC/USD", "ETH/USD"], "action": "subscribe"}))
            assert msgpack.unpackb((await ws.receive(timeout=5)).data) == [{"T": "error", "code": 405, "msg": "symbol limit exceeded"}]


# ---------------------------------------------------------------- fault injection

async def test_stream_disconnects_and_a_silent_stall_are_survived_by_the_sdk(csim):
    quotes = []
    async def on_quote(q): quotes.append(q)
    stream = CryptoDataStream(KEY, SECRET, url_override=csim.crypto_stream_url, data_timeout=1.0)
    stream.subscribe_quotes(on_quote, "BTC/USD")
    async def flowing(what):
        n = len(quotes)
        for _ in range(200):
            await csim.advance_ms(15_000)
            if len(quotes) > n: return
            await asyncio.sleep(0.05)
        raise AssertionError(f"no quotes {what}")
    async with running(csim, stream):
        await eventually(lambda: auths(csim, CRYPTO_WS, 200), what="auth")
        await flowing("at start")
        assert await csim.close_ws(path=CRYPTO_WS) == 1                               # server restart: a close frame
        await eventually(lambda: len(auths(csim, CRYPTO_WS, 200)) == 2, what="reconnect after close")
        await flowing("after the close")
        assert await csim.drop_ws(path=CRYPTO_WS) == 1                                # network failure: no close frame
        await eventually(lambda: len(auths(csim, CRYPTO_WS, 200)) == 3, timeout=15, what="reconnect after a drop")
        await flowing("after the drop")
        csim.stall_channel("quotes")                                                  # silent: the socket stays up, pings answered
        await asyncio.sleep(0.3)                                                      # quotes already on the wire arrive
        n, t0 = len(quotes), time.monotonic()
        await csim.advance_ms(15_000)
        assert any(c["path"] == CRYPTO_WS for c in csim.ws_connections.values())     # still connected, just mute
        while len(auths(csim, CRYPTO_WS, 200)) < 4 and time.monotonic() - t0 < 15:
            await csim.advance_ms(15_000)
            await asyncio.sleep(0.1)
        assert len(quotes) == n and len(auths(csim, CRYPTO_WS, 200)) >= 4            # the SDK's data_timeout noticed the silence
        csim.stall_channel("quotes", on=False)
        await flowing("after the stall")


@contextlib.asynccontextmanager
async def listening(csim, got: list, record):
    "A TradingStream appending `record(update)` to `got`, listening; yields a market-buy function."
    async def on_update(u): got.append(record(u))
    ts = TradingStream(KEY, SECRET, url_override=csim.trading_stream_url)
    ts.subscribe_trade_updates(on_update)
    tc = trading(csim)
    async with running(csim, ts):
        await eventually(lambda: any(c.get("listening") for c in csim.ws_connections.values()), what="listening")
        yield lambda: sdk(tc.submit_order, MarketOrderRequest(symbol="BTC/USD", qty=0.001, side=OrderSide.BUY, time_in_force=TimeInForce.GTC))


async def test_trading_stream_reconnects_after_a_drop_and_keeps_delivering(csim):
    got = []
    async with listening(csim, got, lambda u: (u.event, str(u.order.id))) as buy:
        o1 = await buy()
        await eventually(lambda: ("fill", str(o1.id)) in got, what="first fill")
        assert await csim.drop_ws(path="/stream") == 1
        await eventually(lambda: len(auths(csim, "/stream", 200)) == 2 and any(c.get("listening") for c in csim.ws_connections.values()),
                         timeout=15, what="re-authenticated and listening")
        o2 = await buy()
        await eventually(lambda: ("fill", str(o2.id)) in got, what="fill after the reconnect")
    assert got == [("new", str(o1.id)), ("fill", str(o1.id)), ("new", str(o2.id)), ("fill", str(o2.id))]


async def test_fill_updates_can_be_duplicated_and_delivered_out_of_order(csim):
    got = []
    async with listening(csim, got, lambda u: (u.event, str(u.order.id), getattr(u, "execution_id", None))) as buy:
        csim.duplicate_trade_updates(1)
        o1 = await buy()
        await eventually(lambda: sum(1 for e, i, _ in got if (e, i) == ("fill", str(o1.id))) == 2, what="the fill twice")
        fills = [x for x in got if x[:2] == ("fill", str(o1.id))]
        assert fills[0] == fills[1] and fills[0][2]                                   # the same execution id, twice
        csim.reorder_trade_updates(1)
        o2 = await buy()
        o3 = await buy()
        await eventually(lambda: ("fill", str(o2.id)) in [x[:2] for x in got] and ("fill", str(o3.id)) in [x[:2] for x in got], what="both fills")
    tail = [x[:2] for x in got if x[1] in (str(o2.id), str(o3.id))]
    assert tail == [("new", str(o2.id)), ("new", str(o3.id)), ("fill", str(o2.id)), ("fill", str(o3.id))]     # o2's fill came after o3's new
    assert [e["event"] for e in csim.trade_updates[KEY]].count("fill") == 3                                   # the record holds each event once


async def test_http_faults_429_5xx_delay_and_order_faults(csim):
    tc = trading(csim)
    csim.fail_next(1, 429, path="/v2/account")
    t0 = time.monotonic()
    acct = await sdk(tc.get_account)                                                  # alpaca-py sleeps 3 s and retries a 429
    assert acct.cash == "100000" and time.monotonic() - t0 >= 2.9 and csim.n_requests["/v2/account"] == 2
    csim.fail_next(1, 500)
    e = await api_error(tc.get_clock)
    assert (e.status_code, json.loads(str(e))) == (500, {"code": 50010000, "message": "internal server error occurred"})
    csim.fail_next(1, 503, path="/v2/orders")
    e = await api_error(tc.submit_order, MarketOrderRequest(symbol="BTC/USD", qty=0.001, side=OrderSide.BUY, time_in_force=TimeInForce.GTC))
    assert e.status_code == 503 and csim.orders_json(KEY) == []
    csim.set_delay(300, "/v2/clock")
    t0 = time.monotonic()
    await sdk(tc.get_clock)
    assert time.monotonic() - t0 >= 0.3
    csim.set_delay(0, "/v2/clock")
    csim.force_order_error("insufficient buying power")
    e = await api_error(tc.submit_order, MarketOrderRequest(symbol="BTC/USD", qty=0.001, side=OrderSide.BUY, time_in_force=TimeInForce.GTC))
    assert (e.status_code, e.message) == (403, "insufficient buying power")
    csim.reject_next_orders(1)
    o = await sdk(tc.submit_order, MarketOrderRequest(symbol="BTC/USD", qty=0.001, side=OrderSide.BUY, time_in_force=TimeInForce.GTC))
    assert o.status.value == "accepted" and (await sdk(tc.get_order_by_id, o.id)).status.value == "rejected"
    assert [e["event"] for e in csim.trade_updates[KEY]] == ["rejected"] and csim.positions_json(KEY) == []
    bid = csim.book_levels("BTC/USD")["b"][0][0]
    csim.partial_fill_schedule(KEY, [0.001, 0.002])
    o = await sdk(tc.submit_order, LimitOrderRequest(symbol="BTC/USD", qty=0.004, side=OrderSide.BUY, time_in_force=TimeInForce.GTC, limit_price=bid - 300))
    await csim.advance_ms(30_000)
    ev = [(e["event"], e.get("qty"), e["order"]["filled_qty"], e["order"]["status"]) for e in csim.trade_updates[KEY] if e["order"]["id"] == str(o.id)]
    assert ev == [("new", None, "0", "new"), ("partial_fill", "0.001", "0.001", "partially_filled"), ("partial_fill", "0.002", "0.003", "partially_filled")]
    assert (await sdk(tc.get_order_by_id, o.id)).filled_qty == "0.003"
    csim.fail_after(1, 500, path="/v2/orders", method="POST")                         # carried out, then the answer is lost
    e = await api_error(tc.submit_order, LimitOrderRequest(symbol="BTC/USD", qty=0.02, side=OrderSide.BUY, time_in_force=TimeInForce.GTC,
                                                           limit_price=1000, client_order_id="fa-1"))
    assert e.status_code == 500 and csim.orders_json(KEY)[-1]["client_order_id"] == "fa-1"
    csim.fail_after(1, 504, path="/v2/orders", method="POST")                         # alpaca-py retries a 504: the retry meets the first
    e = await api_error(tc.submit_order, LimitOrderRequest(symbol="BTC/USD", qty=0.02, side=OrderSide.BUY, time_in_force=TimeInForce.GTC,
                                                           limit_price=1000, client_order_id="fa-2"))
    assert (e.status_code, e.message) == (422, "client_order_id must be unique") and len([o for o in csim.orders_json(KEY) if o['client_order_id'].startswith('fa-')]) == 2
    await sdk(tc.cancel_orders)


# ---------------------------------------------------------------- command line

def test_command_line_starts_a_simulator_that_alpaca_py_uses():
    proc = subprocess.Popen([str(BIN / "python"), "-m", "tri_engine.sim", "alpaca", "--port", "0", "--speed", "60", "--key", "CLIKEY",
                             "--secret", "cli-secret", "--crypto", "BTC/USD", "--stocks", "AAPL", "--span-days", "1"],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline, line = time.monotonic() + 60, ""
        while time.monotonic() < deadline and "listening on" not in line:
            r, _, _ = select.select([proc.stdout], [], [], 1.0)
            if r: line = proc.stdout.readline()
            assert proc.poll() is None, proc.stderr.read()
        url = line.strip().rsplit(" ", 1)[-1]
        assert url.startswith("http://127.0.0.1:")
        tc = TradingClient("CLIKEY", "cli-secret", url_override=url)
        c1 = tc.get_clock()
        assert float(tc.get_account().cash) == 100_000.0
        time.sleep(1.0)
        assert (tc.get_clock().timestamp - c1.timestamp).total_seconds() > 30            # 60x wall time
        with pytest.raises(APIError):
            TradingClient("CLIKEY", "wrong", url_override=url).get_account()
    finally:
        proc.send_signal(signal.SIGINT)
        try: proc.wait(timeout=15)
        except subprocess.TimeoutExpired: proc.kill()
    assert proc.returncode == 0, proc.stderr.read()
