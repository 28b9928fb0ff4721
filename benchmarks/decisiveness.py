"""How often does `compare` reach an answer, quiet and beside a busy core, and is the answer the same each time?

    .venv/bin/python benchmarks/decisiveness.py                      # 3 quiet + 3 loaded runs, 4 workloads
    .venv/bin/python benchmarks/decisiveness.py --runs 1 --workloads mlp --size tiny   # a smoke run
    .venv/bin/python benchmarks/decisiveness.py --load steady        # a one-core busy loop instead of bursts

Each run is `compare --preset quick --json` (the defaults: adaptive processes within the default budget,
parity proven once, threads matched to the free cores), all runs in one results database, so parity is
proven by the first run only. The loaded runs have a background load on one core beside them for their
whole duration:

    bursty (default): one Python busy loop, bursts of 50-500 ms (uniform, seeded) at a 50% duty cycle;
    steady: one Python busy loop, all the time.

Printed per condition: verdict groups conclusive (a winner or "no meaningful difference"), cross-run
coverage (one run's median inside another run's 95% CI, all ordered pairs, cells and speedups; only runs
with the same thread count share cells), winner flips (the same verdict group naming different winners in
two runs of the condition, and across conditions), and each run's wall time. Goals: >= 90% conclusive
quiet, >= 75% loaded, no flips, coverage >= 90%.
"""

from __future__ import annotations

import argparse
import itertools
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from calibration import cell_figures, coverage, ratio_figures, run_once

LOAD = """
import random, sys, time
duty, rng = float(sys.argv[1]), random.Random(0)
while True:
    burst = rng.uniform(0.05, 0.5)
    end = time.perf_counter() + burst
    while time.perf_counter() < end:
        pass
    if duty < 1:
        time.sleep(burst * (1 - duty) / duty)
"""
DUTY = {"bursty": 0.5, "steady": 1.0}


def verdict_outcomes(summary: dict) -> dict[str, dict]:
    """Verdict objects by group and sides: 'mlp/small train b32 | torch vs tf'."""
    found = {}
    for verdict in summary["verdicts"]:
        sides = " vs ".join(sorted(side["framework"] for side in verdict["sides"]))
        key = f"{verdict['group']} | {'best of ' + str(verdict['best_of']) + ': ' if verdict['best_of'] else ''}{sides}"
        found[key] = verdict
    return found


def flips(runs: list[dict]) -> list[str]:
    """Verdict groups whose winner differs between two runs (a winner against no winner is not a flip)."""
    found = []
    for first, second in itertools.combinations([verdict_outcomes(run) for run in runs], 2):
        for key, verdict in first.items():
            other = second.get(key)
            if other and verdict["winner"] and other["winner"] and verdict["winner"] != other["winner"]:
                found.append(f"{key}: {verdict['winner']} then {other['winner']}")
    return found


def describe(name: str, runs: list[dict]) -> None:
    verdicts = [v for run in runs for v in run["verdicts"]]
    conclusive = sum(v["outcome"] != "inconclusive" for v in verdicts)
    cells, ratios = coverage([cell_figures(r) for r in runs]), coverage([ratio_figures(r) for r in runs])
    walls = ", ".join(f"{run['wall_s']:.0f} s" for run in runs)
    threads = ", ".join(str(run["cells"][0]["spec"]["threads"]) for run in runs)
    print(f"\n{name}: {conclusive}/{len(verdicts)} verdict groups conclusive ({conclusive / len(verdicts):.0%}); "
          f"coverage: cells {share(cells)}, speedups {share(ratios)}; winner flips: {len(flips(runs))}; "
          f"threads per run: {threads}; wall per run: {walls}")
    for run in runs:
        for verdict in run["verdicts"]:
            if verdict["outcome"] == "inconclusive":
                print(f"  {run['run_id']}: {verdict['line']}")
    for flip in flips(runs):
        print(f"  FLIP {flip}")


def share(hits_total: tuple[int, int]) -> str:
    hits, total = hits_total
    return f"{hits}/{total} = {hits / total:.1%}" if total else "no shared cells"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3, help="runs per condition")
    parser.add_argument("--workloads", default="mlp,cnn,transformer,gpt")
    parser.add_argument("--size", default="small")
    parser.add_argument("--load", choices=sorted(DUTY), default="bursty")
    parser.add_argument("--conditions", default="quiet,loaded", help="quiet, loaded or both (comma-separated)")
    parser.add_argument("--db", type=Path, default=None, help="keep the runs in this results database")
    args = parser.parse_args()
    args.preset, args.repeats, args.threads, args.launch = "quick", None, None, "fork"
    conditions = args.conditions.split(",")
    results: dict[str, list[dict]] = {name: [] for name in conditions}
    with tempfile.TemporaryDirectory() as tmp:
        db = args.db or Path(tmp) / "results.sqlite"
        # Alternate the conditions run by run, so drift of the machine over the hour hits both alike.
        for index, name in itertools.product(range(args.runs), conditions):
            load = None
            if name == "loaded":
                load = subprocess.Popen([sys.executable, "-c", LOAD, str(DUTY[args.load])])
                time.sleep(1.0)
            try:
                results[name].append(run_once(args, db))
            finally:
                if load is not None:
                    load.kill()
                    load.wait()
            print(f"{name} run {index + 1}/{args.runs}: {results[name][-1]['run_id']} in "
                  f"{results[name][-1]['wall_s']:.0f} s", flush=True)
    print(f"\nload: {args.load} ({DUTY[args.load]:.0%} of one core); workloads {args.workloads}, size {args.size}, "
          "quick preset, default budget")
    for name in conditions:
        describe(name, results[name])
    if len(conditions) > 1:
        across = flips([run for runs in results.values() for run in runs])
        print(f"\nwinner flips across all runs of both conditions: {len(across)}")
        for flip in across:
            print(f"  FLIP {flip}")


if __name__ == "__main__":
    main()
