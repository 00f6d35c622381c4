"FMP economic calendar against a real loopback HTTP server: filtering, the 6 h cache, key hygiene, fallback."
from __future__ import annotations
import json, threading, urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tri_engine.core import ReplayClock
from tri_engine.macro import (FMP_SOURCE, FmpEconomicCalendar, FmpError, load_bundled_macro_events,
                              load_macro_calendar, utc_ms)
from tri_engine.risk import MacroCalendar

FIXTURE = Path(__file__).parent / "fixtures" / "fmp_economic_calendar.json"
API_KEY = "fmpTESTkey-7f3a9c21d4e84b0a9e11c5d2"
SEPT_1 = utc_ms("2024-09-01T00:00Z")
SIX_HOURS_MS = 6 * 3_600_000


class FakeFmp(BaseHTTPRequestHandler):
    "Serves the recorded-shape payload on /stable/economic-calendar, or a 500 when told to."
    def do_GET(self):
        srv = self.server
        srv.requests.append(self.path)
        url = urllib.parse.urlsplit(self.path)
        if srv.fail_with:
            body, status = b'{"Error Message": "internal error"}', srv.fail_with
        elif url.path != "/stable/economic-calendar":
            body, status = b"[]", 404
        else:
            body, status = FIXTURE.read_bytes(), 200
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):  # keep pytest output clean
        pass


@pytest.fixture(autouse=True)
def no_proxies(monkeypatch):
    "Loopback only: a proxy from the environment must not see these requests."
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1")


@pytest.fixture
def fmp_server():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), FakeFmp)
    srv.requests, srv.fail_with = [], 0
    th = threading.Thread(target=srv.serve_forever, daemon=True)
    th.start()
    srv.base_url = f"http://127.0.0.1:{srv.server_address[1]}"
    yield srv
    srv.shutdown()
    srv.server_close()
    th.join(5)


def all_cache_bytes(cache_dir: Path) -> list[tuple[str, bytes]]:
    return [(str(p), p.read_bytes() if p.is_file() else b"") for p in cache_dir.rglob("*")]


def test_us_tier1_releases_are_kept_and_cpi_variants_collapse(fmp_server, tmp_path):
    fmp = FmpEconomicCalendar(API_KEY, base_url=fmp_server.base_url, cache_dir=tmp_path, clock=ReplayClock(SEPT_1))
    events = fmp.events("2024-09-01", "2024-09-30")
    assert [(e.kind, e.ts_ms, e.time_et, e.source) for e in events] == [
        ("NFP", utc_ms("2024-09-06T12:30Z"), "08:30", FMP_SOURCE),
        ("CPI", utc_ms("2024-09-11T12:30Z"), "08:30", FMP_SOURCE),
        ("FOMC", utc_ms("2024-09-18T18:00Z"), "14:00", FMP_SOURCE),
    ]
    assert events[1].description.count(";") == 5          # six CPI rows, one release
    assert "ADP" not in " ".join(e.description for e in events)
    (path,) = fmp_server.requests
    url = urllib.parse.urlsplit(path)
    assert url.path == "/stable/economic-calendar"
    assert urllib.parse.parse_qs(url.query) == {"from": ["2024-09-01"], "to": ["2024-09-30"], "apikey": [API_KEY]}


def test_second_read_within_six_hours_does_not_hit_the_server(fmp_server, tmp_path):
    clock = ReplayClock(SEPT_1)
    fmp = FmpEconomicCalendar(API_KEY, base_url=fmp_server.base_url, cache_dir=tmp_path, clock=clock)
    first = fmp.events("2024-09-01", "2024-09-30")
    clock.advance(SIX_HOURS_MS - 1)
    again = FmpEconomicCalendar(API_KEY, base_url=fmp_server.base_url, cache_dir=tmp_path, clock=clock)  # e.g. after a restart
    assert again.events("2024-09-01", "2024-09-30") == first
    assert len(fmp_server.requests) == 1
    clock.advance(1)
    assert fmp.events("2024-09-01", "2024-09-30") == first
    assert len(fmp_server.requests) == 2
    fmp.events("2024-09-02", "2024-09-30")                # another window is another cache entry
    assert len(fmp_server.requests) == 3


def test_api_key_never_reaches_the_cache_directory(fmp_server, tmp_path):
    fmp = FmpEconomicCalendar(API_KEY, base_url=fmp_server.base_url, cache_dir=tmp_path, clock=ReplayClock(SEPT_1))
    fmp.events("2024-09-01", "2024-09-30")
    files = all_cache_bytes(tmp_path)
    assert files, "nothing was cached"
    for name, data in files:
        assert API_KEY not in name and API_KEY.encode() not in data
    assert API_KEY not in repr(fmp)


def test_server_error_raises_redacted_error_and_caches_nothing(fmp_server, tmp_path):
    fmp_server.fail_with = 500
    fmp = FmpEconomicCalendar(API_KEY, base_url=fmp_server.base_url, cache_dir=tmp_path, clock=ReplayClock(SEPT_1))
    with pytest.raises(FmpError) as info:
        fmp.events("2024-09-01", "2024-09-30")
    msg = str(info.value)
    assert "HTTP 500" in msg and "apikey=***" in msg and API_KEY not in msg
    assert info.value.__context__ is None and info.value.__cause__ is None
    assert all_cache_bytes(tmp_path) == []


def test_server_500_falls_back_to_the_bundled_calendar(fmp_server, tmp_path):
    fmp_server.fail_with = 500
    warnings: list[str] = []
    cal = load_macro_calendar(API_KEY, clock=ReplayClock(SEPT_1), cache_dir=tmp_path, base_url=fmp_server.base_url,
                              on_warning=warnings.append)
    assert len(fmp_server.requests) == 1                  # it did try
    assert cal.events == MacroCalendar(load_bundled_macro_events()).events
    assert cal.is_halted(utc_ms("2024-09-11T12:40Z"))     # the CPI halt still holds
    assert len(warnings) == 1 and "HTTP 500" in warnings[0] and API_KEY not in warnings[0]


def test_connection_refused_falls_back_without_leaking_the_key(tmp_path, caplog):
    srv = ThreadingHTTPServer(("127.0.0.1", 0), FakeFmp)    # bind, then close: a port nobody listens on
    port = srv.server_address[1]
    srv.server_close()
    with caplog.at_level("WARNING", logger="tri_engine.macro"):
        cal = load_macro_calendar(API_KEY, clock=ReplayClock(SEPT_1), cache_dir=tmp_path,
                                  base_url=f"http://127.0.0.1:{port}", timeout_s=2)
    assert len(cal) == 102
    assert "macro_fmp_unavailable" in caplog.text and API_KEY not in caplog.text


def test_fmp_adds_releases_the_bundled_file_lacks(fmp_server, tmp_path):
    rows = (Path(__file__).resolve().parents[1] / "data_cache/bundled/macro/us_macro_events_2024_2027.csv").read_text().splitlines()
    fomc_only = tmp_path / "fomc_only.csv"
    fomc_only.write_text("\n".join([rows[0]] + [r for r in rows if ",FOMC," in r]) + "\n")
    cal = load_macro_calendar(API_KEY, clock=ReplayClock(SEPT_1), cache_dir=tmp_path / "cache",
                              base_url=fmp_server.base_url, bundled_path=fomc_only)
    q = urllib.parse.parse_qs(urllib.parse.urlsplit(fmp_server.requests[0]).query)
    assert (q["from"], q["to"]) == (["2024-08-31"], ["2024-10-01"])   # yesterday -> 30 days ahead, by the injected clock
    sept = [e for e in cal.events if utc_ms("2024-09-01T00:00Z") <= e.ts_ms < utc_ms("2024-10-01T00:00Z")]
    assert [(e.kind, e.source == FMP_SOURCE) for e in sept] == [("NFP", True), ("CPI", True), ("FOMC", False)]
    assert cal.is_halted(utc_ms("2024-09-06T12:44Z")) and not cal.is_halted(utc_ms("2024-09-06T12:46Z"))
