"""The slow fault campaign: >= 1,000 seeded scenarios per venue against the simulators with the unmodified SDKs
(hyperliquid-python-sdk, alpaca-py), plus real engine processes killed with SIGKILL and restarted on their journal. Prints
scenarios, faults injected by kind, what recovery found, and violations (which must be 0). Same drivers as
tests/test_fault_campaign.py and tests/test_fault_campaign_alpaca.py (CI runs 8 seeds of each and one kill -9 scenario).

    .venv/bin/python bench/bench_fault_campaign.py                       # both venues: 1000 scenarios x 10 steps + 20 kill -9 scenarios each
    .venv/bin/python bench/bench_fault_campaign.py --venue alpaca --scenarios 50 --kill9 2 --concurrency 2
"""
from __future__ import annotations
import argparse, asyncio, logging, random, sys, tempfile, time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from campaign_support import Report, kill9_scenario                          # noqa: E402
import test_fault_campaign as hl_campaign                                   # noqa: E402
import test_fault_campaign_alpaca as alpaca_campaign                        # noqa: E402

VENUES = {"hl": (hl_campaign.run_scenario, hl_campaign.HlKill9), "alpaca": (alpaca_campaign.run_scenario, alpaca_campaign.AlpacaKill9)}


async def campaign(venue: str, n: int, steps: int, kill9: int, first_seed: int, concurrency: int, root: Path) -> tuple[Report, Report, float, float]:
    "Run the in-process scenarios (a few at a time) and the kill -9 scenarios (one at a time); returns both reports and wall times."
    run_scenario, kill9_venue = VENUES[venue]
    rep, rep9 = Report(), Report()
    sem = asyncio.Semaphore(concurrency)
    done = [0]
    t0 = time.monotonic()

    async def one(seed: int) -> None:
        async with sem:
            try: r = await run_scenario(seed, root, n_steps=steps)
            except BaseException as e:                            # a scenario that dies is a violation, not a lost data point
                r = Report(scenarios=1); r.violations.append(f"{venue} seed {seed}: scenario raised {type(e).__name__}: {e}")
            rep.merge(r)
            for v in r.violations: print("  VIOLATION", v, flush=True)
            done[0] += 1
            if done[0] % 50 == 0:
                print(f"  {venue}: {done[0]}/{n} scenarios, {len(rep.violations)} violations, {time.monotonic() - t0:.0f} s", flush=True)

    await asyncio.gather(*(one(s) for s in range(first_seed, first_seed + n)))
    t1 = time.monotonic()
    for s in range(first_seed, first_seed + kill9):
        try: r = await kill9_scenario(kill9_venue(random.Random(s)), s, root, kills=2)
        except BaseException as e:
            r = Report(scenarios=1); r.violations.append(f"{venue} kill9 seed {s}: raised {type(e).__name__}: {e}")
        rep9.merge(r)
        for v in r.violations: print("  VIOLATION", v, flush=True)
    return rep, rep9, t1 - t0, time.monotonic() - t1


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--venue", choices=["hl", "alpaca", "both"], default="both")
    p.add_argument("--scenarios", type=int, default=1000); p.add_argument("--steps", type=int, default=10)
    p.add_argument("--kill9", type=int, default=20); p.add_argument("--seed", type=int, default=1000)
    p.add_argument("--concurrency", type=int, default=3)
    a = p.parse_args()
    logging.getLogger("websocket").setLevel(logging.CRITICAL)   # the SDKs log every socket we cut on purpose
    logging.getLogger("alpaca").setLevel(logging.CRITICAL)
    total, scenarios = 0, 0
    for venue in (["hl", "alpaca"] if a.venue == "both" else [a.venue]):
        with tempfile.TemporaryDirectory(prefix=f"fault_campaign_{venue}_") as d:
            rep, rep9, w, w9 = asyncio.run(campaign(venue, a.scenarios, a.steps, a.kill9, a.seed, a.concurrency, Path(d)))
        print(f"\n== {venue}: in-process campaign: seeds {a.seed}..{a.seed + a.scenarios - 1}, {a.steps} steps each, {a.concurrency} at a time, "
              f"{w:.0f} s ({w / max(rep.scenarios, 1):.2f} s per scenario)")
        print("\n".join(rep.lines()))
        print(f"\n== {venue}: engine process killed with SIGKILL and restarted on its journal: {a.kill9} scenarios x 2 kills, {w9:.0f} s")
        print("\n".join(rep9.lines()))
        total += len(rep.violations) + len(rep9.violations); scenarios += rep.scenarios + rep9.scenarios
    print(f"\nTOTAL scenarios: {scenarios}   violations: {total}")
    raise SystemExit(1 if total else 0)


if __name__ == "__main__":
    main()
