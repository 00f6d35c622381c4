"""Full calibration time: all three screeners in-process on data_cache (median of 3; goal <= 2 s).
Second figure: the two Hyperliquid screeners over the unmodified SDK against the loopback simulator (no pacing),
with the request count and rate-limit weight they spend, and what that weight costs at the default pace."""
from __future__ import annotations
import asyncio, io, statistics, tempfile, threading, time
from contextlib import redirect_stdout
from tri_engine.core import iso_ms
from tri_engine.screeners import HlReader, Pacer, equities, hl, hip3

GOAL_S = 2.0
SIM_END_MS, SIM_DAYS, SIM_BARS = 1_753_504_200_000, 4, 10       # what the loopback simulator can serve (see tests/test_screeners.py)

def calibrate(d: str) -> None:
    "Run the three screeners as the operator would, writing into `d`."
    with redirect_stdout(io.StringIO()):
        assert equities.main(["--out", f"{d}/equities.toml"]) == 0
        assert hl.main(["--out", f"{d}/hl_native.toml"]) == 0
        assert hip3.main(["--top", "5", "--apply", "--out", f"{d}/hl.toml"]) == 0

def calibrate_sdk(url: str, d: str) -> None:
    "The two Hyperliquid CLIs over the SDK, unpaced (--pace 0)."
    common = ["--url", url, "--pace", "0", "--end", iso_ms(SIM_END_MS), "--days", str(SIM_DAYS)]
    with redirect_stdout(io.StringIO()):
        assert hl.main([*common, "--out", f"{d}/hl_native.toml"]) == 0
        assert hip3.main([*common, "--bars", str(SIM_BARS), "--top", "5", "--apply", "--out", f"{d}/hl.toml"]) == 0

def apply_reads(url: str) -> Pacer:
    "The reads of one `hip3 --apply` (HIP-3 frames + native half on one reader), counted by an unpaced Pacer."
    rd = HlReader(url, None, progress=False)
    hip3.hip3_frames_sdk(rd, None, SIM_BARS, SIM_END_MS)
    hl.screen_native(days=SIM_DAYS, end=SIM_END_MS, reader=rd)
    return rd.pacer

def median_s(fn, n: int = 3) -> float:
    times = []
    for _ in range(n):
        t0 = time.perf_counter(); fn(); times.append(time.perf_counter() - t0)
    return statistics.median(times)

if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as d:
        calibrate(d)                                        # warm: imports, parquet metadata
        med = median_s(lambda: calibrate(d))
    print(f"full calibration (equities + hl native + hip3 --apply): median {med:.2f} s of 3 (goal <= {GOAL_S:.0f} s, {GOAL_S / med:.1f}x headroom)")

    from tri_engine.sim.hyperliquid import HyperliquidSim
    loop = asyncio.new_event_loop()
    th = threading.Thread(target=loop.run_forever, daemon=True); th.start()
    sim = HyperliquidSim(speed=None, start_ms=SIM_END_MS)
    asyncio.run_coroutine_threadsafe(sim.__aenter__(), loop).result(120)
    try:
        with tempfile.TemporaryDirectory() as d:
            calibrate_sdk(sim.url, d); p = apply_reads(sim.url)
            med_sdk = median_s(lambda: calibrate_sdk(sim.url, d))
    finally:
        asyncio.run_coroutine_threadsafe(sim.__aexit__(None, None, None), loop).result(30)
        loop.call_soon_threadsafe(loop.stop); th.join(10)
    paced = Pacer(600)
    print(f"hl + hip3 --apply CLIs over the SDK vs the loopback sim ({SIM_DAYS} d / {SIM_BARS} bars, --pace 0): median {med_sdk:.2f} s of 3; "
          f"one hip3 --apply reads {p.requests} requests, weight {p.spent} -> >= {max(0.0, p.spent - paced.burst) * 60 / paced.rate:.0f} s at the default pace (600/min)")
