"""Where a measured cell's time goes, with each fresh worker spawned afresh or forked from a zygote.

    .venv/bin/python benchmarks/worker_startup.py            # mlp and cnn, train and batch-1 infer, every mode
    .venv/bin/python benchmarks/worker_startup.py --quick    # mlp infer only
    .venv/bin/python benchmarks/worker_startup.py --jobs     # parity and accuracy jobs: whole commands' time

For every cell it runs ROUNDS workers of each kind, alternating spawn and fork, and prints per kind:
the parent's wall time per worker, the part before the cell starts (interpreter start and framework
import), model setup, trace/compile and first step, warm-up plus sampling; then the ratio of the two
kinds' medians, which must stay near 1: forking changes how a process starts, not what it measures.

--jobs times the other job kinds as their commands run them, spawned against forked from fork servers
started for the command (their imports included, as a command pays them): a parity proof of the mlp
(tiny, both directions, every mode: five jobs over two frameworks) and an accuracy run of the mlp (3 seeds
x torch and tf, 2 epochs). A single job per framework (an export's converter) gains nothing: its zygote
pays the very import a spawned job pays.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from frameduel.accuracy.run import spawn_training
from frameduel.jobs.process import Zygote, run_job
from frameduel.jobs.servers import ForkServers
from frameduel.parity.check import LauncherFor, ParityRequest, check_parity, spawned
from frameduel.runner.plan import PRESETS
from frameduel.runner.scheduler import spawn_measure
from frameduel.spec import FRAMEWORK_INFO, MODES, Measurement, RunSpec
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


def parity_seconds(launcher_for: LauncherFor) -> float:
    started = time.perf_counter()
    reports, modes = check_parity(ParityRequest("mlp"), launcher_for)
    if not all(report.passed for report in reports) or modes is None or not modes.passed:
        raise SystemExit("the mlp's parity did not pass; fix that first")
    return time.perf_counter() - started


def accuracy_seconds(launcher_for: LauncherFor) -> float:
    started = time.perf_counter()
    for seed in range(3):
        for framework in ("torch", "tf"):
            spec = RunSpec(workload="mlp", framework=framework, mode=FRAMEWORK_INFO[framework].training_mode,
                           task="train", batch_size=64, seed=seed, threads=2)
            run = spawn_training(spec, 2, 600, launcher_for(framework, 0))
            if run.status != "ok":
                raise SystemExit(f"accuracy run {spec.key}: {run.status} {run.error}")
    return time.perf_counter() - started


def other_jobs() -> None:
    """Each command's wall time spawned and forked, alternating, two rounds each."""
    print("| command | spawned s | forked s (fork servers started by it) | spawned / forked |")
    print("|---|---|---|---|")
    for name, command in (("parity mlp (5 jobs)", parity_seconds), ("accuracy mlp (6 runs)", accuracy_seconds)):
        times: dict[str, list[float]] = {"spawn": [], "fork": []}
        for _ in range(2):
            times["spawn"].append(command(spawned))
            with ForkServers() as servers:
                times["fork"].append(command(servers.launcher))
        spawn, fork = (float(np.median(times[kind])) for kind in ("spawn", "fork"))
        print(f"| {name} | {spawn:.1f} | {fork:.1f} | {spawn / fork:.2f} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--jobs", action="store_true", help="the parity and accuracy jobs instead of cells")
    args = parser.parse_args()
    if args.jobs:
        other_jobs()
        return
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
