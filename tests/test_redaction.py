"A private key or API secret handed to the event log in any field, shape or nesting never reaches the file."
from __future__ import annotations
import json
from hypothesis import given, settings, strategies as st, HealthCheck
from tri_engine.core import EventLog, ReplayClock, Redactor, REDACTED
from tri_engine.config import load_settings

PK_HEX = "4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318"   # a well-known TEST key (eth docs), never funded
ALPACA_SECRET = "Zx9Qw3Er7Ty1Ui5Op2As6Df4Gh8Jk0LzXcVbNm12"                      # 40 chars, fake


def _forms(pk: str) -> list:
    return ["0x" + pk, pk, pk.upper(), "0X" + pk, f"key={pk};", f"signer 0x{pk} failed", "prefix" + pk + "suffix",
            bytes.fromhex(pk), int(pk, 16), {"inner": ["0x" + pk]}, ValueError(f"bad key 0x{pk}")]

json_leaf = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6), st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=20))

def nests(leaf):
    return st.recursive(leaf, lambda kids: st.one_of(st.lists(kids, max_size=4), st.dictionaries(st.text(max_size=8), kids, max_size=4)), max_leaves=12)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_private_key_in_any_field_never_reaches_the_file(tmp_path_factory, data):
    form = data.draw(st.sampled_from(_forms(PK_HEX)))
    payload = data.draw(nests(json_leaf))
    where = data.draw(st.sampled_from(["value", "key", "list", "deep"]))
    if where == "value": fields = {"f": form, "other": payload}
    elif where == "key": fields = {"m": {str(form) if not isinstance(form, (bytes, int)) else ("0x" + PK_HEX): 1, "p": payload}}
    elif where == "list": fields = {"l": [payload, form, payload]}
    else: fields = {"a": {"b": [{"c": (form, payload)}]}}
    path = tmp_path_factory.mktemp("log") / "events.jsonl"
    with EventLog(path, "hl", ReplayClock(0)) as log:          # NOT configured: caught by shape alone
        log.log("order_error", **fields)
    raw = path.read_bytes().decode()
    json.loads(raw)
    for needle in (PK_HEX, PK_HEX.upper(), PK_HEX[:40], str(int(PK_HEX, 16))[:30]):
        assert needle not in raw


def test_configured_secrets_from_settings_are_redacted_even_when_not_secret_shaped(tmp_path):
    fmp = "short-fmp-key-77"
    st = load_settings(env={"FMP_API_KEY": fmp, "ALPACA_API_KEY_ID": "PKTESTKEYID000000001", "ALPACA_API_SECRET_KEY": ALPACA_SECRET,
                            "HL_PRIVATE_KEY": PK_HEX})
    path = tmp_path / "e.jsonl"
    with EventLog(path, "equities", ReplayClock(0), secrets=st.secret_values()) as log:
        log.log("fmp_error", url=f"https://financialmodelingprep.com/stable/economic-calendar?apikey={fmp}")
        log.log("boot", settings=repr(st), headers={"APCA-API-KEY-ID": "PKTESTKEYID000000001", "APCA-API-SECRET-KEY": ALPACA_SECRET})
        log.log("oops", message=f"auth failed for {ALPACA_SECRET[:-1]}X and {ALPACA_SECRET}")
    raw = path.read_text()
    for s in (fmp, ALPACA_SECRET, "PKTESTKEYID000000001", PK_HEX):
        assert s not in raw
    assert raw.count(REDACTED) >= 5
    assert "Secret('***')" in raw                               # repr of settings shows presence, never the value


def test_non_secrets_survive_redaction():
    r = Redactor()
    rec = {"cloid": "0x" + "0" * 31 + "7", "wallet": "0x" + "ab" * 20, "coin": "xyz:TSLA", "px": 101.25, "ts_ms": 1_753_083_000_000,
           "event_text": "Order has invalid price."}
    assert r(rec) == rec
