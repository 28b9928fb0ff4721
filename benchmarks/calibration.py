"""Do frameduel's confidence intervals survive the next run? The same matrix, run N times as separate runs.

    .venv/bin/python benchmarks/calibration.py                    # 5 quick runs of mlp and cnn (~20 min)
    .venv/bin/python benchmarks/calibration.py --repeats 1 --launch spawn   # one spawned process per cell (before)
    .venv/bin/python benchmarks/calibration.py --runs 3 --workloads mlp --size tiny   # a smoke run
    .venv/bin/python benchmarks/calibration.py --from-db runs.sqlite   # recompute from runs kept with --db

For every cell and every speedup it reports how often one run's median falls inside another run's 95%
CI (all ordered pairs of runs), and for every speedup whether its verdict flips between "faster" and
"slower" across runs (moving to or from "no meaningful difference" or "inconclusive" is not a flip).
Goals: coverage >= 90%, no flips.
"""

from __future__ import annotations

import argparse
import itertools
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

FLIP = {"faster", "slower"}


def run_once(args: argparse.Namespace, db: Path) -> dict:
    command = [sys.executable, "-m", "frameduel.cli", "compare", "--preset", args.preset, "--workloads",
               args.workloads, "--size", args.size, "--json", "--db", str(db)]
    if args.repeats is not None:
        command += ["--repeats", str(args.repeats)]
    if args.threads is not None:
        command += ["--threads", str(args.threads)]
    command += ["--launch", args.launch]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    summary = json.loads(done.stdout)
    summary["wall_s"] = time.perf_counter() - started
    return summary


def stored_summaries(db: Path) -> list[dict]:
    """Every complete run in a results database, summarised by today's statistics."""
    from frameduel.analysis.summary import summarize_planned_run
    from frameduel.runner.plan import Plan
    from frameduel.store import Store

    store, summaries = Store(db), []
    for run, _ in reversed(store.list_runs()):
        if run.status == "complete":
            summary = summarize_planned_run(store.measurements(run.id), Plan.from_dict(run.plan))
            summaries.append({"run_id": run.id, "wall_s": float("nan"), **summary.to_dict()})
    return summaries


def coverage(runs: list[dict[str, tuple[float, float, float]]]) -> tuple[int, int]:
    """(pairs where run j's value lies in run i's interval, pairs) over every key both runs have."""
    hits = total = 0
    for first, second in itertools.permutations(runs, 2):
        for key, (_, low, high) in first.items():
            if key in second:
                total += 1
                hits += low <= second[key][0] <= high
    return hits, total


def cell_figures(summary: dict) -> dict[str, tuple[float, float, float]]:
    return {cell["key"]: (cell["step"]["median"], cell["step_ci"]["low"], cell["step_ci"]["high"])
            for cell in summary["cells"] if cell["step"]}


def ratio_figures(summary: dict) -> dict[str, tuple[float, float, float]]:
    return {f"{r['group']} | {r['label']}": (r["value"], r["ci"]["low"], r["ci"]["high"]) for r in summary["ratios"]}


def verdicts(summaries: list[dict]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for summary in summaries:
        for r in summary["ratios"]:
            found.setdefault(f"{r['group']} | {r['label']}", []).append(r["verdict"])
    return found


def print_table(summaries: list[dict]) -> None:
    cells = [cell_figures(s) for s in summaries]
    ratios = [ratio_figures(s) for s in summaries]
    print("\n| cell | medians per run, ms | coverage |")
    print("|---|---|---|")
    for key in cells[0]:
        hits, total = coverage([{key: c[key]} for c in cells if key in c])
        medians = " / ".join(f"{c[key][0] * 1e3:.3g}" for c in cells if key in c)
        print(f"| {key} | {medians} | {hits}/{total} |")
    print("\n| speedup | values per run | verdicts | coverage |")
    print("|---|---|---|---|")
    found = verdicts(summaries)
    for key in ratios[0]:
        hits, total = coverage([{key: r[key]} for r in ratios if key in r])
        values = " / ".join(f"{r[key][0]:.3g}" for r in ratios if key in r)
        flip = " **flip**" if FLIP <= set(found[key]) else ""
        print(f"| {key} | {values} | {', '.join(found[key])}{flip} | {hits}/{total} |")
    cell_hits, cell_total = coverage(cells)
    ratio_hits, ratio_total = coverage(ratios)
    flips = sum(FLIP <= set(v) for v in found.values())
    agree = sum(len(set(v)) == 1 for v in found.values())
    print(f"\ncell coverage {cell_hits}/{cell_total} = {cell_hits / cell_total:.1%}; speedup coverage "
          f"{ratio_hits}/{ratio_total} = {ratio_hits / ratio_total:.1%}; verdicts flipping faster<->slower: "
          f"{flips} of {len(found)}; verdicts identical in every run: {agree} of {len(found)}")
    unstable = [sum(c["unstable"] for c in s["cells"]) for s in summaries]
    walls = ", ".join(f"{summary['wall_s']:.0f} s" for summary in summaries)
    print(f"unstable cells per run: {unstable}; wall per run: {walls}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--preset", default="quick")
    parser.add_argument("--workloads", default="mlp,cnn")
    parser.add_argument("--size", default="small")
    parser.add_argument("--repeats", type=int, default=None, help="worker processes per cell (default: preset)")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--launch", default="fork", help="fork (zygote) or spawn, as `compare --launch`")
    parser.add_argument("--db", type=Path, default=None, help="keep the runs in this results database")
    parser.add_argument("--from-db", type=Path, default=None, help="measure nothing: recompute these stored runs")
    args = parser.parse_args()
    if args.from_db:
        print_table(stored_summaries(args.from_db))
        return
    with tempfile.TemporaryDirectory() as tmp:
        db = args.db or Path(tmp) / "results.sqlite"
        summaries = []
        for index in range(args.runs):
            summaries.append(run_once(args, db))
            print(f"run {index + 1}/{args.runs}: {summaries[-1]['run_id']} in {summaries[-1]['wall_s']:.0f} s",
                  flush=True)
    print_table(summaries)


if __name__ == "__main__":
    main()
