"""Where a measured cell's time goes, with each fresh worker spawned afresh or forked from a zygote.

    .venv/bin/python benchmarks/worker_startup.py            # mlp and cnn, train and batch-1 infer, every mode
    .venv/bin/python benchmarks/worker_startup.py --quick    # mlp infer only

For every cell it runs ROUNDS workers of each kind, alternating spawn and fork, and prints per kind:
the parent's wall time per worker, the part before the cell starts (interpreter start and framework
import), model setup, trace/compile and first step, warm-up plus sampling; then the ratio of the two
kinds' medians, which must stay near 1: forking changes how a process starts, not what it measures.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from frameduel.jobs.process import Zygote, run_job
from frameduel.runner.plan import PRESETS
from frameduel.runner.scheduler import spawn_measure
from frameduel.spec import MODES, Measurement, RunSpec
from frameduel.stats import hierarchical_ratio_ci

ROUNDS = 3


def cells(quick: bool) -> list[RunSpec]:
    tasks = [("infer", 1)] if quick else [("train", 32), ("infer", 1)]
    workloads = ["mlp"] if quick else ["mlp", "cnn"]
    return [RunSpec(workload=w, framework=fw, mode=mode, task=task, batch_size=batch, size="small", threads=2)
            for w in workloads for task, batch in tasks for fw in MODES for mode in MODES[fw]]


def phases(parent_wall_s: float, m: Measurement) -> dict[str, float]:
    process = m.runtime.get("process", {})
    start = parent_wall_s - (m.wall_s or 0.0) + process.get("import_s", 0.0)  # before measure_cell + import
    compile_and_first = (m.trace_s or 0.0) + (m.first_step_s or 0.0)
    setup = process.get("setup_s", 0.0)
    return {"wall": parent_wall_s, "start+import": start, "setup": setup, "compile+1st": compile_and_first,
            "warm-up+sampling": max(0.0, (m.wall_s or 0.0) - process.get("import_s", 0.0) - setup - compile_and_first)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    budget = PRESETS["quick"].budget
    print("| cell | kind | wall s | start+import s | setup s | compile+1st s | warm-up+sampling s | "
          "fork/spawn median step [95% CI] |")
    print("|---|---|---|---|---|---|---|---|")
    totals = {"spawn": 0.0, "fork": 0.0}
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        zygotes = {fw: Zygote(fw, workdir) for fw in MODES}
        try:
            for zygote in zygotes.values():  # started before timing: a run pays this once per framework
                zygote.start()
            for spec in cells(args.quick):
                figures: dict[str, list[dict[str, float]]] = {"spawn": [], "fork": []}
                samples: dict[str, list[list[float]]] = {"spawn": [], "fork": []}
                for _ in range(ROUNDS):
                    for kind, launch in (("spawn", run_job), ("fork", zygotes[spec.framework].run_job)):
                        started = time.perf_counter()
                        measurement = spawn_measure(spec, budget, workdir, launch)
                        wall = time.perf_counter() - started
                        if measurement.status != "ok":
                            raise SystemExit(f"{spec.key} ({kind}): {measurement.status} {measurement.error}")
                        figures[kind].append(phases(wall, measurement))
                        samples[kind].append(measurement.step_seconds)
                        totals[kind] += wall
                fork_median = np.median(np.concatenate(samples["fork"]))
                spawn_median = np.median(np.concatenate(samples["spawn"]))
                ci = hierarchical_ratio_ci(samples["fork"], samples["spawn"])
                label = f"{spec.workload} {spec.task} b{spec.batch_size} {spec.framework} {spec.mode}"
                for kind in ("spawn", "fork"):
                    mean = {key: np.mean([f[key] for f in figures[kind]]) for key in figures[kind][0]}
                    ratio = f"{fork_median / spawn_median:.3f} [{ci.low:.3f}, {ci.high:.3f}]" if kind == "fork" else ""
                    print(f"| {label} | {kind} | " + " | ".join(f"{value:.2f}" for value in mean.values())
                          + f" | {ratio} |", flush=True)
        finally:
            for zygote in zygotes.values():
                zygote.close()
    print(f"\nworker wall time, all cells x {ROUNDS} rounds: spawn {totals['spawn']:.0f} s, "
          f"fork {totals['fork']:.0f} s (ratio {totals['spawn'] / totals['fork']:.2f})")


if __name__ == "__main__":
    main()
