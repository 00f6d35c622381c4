"""Fault campaign on Hyperliquid: the seeded, randomized stateful driver of tests/campaign_support.py against the Hyperliquid
simulator with the unmodified SDK.

Each scenario is a fresh simulator (at a seeded point of the July 2025 replay), a fresh funded account, a fresh run directory
and an Engine with its journal. A seeded random sequence of steps (market moves, WS drop / close / stall, HTTP 429/5xx,
added latency, inner order rejects, partial / duplicate / out-of-order fills, a manual trade from another SDK client on the
same account, kill switch on/off, crash + restart on the same journal at a random point of an order's life) is applied and
every invariant listed in campaign_support is checked after every step.

A crash is in-process (the engine object is abandoned without any cleanup at a chosen point: between steps, after the
intent is journaled and before the send, or after the send and before the answer is booked); `test_kill_9_...` kills a
real engine process with SIGKILL and restarts it on the same run directory. bench/bench_fault_campaign.py runs the same
driver for >= 1,000 scenarios and prints the figures.
"""
from __future__ import annotations
import dataclasses, math, os, random
from collections import Counter, defaultdict
from pathlib import Path
import pytest
from eth_account import Account
from hyperliquid.exchange import Exchange
from hyperliquid.info import Info
from tri_engine.engines.hl import hl_engine_config, build_gate, HlEngineExecution
from tri_engine.risk import MacroCalendar
from tri_engine.sim.hyperliquid import HyperliquidSim, replay_start_ms
from tri_engine.venues.hyperliquid.config import hl_config
from tri_engine.venues.hyperliquid.data import HlData
from tri_engine.venues.hyperliquid.parsing import parse_l2book
from campaign_support import Harness, Kill9Venue, Report, drive, kill9_scenario, plan, STEPS, sdk

COINS = ("ETH", "SOL", "BTC", "xyz:TSLA")


class HlHarness(Harness):
    "The Hyperliquid account of one scenario: perp + xyz (HIP-3) margin, our HlEngineExecution and HlData over the SDK."
    engine_name, log_file, venue_name, fill_channel = "hl", "hl_engine.jsonl", "hl", "userFills"

    def __init__(self, sim: HyperliquidSim, run_dir: Path, seed: int, coins=COINS, report: Report | None = None, breaker_loss_usd: float | None = None):
        super().__init__(sim, run_dir, seed, coins, report, breaker_loss_usd)
        self.acct = Account.create()
        sim.fund(self.acct.address, 10_000.0, "perp"); sim.fund(self.acct.address, 5_000.0, "xyz")
        self.cfg = dataclasses.replace(hl_config(self.settings, sim.url), coins=self.coins, dexs=("xyz",) if any(":" in c for c in coins) else ())
        self.manual: Exchange | None = None
        self.info: Info | None = None

    async def make(self, clock, log, journal):
        inner = await sdk(HlEngineExecution, self.cfg, self.acct, self.acct.address, log)
        data = await sdk(HlData, self.cfg, list(self.coins), log)
        ecfg = dataclasses.replace(hl_engine_config(self.settings, self.coins, journal.run_id, recalibrate=False), unknown_order_grace_s=1.0)
        return inner, data, ecfg, build_gate(self.settings, self.coins, await inner.account_value(), MacroCalendar([]))

    async def books(self) -> None:
        for c in self.coins:
            try: raw = await sdk(self.eng.data.http.l2_snapshot, c)
            except Exception: continue                             # an injected HTTP fault hit the feed: the book just goes stale
            b = parse_l2book(raw)
            if b.bid_px and b.ask_px: await self.eng.on_book(b)

    def http_fault(self, rng: random.Random) -> None:
        self.sim.fail_next(rng.randint(1, 3), rng.choice([429, 500, 502, 503]), rng.choice(["/exchange", "/info", None]))

    def inner_reject(self, rng: random.Random) -> None:
        self.sim.force_order_error(rng.choice(["Insufficient margin to place order. asset=1", "Order has invalid price.",
                                               "Post only order would have immediately matched, bbo was 1@2"]))

    def latency(self, ms: int) -> None: self.sim.set_delay(ms, "/exchange")
    def partial_fills(self, chunks) -> None: self.sim.partial_fill_schedule(self.acct.address, chunks)

    async def manual_trade(self, rng: random.Random) -> None:
        "Someone trades the account by hand: an IOC from another SDK client holding the same key."
        if self.manual is None: self.manual = await sdk(Exchange, self.acct, self.sim.url, perp_dexs=["", "xyz"])
        coin = rng.choice([c for c in self.coins if c in self.eng.books])
        b = self.eng.books[coin]
        buy = rng.random() < 0.5
        notional = rng.choice([30.0, 60.0, 120.0])
        info = self.eng.info[coin]
        sz = round(max(info.lot, math.floor(notional / b.mid / info.lot) * info.lot), info.sz_decimals)
        px = self.eng.ex.round_px(coin, b.best_ask * 1.01 if buy else b.best_bid * 0.99)
        try: await sdk(self.manual.order, coin, buy, sz, px, {"limit": {"tif": "Ioc"}})
        except Exception: return
        self.manual_coins.add(coin)

    async def venue(self):
        if self.info is None: self.info = await sdk(Info, self.sim.url, skip_ws=True, perp_dexs=["", "xyz"])
        pos, orders = {}, []
        for dex in ("", "xyz"):
            st = await sdk(self.info.user_state, self.acct.address, dex)
            pos.update({p["position"]["coin"]: float(p["position"]["szi"]) for p in st["assetPositions"]})
            orders += [(o["coin"], str(o["oid"]), o.get("cloid")) for o in await sdk(self.info.frontend_open_orders, self.acct.address, dex)]
        return pos, orders


async def run_scenario(seed: int, root: Path, n_steps: int = 10, coins=COINS) -> Report:
    "One seeded scenario; returns its report."
    rng = random.Random(seed * 7919 + 17)
    rep = Report(scenarios=1)
    start = replay_start_ms() + rng.randrange(0, 96) * 3_600_000 + rng.randrange(0, 60) * 60_000
    async with HyperliquidSim(list(coins), speed=None, start_ms=start) as sim:
        h = HlHarness(sim, root / f"s{seed}", seed, coins, rep, breaker_loss_usd=rng.choice([None, None, None, 2.0]))
        try: await drive(h, rng, n_steps)
        finally: await h.close()
    return rep


# ---- CI size --------------------------------------------------------------------------------

CI_SEEDS = range(13, 21)                   # 8 seeds that together draw every kind of step, 6 crashes among them


@pytest.mark.parametrize("seed", CI_SEEDS)
async def test_seeded_fault_campaign_keeps_every_invariant(seed, tmp_path):
    rep = await run_scenario(seed, tmp_path, n_steps=12)
    assert rep.steps == 12
    assert rep.violations == [], "\n".join(rep.lines())


def test_every_fault_kind_is_exercised_by_the_ci_seeds():
    "The CI seeds together draw every kind of step (a campaign that never crashes proves nothing about recovery)."
    kinds = Counter(k for seed in CI_SEEDS for k in plan(seed, 12))
    missing = {n for n, _ in STEPS} - set(kinds)
    assert not missing, f"no CI seed draws {missing}: {dict(kinds)}"


# ---- a real process, kill -9 ------------------------------------------------------------------

class HlKill9(Kill9Venue):
    "A Hyperliquid simulator at real speed, a funded key in the engine's environment, `python -m tri_engine.engines.hl`."
    log_name, intent_event, journal_engine = "hl_engine.jsonl", "hl_order_intent", "hl"
    dust = {"ETH": 1.5e-4, "SOL": 1.5e-2, "BTC": 1.5e-5}

    def __init__(self, rng: random.Random, speed: float = 20.0, coins=("ETH", "SOL", "BTC")):
        self.acct, self.speed, self.coins = Account.create(), speed, coins
        self.env = {**os.environ, "HL_PRIVATE_KEY": self.acct.key.hex(), "EXECUTION_MODE": "SIM", "HL_UNIVERSE": "", "HIP3_UNIVERSE": ""}
        self.sim = HyperliquidSim(list(coins), speed=speed, start_ms=replay_start_ms() + rng.randrange(0, 72) * 3_600_000,
                                  book_push_ms=max(500, int(100 * speed)), funded={self.acct.address: {"perp": 10_000.0}})

    async def __aenter__(self):
        await self.sim.__aenter__()
        self.manual = await sdk(Exchange, self.acct, self.sim.url)
        self.info = await sdk(Info, self.sim.url, skip_ws=True)
        return self
    async def __aexit__(self, *exc): await self.sim.__aexit__(*exc)

    def command(self, run_dir: Path) -> list[str]:
        return ["tri_engine.engines.hl", "--run-dir", str(run_dir), "--venue-url", self.sim.url, "--speed", str(self.speed), "--universe", ",".join(self.coins)]

    async def manual_trade(self, rng: random.Random) -> str | None:
        coin = rng.choice(self.coins)
        book = await sdk(self.info.l2_snapshot, coin)
        buy = rng.random() < 0.5
        px = float(book["levels"][1 if buy else 0][0]["px"]) * (1.01 if buy else 0.99)
        sz = {"ETH": 0.02, "SOL": 0.3, "BTC": 0.0005}[coin]
        resp = await sdk(self.manual.order, coin, buy, sz, float(f"{px:.5g}"), {"limit": {"tif": "Ioc"}})
        return coin if "filled" in str(resp) else None

    async def truth(self):
        st = await sdk(self.info.user_state, self.acct.address)
        pos = {p["position"]["coin"]: float(p["position"]["szi"]) for p in st["assetPositions"]}
        carried = defaultdict(set)
        for h in await sdk(self.info.historical_orders, self.acct.address):
            if cl := h["order"].get("cloid"): carried[cl.lower()].add(h["order"]["oid"])
        return pos, await sdk(self.info.frontend_open_orders, self.acct.address), carried


async def test_kill_9_and_restart_on_the_same_journal(tmp_path):
    rep = await kill9_scenario(HlKill9(random.Random(3)), 3, tmp_path, kills=2)
    assert rep.faults["kill_9"] == 2 and rep.restarts == 2
    assert rep.violations == [], "\n".join(rep.lines())
