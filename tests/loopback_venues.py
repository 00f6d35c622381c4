"""A small loopback server that speaks Alpaca market data and Hyperliquid /info + /ws to the unmodified SDKs.

It serves the bundled real data (via `tri_engine.data.load_bars`) in the venues' wire shapes:

- Alpaca `GET /v1beta3/crypto/us/bars` (BTC/USD -> bundled binance_spot BTCUSDT, a stand-in) and
  `GET /v2/stocks/bars` (bundled yahoo daily bars; keys required), with `next_page_token` paging,
  `limit` (capped at `page_limit` so paging is exercised), `sort` and the SDK's `page_token`.
- Hyperliquid `POST /info`: spotMeta, meta (main dex from the bundled HL coins; builder dex `xyz`
  with a few equities from the bundled yahoo daily bars), perpDexs, candleSnapshot (at most
  `hl_cap` = 5000 candles per response; optionally only the most recent `hl_history` candles).
- Hyperliquid `GET /ws`: ping/pong, subscribe/unsubscribe l2Book with a subscriptionResponse, then
  l2Book pushes every `book_interval_s`, built from the bundled Bitstamp top-20 snapshots.

Fault injection: `fail_after_pages` (Alpaca 500s), `mute_ws()` (connected but silent), `drop_ws()`
(server closes). Logs for assertions: `bar_pages`, `candle_requests`, `ws_connections`, `sent`.
To be superseded by the protocol simulators in tri_engine.sim.
"""
from __future__ import annotations
import asyncio, base64, json, re, tempfile, threading, time
from datetime import datetime, timezone
from pathlib import Path
import numpy as np
import polars as pl
from aiohttp import WSMsgType, web
from tri_engine.core import project_root, timeframe_ms
from tri_engine.data import load_bars

BUNDLED = project_root() / "data_cache" / "bundled"
SNAPSHOTS = BUNDLED / "books" / "bitstamp" / "btcusd_2015-05-01_l2_top20_snapshots.parquet"
HL_SZ_DECIMALS = {"BTC": 5, "ETH": 4, "SOL": 2, "AVAX": 2, "BNB": 3, "DOGE": 0, "HYPE": 2, "LINK": 1, "LTC": 2, "XRP": 0}
XYZ_STOCKS = ("TSLA", "NVDA", "AAPL")           # builder dex `xyz`, 1d candles from the bundled yahoo bars
_ALPACA_TF = {"Min": "m", "T": "m", "Hour": "h", "H": "h", "Day": "d", "D": "d"}


def _num(x: float) -> str:
    "A float as a plain decimal string (no exponent), as Hyperliquid sends prices and sizes."
    return np.format_float_positional(x, trim="-")


def _rfc3339(ts_ms: int) -> str:
    return datetime.fromtimestamp(ts_ms / 1000, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class LoopbackVenues:
    "Alpaca data REST + Hyperliquid /info and /ws on 127.0.0.1 (port 0), in a background thread."

    def __init__(self, page_limit: int = 1000, hl_cap: int = 5000, hl_history: int | None = None,
                 book_interval_s: float = 0.05, api_keys: tuple[str, str] = ("test-key-id", "test-secret-key")):
        self.page_limit, self.hl_cap, self.hl_history, self.book_interval_s, self.api_keys = page_limit, hl_cap, hl_history, book_interval_s, api_keys
        self.fail_after_pages: int | None = None
        self.bar_pages: list[dict] = []            # one entry per Alpaca bars page served (query + count)
        self.candle_requests: list[dict] = []      # candleSnapshot req bodies
        self.info_requests: list[str] = []         # /info types, in order
        self.ws_connections = 0
        self.sent: dict[tuple[str, int], int] = {} # (coin, time ms) -> snapshot row index
        self._series: dict[tuple, tuple[np.ndarray, np.ndarray]] = {}
        self._conns: dict[int, dict] = {}          # open websockets: id -> {"ws", "muted"}
        self._last_t: dict[str, int] = {}
        self._tmp = tempfile.TemporaryDirectory(prefix="loopback_cache_")
        (Path(self._tmp.name) / "bundled").symlink_to(BUNDLED)   # bundled data only, never anyone's downloads
        snap = pl.read_parquet(SNAPSHOTS)
        self._book = {k: snap.select([f"{k}_{i}" for i in range(1, 21)]).to_numpy() for k in ("bid_px", "bid_sz", "ask_px", "ask_sz")}
        self._hl_coins = sorted(load_bars("hyperliquid", list(HL_SZ_DECIMALS), "1h", cache=self.cache)["symbol"].unique().to_list())
        self.url = ""

    @property
    def cache(self) -> Path: return Path(self._tmp.name)

    # ---- data ---------------------------------------------------------------------------------
    def series(self, venue: str, symbol: str, tf: str) -> tuple[np.ndarray, np.ndarray]:
        "(ts ms, [open, high, low, close, volume]) of one bundled symbol, cached; empty when unknown."
        key = (venue, symbol, tf)
        if key not in self._series:
            try:
                df = load_bars(venue, [symbol], tf, cache=self.cache)
                self._series[key] = (df["ts"].dt.epoch("ms").to_numpy(), df.select("open", "high", "low", "close", "volume").to_numpy())
            except Exception:
                self._series[key] = (np.zeros(0, dtype=np.int64), np.zeros((0, 5)))
        return self._series[key]

    # ---- Alpaca ---------------------------------------------------------------------------------
    async def _alpaca_bars(self, request: web.Request) -> web.Response:
        crypto = request.path.startswith("/v1beta3/")
        q = request.query
        if not crypto and (request.headers.get("APCA-API-KEY-ID"), request.headers.get("APCA-API-SECRET-KEY")) != self.api_keys:
            return web.json_response({"message": "unauthorized."}, status=401)
        if self.fail_after_pages is not None and len(self.bar_pages) >= self.fail_after_pages:
            return web.Response(status=500, text='{"code":50010000,"message":"internal server error"}', content_type="application/json")
        symbols = [s for s in q.get("symbols", "").split(",") if s]
        if not symbols: return web.json_response({"code": 42210000, "message": "symbols is required"}, status=422)
        for s in symbols:
            if crypto and not re.fullmatch(r"[A-Z0-9]+/[A-Z]+", s):
                return web.json_response({"code": 40010001, "message": f"invalid symbol: {s} does not match ^[A-Z]+/[A-Z]+$"}, status=400)
        m = re.fullmatch(r"(\d+)(Min|T|Hour|H|Day|D)", q.get("timeframe", ""))
        if not m: return web.json_response({"code": 42210000, "message": f"invalid timeframe {q.get('timeframe')!r}"}, status=422)
        tf = m[1] + _ALPACA_TF[m[2]]
        try:
            start = int(datetime.fromisoformat(q["start"].replace("Z", "+00:00")).timestamp() * 1000) if "start" in q else 0
            end = int(datetime.fromisoformat(q["end"].replace("Z", "+00:00")).timestamp() * 1000) if "end" in q else int(time.time() * 1000)
            limit = int(q.get("limit", 1000))
        except ValueError as e:
            return web.json_response({"code": 42210000, "message": f"invalid parameter: {e}"}, status=422)
        if not 1 <= limit <= 10000: return web.json_response({"code": 42210000, "message": "invalid limit: must be between 1 and 10000"}, status=422)
        desc = q.get("sort", "asc") == "desc"
        items = []                                   # ordered by symbol, then time (as Alpaca pages)
        for sym in sorted(set(symbols)):
            src = (("binance_spot", sym.split("/")[0] + "USDT") if sym.endswith(("/USD", "/USDT")) else ("binance_spot", "")) if crypto else ("yahoo", sym)
            ts, v = self.series(src[0], src[1], tf)
            idx = np.nonzero((ts >= start) & (ts <= end))[0]          # Alpaca's end is inclusive
            items.extend((sym, int(ts[i]), i, src) for i in (idx[::-1] if desc else idx))
        pos = 0
        if tok := q.get("page_token"):
            try: sym_t, ts_t = base64.b64decode(tok).decode().split("|"); key = (sym_t, int(ts_t))
            except Exception: return web.json_response({"code": 40010001, "message": "invalid page token"}, status=400)
            pos = next((k + 1 for k, it in enumerate(items) if it[:2] == key), None)
            if pos is None: return web.json_response({"code": 40010001, "message": "invalid page token"}, status=400)
        page = items[pos:pos + min(limit, self.page_limit)]
        bars: dict[str, list] = {}
        for sym, t, i, src in page:
            o, h, l, c, vol = self.series(src[0], src[1], tf)[1][i].tolist()
            bars.setdefault(sym, []).append({"t": _rfc3339(t), "o": o, "h": h, "l": l, "c": c, "v": vol, "n": None, "vw": None})
        token = base64.b64encode(f"{page[-1][0]}|{page[-1][1]}".encode()).decode() if page and pos + len(page) < len(items) else None
        self.bar_pages.append({"path": request.path, "symbols": symbols, "start": start, "end": end, "limit": limit,
                               "page_token": q.get("page_token"), "bars": len(page)})
        return web.json_response({"bars": bars, "next_page_token": token})

    # ---- Hyperliquid /info ------------------------------------------------------------------------
    def _meta(self, dex: str) -> dict | None:
        if dex == "": return {"universe": [{"name": c, "szDecimals": HL_SZ_DECIMALS.get(c, 2), "maxLeverage": 20} for c in self._hl_coins],
                              "marginTables": [[20, {"description": "", "marginTiers": [{"lowerBound": "0.0", "maxLeverage": 20}]}]]}
        if dex == "xyz": return {"universe": [{"name": f"xyz:{s}", "szDecimals": 3, "maxLeverage": 10, "onlyIsolated": True, "marginMode": "strictIsolated"}
                                              for s in XYZ_STOCKS], "marginTables": [], "collateralToken": 0}
        return None

    def _candles(self, req: dict) -> list[dict]:
        coin, interval = req["coin"], req["interval"]
        if coin.startswith("xyz:"):
            if interval != "1d": return []
            ts, v = self.series("yahoo", coin[4:], "1d")
            ts = ts - ts % 86_400_000                                         # midnight New York -> 00:00 UTC of that date, as HL stamps 1d
        else:
            ts, v = self.series("hyperliquid", coin, interval)
        step = timeframe_ms(interval)
        lo = 0 if self.hl_history is None else max(0, len(ts) - self.hl_history)
        t0 = req["startTime"] - req["startTime"] % step                   # the bucket containing startTime
        idx = [i for i in np.nonzero((ts >= t0) & (ts <= (req.get("endTime") or 2**62)))[0] if i >= lo][: self.hl_cap]
        return [{"t": int(ts[i]), "T": int(ts[i]) + step - 1, "s": coin, "i": interval, "o": _num(v[i, 0]), "c": _num(v[i, 3]),
                 "h": _num(v[i, 1]), "l": _num(v[i, 2]), "v": _num(v[i, 4]), "n": 0} for i in idx]

    async def _info(self, request: web.Request) -> web.Response:
        try: body = await request.json(); kind = body["type"]
        except Exception: return web.Response(status=422, text="Failed to deserialize the JSON body into the target type", content_type="text/plain")
        self.info_requests.append(kind)
        if kind == "spotMeta":
            return web.json_response({"tokens": [{"name": "USDC", "szDecimals": 8, "weiDecimals": 8, "index": 0, "tokenId": "0x6d1e7cde53ba9467b783cb7c530ce054", "isCanonical": True, "evmContract": None, "fullName": None},
                                                 {"name": "PURR", "szDecimals": 0, "weiDecimals": 5, "index": 1, "tokenId": "0xc1fb593aeffbeb02f85e0308e9956a90", "isCanonical": True, "evmContract": None, "fullName": None}],
                                      "universe": [{"name": "PURR/USDC", "tokens": [1, 0], "index": 0, "isCanonical": True}]})
        if kind == "perpDexs":
            return web.json_response([None, {"name": "xyz", "fullName": "XYZ (loopback: bundled yahoo daily bars)", "deployer": "0x" + "0" * 40,
                                             "oracleUpdater": None, "feeRecipient": None, "assetToStreamingOiCap": [], "assetToFundingMultiplier": []}])
        if kind == "meta":
            m = self._meta(body.get("dex", ""))
            return web.json_response(m) if m is not None else web.Response(status=422, text=f"unknown dex {body.get('dex')!r}", content_type="text/plain")
        if kind == "candleSnapshot":
            self.candle_requests.append(dict(body["req"]))
            return web.json_response(self._candles(body["req"]))
        return web.Response(status=422, text="Failed to deserialize the JSON body into the target type", content_type="text/plain")

    # ---- Hyperliquid /ws ------------------------------------------------------------------------
    def _known_coin(self, coin: str) -> bool:
        return coin in self._hl_coins or coin in {f"xyz:{s}" for s in XYZ_STOCKS}

    def _l2book(self, coin: str, row: int) -> dict:
        now = max(int(time.time() * 1000), self._last_t.get(coin, 0) + 1)       # strictly increasing per coin
        self._last_t[coin] = now
        self.sent[(coin, now)] = row
        b = self._book
        side = lambda px, sz: [{"px": _num(px[i]), "sz": _num(sz[i]), "n": 1} for i in range(20) if not np.isnan(px[i])]
        return {"channel": "l2Book", "data": {"coin": coin, "time": now, "levels": [side(b["bid_px"][row], b["bid_sz"][row]), side(b["ask_px"][row], b["ask_sz"][row])]}}

    async def _push_books(self, conn: dict, coin: str) -> None:
        ws, row = conn["ws"], (sum(map(ord, coin)) * 997) % len(self._book["bid_px"])
        while not ws.closed:
            if not conn["muted"]:
                await ws.send_str(json.dumps(self._l2book(coin, row)))
                row = (row + 1) % len(self._book["bid_px"])
            await asyncio.sleep(self.book_interval_s)

    async def _ws(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        conn = {"ws": ws, "muted": False}
        self._conns[id(conn)] = conn
        self.ws_connections += 1
        tasks: dict[str, asyncio.Task] = {}
        try:
            await ws.send_str("Websocket connection established.")
            async for m in ws:
                if m.type != WSMsgType.TEXT: continue
                try: msg = json.loads(m.data)
                except ValueError: await ws.send_str(json.dumps({"channel": "error", "data": f"Invalid message {m.data[:100]}"})); continue
                method, sub = msg.get("method"), msg.get("subscription") or {}
                if method == "ping": await ws.send_str(json.dumps({"channel": "pong"}))
                elif method in ("subscribe", "unsubscribe") and sub.get("type") == "l2Book" and self._known_coin(sub.get("coin", "")):
                    await ws.send_str(json.dumps({"channel": "subscriptionResponse", "data": {"method": method, "subscription": sub}}))
                    if method == "subscribe" and sub["coin"] not in tasks: tasks[sub["coin"]] = asyncio.create_task(self._push_books(conn, sub["coin"]))
                    elif method == "unsubscribe" and sub["coin"] in tasks: tasks.pop(sub["coin"]).cancel()
                else: await ws.send_str(json.dumps({"channel": "error", "data": f"Invalid subscription {json.dumps(sub)}"}))
        finally:
            for t in tasks.values(): t.cancel()
            self._conns.pop(id(conn), None)
        return ws

    def mute_ws(self) -> None:
        "Every open websocket stays connected but stops pushing books (pongs still answered)."
        for c in list(self._conns.values()): c["muted"] = True

    def drop_ws(self) -> None:
        "Close every open websocket from the server side."
        async def close_all():
            for c in list(self._conns.values()): await c["ws"].close()
        asyncio.run_coroutine_threadsafe(close_all(), self._loop).result(5)

    # ---- lifecycle ------------------------------------------------------------------------------
    async def _start(self) -> None:
        app = web.Application()
        app.router.add_get("/v1beta3/crypto/us/bars", self._alpaca_bars)
        app.router.add_get("/v2/stocks/bars", self._alpaca_bars)
        app.router.add_post("/info", self._info)
        app.router.add_get("/ws", self._ws)
        async def close_ws(_app):
            for c in list(self._conns.values()): await c["ws"].close()
        app.on_shutdown.append(close_ws)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"

    def start(self) -> "LoopbackVenues":
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="loopback-venues", daemon=True)
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    def stop(self) -> None:
        try: asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            self._tmp.cleanup()

    def __enter__(self): return self.start()
    def __exit__(self, *exc): self.stop()
