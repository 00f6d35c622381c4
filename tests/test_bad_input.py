"""Bad input never trades: malformed settings, environment and universe files stop the engine with a clear error before
it connects or sends anything; bad market data (NaN / zero / negative prices and sizes, empty, one-sided or crossed books,
bars out of order) is refused where it is built or skipped by the engine with one log line, and nothing is sent."""
from __future__ import annotations
import asyncio, json, math
from pathlib import Path
import pytest
from eth_account import Account
from tri_engine.config import SettingsError, load_settings
from tri_engine.core import Bar, BookSnapshot, Fill, IntentKind, Side
from tri_engine.engines.hl import run_hl, universe_plan
from tri_engine.sim.hyperliquid import HyperliquidSim
from tri_engine.venues.hyperliquid.parsing import parse_l2book
from tri_engine.core import DataError
from test_hl_engine import engine_on_sim, events, venue_info, sdk, warm, leaning_book


@pytest.mark.parametrize("ini, key", [
    ("[risk]\norders_per_min = 0\n", "[risk] orders_per_min"),
    ("[risk]\nstop_loss_pct = nan\n", "[risk] stop_loss_pct"),
    ("[risk]\nmax_order_notional_usd_paper = -5\n", "[risk] max_order_notional_usd_paper"),
    ("[hyperliquid]\nnotional_native_usd = lots\n", "[hyperliquid] notional_native_usd"),
    ("[riskk]\nx = 1\n", "[riskk]"),
    ("[z_tiers]\ncrypto_major = 0.5, 1.25\n", "[z_tiers] crypto_major"),
    ("this is not an ini file\n", "unreadable"),
])
async def test_a_malformed_settings_file_stops_the_run_before_anything_starts(tmp_path, ini, key):
    p = tmp_path / "settings.ini"
    p.write_text(ini)
    with pytest.raises(SettingsError) as e:
        await run_hl(mode="SIM", duration_s=1, run_dir=tmp_path / "run", settings_path=str(p))
    assert any(key in k or key in m for k, m in e.value.problems), e.value.problems
    assert not (tmp_path / "run").exists()                                            # no log, no journal, no simulator, no order


@pytest.mark.parametrize("env, key", [
    ({"EXECUTION_MODE": "YOLO"}, "EXECUTION_MODE"),
    ({"HIP3_LEVERAGE": "xyz:TSLA=abc"}, "HIP3_LEVERAGE"),
    ({"EXECUTION_MODE": "LIVE", "HL_WALLET_ADDRESS": "0x123", "HL_PRIVATE_KEY": "0x" + "ab" * 32}, "HL_WALLET_ADDRESS"),
])
async def test_a_malformed_environment_stops_the_run_before_anything_starts(tmp_path, monkeypatch, env, key):
    for k, v in env.items(): monkeypatch.setenv(k, v)
    with pytest.raises(SettingsError) as e:
        await run_hl(duration_s=1, run_dir=tmp_path / "run")
    assert key in e.value.keys and not (tmp_path / "run").exists()
    assert "ab" * 32 not in str(e.value)                                              # never a secret in the message


@pytest.mark.parametrize("text, msg", [
    ('[native\ncoins = ["BTC"]\n', "not a valid universe file"),
    ('[native]\ncoins = ["BTC", 7]\n', "malformed coin name"),
    ('[native]\ncoins = []\n[hip3]\ncoins = []\n', "empty Hyperliquid universe"),        # a reviewed file that lists nothing
])
def test_a_malformed_universe_file_is_refused_naming_the_file(tmp_path, text, msg):
    p = tmp_path / "hl.toml"
    p.write_text(text)
    with pytest.raises(ValueError, match=msg) as e: universe_plan(load_settings(env={}), path=p)
    assert "hl.toml" in str(e.value)


async def test_a_coin_the_venue_does_not_list_stops_the_run_before_any_order(tmp_path):
    async with HyperliquidSim(["ETH", "SOL"], speed=None) as sim:
        with pytest.raises(ValueError, match=r"\['NOPE'\] not listed"):
            await run_hl(mode="SIM", universe="ETH,NOPE", duration_s=1, run_dir=tmp_path / "run", venue_url=sim.url)
        assert sum(sim.n_requests.values()) == 0                                      # not one signed action reached the venue


def test_nan_zero_and_negative_numbers_are_refused_where_events_are_built():
    for px in (math.nan, 0.0, -1.0, math.inf):
        with pytest.raises(ValueError, match="close must be a finite positive"):
            Bar(venue="hl", symbol="ETH", timeframe="1m", ts_ms=0, open=1.0, high=2.0, low=0.5, close=px)
    with pytest.raises(ValueError, match="bad size"):
        BookSnapshot(venue="hl", symbol="ETH", ts_ms=0, bid_px=(100.0,), bid_sz=(-1.0,), ask_px=(101.0,), ask_sz=(1.0,))
    with pytest.raises(ValueError, match="bad size"):
        BookSnapshot(venue="hl", symbol="ETH", ts_ms=0, bid_px=(100.0,), bid_sz=(math.nan,), ask_px=(101.0,), ask_sz=(1.0,))
    with pytest.raises(DataError, match="malformed l2Book"):
        parse_l2book({"coin": "ETH", "time": 1, "levels": [[{"px": "3000", "sz": "-1", "n": 1}], [{"px": "3001", "sz": "1", "n": 1}]]})


def bad_books(good: BookSnapshot, now_ms: int) -> dict[str, BookSnapshot]:
    "Books the engine must not trade on, keyed by the reason it logs."
    mk = lambda **kw: BookSnapshot(**{"venue": "hl", "symbol": good.symbol, "ts_ms": now_ms, "bid_px": good.bid_px, "bid_sz": tuple(s * 5 for s in good.bid_sz),
                                      "ask_px": good.ask_px, "ask_sz": good.ask_sz} | kw)
    return {"empty": mk(bid_px=(), bid_sz=(), ask_px=(), ask_sz=()),
            "one_sided": mk(ask_px=(), ask_sz=()),
            "crossed": mk(bid_px=(good.ask_px[0] + 1.0,), bid_sz=(50.0,)),
            "bad_price": mk(bid_px=(math.nan,), bid_sz=(50.0,)),
            "bad_price_zero": mk(ask_px=(0.0,), ask_sz=(1.0,)),
            "bad_price_negative": mk(bid_px=(-5.0,), bid_sz=(50.0,))}


async def test_unusable_books_are_skipped_and_logged_and_nothing_is_sent(tmp_path):
    async with engine_on_sim(tmp_path, coins=("ETH", "SOL")) as eng:
        good = eng.books["SOL"]
        warm(eng, "SOL", [180.0 + (i % 3) * 0.1 for i in range(60)], 170.0)          # the signal says buy ...
        eng.books.pop("SOL")                                                          # ... on the first usable book
        for i, (why, book) in enumerate(bad_books(good, eng.now_ms()).items()):
            await eng.on_book(book)
            assert eng.stats["skipped_books"] == i + 1 and events(eng, "book_skipped")[-1]["reason"] == why.split("_zero")[0].split("_negative")[0]
        assert not events(eng, "hl_order_intent") and "SOL" not in eng.books
        assert await sdk((await venue_info(eng)).open_orders, eng.acct.address) == []
        n_logged = len(events(eng, "book_skipped"))
        await eng.on_book(bad_books(good, eng.now_ms())["crossed"])                  # a repeat is counted, not logged again
        assert len(events(eng, "book_skipped")) == n_logged and eng.stats["skipped_books"] == 7
        await eng.on_book(leaning_book_at(good, eng.now_ms()))                       # a usable book: the same signal trades
        assert [e["coin"] for e in events(eng, "hl_order_intent")] == ["SOL"]


def leaning_book_at(b: BookSnapshot, now_ms: int) -> BookSnapshot:
    return BookSnapshot(venue="hl", symbol=b.symbol, ts_ms=now_ms, bid_px=b.bid_px, bid_sz=tuple(s * 5 for s in b.bid_sz), ask_px=b.ask_px, ask_sz=b.ask_sz)


async def test_bars_out_of_order_are_skipped_and_logged(tmp_path):
    async with engine_on_sim(tmp_path, coins=("ETH", "SOL")) as eng:
        t = eng.now_ms() - 10 * 60_000
        bar = lambda ts, c: Bar(venue="hl", symbol="SOL", timeframe="1m", ts_ms=ts, open=c, high=c, low=c, close=c)
        await eng.on_bar(bar(t, 180.0))
        n, z = eng.signals.symbols["SOL"].z.count, eng.signals.symbols["SOL"].last_z
        await eng.on_bar(bar(t - 60_000, 1.0))                                        # older than the last: out of order
        await eng.on_bar(bar(t, 1.0))                                                 # the same minute again
        assert (eng.signals.symbols["SOL"].z.count, eng.signals.symbols["SOL"].last_z) == (n, z)
        assert [e["reason"] for e in events(eng, "bar_skipped")] == ["out_of_order"] and eng.stats["skipped_bars"] == 2
        await eng.on_bar(bar(t + 60_000, 180.1))
        assert eng.signals.symbols["SOL"].last_bar_ms == t + 60_000


async def test_a_fill_with_impossible_numbers_is_skipped_and_moves_no_position(tmp_path):
    async with engine_on_sim(tmp_path, coins=("ETH", "SOL")) as eng:
        from test_hl_engine import decide
        o = await decide(eng, "ETH", IntentKind.ENTRY, Side.BUY)
        for px, sz in ((math.nan, 0.01), (3000.0, -0.01), (0.0, 0.01)):
            await eng.on_fill(Fill(cid=o.cid, venue="hl", symbol="ETH", side=Side.BUY, px=px, sz=sz, ts_ms=eng.now_ms(), fill_id=f"bad{px}{sz}"))
        assert o.filled_sz == 0 and len(events(eng, "fill_skipped")) == 3 and eng.signals.positions() == {}


async def test_a_nan_notional_drops_the_intent_and_sends_nothing(tmp_path):
    import dataclasses
    async with engine_on_sim(tmp_path, coins=("ETH", "SOL")) as eng:
        from test_hl_engine import decide
        eng.cfg = dataclasses.replace(eng.cfg, notional_usd=lambda c: math.nan)
        assert await decide(eng, "ETH", IntentKind.ENTRY, Side.BUY) is None
        assert events(eng, "intent_dropped")[-1]["reason"] == "below_min_size" and not events(eng, "hl_order_intent")
        assert eng.signals._tag("ETH", "default").flat
