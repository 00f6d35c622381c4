"Operator control against a running SIM engine: token rules, every command, discovery, tri-ctl and tri-run."
from __future__ import annotations
import asyncio, json, os, signal, subprocess, sys, time
from pathlib import Path
import pytest
from conftest import ROOT, BIN
from control_support import running_engine, rest_maker_buys, take_position, venue_open_orders, venue_positions, wait_for
from tri_engine.control import CONTROL_FILE, TOKEN_FILE, MAX_LINE, discover, arequest, encode, ControlError


async def raw(port: int, payload: bytes) -> bytes:
    "Send bytes to the control port and read until the server closes."
    r, w = await asyncio.open_connection("127.0.0.1", port)
    w.write(payload)
    await w.drain()
    data = await asyncio.wait_for(r.read(), 10)
    w.close()
    return data


async def tool(*argv: str, env: dict | None = None) -> tuple[int, str]:
    "Run a console script without blocking the event loop the engine runs on."
    p = await asyncio.create_subprocess_exec(*argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, env=env)
    out, _ = await asyncio.wait_for(p.communicate(), 120)
    return p.returncode, out.decode()


def events(run_dir: Path, name: str) -> list[dict]:
    return [json.loads(l) for l in (run_dir / "hl_engine.jsonl").read_text().splitlines() if f'"event":"{name}"' in l]


async def test_token_file_is_private_and_requests_without_the_right_token_get_nothing(tmp_path):
    async with running_engine(tmp_path / "runs" / "hl-a") as r:
        tok = r.run_dir / TOKEN_FILE
        if os.name == "posix": assert tok.stat().st_mode & 0o777 == 0o600
        meta = json.loads((r.run_dir / CONTROL_FILE).read_text())
        assert (meta["port"], meta["pid"], meta["engine"], meta["host"]) == (r.ctl.port, os.getpid(), "hl", "127.0.0.1")
        assert tok.read_text() not in (r.run_dir / CONTROL_FILE).read_text()          # the token is only in the 0600 file
        port, halt = r.ctl.port, {"v": 1, "cmd": "halt", "args": {"reason": "intruder"}, "id": 1}
        assert await raw(port, encode(halt)) == b""                                     # no token
        assert await raw(port, encode({**halt, "token": "x" * 43})) == b""               # wrong token
        assert await raw(port, encode({**halt, "token": None})) == b""
        assert await raw(port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n") == b""               # another protocol
        assert await raw(port, b"{" + b" " * (MAX_LINE + 10) + b"}\n") == b""             # oversize line
        assert await raw(port, encode({"cmd": "status", "token": tok.read_text()}) + encode(halt)) != b""   # answered, then cut at the bad line
        assert not r.engine.kill.halted and r.ctl.rejected == 6
        ep = discover(tmp_path / "runs")[0]
        res = await arequest(ep, "halt", reason="operator")
        assert res["ok"] and r.engine.kill.halted and r.engine.kill.reason == "operator"
        assert [e["reason"] for e in events(r.run_dir, "control_rejected")] == ["token"] * 3 + ["bad message", "line too long", "token"]
        assert not [l for l in (r.run_dir / "hl_engine.jsonl").read_text().splitlines() if tok.read_text() in l]   # never logged


async def test_every_command_against_a_running_sim_engine(tmp_path):
    async with running_engine(tmp_path / "runs" / "hl-b") as r:
        ep = discover(tmp_path / "runs")[0]
        eng = r.engine
        await take_position(r, "SOL", 1.0)
        placed = await rest_maker_buys(r, ["ETH", "BTC", "DOGE"])
        assert len(placed) == 3 and len(await venue_open_orders(r)) == 3
        st = (await arequest(ep, "status"))["result"]
        assert (st["mode"], st["universe_size"], st["positions"], st["n_open_orders"], st["halted"]) == ("SIM", 5, {"SOL": 1.0}, 3, False)
        assert {o["symbol"] for o in st["open_orders"]} == {"ETH", "BTC", "DOGE"} and st["pid"] == os.getpid()
        assert {"realized_pnl", "unrealized_pnl", "breaker", "macro", "heartbeat"} <= set(st) and st["breaker"]["halted"] is False

        res = (await arequest(ep, "halt", reason="drill"))["result"]
        assert res["halted"] and eng.kill.halted and eng.kill.reason == "drill"
        assert await rest_maker_buys(r, ["LINK"]) == []                                 # a halted engine opens nothing
        assert (await arequest(ep, "resume"))["result"]["halted"] is False and not eng.kill.halted

        res = (await arequest(ep, "cancel-all"))["result"]
        assert res["cancelled"] == 3 and not res["halted"]
        assert await venue_open_orders(r) == []                                          # gone at the venue when the answer comes
        assert await wait_for(lambda: not eng.tracker.open_orders(), 5)                 # (a reprice in flight settles just after)

        await rest_maker_buys(r, ["ETH", "BTC"])
        assert len(await venue_open_orders(r)) == 2
        res = (await arequest(ep, "kill"))["result"]
        assert res["halted"] and res["cancelled"] == 2 and res["positions"] == {"SOL": 1.0}   # kill keeps positions
        assert await venue_open_orders(r) == [] and eng.kill.halted
        assert await wait_for(lambda: not eng.tracker.open_orders(), 5)

        await arequest(ep, "resume")
        res = (await arequest(ep, "flatten"))["result"]
        assert res["halted"]
        assert await wait_for(lambda: _flat(r), 10), "flatten left positions at the venue"
        assert eng.signals.positions() == {} and eng.kill.halted

        res = (await arequest(ep, "shutdown"))["result"]
        assert res["stopping"]
        assert await wait_for(lambda: r.task.done(), 20), "shutdown did not stop the engine's run"
        assert r.task.exception() is None
        assert events(r.run_dir, "engine_stop") and events(r.run_dir, "cancel_all")[-1]["reason"] == "shutdown"
        assert [e["cmd"] for e in events(r.run_dir, "control_command")] == ["halt", "resume", "cancel-all", "kill", "resume", "flatten", "shutdown"]
    assert not (r.run_dir / CONTROL_FILE).exists() and not (r.run_dir / TOKEN_FILE).exists()


async def _flat(r) -> bool:
    return await venue_positions(r) == {}


async def test_tri_ctl_status_json_lists_a_running_sim_engine_with_its_positions(tmp_path):
    runs = tmp_path / "runs"
    async with running_engine(runs / "hl-c") as r:
        await take_position(r, "ETH", 0.05)
        await rest_maker_buys(r, ["BTC"])
        rc, out = await tool(str(BIN / "tri-ctl"), "--runs", str(runs), "status", "--json")
        assert rc == 0, out
        doc = json.loads(out)
        [e] = doc["engines"]
        assert (e["control_name"], e["engine"], e["mode"], e["positions"], e["n_open_orders"]) == ("hl-c", "hl", "SIM", {"ETH": 0.05}, 1)
        assert e["open_orders"][0]["symbol"] == "BTC" and doc["stale"] == []
        rc, out = await tool(str(BIN / "tri-ctl"), "--runs", str(runs), "status")
        assert rc == 0 and "hl-c" in out and "running" in out and "ETH +0.05" in out, out


async def test_tri_ctl_halt_all_halts_every_running_engine(tmp_path):
    runs = tmp_path / "runs"
    async with running_engine(runs / "hl-d1", coins=("ETH", "SOL")) as a, running_engine(runs / "hl-d2", coins=("BTC", "DOGE")) as b:
        assert not a.engine.kill.halted and not b.engine.kill.halted
        t0 = time.perf_counter()
        rc, out = await tool(str(BIN / "tri-ctl"), "--runs", str(runs), "halt", "all", "--reason", "desk drill")
        took = time.perf_counter() - t0
        assert rc == 0, out
        assert a.engine.kill.halted and b.engine.kill.halted                          # halted by the time tri-ctl returns
        assert a.engine.kill.reason == b.engine.kill.reason == "desk drill"
        assert out.count("halt ok") == 2, out
        print(f"tri-ctl halt all (2 engines, process start included): {took * 1000:.0f} ms")
        rc, out = await tool(str(BIN / "tri-ctl"), "--runs", str(runs), "resume", "hl-d2")
        assert rc == 0 and a.engine.kill.halted and not b.engine.kill.halted


def test_discovery_marks_the_control_file_of_a_killed_engine_stale(tmp_path):
    runs = tmp_path / "runs"
    script = ("import asyncio, sys\nfrom tri_engine.control import control_server\nfrom tri_engine.risk import KillSwitch\n"
              "class E:\n    kill = KillSwitch()\n"
              "async def main():\n    async with control_server(E(), sys.argv[1]):\n        print('ready', flush=True); await asyncio.sleep(3600)\n"
              "asyncio.run(main())\n")
    p = subprocess.Popen([str(BIN / "python"), "-c", script, str(runs / "hl-crashed")], stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline().strip() == "ready"
        [ep] = discover(runs)
        assert ep.alive and ep.pid == p.pid
    finally:
        p.kill(); p.wait()                                                          # a crash: no cleanup, control.json stays
    [ep] = discover(runs)
    assert not ep.alive and ep.why == f"process {p.pid} is gone"
    out = subprocess.run([str(BIN / "tri-ctl"), "--runs", str(runs), "status"], capture_output=True, text=True)
    assert out.returncode == 0 and "STALE (process" in out.stdout, out.stdout
    out = subprocess.run([str(BIN / "tri-ctl"), "--runs", str(runs), "halt", "all"], capture_output=True, text=True)
    assert out.returncode == 2 and "no running engine matches 'all'" in out.stdout


def test_tri_run_names_the_missing_runbook(tmp_path):
    (tmp_path / "runbooks").mkdir()
    (tmp_path / "runbooks" / "hl_live.ipynb").write_text("{}")
    env = {**os.environ, "TRI_ENGINE_ROOT": str(tmp_path)}
    out = subprocess.run([str(BIN / "tri-run"), "--runs", str(tmp_path / "runs"), "equities"], capture_output=True, text=True, env=env)
    assert out.returncode == 2
    assert f"the equities engine has no runbook: {tmp_path}/runbooks/equities_live.ipynb does not exist; engines that can be launched: hl" in out.stdout
    out = subprocess.run([str(BIN / "tri-run"), "fx"], capture_output=True, text=True, env=env)
    assert out.returncode == 2 and "invalid choice: 'fx'" in out.stderr


def test_tri_run_starts_hl_headless_and_stop_runs_the_cleanup_and_saves_the_notebook(tmp_path, jupyter_env):
    runs = tmp_path / "runs"
    out = subprocess.run([str(BIN / "tri-run"), "--runs", str(runs), "hl", "-p", "duration_s", "0", "-r", "universe", "ETH,SOL,BTC"],
                         capture_output=True, text=True, env=jupyter_env, cwd=tmp_path, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    [rec] = [json.loads(p.read_text()) for p in runs.glob("*/launch.json")]
    assert rec["name"].startswith("hl-") and rec["output"] == str(runs / f"{rec['name']}.ipynb")
    pid, run_dir = rec["pid"], Path(rec["run_dir"])
    try:
        if os.name == "posix": assert os.getpgid(pid) == pid != os.getpgid(0)          # its own process group
        log = run_dir / "hl_engine.jsonl"
        t0 = time.monotonic()
        while time.monotonic() - t0 < 180 and not (log.exists() and '"event":"engine_start"' in log.read_text() and '"reason":"start"' in log.read_text()):
            time.sleep(0.5)
        assert log.exists() and '"event":"engine_start"' in log.read_text(), (run_dir / "papermill.log").read_text()[-3000:]
        listed = subprocess.run([str(BIN / "tri-run"), "--runs", str(runs), "list"], capture_output=True, text=True)
        assert rec["name"] in listed.stdout and "RUNNING" in listed.stdout
        st = subprocess.run([str(BIN / "tri-ctl"), "--runs", str(runs), "status", "--json"], capture_output=True, text=True, timeout=30)
        [e] = json.loads(st.stdout)["engines"]                                   # the runbook's engine serves its control plane
        assert (e["engine"], e["mode"]) == ("hl", "SIM") and isinstance(e["positions"], dict)
        halt = subprocess.run([str(BIN / "tri-ctl"), "--runs", str(runs), "halt", "all", "--reason", "drill"], capture_output=True, text=True, timeout=30)
        assert halt.returncode == 0, halt.stdout + halt.stderr                  # how fast: bench/bench_kill.py
        assert '"event":"kill_switch"' in log.read_text()
        stop = subprocess.run([str(BIN / "tri-run"), "--runs", str(runs), "stop", "hl", "--timeout", "120"], capture_output=True, text=True, timeout=180)
        assert stop.returncode == 0, stop.stdout + stop.stderr
        assert "SIGINT to kernel pid" in stop.stdout and "output notebook saved" in stop.stdout
    finally:
        with __import__("contextlib").suppress(ProcessLookupError): os.killpg(pid, signal.SIGKILL)
    text = log.read_text()
    assert '"event":"cancel_all"' in text and '"reason":"shutdown"' in text and '"event":"engine_stop"' in text   # the engine's cleanup ran
    nb = json.loads(Path(rec["output"]).read_text())
    assert nb["metadata"]["papermill"]["end_time"]                                 # saved by papermill at the end
    assert any(o.get("ename") in ("CancelledError", "KeyboardInterrupt") for c in nb["cells"] for o in c.get("outputs", []))
