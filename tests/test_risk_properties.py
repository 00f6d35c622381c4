"Property tests of tri_engine.risk: invariants that must hold for every sequence, not just the examples."
from __future__ import annotations
import math

from hypothesis import given, settings, strategies as st

from tri_engine.risk import (Block, BlockReason, CircuitBreaker, KillSwitch, MacroCalendar, MacroEvent, NotionalCaps,
                             RiskGate, SectorCapExceeded, SectorExposureTracker, TokenBucket)

SYMBOLS = ["LMT", "NOC", "RTX", "XOM", "CVX", "XLE", "CCJ", "NVDA", "AMD", "AVGO", "TSM", "AAPL", "MSFT", "GOOG", "META", "NEW1", "NEW2"]
SECTOR_OF = {"LMT": "Defense", "NOC": "Defense", "RTX": "Defense", "XOM": "Energy", "CVX": "Energy", "XLE": "Energy ETF",
             "CCJ": "Nuclear", "NVDA": "Semis", "AMD": "Semis", "AVGO": "Semis", "TSM": "Semis",
             "AAPL": "Tech", "MSFT": "Tech", "GOOG": "Tech", "META": "Tech"}          # NEW1/NEW2: "Unknown"
CAPS = {"Defense": 1, "Energy": 1, "Energy ETF": 1, "Nuclear": 1, "Semis": 2}


@settings(max_examples=300)
@given(st.lists(st.tuples(st.sampled_from(["open", "close"]), st.sampled_from(SYMBOLS)), max_size=80),
       st.integers(0, 3))
def test_sector_counts_never_exceed_caps_and_match_open_symbols(ops, default_cap):
    t = SectorExposureTracker(CAPS, default_cap=default_cap, sector_of=SECTOR_OF)
    model: set[str] = set()
    for op, sym in ops:
        sec = t.sector(sym)
        if op == "open":
            room = sym in model or sum(t.sector(s) == sec for s in model) < CAPS.get(sec, default_cap)
            assert t.can_open(sym) == room
            try:
                t.open(sym)
                assert room
                model.add(sym)
            except SectorCapExceeded:
                assert not room
        else:
            t.close(sym)
            model.discard(sym)
        assert t.open_symbols == model
        for s in set(SECTOR_OF.values()) | {"Unknown"}:
            assert t.count(s) == sum(t.sector(x) == s for x in model) <= CAPS.get(s, default_cap)


@settings(max_examples=300)
@given(st.integers(1, 40), st.floats(0.01, 50), st.integers(0, 10**12),
       st.lists(st.tuples(st.integers(0, 120_000), st.integers(1, 3)), min_size=1, max_size=120))
def test_token_bucket_never_grants_more_than_capacity_plus_refill(capacity, rate, t0, steps):
    tb = TokenBucket(capacity, rate)
    now, granted, start = t0, 0, t0
    for dt, n in steps:
        now += dt
        n = min(n, capacity)
        granted += n if tb.try_acquire(now, n) else 0
        assert granted <= capacity + rate * (now - start) / 1000 + 1e-6
        assert 0 <= tb.tokens <= capacity


@settings(max_examples=200)
@given(st.lists(st.integers(-10**6, 10**6), min_size=1, max_size=60))
def test_token_bucket_clock_jitter_mints_nothing(times):
    tb = TokenBucket(5, 1)
    granted = sum(tb.try_acquire(t) for t in times)
    assert granted <= 5 + (max(times) - times[0]) / 1000 + 1e-6


equity = st.floats(min_value=0, max_value=20_000, allow_nan=False)
@settings(max_examples=300)
@given(st.floats(1_000, 10_000), st.floats(0.005, 0.2), st.one_of(st.none(), st.floats(10, 1_000)),
       st.lists(st.tuples(st.sampled_from(["update", "update", "update", "start_day"]), equity), max_size=60))
def test_breaker_once_tripped_stays_tripped_until_reset(e0, dd, loss, path):
    cb = CircuitBreaker(e0, max_drawdown_pct=dd, max_daily_loss_usd=loss)
    tripped_at = None
    for i, (op, eq) in enumerate(path):
        if op == "start_day":
            if eq > 0:
                cb.start_day(eq, i)
        else:
            should_trip = (cb.start_of_day_equity_usd - eq) / cb.start_of_day_equity_usd >= dd - 1e-12 or (
                loss is not None and cb.start_of_day_equity_usd - eq >= loss - 1e-9)
            cb.update(eq, i)
            if tripped_at is None and should_trip:
                tripped_at = i
        assert cb.halted == (tripped_at is not None)
        if tripped_at is not None:
            assert cb.tripped_at_ms == tripped_at and cb.reason
    cb.reset("property test", len(path))
    assert not cb.halted and cb.tripped_at_ms is None


events = st.lists(st.builds(MacroEvent, ts_ms=st.integers(0, 10**9), kind=st.sampled_from(["CPI", "FOMC", "NFP", "PPI", "GDP"])),
                  max_size=40)
@settings(max_examples=300)
@given(events, st.integers(0, 60), st.lists(st.integers(-10**7, 10**9 + 10**7), min_size=1, max_size=40))
def test_macro_halt_equals_brute_force(evs, window_min, times):
    cal = MacroCalendar(evs, halt_window_min=window_min)
    w = window_min * 60_000
    tier1 = [e for e in evs if e.kind in ("CPI", "FOMC", "NFP")]
    probes = times + [e.ts_ms + d for e in tier1 for d in (-w - 1, -w, w, w + 1)]
    for t in probes:
        assert cal.is_halted(t) == any(abs(t - e.ts_ms) <= w for e in tier1)
        nxt = cal.next_event(t)
        later = [e.ts_ms for e in cal.events if e.ts_ms > t]
        assert (nxt.ts_ms if nxt else None) == (min(later) if later else None)


@settings(max_examples=300)
@given(st.lists(st.builds(MacroEvent, ts_ms=st.integers(0, 10**8), kind=st.sampled_from(["CPI", "FOMC", "NFP"])), max_size=30),
       st.lists(st.builds(MacroEvent, ts_ms=st.integers(0, 10**8), kind=st.sampled_from(["CPI", "FOMC", "NFP"])), max_size=30))
def test_merged_calendar_keeps_no_same_kind_pair_within_five_minutes_and_covers_every_source(a, b):
    cal = MacroCalendar.merged(a, b)
    kept = cal.events
    for i, x in enumerate(kept):
        for y in kept[i + 1:]:
            assert x.kind != y.kind or abs(x.ts_ms - y.ts_ms) > 5 * 60_000
    for e in a + b:                                            # every dropped event has a same-kind stand-in nearby
        assert any(k.kind == e.kind and abs(k.ts_ms - e.ts_ms) <= 5 * 60_000 for k in kept)
    w = 15 * 60_000                                            # and merging never shrinks a halt window
    for t in [e.ts_ms + d for e in a + b for d in (-w - 1, -w, 0, w, w + 1)]:
        assert cal.is_halted(t) == any(abs(t - e.ts_ms) <= w for e in a + b)
        assert (cal.active_event(t) in kept) if cal.is_halted(t) else cal.active_event(t) is None


def gate_with(kill_on: bool, breaker_on: bool, macro_ts: int | None, sector_full: bool, bucket: TokenBucket) -> RiskGate:
    kill, cb = KillSwitch(), CircuitBreaker(10_000.0)
    if kill_on:
        kill.request_flatten("property test", 0)
    if breaker_on:
        cb.update(1.0, 0)
    cal = MacroCalendar([] if macro_ts is None else [MacroEvent(ts_ms=macro_ts, kind="CPI")])
    sectors = SectorExposureTracker(CAPS, sector_of=SECTOR_OF)
    if sector_full:
        sectors.open("LMT")
    return RiskGate(kill, cb, cal, NotionalCaps(500, {"NOC": 200}, 1_000), bucket, sectors)


@settings(max_examples=400)
@given(st.booleans(), st.booleans(), st.one_of(st.none(), st.integers(0, 10**7)), st.booleans(),
       st.sampled_from(["buy", "sell"]), st.floats(allow_nan=True, allow_infinity=True), st.floats(allow_nan=True),
       st.lists(st.integers(0, 10**7), min_size=1, max_size=30), st.integers(1, 5))
def test_reduce_only_is_never_blocked_except_by_rate_limit(kill_on, breaker_on, macro_ts, sector_full, side, notional,
                                                           exposure, times, capacity):
    gate = gate_with(kill_on, breaker_on, macro_ts, sector_full, TokenBucket(capacity, 0.1))
    shadow = TokenBucket(capacity, 0.1)                        # what the rate limit alone would say
    for t in sorted(times):
        d = gate.check("NOC", side, notional, exposure, True, t)
        expected = shadow.try_acquire(t)
        assert d.allowed == expected
        if not d.allowed:
            assert isinstance(d, Block) and d.reason is BlockReason.RATE_LIMIT


@settings(max_examples=300)
@given(st.booleans(), st.booleans(), st.one_of(st.none(), st.integers(0, 10**7)), st.booleans(),
       st.floats(0, 2_000), st.floats(-2_000, 2_000), st.integers(0, 10**7))
def test_entry_blocks_follow_the_documented_order_and_spend_no_token(kill_on, breaker_on, macro_ts, sector_full,
                                                                     notional, exposure, t):
    bucket = TokenBucket(3, 0.1)
    gate = gate_with(kill_on, breaker_on, macro_ts, sector_full, bucket)
    d = gate.check("NOC", "buy", notional, exposure, False, t)
    expected = (BlockReason.KILLED if kill_on else BlockReason.BREAKER if breaker_on
                else BlockReason.MACRO_HALT if macro_ts is not None and abs(t - macro_ts) <= 15 * 60_000
                else BlockReason.NOTIONAL_CAP if notional > 500
                else BlockReason.SYMBOL_CAP if abs(exposure) + notional > 200 + 1e-9
                else BlockReason.SECTOR_CAP if sector_full else None)
    if expected is None:
        assert d.allowed and math.isclose(bucket.tokens, 2)
    else:
        assert d.reason is expected and bucket.tokens == 3
