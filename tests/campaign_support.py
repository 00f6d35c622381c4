"""The fault-campaign driver shared by both venues (tests/test_fault_campaign.py: Hyperliquid; tests/test_fault_campaign_alpaca.py:
Alpaca crypto spot). A venue harness says how to build the engine on its simulator, how to read the venue's truth with the
unmodified SDK, and how each fault is injected there; the steps, the crash points and every invariant are the same code.

Invariants checked after every step:

- believed position == venue position per symbol, within reconciliation time (at once, or after one reconcile sweep);
- no open venue order that the engine does not track as live;
- no client id submitted twice (across crashes), at most one open venue order per client id;
- caps, kill switch and circuit breaker never exceeded: every entry submit happened with the gate open, every journaled
  entry within the per-order and per-symbol caps;
- the journal is sound (PRAGMA integrity_check, foreign keys, Journal.check()).
"""
from __future__ import annotations
import asyncio, contextlib, dataclasses, json, random, time
from collections import Counter
from pathlib import Path
from tri_engine.config import load_settings
from tri_engine.core import EventLog, IntentKind, Side, cid_seq
from tri_engine.signals import SignalIntent
from tri_engine.engine.core import Engine

ROOT = Path(__file__).resolve().parent.parent


class SimClock:
    "The engine reads the simulator's replay time (the driver steps it)."
    def __init__(self, sim): self.sim = sim
    def now_ms(self) -> int: return self.sim.now_ms


class Crash(BaseException):
    "Simulated process death at a chosen point (a BaseException: nothing in the engine catches it)."


async def sdk(fn, *a, **kw):
    "Blocking SDK calls run off the loop (the simulator serves from this loop)."
    return await asyncio.to_thread(fn, *a, **kw)


class CrashingExecution:
    "Our venue execution client with a crash point and a ledger of every client id submitted (wraps our client, not the SDK)."
    def __init__(self, inner, h: "Harness"):
        self.inner, self.h, self.crash_at = inner, h, None
    def __getattr__(self, k): return getattr(self.inner, k)

    async def submit(self, cid, symbol, side, sz, px, tif, reduce_only):
        if self.crash_at == "before_submit": self.crash_at = None; raise Crash("after the intent was journaled, before the send")
        if self.crash_at == "lose_request": self.crash_at = None; raise ConnectionResetError("request lost on the way to the venue")
        self.h.on_submit(cid, symbol, reduce_only)
        ack = await self.inner.submit(cid, symbol, side, sz, px, tif, reduce_only)
        if self.crash_at == "after_submit": self.crash_at = None; raise Crash("after the send, before the answer was booked")
        if self.crash_at == "lose_answer": self.crash_at = None; raise ConnectionResetError("the venue's answer was lost")
        return ack


@dataclasses.dataclass
class Report:
    "What a campaign did."
    scenarios: int = 0
    steps: int = 0
    faults: Counter = dataclasses.field(default_factory=Counter)
    violations: list = dataclasses.field(default_factory=list)
    lag: int = 0                     # checks that needed a reconcile sweep before memory matched the venue
    restarts: int = 0
    restart_retries: int = 0
    recovered: Counter = dataclasses.field(default_factory=Counter)
    orders: int = 0
    fills: int = 0
    orphans_cancelled: int = 0
    corrections: Counter = dataclasses.field(default_factory=Counter)   # reconcile corrections of memory, by cause
    wall_s: float = 0.0

    def merge(self, o: "Report") -> None:
        for f in ("scenarios", "steps", "lag", "restarts", "restart_retries", "orders", "fills", "orphans_cancelled"):
            setattr(self, f, getattr(self, f) + getattr(o, f))
        self.faults.update(o.faults); self.recovered.update(o.recovered); self.corrections.update(o.corrections); self.violations += o.violations

    def lines(self) -> list[str]:
        out = [f"scenarios: {self.scenarios}", f"steps: {self.steps}", f"engine restarts after a crash: {self.restarts} (retried on a transport error: {self.restart_retries})",
               f"orders submitted: {self.orders}", f"fills booked: {self.fills}",
               f"memory matched the venue only after a reconcile sweep: {self.lag} checks",
               f"orphan orders cancelled by the sweep: {self.orphans_cancelled}", "faults injected by kind:"]
        out += [f"  {k:<28} {v}" for k, v in sorted(self.faults.items())]
        out += ["recovery found:"] + [f"  {k:<28} {v}" for k, v in sorted(self.recovered.items())]
        out += ["reconcile corrected memory (by cause):"] + [f"  {k:<28} {v}" for k, v in sorted(self.corrections.items())]
        out += [f"violations: {len(self.violations)}"] + [f"  {v}" for v in self.violations[:20]]
        return out


class Harness:
    """One scenario: a simulator account, a run directory, and the engine incarnations that live on it.

    A venue subclass provides `make` (execution client, data client, engine config, gate), `books`, `manual_trade`,
    `venue` (positions and open orders read with the SDK) and the fault hooks `http_fault`, `inner_reject`, `latency`."""
    engine_name = ""
    log_file = ""
    venue_name = ""
    fill_channel = ""                                         # the fill stream the simulator can stall
    entry_sides: tuple = (Side.BUY, Side.SELL)

    def __init__(self, sim, run_dir: Path, seed: int, symbols, report: Report | None = None, breaker_loss_usd: float | None = None):
        self.sim, self.run_dir, self.seed, self.coins = sim, run_dir, seed, tuple(symbols)
        self.rep = report or Report()
        self.breaker_loss_usd = breaker_loss_usd
        self.eng: Engine | None = None
        self.submits: Counter = Counter()
        self.killed = False
        self.manual_coins: set[str] = set()
        self._fills_task = None
        self.q: asyncio.Queue = asyncio.Queue()
        self.settings = load_settings(env={})
        self._reconcile_seen, self._orphans_seen, self.restarted = 0, 0, False

    # ---- incarnations ---------------------------------------------------------------------
    def on_submit(self, cid: str, symbol: str, reduce_only: bool) -> None:
        "Every submit any incarnation makes: a client id twice, or an entry past a closed gate, is a violation."
        self.submits[cid] += 1
        self.rep.orders += 1
        if self.submits[cid] > 1: self.violation(f"client id {cid} submitted {self.submits[cid]} times")
        if not reduce_only and (self.killed or self.eng.kill.halted): self.violation(f"entry {cid} on {symbol} submitted while the kill switch is on")
        if not reduce_only and self.eng.gate.breaker.halted: self.violation(f"entry {cid} on {symbol} submitted with the breaker tripped")

    def violation(self, what: str) -> None:
        self.rep.violations.append(f"{self.venue_name} seed {self.seed} step {self.rep.steps}: {what}")

    async def start(self) -> Engine:
        "Start an engine incarnation on the run directory (recovering when the journal already holds the run)."
        for attempt in range(6):
            try: return await self._start()
            except Crash: raise
            except Exception:                                     # a 429 / 5xx during start-up: a supervisor starts it again
                self.rep.restart_retries += 1
                if attempt == 5: raise
                await self._stop_fills()
        raise AssertionError("unreachable")

    async def make(self, clock, log, journal):
        "(our execution client, data client, engine config, risk gate) of one incarnation."
        raise NotImplementedError

    async def fills_ready(self) -> None:
        "Wait until the fill stream of a new incarnation is subscribed."
        await asyncio.sleep(0.3)

    async def _start(self) -> Engine:
        from tri_engine.store import Journal
        from tri_engine.risk import CircuitBreaker
        clock = SimClock(self.sim)
        log = EventLog(self.run_dir / self.log_file, self.engine_name, clock)
        journal = Journal.open(self.run_dir, f"camp-{self.seed}", clock, engine=self.engine_name, venue=self.venue_name)
        inner, data, ecfg, gate = await self.make(clock, log, journal)
        ex = CrashingExecution(inner, self)
        if self.breaker_loss_usd is not None: gate.breaker = CircuitBreaker(gate.breaker.start_of_day_equity_usd, 0.5, self.breaker_loss_usd)
        eng = Engine(ecfg, data, ex, gate, log, clock, journal=journal)
        self.eng = eng
        loop = asyncio.get_running_loop()
        self.q = asyncio.Queue()
        q = self.q
        self._fills_task = asyncio.create_task(inner.run_fills(lambda ev: loop.call_soon_threadsafe(q.put_nowait, ev)))
        await self.books()
        await self.fills_ready()
        while not q.empty(): q.get_nowait()                        # (history: booked by recovery, not the stream)
        if journal.resumed:
            r = await eng.recover()
            for k in ("adopted", "cancelled", "settled", "never_sent"): self.rep.recovered[k] += len(r[k])
            self.rep.recovered["fills_backfilled"] += r["fills_backfilled"]
            if self.killed and not eng.kill.halted: self.violation("the kill switch did not survive the restart")
        else: await eng.reconcile(None, reason="start")
        return eng

    async def _stop_fills(self) -> None:
        if self._fills_task is not None:
            self._fills_task.cancel()
            with contextlib.suppress(BaseException): await self._fills_task
            self._fills_task = None

    async def crash_and_restart(self, where: str, down_ms: int = 0) -> None:
        "Abandon the engine without any cleanup (as kill -9 does); the market runs on for `down_ms`; start a new one on the same journal."
        await self._stop_fills()
        self.eng.log.close()
        self.eng = None                                            # its journal connection is simply dropped
        for _ in range(down_ms // 5_000): await self.sim.advance_ms(5_000)   # resting orders may fill while nobody watches
        self.rep.restarts += 1
        self.restarted = True
        await self.start()

    async def close(self) -> None:
        await self._stop_fills()
        if self.eng is not None:
            self.eng.log.close(); self.eng.journal.close()

    # ---- driving ----------------------------------------------------------------------------
    async def books(self) -> None:
        "Give the engine the venue's current books (as the book feed would)."
        raise NotImplementedError

    async def pump(self, wait_s: float = 0.05) -> None:
        "Let pushed fills arrive and hand them to the engine."
        await asyncio.sleep(wait_s)
        while not self.q.empty(): await self.eng.on_fill(self.q.get_nowait())

    async def tick(self, ms: int = 5_000) -> None:
        "One market step: the venue moves, books and fills reach the engine, the 1 s sweep runs."
        await self.sim.advance_ms(ms)
        await self.books()
        await self.pump()
        await self.eng.on_timer()

    async def decide(self, coin: str, kind: IntentKind, side: Side, z: float) -> None:
        "What the strategy decides: a pending intent acted on (only when the tag has nothing in flight)."
        ts = self.eng.signals._tag(coin, "default")
        if ts.pending is not None: return
        book = self.eng.books.get(coin)
        ts.pending, ts.pending_side = kind, side
        it = SignalIntent(symbol=coin, tag="default", kind=kind, side=side, reason="campaign", ts_ms=self.eng.now_ms(), z=z,
                          ref_px=book.mid if book is not None else None)
        await self.eng.act(it)

    def entry_size(self, coin: str, rng: random.Random, fractions) -> list[float]:
        "Chunks of a partial-fill schedule for an entry on `coin`."
        info = self.eng.info[coin]
        q = self.eng.cfg.notional_usd(coin) / self.eng.books[coin].mid
        return [max(info.lot, round(q * f, info.sz_decimals)) for f in fractions]

    # ---- invariants -------------------------------------------------------------------------
    async def venue(self) -> tuple[dict[str, float], list[tuple[str, str, str | None]]]:
        "The venue's positions {symbol: signed size} and open orders [(symbol, venue id, engine cid)] of the account."
        raise NotImplementedError

    def _mismatch(self, venue_pos: dict[str, float]) -> dict[str, tuple[float, float]]:
        mine = self.eng.believed_positions()
        return {c: (mine.get(c, 0.0), venue_pos.get(c, 0.0)) for c in self.coins
                if abs(mine.get(c, 0.0) - venue_pos.get(c, 0.0)) > self.eng.info[c].dust}

    async def check(self) -> None:
        "Every invariant, after a step."
        for pending in ("http_fail", "http_fail_after"):           # injected faults not consumed by the engine would hit the checker
            getattr(self.sim.faults, pending, []).clear()
        await self.pump(0.1)
        pos, orders = await self.venue()
        for sym, oid, cid in orders:                               # no open venue order the engine does not track as live
            t = self.eng.tracker.find(cid, oid)
            if t is None or not t.live: self.violation(f"open venue order {sym} oid {oid} cid {cid} unknown to the engine")
        cl = Counter(cid for _, _, cid in orders if cid)
        if dup := [c for c, n in cl.items() if n > 1]: self.violation(f"client ids open twice at the venue: {dup}")
        if self._mismatch(pos):                                    # within reconciliation time: one sweep must fix it
            self.rep.lag += 1
            self.eng._last_reconcile_ms = -10**18
            await self.eng.on_timer()
            await self.pump(0.2)
            pos, _ = await self.venue()
            if bad := self._mismatch(pos): self.violation(f"believed != venue after a reconcile sweep: {bad}")
        for r in self.eng.journal.rows("SELECT id, detail FROM events WHERE kind='reconcile' AND id > ?", (self._reconcile_seen,)):
            self._reconcile_seen = max(self._reconcile_seen, r["id"])
            for c in json.loads(r["detail"])["changes"]:
                cause = "manual_trade" if c["symbol"] in self.manual_coins else ("restart" if self.restarted else "unexplained")
                self.rep.corrections[cause] += 1
                if cause != "manual_trade": self.violation(f"memory corrected by reconcile ({cause}): the engine did not know its own orders' fills: {c}")
        self.manual_coins.clear(); self.restarted = False
        for r in self.eng.journal.rows("SELECT id, detail FROM events WHERE kind='orphan_order_cancelled' AND id > ?", (self._orphans_seen,)):
            self._orphans_seen = r["id"]; self.rep.orphans_cancelled += 1
            d = json.loads(r["detail"])
            if d.get("cid") and self.eng._ours(d["cid"]): self.violation(f"an order with this run's client id was not in the journal: {d}")
        for r in self.eng.journal.rows("SELECT cid, symbol, gate FROM orders WHERE kind='entry' AND gate IS NOT NULL"):
            g = json.loads(r["gate"])
            if g.get("killed") or g.get("breaker"): self.violation(f"entry {r['cid']} journaled with the gate closed: {g}")
            if g["notional_usd"] > g["max_order_usd"] + 1e-6: self.violation(f"entry {r['cid']} over the per-order cap: {g}")
            if abs(g["exposure_usd"]) + g["notional_usd"] > g["cap_usd"] + 1e-6: self.violation(f"entry {r['cid']} over the {r['symbol']} cap: {g}")
        if probs := self.eng.journal.check(): self.violation(f"journal: {probs[:3]}")
        seqs = [cid_seq(c) for c in self.submits]
        if seqs and max(seqs) >= self.eng.cids.seq: self.violation(f"client-id factory at {self.eng.cids.seq} is not past {max(seqs)}")


# ---- the seeded driver ----------------------------------------------------------------------

STEPS = [("market", 22), ("entry", 16), ("exit", 9), ("ws_drop", 3), ("ws_close", 2), ("ws_stall", 3), ("http_fault", 6), ("lost_answer", 3), ("latency", 2),
         ("inner_reject", 4), ("partial_fills", 5), ("dup_fills", 3), ("reorder_fills", 3), ("manual_trade", 4), ("kill_on", 2),
         ("kill_off", 3), ("crash", 5)]


def plan(seed: int, n_steps: int) -> list[str]:
    "The seeded sequence of step kinds of one scenario (its details come from a second stream)."
    names, weights = zip(*STEPS)
    return random.Random(seed).choices(names, weights, k=n_steps)


async def drive(h: Harness, rng: random.Random, n_steps: int) -> None:
    "Start the engine, apply the seeded steps with a check after each, let the market settle, check again."
    rep, sim = h.rep, h.sim
    await h.start()
    await h.check()
    stalled = 0
    for step in plan(h.seed, n_steps):
        rep.steps += 1
        if step not in ("market", "entry", "exit"): rep.faults[step] += 1
        await apply_step(h, rng, step)
        if stalled and (stalled := stalled - 1) == 0: sim.stall_channel(h.fill_channel, on=False)
        if step == "ws_stall": stalled = rng.randint(1, 3)
        await h.tick(rng.choice([1_000, 5_000, 15_000]))
        await h.check()
    sim.stall_channel(h.fill_channel, on=False); h.latency(0)
    for _ in range(3): await h.tick(5_000)
    await h.check()
    rep.fills += h.eng.stats["fills"]


async def apply_step(h: Harness, rng: random.Random, step: str) -> None:
    "Apply one step of the campaign."
    sim, eng = h.sim, h.eng
    coin = rng.choice(h.coins)
    side = lambda: rng.choice(h.entry_sides)
    if step == "market":
        for _ in range(rng.randint(1, 6)): await h.tick(5_000)
    elif step == "entry":
        z = rng.choice([-3.5, -2.0, -1.4]) if ":" in coin and rng.random() < 0.3 else rng.choice([-2.0, -1.4])
        await h.decide(coin, IntentKind.ENTRY, side(), z if rng.random() < 0.5 else -z)
    elif step == "exit":
        held = [c for c in h.coins if abs(eng.signals.position(c, "default")) > 0]
        if held:
            c = rng.choice(held); q = eng.signals.position(c, "default")
            await h.decide(c, IntentKind.EXIT, Side.SELL if q > 0 else Side.BUY, 0.0)
    elif step == "ws_drop": await sim.drop_ws()
    elif step == "ws_close": await sim.close_ws()
    elif step == "ws_stall": sim.stall_channel(h.fill_channel)
    elif step == "http_fault":
        h.http_fault(rng)
        await h.decide(coin, IntentKind.ENTRY, side(), -1.6)
    elif step == "lost_answer":                                    # the network loses the request, or the venue's answer to it
        eng.ex.crash_at = rng.choice(["lose_request", "lose_answer"])
        h.rep.faults[eng.ex.crash_at] += 1
        await h.decide(coin, IntentKind.ENTRY, side(), rng.choice([-1.5, -3.5]))
        eng.ex.crash_at = None
    elif step == "latency": h.latency(rng.choice([50, 150, 300]))
    elif step == "inner_reject":
        h.inner_reject(rng)
        await h.decide(coin, IntentKind.ENTRY, side(), -1.5)
    elif step == "partial_fills":
        if coin in eng.books: h.partial_fills(h.entry_size(coin, rng, [rng.uniform(0.1, 0.4) for _ in range(rng.randint(1, 3))]))
        await h.decide(coin, IntentKind.ENTRY, side(), -1.5)
    elif step == "dup_fills": sim.duplicate_user_fills(rng.randint(1, 3))
    elif step == "reorder_fills": sim.reorder_user_fills(rng.randint(1, 2))
    elif step == "manual_trade": await h.manual_trade(rng)
    elif step == "kill_on":
        flatten = rng.random() < 0.5
        eng.halt("campaign: operator", flatten=flatten); h.killed = True
    elif step == "kill_off":
        if h.killed or eng.kill.halted: eng.resume(); h.killed = False
    elif step == "crash":
        where = rng.choice(["between_steps", "before_submit", "after_submit", "with_resting_order"])
        h.rep.faults[f"crash_{where}"] += 1
        if where == "with_resting_order":                          # an order rests (and may fill) while the engine is dead
            held = [c for c in h.coins if abs(eng.signals.position(c, "default")) > 0 and eng.signals._tag(c, "default").pending is None]
            if held:
                c = rng.choice(held); q = eng.signals.position(c, "default")
                await h.decide(c, IntentKind.EXIT, Side.SELL if q > 0 else Side.BUY, 0.0)
            elif coin in eng.books:
                h.partial_fills(h.entry_size(coin, rng, rng.choice([(0.3,), (0.4, 0.7)])))
                await h.decide(coin, IntentKind.ENTRY, side(), -1.5)
        elif where != "between_steps":
            eng.ex.crash_at = where
            try: await h.decide(coin, IntentKind.ENTRY, side(), -1.5)
            except Crash: pass
            eng.ex.crash_at = None                                 # the intent may have been dropped before the send
        await h.crash_and_restart(where, down_ms=rng.choice([0, 5_000, 30_000, 120_000] if where != "with_resting_order" else [30_000, 120_000]))


# ---- real processes -------------------------------------------------------------------------

def log_events(path: Path, name: str) -> list[dict]:
    "Events of one name in a JSONL log (a line being written by a live process may be incomplete)."
    out = []
    if not path.exists(): return out
    for line in path.read_text().splitlines():
        if f'"event":"{name}"' not in line: continue
        try: out.append(json.loads(line))
        except ValueError: pass
    return out


async def wait_for(cond, timeout_s: float, what: str, proc=None) -> None:
    "Poll `cond()` until true; fail with `what` after `timeout_s` (or when the process died)."
    t = time.monotonic()
    while not cond():
        if proc is not None and proc.returncode is not None:
            raise AssertionError(f"engine process exited {proc.returncode} while waiting for {what}: {(await proc.stderr.read()).decode()[-2000:]}")
        if time.monotonic() - t > timeout_s: raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.2)


class Kill9Venue:
    """What a kill -9 scenario needs of a venue: its simulator (an async context), the engine's command line and environment,
    a manual trade while the engine is down, and the venue's truth at the end read with the SDK."""
    log_name = intent_event = journal_engine = ""
    dust: dict = {}
    def command(self, run_dir: Path) -> list[str]: raise NotImplementedError
    env: dict = {}
    async def manual_trade(self, rng: random.Random) -> str | None: raise NotImplementedError
    async def truth(self) -> tuple[dict[str, float], list, dict[str, set]]:
        "(positions, open orders, {engine cid: venue order ids that carried it})."
        raise NotImplementedError


async def kill9_scenario(venue: Kill9Venue, seed: int, root: Path, kills: int = 2) -> Report:
    "An engine process trades the simulator; it is killed with SIGKILL `kills` times at seeded moments and restarted on the same run directory."
    import signal, sys
    from tri_engine.core import WallClock
    from tri_engine.store import Journal
    rng = random.Random(seed)
    rep = Report(scenarios=1)
    run_dir = root / f"k{seed}"
    logp = run_dir / venue.log_name
    tag = f"kill9 {venue.journal_engine} seed {seed}"
    async with venue:
        cmd = [sys.executable, "-m", *venue.command(run_dir)]
        spawn = lambda: asyncio.create_subprocess_exec(*cmd, env=venue.env, cwd=str(ROOT), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        manual_coins: set[str] = set()
        proc = await spawn()
        try:
            for k in range(kills + 1):
                n_started = len(log_events(logp, "engine_start"))
                await wait_for(lambda: len(log_events(logp, "engine_start")) > n_started - (1 if k == 0 else 0) and
                               len(log_events(logp, "positions")) > 0, 120, "the engine to start", proc)
                if k > 0:                                          # a restarted process recovers before it trades
                    await wait_for(lambda: len(log_events(logp, "recovered")) >= k, 120, "the recovered event", proc)
                    r = log_events(logp, "recovered")[-1]
                    rep.restarts += 1
                    for key in ("adopted", "cancelled", "settled", "never_sent"): rep.recovered[key] += len(r[key])
                    rep.recovered["fills_backfilled"] += r["fills_backfilled"]
                    for c in r["reconciled"]:
                        if c["symbol"] not in manual_coins: rep.violations.append(f"{tag}: recovery had to correct {c} (no manual trade there)")
                    manual_coins.clear()
                if k == kills: break
                n_int = len(log_events(logp, venue.intent_event))
                await wait_for(lambda: len(log_events(logp, venue.intent_event)) >= n_int + rng.randint(1, 3), 180, "orders", proc)
                await asyncio.sleep(rng.uniform(0.0, 2.0))
                proc.send_signal(signal.SIGKILL); await proc.wait()
                rep.faults["kill_9"] += 1
                if rng.random() < 0.5:                             # someone trades the account while the engine is down
                    if (coin := await venue.manual_trade(rng)) is not None: manual_coins.add(coin); rep.faults["manual_trade_while_down"] += 1
                await asyncio.sleep(rng.uniform(0.2, 2.0))
                proc = await spawn()
            await asyncio.sleep(rng.uniform(1.0, 3.0))
            proc.send_signal(signal.SIGTERM)
            out, err = await asyncio.wait_for(proc.communicate(), 120)
            if proc.returncode != 0: rep.violations.append(f"{tag}: clean stop exited {proc.returncode}: {err.decode()[-1500:]}")
        finally:
            if proc.returncode is None: proc.kill(); await proc.wait()
        venue_pos, open_orders, carried = await venue.truth()
    if open_orders: rep.violations.append(f"{tag}: orders left at the venue after a clean stop: {open_orders}")
    last = log_events(logp, "positions")[-1]
    if last["reason"] != "shutdown": rep.violations.append(f"{tag}: last positions event is {last['reason']}, not shutdown")
    for c, d in venue.dust.items():
        if abs(last["positions"].get(c, 0.0) - venue_pos.get(c, 0.0)) > d:
            rep.violations.append(f"{tag}: {c} believed {last['positions'].get(c, 0.0)} at shutdown, venue {venue_pos.get(c, 0.0)}")
    with Journal.open(run_dir, "", WallClock(), engine=venue.journal_engine) as j:
        if probs := j.check(): rep.violations.append(f"{tag}: journal {probs[:3]}")
        sessions = j.rows("SELECT * FROM sessions ORDER BY session")
        orders = {r["cid"].lower(): r for r in j.rows("SELECT cid, seq, session, reprices FROM orders")}
        if len(sessions) < kills + 1: rep.violations.append(f"{tag}: {len(sessions)} sessions for {kills} kills")
        for a, b in zip(sessions, sessions[1:]):                  # each restart resumed past every client id used before it
            used = [r["seq"] for r in orders.values() if r["session"] < b["session"]]
            if used and b["next_seq"] <= max(used): rep.violations.append(f"{tag}: session {b['session']} starts at seq {b['next_seq']} <= {max(used)}")
        for cl, s in carried.items():
            if cl.lower() not in orders: rep.violations.append(f"{tag}: venue order {cl} is not in the journal")
            elif len(s) > 1 + orders[cl.lower()]["reprices"]: rep.violations.append(f"{tag}: client id {cl} has {len(s)} venue orders, {orders[cl.lower()]['reprices']} reprices")
        rep.orders += len(orders)
        rep.fills += j.rows("SELECT COUNT(*) AS n FROM fills")[0]["n"]
    rep.steps += kills
    return rep
