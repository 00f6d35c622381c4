"The kill-switch panel in a real browser: Voilà serves runbooks/panel.ipynb, Debian's Chromium driven by Playwright clicks KILL."
from __future__ import annotations
import asyncio, contextlib, os, shutil, signal, socket, subprocess, time, urllib.request
from pathlib import Path
import pytest
from conftest import ROOT, BIN
from control_support import running_engine, rest_maker_buys, take_position, venue_open_orders, wait_for

ARTIFACTS = Path(os.environ.get("TRI_ARTIFACTS_DIR") or ROOT / "runs" / "artifacts")
CHROME_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync",
               "--no-first-run", "--disable-quic", "--disable-dev-shm-usage"]


def chromium_path() -> str:
    "Debian's Chromium (scripts/setup.sh installs it); Playwright never downloads a browser here."
    p = os.environ.get("TRI_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    assert p, "Chromium not found: run scripts/setup.sh (apt-get install chromium) or set TRI_CHROMIUM"
    return p


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as r: return r.status == 200
    except OSError: return False


@contextlib.contextmanager
def voila(notebook: Path, env: dict, port: int):
    "Voilà serving one notebook on loopback; stopped (with its kernels) afterwards."
    log = open(Path(env["JUPYTER_RUNTIME_DIR"]).parent / "voila.log", "w")
    p = subprocess.Popen([str(BIN / "voila"), str(notebook), "--no-browser", f"--port={port}", "--Voila.ip=127.0.0.1",
                          "--ServerApp.port_retries=0"], env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try: yield p
    finally:
        p.send_signal(signal.SIGTERM)
        try: p.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL); p.wait()
        log.close()


async def test_kill_in_the_voila_panel_halts_the_engine_and_clears_its_orders_at_the_venue(tmp_path, jupyter_env):
    from playwright.async_api import async_playwright
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    runs, port = tmp_path / "runs", free_port()
    env = {**jupyter_env, "TRI_RUNS_DIR": str(runs)}
    async with running_engine(runs / "hl-sim-demo") as r:
        await take_position(r, "SOL", 1.0)
        placed = await rest_maker_buys(r, ["ETH", "BTC", "DOGE", "LINK"])
        assert len(placed) == 4 and len(await venue_open_orders(r)) == 4
        with voila(ROOT / "runbooks" / "panel.ipynb", env, port) as server:
            url = f"http://127.0.0.1:{port}"
            up = await wait_for(lambda: asyncio.to_thread(_http_ok, f"{url}/voila/static/voila.js"), 60, 0.3)
            assert up, (Path(env["JUPYTER_RUNTIME_DIR"]).parent / "voila.log").read_text()[-3000:]
            async with async_playwright() as pw:
                browser = await pw.chromium.launch(executable_path=chromium_path(), headless=True, args=CHROME_ARGS)
                try:
                    page = await browser.new_page(viewport={"width": 1000, "height": 1000})
                    await page.goto(url)
                    card = page.locator(".tri-card[data-engine='hl-sim-demo']")
                    await card.get_by_text("RUNNING").wait_for(timeout=90_000)
                    await page.locator(".tri-orders", has_text="4").wait_for(timeout=20_000)
                    widget = page.locator(".widget-vbox").first                               # the panel itself, for the README
                    await page.screenshot(path=str(ARTIFACTS / "panel_before.png"), full_page=True)
                    await widget.screenshot(path=str(ARTIFACTS / "panel_widget_before.png"))

                    await page.get_by_role("button", name="KILL", exact=True).click()
                    confirm = page.get_by_role("button", name="CONFIRM KILL", exact=True)
                    await confirm.wait_for(timeout=10_000)
                    await asyncio.sleep(0.5)
                    assert not r.engine.kill.halted and len(await venue_open_orders(r)) == 4     # nothing happens before the confirmation
                    await widget.screenshot(path=str(ARTIFACTS / "panel_widget_confirm.png"))

                    await confirm.click()
                    assert await wait_for(lambda: r.engine.kill.halted, 10), "KILL did not halt the engine"
                    assert await wait_for(lambda: _no_orders(r), 10), "orders still resting at the venue after KILL"
                    await card.get_by_text("HALTED").wait_for(timeout=20_000)
                    await page.locator(".tri-orders", has_text="0").wait_for(timeout=20_000)
                    await page.get_by_text("KILL ok").wait_for(timeout=20_000)
                    await page.screenshot(path=str(ARTIFACTS / "panel_after.png"), full_page=True)
                    await widget.screenshot(path=str(ARTIFACTS / "panel_widget_after.png"))
                finally:
                    await browser.close()
            assert server.poll() is None, "Voilà died during the test"
        assert r.engine.kill.halted and r.engine.kill.reason == "panel kill"
        assert await venue_open_orders(r) == [] and r.engine.tracker.open_orders() == []
        assert r.engine.signals.positions() == {"SOL": 1.0}                               # KILL keeps positions (FLATTEN closes them)
    for name in ("panel_before.png", "panel_after.png", "panel_widget_before.png", "panel_widget_confirm.png", "panel_widget_after.png"):
        assert (ARTIFACTS / name).stat().st_size > 5_000


async def _no_orders(r) -> bool:
    return await venue_open_orders(r) == []
