"Operator settings: the committed settings.ini, .env handling, and errors before anything connects."
from __future__ import annotations
import os
import pytest
from hypothesis import given, settings, strategies as st
from tri_engine.config import load_settings, SettingsError, ENV_KEYS
from tri_engine.core import Mode

PK = "0x" + "5a" * 32


def test_default_run_needs_no_environment_and_is_sim():
    s = load_settings(env={})
    assert s.mode is Mode.SIM and s.secret_values() == []
    assert s.source.endswith("settings.ini")


def test_dotenv_is_read_and_the_environment_wins(tmp_path, monkeypatch):
    root = tmp_path
    (root / ".env").write_text(f"EXECUTION_MODE=LIVE\nHL_WALLET_ADDRESS=0x{'1'*40}\nHL_PRIVATE_KEY={PK}\nHL_UNIVERSE=BTC,ETH\n")
    (root / "settings.ini").write_text("[risk]\nmax_daily_loss_usd_live = 40\n")
    monkeypatch.setenv("TRI_ENGINE_ROOT", str(root))
    for k in ENV_KEYS: monkeypatch.delenv(k, raising=False)
    s = load_settings(venues=["hyperliquid"])
    assert (s.mode, s.hl_universe, s.max_daily_loss_usd) == (Mode.LIVE, ("BTC", "ETH"), 40.0)
    monkeypatch.setenv("EXECUTION_MODE", "SIM")
    assert load_settings(venues=["hyperliquid"]).mode is Mode.SIM


def test_live_without_credentials_fails_before_connecting_and_names_keys(monkeypatch):
    with pytest.raises(SettingsError) as e:
        load_settings(env={"EXECUTION_MODE": "LIVE"})
    assert set(e.value.keys) == {"ALPACA_API_KEY_ID", "ALPACA_API_SECRET_KEY", "ALPACA_TRADING_MODE", "HL_WALLET_ADDRESS", "HL_PRIVATE_KEY"}


def test_alpaca_live_requires_alpaca_trading_mode_live():
    env = {"EXECUTION_MODE": "LIVE", "ALPACA_API_KEY_ID": "PKX", "ALPACA_API_SECRET_KEY": "y" * 40}
    with pytest.raises(SettingsError, match="ALPACA_TRADING_MODE: must be 'live'"):
        load_settings(env=env, venues=["alpaca"])
    assert load_settings(env={**env, "ALPACA_TRADING_MODE": "live"}, venues=["alpaca"]).is_live


def test_errors_never_show_secret_values():
    bad_pk = "0x" + "zz" * 32
    with pytest.raises(SettingsError) as e:
        load_settings(env={"HL_PRIVATE_KEY": bad_pk, "EXECUTION_MODE": "LIVE", "ALPACA_API_SECRET_KEY": "q" * 40})
    assert bad_pk not in str(e.value) and "q" * 40 not in str(e.value)


@settings(max_examples=50, deadline=None)
@given(st.text(alphabet="abcxyz-_!. 0123456789", min_size=1, max_size=12).filter(lambda v: v.strip().upper() not in ("SIM", "SHADOW", "PAPER", "LIVE")))
def test_unknown_mode_is_rejected(mode):
    with pytest.raises(SettingsError) as e: load_settings(env={"EXECUTION_MODE": mode})
    assert e.value.keys == ["EXECUTION_MODE"]


@settings(max_examples=60, deadline=None)
@given(key=st.sampled_from(["daily_drawdown_halt_pct", "max_daily_loss_usd_live", "max_order_notional_usd_paper", "orders_per_min", "stop_loss_pct"]),
       raw=st.sampled_from(["-1", "abc", "", "nan", "inf", "1e400", "0", "-0.5", "1,5"]))
def test_bad_risk_values_are_rejected_with_the_key_named(tmp_path_factory, key, raw):
    p = tmp_path_factory.mktemp("ini") / "settings.ini"
    p.write_text(f"[risk]\n{key} = {raw}\n")
    with pytest.raises(SettingsError) as e: load_settings(p, env={})
    assert e.value.keys == [f"[risk] {key}"]


def test_settings_are_immutable():
    s = load_settings(env={})
    with pytest.raises(Exception): s.risk.stop_loss_pct = 50.0
    with pytest.raises(TypeError): s.sector_caps.caps["Semis"] = 99
