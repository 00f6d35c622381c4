"Properties of the signal core: RollingZ vs polars and exact arithmetic, obi bounds, SignalEngine state machine."
from __future__ import annotations
import math
from fractions import Fraction
import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings, assume, strategies as st, HealthCheck
from hypothesis.stateful import RuleBasedStateMachine, rule, invariant, precondition, initialize
from tri_engine.core import IntentKind, Side
from tri_engine.signals import RollingZ, obi, SignalEngine, Thresholds, dust_cap


def _walk(level: float, rel_step: float, n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return level * np.exp(np.cumsum(rng.normal(0.0, rel_step, n)))


@settings(max_examples=60, deadline=None)
@given(exp=st.integers(-6, 5), rel_step=st.sampled_from([1e-5, 1e-4, 1e-3, 1e-2]),
       window=st.integers(2, 120), n=st.integers(130, 700), seed=st.integers(0, 2**32 - 1))
def test_rolling_z_matches_polars_on_random_walks(exp, rel_step, window, n, seed):
    xs = _walk(10.0 ** exp, rel_step, n, seed)
    rz = RollingZ(window)
    got = [(rz.push(x), rz.mean, rz.std) for x in xs]
    s = pl.Series(xs)
    m, sd = s.rolling_mean(window).to_numpy(), s.rolling_std(window).to_numpy()
    for i in range(window - 1, n):
        z, mean, std = got[i]
        z_pl = (xs[i] - m[i]) / sd[i]
        if (math.isclose(std, sd[i], rel_tol=1e-9) and math.isclose(mean, m[i], rel_tol=1e-9)
                and math.isclose(z, z_pl, rel_tol=1e-9, abs_tol=1e-9)):
            continue
        # polars disagrees by more than 1e-9: then we must equal exact rational arithmetic, i.e. polars is the one off
        w = [Fraction(float(a)) for a in xs[i - window + 1:i + 1]]
        em = sum(w) / window
        es = math.sqrt(float(sum((a - em) ** 2 for a in w) / (window - 1)))
        ez = float((w[-1] - em) / Fraction(es))
        assert math.isclose(mean, float(em), rel_tol=1e-12) and math.isclose(std, es, rel_tol=1e-10), (i, mean, std, m[i], sd[i])
        assert math.isclose(z, ez, rel_tol=1e-9, abs_tol=1e-9), (i, z, z_pl, ez)
    assert all(g[0] is None for g in got[: window - 1])


@settings(max_examples=40, deadline=None)
@given(level=st.sampled_from([1e-6, 1.0, 3e4, 1e5]), rel_step=st.sampled_from([1e-9, 1e-10, 1e-11]),
       window=st.integers(5, 80), seed=st.integers(0, 2**32 - 1))
def test_rolling_z_stays_exact_with_tiny_variance_at_any_price_level(level, rel_step, window, seed):
    "Where polars' own rolling_std loses digits (moves of 1e-9 relative), RollingZ matches exact arithmetic."
    xs = level + level * rel_step * np.cumsum(np.random.default_rng(seed).normal(0, 1, 3 * window + 17))
    rz = RollingZ(window)
    for x in xs: z = rz.push(x)
    w = xs[-window:]
    v = [Fraction(float(a)) for a in w]
    m = sum(v) / window
    var = sum((a - m) ** 2 for a in v) / (window - 1)
    assume(var > 0)
    std = math.sqrt(float(var))
    assert math.isclose(rz.std, std, rel_tol=1e-9)
    z_exact = float((v[-1] - m) / Fraction(std))
    assert math.isclose(z, z_exact, rel_tol=1e-9, abs_tol=1e-9)


@given(st.lists(st.floats(allow_nan=False, allow_infinity=False, min_value=-1e9, max_value=1e9), min_size=1, max_size=50),
       st.integers(2, 30))
def test_rolling_z_rejects_nan_and_inf_anywhere(xs, window):
    rz = RollingZ(window)
    for x in xs: rz.push(x)
    for bad in (math.nan, math.inf, -math.inf):
        with pytest.raises(ValueError, match="non-finite"): rz.push(bad)


@given(st.floats(min_value=-1e6, max_value=1e6, allow_nan=False), st.integers(2, 50), st.integers(0, 200))
def test_constant_window_gives_zero_not_a_division_error(x, window, extra):
    rz = RollingZ(window)
    out = [rz.push(x) for _ in range(window + extra)]
    assert out[-1] == 0.0


sizes = st.lists(st.floats(min_value=0, max_value=1e12, allow_nan=False), max_size=40)

@given(sizes, sizes, st.integers(1, 40))
def test_obi_is_bounded_and_signed_by_the_heavier_side(b, a, levels):
    r = obi(b, a, levels)
    assert -1.0 <= r <= 1.0
    vb, va = sum(b[:levels]), sum(a[:levels])
    if vb > va * (1 + 1e-9) and vb > 1e-6: assert r > 0
    if va > vb * (1 + 1e-9) and va > 1e-6: assert r < 0
    if vb == 0 and va == 0: assert r == 0.0


class SignalMachine(RuleBasedStateMachine):
    "Random bars, books, evaluations, fills, rollbacks and reconciles against one symbol and two tags."

    @initialize(allow_short=st.booleans(), window=st.integers(3, 8), szd=st.integers(0, 4))
    def setup(self, allow_short, window, szd):
        self.se = SignalEngine(window_bars=window, theta=0.05, allow_short=allow_short, time_stop=900)
        self.se.add_symbol("SOL", Thresholds(1.0, 0.3), sz_decimals=szd)
        self.dust, self.allow_short = dust_cap(szd), allow_short
        self.t, self.px, self.inflight = 0, 100.0, {}

    @rule(ret=st.floats(-0.03, 0.03))
    def bar(self, ret):
        self.t += 60_000; self.px *= math.exp(ret)
        self.se.on_bar("SOL", self.px, self.t)

    @rule(b=st.floats(0, 10), a=st.floats(0, 10))
    def book(self, b, a):
        self.se.on_book("SOL", [b], [a], self.t, mid=self.px)

    @rule(tag=st.sampled_from(["mr", "fast"]))
    def evaluate(self, tag):
        before = self.se.position("SOL", tag)
        for it in self.se.evaluate("SOL", self.t, tag=tag):
            if it.kind is IntentKind.ENTRY:
                assert before == 0.0, "entry emitted while holding a position"
                assert it.side is Side.BUY or self.allow_short, "short entry on a long-only engine"
            else:
                assert before != 0.0, "exit emitted from flat"
                assert it.side is (Side.SELL if before > 0 else Side.BUY)
                assert it.qty == pytest.approx(abs(before))
            assert tag not in self.inflight, "a second intent while one is in flight"
            self.inflight[tag] = it

    @rule(tag=st.sampled_from(["mr", "fast"]), frac=st.floats(0.0, 1.5))
    def terminal_fill(self, tag, frac):
        it = self.inflight.pop(tag, None)
        if it is None: return
        before = self.se.position("SOL", tag)
        qty = (1.0 if it.kind is IntentKind.ENTRY else abs(before)) * frac
        after = self.se.on_fill("SOL", tag, it.kind, it.side, qty, self.px, self.t)
        if it.kind is IntentKind.EXIT:
            assert after == 0.0 or (after > 0) == (before > 0), "an exit flipped the position"
            assert abs(after) <= abs(before) + 1e-12, "an exit grew the position"

    @rule(tag=st.sampled_from(["mr", "fast"]))
    def rollback(self, tag):
        it = self.inflight.pop(tag, None)
        if it is None: return
        before = self.se.position("SOL", tag)
        if it.kind is IntentKind.ENTRY:
            assert self.se.rollback_entry("SOL", tag)
            assert self.se.position("SOL", tag) == 0.0 and self.se._tag("SOL", tag).flat, "rollback left a phantom"
        else:
            assert self.se.rollback_exit("SOL", tag)
            assert self.se.position("SOL", tag) == before

    @rule(live=st.one_of(st.just(0.0), st.floats(-3, 3)))
    def reconcile(self, live):
        self.se.reconcile({"SOL": live}, {"SOL": 4}, self.t)
        total = sum(self.se.position("SOL", t) for t in ("mr", "fast", "default"))
        expect = 0.0 if abs(live) <= dust_cap(4) else live
        assert total == pytest.approx(expect, abs=dust_cap(4))
        for tag, it in list(self.inflight.items()):
            if it.kind is IntentKind.EXIT and self.se._tag("SOL", tag).pending is None: del self.inflight[tag]

    @invariant()
    def one_direction_per_tag(self):
        if not hasattr(self, "se"): return
        for tag, ts in self.se.symbols["SOL"].tags.items():
            assert isinstance(ts.qty, float)
            if ts.qty == 0.0: assert ts.entry_ts_ms is None and ts.pending is not IntentKind.EXIT
            else: assert ts.pending is not IntentKind.ENTRY, "entry pending while holding"
            if ts.pending is not None: assert ts.pending_side is not None


TestSignalMachine = SignalMachine.TestCase
TestSignalMachine.settings = settings(max_examples=150, stateful_step_count=60, deadline=None,
                                      suppress_health_check=[HealthCheck.too_slow])
