"""Fault campaign on Alpaca crypto spot: the driver of tests/campaign_support.py against the Alpaca simulator with the
unmodified alpaca-py (TradingClient for orders and truth, TradingStream for trade_updates).

Same steps, crash points and invariants as the Hyperliquid campaign; what differs is the venue: entries are buys only
(spot is long only), a buy's fee is paid in the coin bought, a reprice is a replace or a cancel + resubmit under
`<cid>-r<n>`, 5xx answers to an order are ambiguous (the engine looks the order up by client id), alpaca-py retries a 429
itself (after 3 s), and a manual trade comes from a second TradingClient on the same keys. `test_kill_9_...` kills a real
`python -m tri_engine.engines.alpaca` process with SIGKILL and restarts it on the same run directory.
"""
from __future__ import annotations
import asyncio, dataclasses, math, os, random, signal, sys
from collections import Counter, defaultdict
from pathlib import Path
import pytest
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import OrderSide, QueryOrderStatus, TimeInForce
from alpaca.trading.requests import GetOrdersRequest, LimitOrderRequest
from tri_engine.core import BookSnapshot, Side, WallClock
from tri_engine.engines.alpaca import CRYPTO, alpaca_universe, alpaca_engine_config, book_gate
from tri_engine.risk import MacroCalendar
from tri_engine.sim.alpaca import AlpacaSim
from tri_engine.sim.alpaca_wire import default_start_ms
from tri_engine.store import Journal
from tri_engine.venues.alpaca.config import alpaca_config
from tri_engine.venues.alpaca.data import AlpacaData
from tri_engine.venues.alpaca.execution import AlpacaExecution
from tri_engine.venues.alpaca.parsing import parse_order, positions_map
from campaign_support import Harness, Kill9Venue, Report, drive, kill9_scenario, sdk

PAIRS = ("BTC/USD", "ETH/USD", "SOL/USD")
KEY, SECRET = "PKCAMPAIGN000000001", "campaign-secret-" + "c" * 24


class AlpacaHarness(Harness):
    "The Alpaca crypto account of one scenario: our AlpacaExecution over alpaca-py, books from the simulator's orderbook."
    engine_name, log_file, venue_name, fill_channel = "crypto_spot", "engine.jsonl", "alpaca", "trade_updates"
    entry_sides = (Side.BUY,)

    def __init__(self, sim: AlpacaSim, run_dir: Path, seed: int, pairs=PAIRS, report: Report | None = None, breaker_loss_usd: float | None = None):
        super().__init__(sim, run_dir, seed, pairs, report, breaker_loss_usd)
        self.cfg = alpaca_config(self.settings, "crypto", sim.url, sim_keys=(KEY, SECRET))
        self.tc = TradingClient(KEY, SECRET, raw_data=True, url_override=sim.url)     # the operator's own client on the same account

    async def make(self, clock, log, journal):
        inner = await sdk(AlpacaExecution, self.cfg, list(self.coins), log, 2.0)
        data = AlpacaData(self.cfg, list(self.coins), log, preseed_source="none", now_ms=clock.now_ms)
        ecfg = dataclasses.replace(alpaca_engine_config(self.settings, CRYPTO, self.coins, journal.run_id), unknown_order_grace_s=1.0)
        uni = alpaca_universe(CRYPTO, self.settings, list(self.coins))
        return inner, data, ecfg, book_gate(self.settings, CRYPTO, uni, await inner.account_value(), MacroCalendar([]))

    async def fills_ready(self) -> None:
        for _ in range(100):                                     # the trade stream has authenticated and listens
            if any(c.get("listening") for c in self.sim.ws_connections.values()): break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.1)

    async def books(self) -> None:
        for s in self.coins:                                     # the orderbook stream's view (the data client is tested on its own)
            lv = self.sim.book_levels(s)
            if not lv["b"] or not lv["a"]: continue
            await self.eng.on_book(BookSnapshot(venue="alpaca", symbol=s, ts_ms=self.sim.now_ms, bid_px=tuple(p for p, _ in lv["b"]),
                                                bid_sz=tuple(z for _, z in lv["b"]), ask_px=tuple(p for p, _ in lv["a"]), ask_sz=tuple(z for _, z in lv["a"])))

    def http_fault(self, rng: random.Random) -> None:
        if rng.random() < 0.4:                                   # carried out, but the answer is a 5xx (a 504 alpaca-py retries)
            self.sim.fail_after(1, rng.choice([500, 502, 504]), "/v2/orders", rng.choice(["POST", "PATCH", "DELETE"]))
            return
        st = rng.choice([429, 500, 502, 503, 503])
        self.sim.fail_next(1 if st == 429 else rng.randint(1, 3), st, rng.choice(["/v2/orders", "/v2/positions", "/v2/account", None]))

    def inner_reject(self, rng: random.Random) -> None:
        if rng.random() < 0.5: self.sim.force_order_error(rng.choice(["insufficient balance for USD", "insufficient buying power"]))
        else: self.sim.reject_next_orders(1)                      # accepted, then rejected on the stream

    def latency(self, ms: int) -> None: self.sim.set_delay(ms, "/v2/orders")
    def partial_fills(self, chunks) -> None: self.sim.partial_fill_schedule(KEY, chunks)

    async def manual_trade(self, rng: random.Random) -> None:
        "Someone trades the account by hand: a marketable IOC from their own TradingClient (a sell only of what is held)."
        pos, _ = await self.venue()
        coin = rng.choice([c for c in self.coins if c in self.eng.books])
        b, info = self.eng.books[coin], self.eng.info[coin]
        buy = pos.get(coin, 0.0) <= 0 or rng.random() < 0.5
        qty = rng.choice([30.0, 60.0, 120.0]) / b.mid if buy else pos[coin] * rng.choice([0.3, 1.0])
        qty = math.floor(qty / info.lot) * info.lot
        px = self.eng.ex.round_px(coin, b.best_ask * 1.01 if buy else b.best_bid * 0.99)
        req = LimitOrderRequest(symbol=coin, qty=round(qty, info.sz_decimals), side=OrderSide.BUY if buy else OrderSide.SELL,
                                time_in_force=TimeInForce.IOC, limit_price=px)
        try: await sdk(self.tc.submit_order, req)
        except Exception: return
        self.manual_coins.add(coin)

    async def venue(self):
        pos = positions_map(await sdk(self.tc.get_all_positions), True)
        rows = await sdk(self.tc.get_orders, GetOrdersRequest(status=QueryOrderStatus.OPEN, limit=500))
        return pos, [(o.symbol, o.venue_oid, o.cid or None) for o in map(parse_order, rows)]


async def run_scenario(seed: int, root: Path, n_steps: int = 10, pairs=PAIRS) -> Report:
    "One seeded scenario; returns its report."
    rng = random.Random(seed * 7919 + 23)
    rep = Report(scenarios=1)
    start = default_start_ms() + rng.randrange(0, 600) * 3_600_000 + rng.randrange(0, 60) * 60_000    # a seeded point of the 30 days
    async with AlpacaSim(crypto=list(pairs), stocks=[], speed=None, start=start, key=KEY, secret=SECRET) as sim:
        h = AlpacaHarness(sim, root / f"a{seed}", seed, pairs, rep, breaker_loss_usd=rng.choice([None, None, None, 2.0]))
        try: await drive(h, rng, n_steps)
        finally: await h.close()
    return rep


# ---- CI size --------------------------------------------------------------------------------

CI_SEEDS = range(13, 21)


@pytest.mark.parametrize("seed", CI_SEEDS)
async def test_seeded_alpaca_fault_campaign_keeps_every_invariant(seed, tmp_path):
    rep = await run_scenario(seed, tmp_path, n_steps=12)
    assert rep.steps == 12
    assert rep.violations == [], "\n".join(rep.lines())


# ---- a real process, kill -9 ------------------------------------------------------------------

class AlpacaKill9(Kill9Venue):
    "An Alpaca simulator at replay speed, its keys in the engine's environment, `python -m tri_engine.engines.alpaca --book crypto`."
    log_name, intent_event, journal_engine = "engine.jsonl", "alpaca_order_intent", "crypto_spot"

    def __init__(self, rng: random.Random, speed: float = 60.0, pairs=PAIRS):
        self.speed, self.pairs = speed, pairs
        self.env = {**os.environ, "ALPACA_API_KEY_ID": KEY, "ALPACA_API_SECRET_KEY": SECRET, "ALPACA_TRADING_MODE": "paper",
                    "EXECUTION_MODE": "SIM", "CRYPTO_UNIVERSE": ""}
        self.sim = AlpacaSim(crypto=list(pairs), stocks=[], speed=speed, key=KEY, secret=SECRET,
                             start=default_start_ms() + rng.randrange(0, 400) * 3_600_000)
        self.dust = {p: 1.5e-9 * 10 for p in pairs}               # ten quantity steps: the fee in the coin is rounded per fill

    async def __aenter__(self):
        await self.sim.__aenter__()
        self.tc = TradingClient(KEY, SECRET, raw_data=True, url_override=self.sim.url)
        return self
    async def __aexit__(self, *exc): await self.sim.__aexit__(*exc)

    def command(self, run_dir: Path) -> list[str]:
        return ["tri_engine.engines.alpaca", "--book", "crypto", "--run-dir", str(run_dir), "--venue-url", self.sim.url, "--speed", str(self.speed),
                "--universe", ",".join(self.pairs)]

    async def manual_trade(self, rng: random.Random) -> str | None:
        pair = rng.choice(self.pairs)
        pos = positions_map(await sdk(self.tc.get_all_positions), True)
        lv = self.sim.book_levels(pair)
        buy = pos.get(pair, 0.0) <= 0 or rng.random() < 0.5
        qty = round(40.0 / lv["a"][0][0], 6) if buy else round(pos[pair] * 0.5, 6)
        px = round(lv["a"][0][0] * 1.01 if buy else lv["b"][0][0] * 0.99, 2 if lv["a"][0][0] > 1 else 4)
        req = LimitOrderRequest(symbol=pair, qty=qty, side=OrderSide.BUY if buy else OrderSide.SELL, time_in_force=TimeInForce.IOC, limit_price=px)
        try: o = parse_order(await sdk(self.tc.submit_order, req))
        except Exception: return None
        await asyncio.sleep(0.2)
        return pair if parse_order(await sdk(self.tc.get_order_by_id, o.venue_oid)).filled_qty > 0 else None

    async def truth(self):
        pos = positions_map(await sdk(self.tc.get_all_positions), True)
        rows = [parse_order(r) for r in await sdk(self.tc.get_orders, GetOrdersRequest(status=QueryOrderStatus.ALL, limit=500))]
        carried = defaultdict(set)
        for o in rows:
            if o.cid.startswith("0x"): carried[o.cid].add(o.venue_oid)     # the engine's client ids (a manual order has the venue's uuid)
        return pos, [o for o in rows if o.open], carried


async def test_kill_9_and_restart_on_the_same_journal(tmp_path):
    rep = await kill9_scenario(AlpacaKill9(random.Random(5)), 5, tmp_path, kills=2)
    assert rep.faults["kill_9"] == 2 and rep.restarts == 2
    assert rep.violations == [], "\n".join(rep.lines())
