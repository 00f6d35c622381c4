"The simulator's matching core: money and size are conserved, the queue model matches a slow reference, faults behave."
from __future__ import annotations
import math, os
from dataclasses import dataclass
import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, Phase, given, settings, strategies as st
from tri_engine.data import load_bars, load_funding
from tri_engine.sim.market import MarketStream, modeled_stream_from_bars
from tri_engine.sim.matching import ALPACA_CRYPTO_FEES, FeeSchedule, InstrumentSpec, MatchingCore, RejectCode, hl_fees

settings.register_profile("no-shrink", phases=[Phase.explicit, Phase.reuse, Phase.generate])   # quick red runs while debugging
if os.environ.get("HYPOTHESIS_PROFILE"): settings.load_profile(os.environ["HYPOTHESIS_PROFILE"])
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
LOT = 1e-3


# ---------------------------------------------------------------- random replays

@st.composite
def streams(draw, symbol="X", max_events=25, max_trades=30, t0=1_000, span=3 * 3_600_000):
    "A random 3-level replay on a 1.0 tick around 100: book events and prints at random (sometimes equal) times."
    T = draw(st.integers(2, max_events))
    K = draw(st.integers(0, max_trades))
    ts = np.sort(np.array(draw(st.lists(st.integers(t0, t0 + span), min_size=T, max_size=T, unique=True)), np.int64))
    ts[0] = t0
    ints = lambda lo, hi, n: np.array(draw(st.lists(st.integers(lo, hi), min_size=n, max_size=n)), float)
    b1 = ints(95, 100, T); a1 = b1 + ints(1, 3, T)
    bpx = b1[:, None] - np.concatenate([np.zeros((T, 1)), np.cumsum(ints(1, 2, 2 * T).reshape(T, 2), axis=1)], axis=1)
    apx = a1[:, None] + np.concatenate([np.zeros((T, 1)), np.cumsum(ints(1, 2, 2 * T).reshape(T, 2), axis=1)], axis=1)
    sizes = st.lists(st.sampled_from([0.5, 1.0, 2.0, 3.0]), min_size=3 * T, max_size=3 * T)
    bsz, asz = (np.array(draw(sizes)).reshape(T, 3) for _ in range(2))
    tts = np.sort(np.array(draw(st.lists(st.sampled_from(ts.tolist()) | st.integers(t0 + 1, t0 + span), min_size=K, max_size=K)), np.int64))
    tpx = np.array(draw(st.lists(st.integers(93, 105), min_size=K, max_size=K)), float)
    tsz = np.array(draw(st.lists(st.sampled_from([0.1, 0.25, 0.5, 1.0, 2.5]), min_size=K, max_size=K)), float)
    tside = np.array(draw(st.lists(st.sampled_from([-1, 1]), min_size=K, max_size=K)), np.int8)
    return MarketStream(symbol, False, ts, bpx, bsz, apx, asz, tts, tpx, tsz, tside)


def spec(symbol="X", **kw):
    return InstrumentSpec(symbol, "perp", 3, 50, kw.pop("fees", hl_fees()), **kw)


def core_with(*pairs, seed=0, usdc=1e9):
    "A core with (spec, stream) pairs (no funding unless set), one funded account 'a'."
    core = MatchingCore(seed=seed)
    for sp, s in pairs: core.add_instrument(sp, s, funding=None)
    core.accounts.fund("a", usdc, "perp")
    return core


order_specs = st.lists(st.tuples(st.booleans(), st.integers(93, 105), st.sampled_from([0.3, 1.0, 1.7, 4.0])), min_size=1, max_size=6)


# ---------------------------------------------------------------- the reference queue model

def ref_queue0(s: MarketStream, row: int, px: float, is_buy: bool) -> float:
    "Queue ahead at placement: level size at px on our side, 0 inside the spread or a gap, inf beyond the shown depth."
    lv_px, lv_sz = (s.bid_px[row], s.bid_sz[row]) if is_buy else (s.ask_px[row], s.ask_sz[row])
    for x, v in zip(lv_px, lv_sz):
        if math.isnan(x) or (is_buy and x < px) or (not is_buy and x > px): return 0.0
        if x == px: return float(v)
    return math.inf


@dataclass
class RefOrder:
    oid: int
    is_buy: bool
    px: float
    rem: float
    q: float
    active: bool = True


def ref_maker_fills(s: MarketStream, orders: list[RefOrder], t_after: int, t_end: int, lot: float = LOT):
    "Slow, literal replay of the risk-averse queue model: [(oid, ts, px, sz)] in time order."
    events = sorted([(int(t), 0, k) for k, t in enumerate(s.trade_ts_ms)] + [(int(t), 1, k) for k, t in enumerate(s.ts_ms)])
    out = []

    def fill(o, t, f):
        out.append((o.oid, t, o.px, f))
        o.rem -= f
        if o.rem <= lot * 1e-6: o.rem, o.active = 0.0, False

    for t, kind, k in events:
        if not t_after < t <= t_end: continue
        if kind == 0:                                              # a print
            q, size, aggressor = float(s.trade_px[k]), float(s.trade_sz[k]), int(s.trade_side[k])
            taken = 0.0
            for o in orders:
                if not o.active or aggressor == (1 if o.is_buy else -1): continue
                if (o.is_buy and q < o.px) or (not o.is_buy and q > o.px):
                    fill(o, t, o.rem)
                elif q == o.px:
                    beyond = size - o.q - taken
                    o.q = max(o.q - size, 0.0)
                    if beyond > 0:
                        f = min(beyond, o.rem)
                        if f < o.rem: f = math.floor(f / lot + 1e-9) * lot
                        if f > 0:
                            taken += f; fill(o, t, f)
        else:                                                      # a book event
            for o in orders:
                if not o.active: continue
                opp = s.ask_px[k, 0] if o.is_buy else s.bid_px[k, 0]
                if not math.isnan(opp) and ((o.is_buy and opp <= o.px) or (not o.is_buy and opp >= o.px)):
                    fill(o, t, o.rem); continue
                lv = ref_queue0(s, k, o.px, o.is_buy)
                if lv != math.inf: o.q = min(o.q, lv)
    return out


def place_alo(core, symbol, orders):
    "Post-only orders at now_ms; returns the RefOrders of those that rested (in placement order)."
    s, row = core.stream(symbol), int(np.searchsorted(core.stream(symbol).ts_ms, core.now_ms, "right")) - 1
    refs = []
    for is_buy, px, sz in orders:
        r = core.submit("a", symbol, is_buy, float(px), sz, "alo")
        assert r.fills == []                                         # post-only never takes
        if r.status == "resting":
            q0 = ref_queue0(s, row, float(px), is_buy)
            assert core.order("a", r.oid).queue_ahead == q0
            refs.append(RefOrder(r.oid, is_buy, float(px), sz, q0))
        else:
            assert r.reject == RejectCode.POST_ONLY_WOULD_CROSS
    return [r for r in refs if core.order("a", r.oid).status == "open"]      # a later order may cancel one of ours (self-trade)


def key(fills):
    return [(f.oid, f.ts_ms, f.px, round(f.sz, 9)) for f in fills]


# ---------------------------------------------------------------- queue model

@SETTINGS
@given(s=streams(), orders=order_specs)
def test_queue_model_matches_the_slow_reference_on_random_replays(s, orders):
    core = core_with((spec(), s))
    core.advance(int(s.ts_ms[0]))
    refs = place_alo(core, "X", orders)
    end = int(max(s.ts_ms[-1], s.trade_ts_ms[-1] if s.n_trades else 0))
    want = ref_maker_fills(s, refs, core.now_ms, end)
    got = core.advance(end)
    assert key(got) == [(o, t, p, round(f, 9)) for o, t, p, f in want]
    assert all(not f.crossed for f in got)


@SETTINGS
@given(s=streams(), orders=order_specs, cuts=st.lists(st.integers(0, 3 * 3_600_000), max_size=8))
def test_stepping_and_stopping_on_fills_changes_nothing(s, orders, cuts):
    one = core_with((spec(), s)); many = core_with((spec(), s)); stops = core_with((spec(), s))
    for c in (one, many, stops):
        c.advance(int(s.ts_ms[0])); place_alo(c, "X", orders)
    end = int(s.ts_ms[0]) + 3 * 3_600_000 + 1
    a = one.advance(end)
    b = []
    for t in sorted(int(s.ts_ms[0]) + c for c in cuts) + [end]: b += many.advance(max(t, many.now_ms))
    c, n = [], 0
    while stops.now_ms < end:
        got = stops.advance(end, stop_on_fill=True); c += got; n += 1
        assert len({f.ts_ms for f in got}) <= 1 and all(f.ts_ms == stops.now_ms for f in got)   # one instant per stop
    assert key(a) == key(b) == key(c)


@settings(SETTINGS, max_examples=60)
@given(s1=streams("X"), s2=streams("Y"), s3=streams("Z"), o1=order_specs, o2=order_specs, o3=order_specs)
def test_stop_on_fill_across_instruments_reports_every_fill_once_in_time_order(s1, s2, s3, o1, o2, o3):
    "Lagging instruments and the next-fill memo must not lose, repeat or reorder a fill."
    pairs = [(spec("X"), s1), (spec("Y"), s2), (spec("Z"), s3)]
    plain, stopping = core_with(*pairs), core_with(*pairs)
    t0 = max(int(s.ts_ms[0]) for _, s in pairs)
    refs = {}
    for c in (plain, stopping):
        c.advance(t0)
        for sym, o in (("X", o1), ("Y", o2), ("Z", o3)): refs[sym] = place_alo(c, sym, o)
    end = t0 + 3 * 3_600_000 + 1
    want = sorted((f for sym in "XYZ" for f in ref_maker_fills(plain.stream(sym), [RefOrder(**vars(r)) for r in refs[sym]], t0, end)),
                  key=lambda f: f[1])
    got = []
    while stopping.now_ms < end:
        got += stopping.advance(end, stop_on_fill=True)
        for sym in "XYZ": stopping.open_orders("a")                       # touching orders forces catch-up of lagging replays
    assert sorted(key(plain.advance(end))) == sorted(key(got)) == sorted((o, t, p, round(f, 9)) for o, t, p, f in want)
    assert [f.ts_ms for f in got] == sorted(f.ts_ms for f in got)


def book1(bid_sz=5.0, n=6):
    "A constant book: bid 100 x bid_sz, ask 101 x 5; n events one second apart."
    ts = np.arange(n, dtype=np.int64) * 1000 + 1000
    return (ts, np.array([[100.0, 99.0, 98.0]] * n), np.array([[bid_sz, 5.0, 5.0]] * n),
            np.array([[101.0, 102.0, 103.0]] * n), np.full((n, 3), 5.0))


@SETTINGS
@given(prints=st.lists(st.sampled_from([0.2, 0.5, 1.0, 1.5, 2.0]), min_size=1, max_size=12), ahead=st.sampled_from([0.5, 2.0, 5.0]))
def test_a_resting_bid_never_fills_before_sell_prints_at_its_price_exhaust_the_queue_ahead(prints, ahead):
    ts, bpx, bsz, apx, asz = book1(bid_sz=ahead)
    tts = np.arange(len(prints), dtype=np.int64) * 10 + 1_500
    s = MarketStream("X", False, ts, bpx, bsz, apx, asz, tts, np.full(len(prints), 100.0), np.array(prints), np.full(len(prints), -1, np.int8))
    core = core_with((spec(), s))
    core.advance(1000)
    bid = core.submit("a", "X", True, 100.0, 1.0, "alo")
    fills = core.advance(10_000)
    cum = np.cumsum(prints)
    for f in fills:                                                 # each fill happens when the prints so far exceed what was ahead
        k = int(np.searchsorted(tts, f.ts_ms))
        assert cum[k] > ahead + 1e-12
    filled = sum(f.sz for f in fills)
    assert filled == pytest.approx(min(1.0, max(0.0, cum[-1] - ahead)), abs=LOT)
    assert core.order("a", bid.oid).filled == pytest.approx(filled)


# ---------------------------------------------------------------- conservation under random use

actions = st.lists(st.one_of(
    st.tuples(st.just("submit"), st.booleans(), st.integers(93, 105), st.sampled_from([0.2, 0.5, 1.0, 2.0, 3.5]),
              st.sampled_from(["gtc", "ioc", "alo"]), st.booleans()),
    st.tuples(st.just("cancel"), st.integers(0, 20)),
    st.tuples(st.just("advance"), st.integers(1, 40 * 60_000))), min_size=1, max_size=25)


@SETTINGS
@given(s=streams(), acts=actions, rate=st.floats(-1e-3, 1e-3))
def test_fills_positions_and_cash_are_conserved_under_random_trading(s, acts, rate):
    core = core_with((spec(fees=hl_fees(2)), s), usdc=1e6)
    t0 = int(s.ts_ms[0])
    core.set_funding("X", [(t0 // 3_600_000 + k) * 3_600_000 for k in range(1, 5)], [rate] * 4)
    core.advance(t0)
    cash0 = core.accounts.balance("a", "perp")
    submitted = []
    for act in acts:
        if act[0] == "submit":
            _, is_buy, px, sz, tif, ro = act
            r = core.submit("a", "X", is_buy, float(px), sz, tif, reduce_only=ro)
            if tif == "alo": assert all(not f.crossed for f in r.fills) and r.fills == []
            if tif == "ioc":
                assert r.status != "resting" and (r.oid is None or core.order("a", r.oid).status != "open")
            if r.oid is not None: submitted.append((r.oid, tif))
        elif act[0] == "cancel":
            live = core.open_orders("a")
            if live: assert core.cancel("a", live[act[1] % len(live)].oid) is None
        else:
            core.advance(core.now_ms + act[1])
    fills = core.fills("a")
    for oid, tif in submitted:
        o = core.order("a", oid)
        mine = [f for f in fills if f.oid == oid]
        assert o.filled == pytest.approx(sum(f.sz for f in mine), abs=1e-9)
        assert o.filled <= o.sz + 1e-9
        if tif == "alo": assert all(not f.crossed for f in mine)
        if tif == "ioc": assert o.status in ("filled", "canceled", "rejected") and all(f.crossed for f in mine)
    pos = core.accounts.position("a", "X")
    assert pos.szi == pytest.approx(sum(f.sz if f.is_buy else -f.sz for f in fills), abs=1e-9)
    funding = sum(p.usdc for p in core.accounts.funding_history("a"))
    assert core.accounts.balance("a", "perp") - cash0 == pytest.approx(sum(f.closed_pnl - f.fee for f in fills) + funding, abs=1e-6)
    assert pos.cum_funding == pytest.approx(-funding, abs=1e-12)
    if rate > 0: assert all((p.usdc < 0) == (p.szi > 0) for p in core.accounts.funding_history("a"))   # longs pay a positive rate
    for f in fills:                                                # a fill's start position chains to the next one
        assert f.dir in ("Open Long", "Close Long", "Open Short", "Close Short", "Long > Short", "Short > Long")
    starts = [f.start_position for f in fills]
    ends = np.cumsum([f.sz if f.is_buy else -f.sz for f in fills])
    assert starts == pytest.approx(([0.0] + ends[:-1].tolist())[:len(fills)], abs=1e-9)


@SETTINGS
@given(s=streams(), orders=order_specs, seed=st.integers(0, 2**31))
def test_same_seed_same_fills(s, orders, seed):
    def run():
        core = core_with((spec(), s), seed=seed)
        core.advance(int(s.ts_ms[0]))
        for is_buy, px, sz in orders: core.submit("a", "X", is_buy, float(px), sz, "gtc")
        core.advance(int(s.ts_ms[0]) + 3 * 3_600_000 + 1)
        return core.fills("a")
    assert run() == run()


# ---------------------------------------------------------------- hand-made scenarios

def flat_core(fees=None, symbol="X", min_notional=10.0, **kw):
    ts, bpx, bsz, apx, asz = book1()
    core = MatchingCore(seed=1)
    core.add_instrument(InstrumentSpec(symbol, "perp", 3, 50, fees or hl_fees(), min_notional=min_notional, **kw),
                        MarketStream(symbol, False, ts, bpx, bsz, apx, asz), funding=None)
    core.advance(1000)
    return core


def test_partial_fill_schedule_fills_the_next_resting_order_in_the_given_chunks_then_stops():
    core = flat_core()
    core.accounts.fund("a", 10_000.0, "perp")
    core.set_partial_fill_schedule("a", [0.3, 0.2, 0.1])
    r = core.submit("a", "X", False, 110.0, 1.0)                      # far from the market: only the schedule fills it
    fills = core.advance(10_000)
    assert [(f.ts_ms, f.sz, f.px, f.crossed) for f in fills] == [(2000, 0.3, 110.0, False), (3000, 0.2, 110.0, False), (4000, 0.1, 110.0, False)]
    o = core.order("a", r.oid)
    assert (o.status, o.filled, core.accounts.position("a", "X").szi) == ("open", pytest.approx(0.6), pytest.approx(-0.6))
    other = core.submit("a", "X", False, 110.0, 1.0)                  # the schedule was used up
    assert core.advance(20_000) == [] and core.order("a", other.oid).filled == 0.0


def test_injected_reject_hits_only_the_next_submit():
    core = flat_core()
    core.accounts.fund("a", 10_000.0, "perp")
    core.force_reject_next("a", "Order has invalid price.")
    r = core.submit("a", "X", True, 100.0, 1.0)
    assert (r.status, r.reject, r.detail, r.oid) == ("error", RejectCode.INJECTED, "Order has invalid price.", None)
    assert core.submit("a", "X", True, 100.0, 1.0).status == "resting"


def test_min_notional_rejects_a_nine_dollar_order():
    core = flat_core()
    core.accounts.fund("a", 10_000.0, "perp")
    r = core.submit("a", "X", True, 100.0, 0.09)
    assert (r.status, r.reject, r.filled_sz) == ("error", RejectCode.MIN_NOTIONAL, 0.0)
    assert core.open_orders("a") == [] and core.fills("a") == []
    assert core.submit("a", "X", True, 100.0, 0.1).status == "resting"


def test_margin_reject_when_the_order_needs_more_than_the_free_collateral():
    core = flat_core()
    core.accounts.fund("a", 100.0, "perp")
    assert core.accounts.set_leverage("a", "X", 10, True) is None
    big = core.submit("a", "X", True, 101.0, 10.0, "ioc")            # 1010 notional at 10x needs 101 + 0.45 fee > 100
    assert (big.reject, big.status) == (RejectCode.INSUFFICIENT_MARGIN, "error")
    assert core.accounts.position("a", "X").szi == 0.0
    ok = core.submit("a", "X", True, 102.0, 9.0, "ioc")               # 918 at the limit needs 91.8 + 0.41: 5 @ 101, 4 @ 102
    assert ok.status == "filled" and core.accounts.position("a", "X").szi == 9.0
    assert core.submit("a", "X", True, 99.0, 1.0).reject == RejectCode.INSUFFICIENT_MARGIN   # 9 x 101 already uses the margin
    assert core.submit("a", "X", False, 102.0, 9.0, reduce_only=True).status == "resting"    # closing needs none


def test_resting_orders_reserve_margin_by_the_larger_side():
    core = flat_core()
    core.accounts.fund("a", 100.0, "perp")
    core.accounts.set_leverage("a", "X", 10, True)
    assert core.submit("a", "X", True, 99.0, 9.0).status == "resting"     # reserves about 89.5
    assert core.submit("a", "X", False, 103.0, 9.0).status == "resting"   # the other side: no more than the larger side
    assert core.submit("a", "X", True, 98.0, 2.0).reject == RejectCode.INSUFFICIENT_MARGIN      # buys 1087 x 0.10045 > 100
    assert core.submit("a", "X", True, 98.0, 1.0).status == "resting"                           # buys 989 x 0.10045 <= 100


def test_cancel_of_an_unknown_or_finished_order_is_unknown_order():
    core = flat_core()
    core.accounts.fund("a", 10_000.0, "perp")
    assert core.cancel("a", 999) == RejectCode.UNKNOWN_ORDER
    assert core.cancel_by_cloid("a", "X", "0xnope") == RejectCode.UNKNOWN_ORDER
    r = core.submit("a", "X", True, 101.0, 1.0, "ioc")                   # filled at once
    assert core.cancel("a", r.oid) == RejectCode.UNKNOWN_ORDER
    g = core.submit("a", "X", True, 99.0, 1.0, cloid="0xc1")
    assert core.cancel("b", g.oid) == RejectCode.UNKNOWN_ORDER           # not b's order
    assert core.cancel_by_cloid("a", "X", "0xc1") is None and core.cancel("a", g.oid) == RejectCode.UNKNOWN_ORDER
    assert core.modify("a", g.oid, 98.0, 1.0).reject == RejectCode.UNKNOWN_ORDER


def test_post_only_that_would_cross_is_rejected_with_the_bbo():
    core = flat_core()
    core.accounts.fund("a", 10_000.0, "perp")
    r = core.submit("a", "X", True, 101.0, 1.0, "alo")
    assert (r.reject, r.detail, r.fills, r.oid) == (RejectCode.POST_ONLY_WOULD_CROSS, "100@101", [], None)
    assert core.fills("a") == [] and core.open_orders("a") == []


def test_ioc_walks_the_book_and_drops_the_rest_and_two_takers_cannot_share_one_level():
    core = flat_core()
    core.accounts.fund("a", 1e6, "perp")
    r = core.submit("a", "X", True, 102.0, 12.0, "ioc")                  # 5 @ 101 + 5 @ 102, 2 dropped
    assert [(f.px, f.sz) for f in r.fills] == [(101.0, 5.0), (102.0, 5.0)] and r.filled_sz == 10.0
    assert core.open_orders("a") == []
    again = core.submit("a", "X", True, 102.0, 1.0, "ioc")               # same instant: that size is gone
    assert again.reject == RejectCode.IOC_NO_MATCH
    core.advance(2000)                                                   # the next book event restores the displayed size
    assert core.submit("a", "X", True, 101.0, 1.0, "ioc").fills[0].px == 101.0


@pytest.mark.parametrize("scale, factor", [(1.0, 2.0), (0.5, 1.5), (2.0, 4.0), (0.0, 1.0)])
def test_hip3_fees_are_double_the_native_fees_at_deployer_scale_one(scale, factor):
    native, hip3 = flat_core(symbol="BTC"), flat_core(fees=hl_fees(hip3=True, deployer_fee_scale=scale), symbol="xyz:TSLA", only_isolated=True)
    native.accounts.fund("a", 10_000.0, "perp"); hip3.accounts.fund("a", 10_000.0, "xyz")
    f1 = native.submit("a", "BTC", True, 101.0, 2.0, "ioc").fills[0]
    f2 = hip3.submit("a", "xyz:TSLA", True, 101.0, 2.0, "ioc").fills[0]
    assert f1.fee == pytest.approx(101.0 * 2.0 * 0.00045) and f2.fee == pytest.approx(factor * f1.fee)
    assert hip3.accounts.balance("a", "xyz") == pytest.approx(10_000.0 - f2.fee) and hip3.accounts.balance("a", "perp") == 0.0
    assert hip3.accounts.set_leverage("a", "xyz:TSLA", 5, True) == "Cross margin is not allowed for this asset."


def test_maker_rebate_is_a_negative_fee_that_adds_cash():
    core = MatchingCore(seed=1)
    ts, bpx, bsz, apx, asz = book1(bid_sz=0.0)
    s = MarketStream("X", False, ts, bpx, bsz, apx, asz, [1500], [100.0], [1.0], [-1])
    core.add_instrument(InstrumentSpec("X", "perp", 3, 50, FeeSchedule(taker=0.00045, maker=-0.00002)), s, funding=None)
    core.accounts.fund("a", 1_000.0, "perp")
    core.advance(1000)
    core.submit("a", "X", True, 100.0, 1.0, "alo")
    (f,) = core.advance(2000)
    assert (f.crossed, f.fee) == (False, pytest.approx(-0.002))
    assert core.accounts.balance("a", "perp") == pytest.approx(1_000.002)


def test_spot_cannot_sell_what_it_does_not_hold():
    core = MatchingCore()
    ts, bpx, bsz, apx, asz = book1()
    core.add_instrument(InstrumentSpec("BTC/USD", "spot", 6, 1, ALPACA_CRYPTO_FEES), MarketStream("BTC/USD", False, ts, bpx, bsz, apx, asz))
    core.accounts.fund("a", 1_000.0)
    core.advance(1000)
    assert core.submit("a", "BTC/USD", False, 100.0, 1.0).reject == RejectCode.INSUFFICIENT_MARGIN
    buy = core.submit("a", "BTC/USD", True, 101.0, 2.0, "ioc")
    assert core.accounts.balance("a") == pytest.approx(1_000.0 - 202.0 - 202.0 * 0.0025)
    assert core.submit("a", "BTC/USD", False, 102.0, 2.0).status == "resting"
    assert core.submit("a", "BTC/USD", False, 103.0, 0.5).reject == RejectCode.INSUFFICIENT_MARGIN   # the 2 are committed
    assert buy.fills[0].dir == "Buy"


def deep_spot_core(fee_asset: str, rate: float, usd: float = 1e7):
    "A spot ETH/USD core on the 1e-9 grid (Alpaca crypto) with a deep constant book: bid 100, ask 101, 1e6 each."
    core = MatchingCore()
    n = 4
    ts = np.arange(n, dtype=np.int64) * 1000 + 1000
    s = MarketStream("ETH/USD", False, ts, np.full((n, 1), 100.0), np.full((n, 1), 1e6), np.full((n, 1), 101.0), np.full((n, 1), 1e6))
    core.add_instrument(InstrumentSpec("ETH/USD", "spot", 9, 1, FeeSchedule(rate, rate), fee_asset=fee_asset), s)
    core.accounts.fund("a", usd)
    core.advance(1000)
    return core


@SETTINGS
@given(nanos=st.lists(st.integers(1, 20 * 10**9), min_size=1, max_size=8), rate=st.sampled_from([0.0025, 0.0015, 0.0011]),
       fee_asset=st.sampled_from(["base", "quote"]))
def test_a_spot_holding_stays_on_the_lot_grid_and_exactly_it_can_be_sold(nanos, rate, fee_asset):
    core = deep_spot_core(fee_asset, rate)
    fills = []
    for k in nanos:
        r = core.submit("a", "ETH/USD", True, 101.0, k / 1e9, "ioc")
        assert r.status == "filled"
        fills += r.fills
    held = core.accounts.size("a", "ETH/USD")
    assert held == round(held, 9) > 0                                          # no float noise: the decimal a venue shows
    for f in fills:
        assert f.fee_base == (round(rate * f.sz, 9) if fee_asset == "base" else 0.0)
        assert f.fee == pytest.approx(rate * f.px * f.sz, abs=f.px * 1e-9)
    assert held == pytest.approx(sum(f.sz - f.fee_base for f in fills), abs=1e-12)
    paid = sum(f.px * f.sz + (0.0 if fee_asset == "base" else f.fee) for f in fills)
    assert core.accounts.balance("a") == pytest.approx(1e7 - paid, abs=1e-6)
    shown = float(f"{held:.9f}")
    assert core.submit("a", "ETH/USD", False, 99.0, round(shown + 1e-9, 9), "ioc").reject == RejectCode.INSUFFICIENT_MARGIN
    sell = core.submit("a", "ETH/USD", False, 99.0, shown, "ioc")
    assert (sell.status, sell.filled_sz, sell.fills[0].fee_base) == ("filled", shown, 0.0)
    assert core.accounts.size("a", "ETH/USD") == 0.0 and core.accounts.positions("a") == []


def test_buys_paying_their_fee_in_the_base_asset_need_no_cash_for_it():
    core = deep_spot_core("base", 0.0025, usd=101.0 * 0.704820975)
    assert core.submit("a", "ETH/USD", True, 101.0, 0.704820975).status == "filled"     # a gtc crossing at 101: the whole cash, no fee reserve
    assert core.accounts.size("a", "ETH/USD") == 0.703058923                          # less round(0.0025 x 0.704820975, 9)
    assert core.accounts.balance("a") == pytest.approx(0.0, abs=1e-9)
    q = deep_spot_core("quote", 0.0025, usd=101.0 * 0.704820975)
    assert q.submit("a", "ETH/USD", True, 101.0, 0.704820975).reject == RejectCode.INSUFFICIENT_MARGIN   # a fee in cash needs cash
    with pytest.raises(ValueError, match="spot"): InstrumentSpec("X", "perp", 3, 5, hl_fees(), fee_asset="base")
    with pytest.raises(ValueError, match="fee_asset"): InstrumentSpec("X", "spot", 3, 1, hl_fees(), fee_asset="usd")


# ---------------------------------------------------------------- funding on real data

@pytest.mark.parametrize("is_buy", [True, False])
def test_funding_on_a_real_hour_of_bundled_btc_data_has_the_recorded_sign_and_amount(is_buy):
    bars = load_bars("hyperliquid", "BTC", "1m")
    s = modeled_stream_from_bars(bars, "BTC", seed=3)
    core = MatchingCore(seed=0)
    core.add_instrument(InstrumentSpec("BTC", "perp", 5, 40, hl_fees(), min_notional=10.0), s)      # funding="auto"
    core.accounts.fund("a", 10_000.0, "perp")
    hour = (int(s.ts_ms[0]) // 3_600_000 + 5) * 3_600_000
    core.advance(hour - 120_000)
    bid, ask = core.bbo("BTC")
    r = core.submit("a", "BTC", is_buy, ask * 1.01 if is_buy else bid * 0.99, 0.02, "ioc")
    assert r.status == "filled"
    cash = core.accounts.balance("a", "perp")
    core.advance(hour)                                              # the boundary itself settles
    mark = core.mark_px("BTC")
    rec = load_funding("hyperliquid", "BTC", start=hour, end=hour + 3_600_000)
    rate = float(rec["funding_rate"][0])                            # recorded a few ms after the hour
    assert rec["ts"].dt.epoch("ms")[0] - hour < 1_000
    szi = 0.02 if is_buy else -0.02
    (pay,) = core.accounts.funding_history("a")
    assert (pay.ts_ms, pay.rate, pay.szi) == (hour, rate, szi)
    assert pay.usdc == pytest.approx(-szi * mark * rate)
    assert core.accounts.balance("a", "perp") - cash == pytest.approx(pay.usdc)
    assert (pay.usdc < 0) == ((rate > 0) == is_buy)                 # positive rate: longs pay, shorts receive
    core.advance(hour + 3_599_000)
    assert len(core.accounts.funding_history("a")) == 1              # once per hour


def test_a_hip3_asset_has_no_funding_unless_given():
    core = flat_core(symbol="xyz:TSLA", only_isolated=True)
    core.accounts.fund("a", 10_000.0, "xyz")
    core.submit("a", "xyz:TSLA", True, 101.0, 1.0, "ioc")
    core.advance(3_600_000 * 3)
    assert core.accounts.funding_history("a") == []
    core.set_funding("xyz:TSLA", [3_600_000 * 4], [0.001])
    core.advance(3_600_000 * 4)
    assert core.accounts.funding_history("a")[0].usdc == pytest.approx(-1.0 * core.mark_px("xyz:TSLA") * 0.001)
