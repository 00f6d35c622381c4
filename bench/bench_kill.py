"""Kill switch: click -> every resting order cancelled at the venue. Goal <= 100 ms.

The Hyperliquid engine runs live (Engine.run, maker style) against the in-process simulator with N resting post-only
buys; the venue's own book of the account (the simulator's matching core) is polled every millisecond.

  control   `kill` sent over the control plane (what tri-ctl and the panel send) -> the venue holds no order of the
            account; and the time until the answer comes back (the engine answers after its last cancel is acked)
  browser   CONFIRM KILL clicked in the Voilà panel in headless Debian Chromium (Playwright) -> the venue holds no
            order: browser -> Voilà kernel (websocket comm) -> control plane -> engine -> venue
  tri-ctl   `tri-ctl halt all` wall time, process start included (the operator's "halt within a second")

Medians over repeats; the machine is shared, so read them as +-30 %.
Run: .venv/bin/python bench/bench_kill.py [--reps 7] [--orders 1,3,5] [--no-browser]
"""
from __future__ import annotations
import argparse, asyncio, os, statistics, subprocess, sys, tempfile, time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from control_support import running_engine, rest_maker_buys, wait_for                  # noqa: E402
from tri_engine.control import discover, request                                          # noqa: E402

COINS = ("ETH", "SOL", "BTC", "DOGE", "LINK")
GOAL_MS = 100.0


def venue_orders(r) -> int:
    "Open orders of the engine's account in the simulator's matching core (the venue's truth, read in-process)."
    return len(r.sim.core.open_orders(r.acct.address.lower()))


async def until_venue_clear(r, t0: float, timeout: float = 10.0) -> float:
    "Milliseconds from t0 until the venue holds no order of the account (polled every ms)."
    while venue_orders(r) and time.perf_counter() - t0 < timeout: await asyncio.sleep(0.001)
    assert venue_orders(r) == 0, "orders still resting"
    return (time.perf_counter() - t0) * 1000


async def prepare(r, ep, n: int, tries: int = 5) -> None:
    "Flat (a resting buy may have filled), resumed, with n maker buys resting (tried again when one fills at once)."
    for _ in range(tries):
        if r.engine.signals.positions(): await asyncio.to_thread(request, ep, "flatten")
        await asyncio.to_thread(request, ep, "resume")
        await wait_for(lambda: not r.engine.tracker.open_orders(), 5)
        placed = await rest_maker_buys(r, list(COINS[:n]))
        if len(placed) == n and venue_orders(r) == n: return
        await asyncio.to_thread(request, ep, "cancel-all")
    raise AssertionError(f"could not rest {n} maker buys in {tries} tries")


async def bench_control(r, ep, n: int, reps: int) -> tuple[list[float], list[float]]:
    clear, answer = [], []
    for _ in range(reps):
        await prepare(r, ep, n)
        t0 = time.perf_counter()
        fut = asyncio.ensure_future(asyncio.to_thread(request, ep, "kill"))
        clear.append(await until_venue_clear(r, t0))
        await fut
        answer.append((time.perf_counter() - t0) * 1000)
    return clear, answer


async def bench_browser(r, ep, runs: Path, n: int, reps: int) -> list[float]:
    from playwright.async_api import async_playwright
    from test_panel_browser import voila, free_port, chromium_path, CHROME_ARGS, _http_ok
    tmp = Path(tempfile.mkdtemp())
    env = {**os.environ, "TRI_RUNS_DIR": str(runs), "JUPYTER_PATH": str(ROOT / ".venv" / "share" / "jupyter")}
    for k in ("JUPYTER_CONFIG_DIR", "JUPYTER_DATA_DIR", "JUPYTER_RUNTIME_DIR", "IPYTHONDIR"): env[k] = str(tmp / k.lower())
    port, out = free_port(), []
    with voila(ROOT / "runbooks" / "panel.ipynb", env, port):
        url = f"http://127.0.0.1:{port}"
        assert await wait_for(lambda: asyncio.to_thread(_http_ok, f"{url}/voila/static/voila.js"), 60, 0.3), "Voilà did not start"
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=chromium_path(), headless=True, args=CHROME_ARGS)
            page = await browser.new_page()
            await page.goto(url)
            for _ in range(reps):
                await prepare(r, ep, n)
                try: await page.locator(".tri-orders", has_text=str(n)).wait_for(timeout=60_000)
                except Exception:
                    await page.screenshot(path="/tmp/bench_fail.png"); raise
                await page.locator(".tri-state", has_text="RUNNING").wait_for(timeout=20_000)
                await page.get_by_role("button", name="KILL", exact=True).click()
                confirm = page.get_by_role("button", name="CONFIRM KILL", exact=True)
                await confirm.wait_for()
                t0 = time.perf_counter()
                click = asyncio.ensure_future(confirm.click())
                out.append(await until_venue_clear(r, t0))
                await click
                await page.locator(".tri-orders", has_text="0").wait_for(timeout=20_000)
            await browser.close()
    return out


def bench_trictl(runs: Path, reps: int) -> list[float]:
    out = []
    for _ in range(reps):
        t0 = time.perf_counter()
        p = subprocess.run([str(ROOT / ".venv" / "bin" / "tri-ctl"), "--runs", str(runs), "halt", "all"], capture_output=True, text=True)
        out.append((time.perf_counter() - t0) * 1000)
        assert p.returncode == 0, p.stdout + p.stderr
    return out


def line(label: str, xs: list[float]) -> str:
    med = statistics.median(xs)
    return f"{label:<44} median {med:7.1f} ms   min {min(xs):7.1f}   max {max(xs):7.1f}   goal {GOAL_MS:.0f} ms: {GOAL_MS / med:4.2f}x"


async def main(reps: int, sizes: list[int], browser: bool) -> None:
    runs = Path(tempfile.mkdtemp()) / "runs"
    async with running_engine(runs / "hl-bench", coins=COINS) as r:
        [ep] = discover(runs)
        r.engine.gate.bucket.capacity = r.engine.gate.bucket.tokens = 1e12         # measure the kill, not the 30 orders/min limit
        for n in sizes:
            clear, answer = await bench_control(r, ep, n, reps)
            print(line(f"control kill, {n} resting -> venue clear", clear))
            print(line(f"control kill, {n} resting -> answer", answer))
        if browser:
            print(line(f"browser CONFIRM KILL, {max(sizes)} resting -> venue clear", await bench_browser(r, ep, runs, max(sizes), max(3, reps // 2 + 1))))
        await asyncio.to_thread(request, ep, "resume")
        tc = await asyncio.to_thread(bench_trictl, runs, reps)
        print(f"{'tri-ctl halt all (process start included)':<44} median {statistics.median(tc):7.1f} ms   goal 1000 ms")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--orders", default="1,3,5", help="resting orders per trial (comma-separated, at most 5)")
    ap.add_argument("--no-browser", action="store_true")
    a = ap.parse_args()
    asyncio.run(main(a.reps, [int(x) for x in a.orders.split(",")], not a.no_browser))
