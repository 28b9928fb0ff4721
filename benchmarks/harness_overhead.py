"""Does frameduel's measurement harness measure the step, and nothing but the step?

Two checks, measured in one run and printed as figures (this is a benchmark, not a test: a figure
that misses its goal is printed with MISS, and the exit code stays 0 unless something crashed).

1. Harness overhead. In one process per framework, the very Step objects the worker times
   (``backend.make_step``) are timed two ways: by ``frameduel.runner.timing.measure`` with the
   default MeasureBudget, and by a bare hand-written loop (``run(); sync()`` N times, one clock read
   at each end). N is chosen so a bare block lasts about as long as the harness's steady-state
   sampling did (capped at BARE_BLOCK_MAX_S). The two alternate several times, in alternating order,
   so slow drift (CPU clocks, allocator growth, a background job) lands on both; the figure is
   median(harness medians) / median(bare block times), goal <= 1.01. A "mean ratio" column also
   compares the harness's mean, the bare block's own statistic, to tell timer overhead (which moves
   both) apart from the median discounting slow outliers (which moves only the headline ratio).

2. Repeatability. The real worker (``scheduler.spawn_measure``) measures the same cell in two separate
   processes; the ratio of the two medians should sit within 0.98..1.02.

Each framework is measured in its own subprocess (``--inner torch`` / ``--inner tf``, each printing
one JSON line per cell on stdout): torch and TensorFlow in one process fight over thread pools. The
main process never imports a framework.

The run prints how much CPU other processes used meanwhile: on a small machine that contention, not
the harness, is the usual cause of a MISS. Run it from the repository root:

    .venv/bin/python benchmarks/harness_overhead.py            # full run, 1.5-3 minutes on 2 cores
    .venv/bin/python benchmarks/harness_overhead.py --quick    # smoke run, fewer alternations
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

from frameduel import environment
from frameduel.frameworks import Step, load_backend  # load_backend imports a framework only when called
from frameduel.runner.contention import system_busy_seconds
from frameduel.runner.scheduler import spawn_measure
from frameduel.runner.timing import clock, measure
from frameduel.spec import MeasureBudget, Measurement, RunSpec
from frameduel.stats import ratio_of_medians
from frameduel.workloads import get_workload

WORKLOAD, SIZE, BATCH = "mlp", "small", 32
# (mode, task) per framework: eager is the overhead-dominated case the harness must not distort;
# tf.function shows whether the extra Python layer of a traced call changes the picture.
CELLS: dict[str, tuple[tuple[str, str], ...]] = {
    "torch": (("eager", "train"), ("eager", "infer")),
    "tf": (("eager", "train"), ("eager", "infer"), ("function", "train"), ("function", "infer")),
}
REPEAT_CELLS: tuple[tuple[str, str, str], ...] = (("torch", "eager", "train"), ("tf", "eager", "train"))
OVERHEAD_GOAL = 1.01  # harness median / bare-loop time
REPEAT_GOAL = 0.02  # |run1 / run2 - 1|
# Even counts, so each method runs first equally often (H B, B H, ...).
FULL_ALTERNATIONS, QUICK_ALTERNATIONS = 4, 2
# A bare block longer than this adds no precision (it is a mean over hundreds of steps) but more
# exposure to drift; the cap also bounds the run when a busy machine drives the harness to max_seconds.
BARE_BLOCK_MAX_S = 1.5
BUSY_CORES_WARNING = 0.1  # other processes' average CPU use above which the figures mean little


def make_spec(framework: str, mode: str, task: str, threads: int) -> RunSpec:
    return RunSpec(workload=WORKLOAD, framework=framework, mode=mode, task=task,
                   batch_size=BATCH, threads=threads, size=SIZE)


# --- inner process: one framework, loaded by inner_main and nowhere else -----------------------------


def bare_loop(step: Step, n: int) -> float:
    """Seconds per step over n back-to-back run()+sync() calls: the least a timer can add.

    It reads the harness's own clock, so both methods use the same timer.
    """
    start = clock()
    for _ in range(n):
        step.run()
        step.sync()
    return (clock() - start) / n


def compare_cell(step: Step, budget: MeasureBudget, alternations: int) -> dict[str, Any]:
    """Alternate harness runs and bare-loop blocks on one warm Step; return both series."""
    harness: list[float] = []
    harness_means: list[float] = []  # total sampled time / steps: the same statistic as a bare block
    bare: list[float] = []
    steps_per_sample: list[int] = []
    n_bare = 0

    def run_harness() -> None:
        nonlocal n_bare
        timings = measure(step, budget, per_call=False)  # the worker's choice for batch 32
        median = statistics.median(timings.step_seconds)
        harness.append(median)
        harness_means.append(statistics.fmean(timings.step_seconds))
        steps_per_sample.append(timings.steps_per_sample)
        # Match the bare block's length to the steady-state time the harness just spent sampling.
        sampled_s = sum(timings.step_seconds) * timings.steps_per_sample
        n_bare = max(1, round(min(sampled_s, BARE_BLOCK_MAX_S) / median))

    for i in range(alternations):
        # Alternate the order (H B, B H, H B, ...) so neither method always runs on the warmer side.
        if i % 2 == 0 or not harness:
            run_harness()
            bare.append(bare_loop(step, n_bare))
        else:
            bare.append(bare_loop(step, n_bare))
            run_harness()
    return {"harness_s": harness, "harness_mean_s": harness_means, "bare_s": bare, "bare_steps": n_bare,
            "steps_per_sample": steps_per_sample}


def inner_main(framework: str, alternations: int) -> int:
    threads = environment.default_threads()
    backend = load_backend(framework)
    budget = MeasureBudget()
    workload = get_workload(WORKLOAD)
    batch = workload.make_batch(workload.config(SIZE), BATCH, 0)
    # configure() pins thread pools, which both frameworks allow only once per process; every cell
    # here shares threads, seed, device and precision, so the first cell's spec configures them all.
    backend.configure(make_spec(framework, *CELLS[framework][0], threads))
    for mode, task in CELLS[framework]:
        spec = make_spec(framework, mode, task, threads)
        step = backend.make_step(workload, spec, batch)
        result = compare_cell(step, budget, alternations)
        print(json.dumps({"framework": framework, "mode": mode, "task": task, **result}), flush=True)
    return 0


# --- main process: framework-free -------------------------------------------------------------------


def run_inner(framework: str, alternations: int) -> list[dict[str, Any]]:
    """Run one framework's overhead cells in a fresh interpreter; collect its JSON lines."""
    proc = subprocess.run(
        [sys.executable, __file__, "--inner", framework, "--alternations", str(alternations)],
        capture_output=True, text=True,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"--inner {framework} exited with {proc.returncode}:\n{proc.stderr[-2000:]}")
    # Only our lines start with '{'; anything a framework prints on stdout is skipped.
    rows = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    if len(rows) != len(CELLS[framework]):
        expected = len(CELLS[framework])
        raise RuntimeError(f"--inner {framework} reported {len(rows)} cells, expected {expected}")
    return rows


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def print_overhead_table(rows: list[dict[str, Any]]) -> None:
    header = (f"{'framework':<9} {'mode':<8} {'task':<5} {'harness ms':>10} {'bare ms':>9} {'ratio':>7} "
              f"{'goal':>6} {'':<4}  {'mean ratio':>10}  pair ratios min..max")
    print(header)
    print("-" * len(header))
    for row in rows:
        harness = statistics.median(row["harness_s"])
        bare = statistics.median(row["bare_s"])
        ratio = harness / bare
        # The headline compares the harness's median with a bare block's mean, as the worker reports a
        # median; "mean ratio" puts the harness's own mean (same statistic as a bare block) against it,
        # which isolates timer overhead from the median shrugging off slow outlier samples.
        mean_ratio = statistics.median(row["harness_mean_s"]) / bare
        # Per-alternation ratios show whether the headline ratio is stable or one lucky pairing.
        pairs = [h / b for h, b in zip(row["harness_s"], row["bare_s"], strict=True)]
        print(f"{row['framework']:<9} {row['mode']:<8} {row['task']:<5} {harness * 1e3:>10.4f} "
              f"{bare * 1e3:>9.4f} {ratio:>7.4f} {'<=' + format(OVERHEAD_GOAL, '.2f'):>6} "
              f"{verdict(ratio <= OVERHEAD_GOAL):<4}  {mean_ratio:>10.4f}  {min(pairs):.4f}..{max(pairs):.4f}")


def measure_repeatability(threads: int) -> list[tuple[RunSpec, Measurement, Measurement]]:
    """Two real worker processes per cell, round-major (A B A B) like a plan's schedule."""
    budget = MeasureBudget()
    specs = [make_spec(framework, mode, task, threads) for framework, mode, task in REPEAT_CELLS]
    runs: dict[str, list[Measurement]] = {spec.key: [] for spec in specs}
    with tempfile.TemporaryDirectory(prefix="frameduel-overhead-") as workdir:
        for _ in range(2):
            for spec in specs:
                measurement = spawn_measure(spec, budget, Path(workdir))
                if measurement.status != "ok":
                    status, error = measurement.status, measurement.error
                    raise RuntimeError(f"worker for {spec.key} ended '{status}': {error}")
                runs[spec.key].append(measurement)
    return [(spec, *runs[spec.key]) for spec in specs]


def print_repeatability(results: list[tuple[RunSpec, Measurement, Measurement]]) -> None:
    for spec, first, second in results:
        ratio, ci = ratio_of_medians(first.step_seconds, second.step_seconds)
        first_ms = statistics.median(first.step_seconds) * 1e3
        second_ms = statistics.median(second.step_seconds) * 1e3
        ok = abs(ratio - 1) <= REPEAT_GOAL
        print(f"{spec.framework:<5} {spec.mode} {spec.task}: "
              f"run1 {first_ms:.4f} ms (n={len(first.step_seconds)}), "
              f"run2 {second_ms:.4f} ms (n={len(second.step_seconds)}), ratio {ratio:.4f} "
              f"[95% CI {ci.low:.4f}..{ci.high:.4f}], goal {1 - REPEAT_GOAL:.2f}..{1 + REPEAT_GOAL:.2f} "
              f"{verdict(ok)}")


def own_cpu_seconds() -> float:
    """CPU time of this process plus its finished children (the inner runs and the workers)."""
    usage = [resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
    return sum(u.ru_utime + u.ru_stime for u in usage)


def print_contention(wall_s: float, busy_s: float, own_s: float) -> None:
    """Other load on the machine is the likeliest cause of a MISS here, so say how much there was."""
    other = max(0.0, busy_s - own_s)
    load1, load5, _ = os.getloadavg()
    print(f"other processes used {other:.1f} CPU-s during the run ({other / wall_s:.2f} cores on average "
          f"of {psutil.cpu_count()}); load average now {load1:.2f} (1 min), {load5:.2f} (5 min)")
    if other / wall_s > BUSY_CORES_WARNING:
        print("WARNING: the machine was busy with other work; the figures above measure that contention "
              "as much as the harness. Rerun on a quiet machine before drawing conclusions.")


def outer_main(alternations: int) -> int:
    started, busy0, own0 = time.perf_counter(), system_busy_seconds(), own_cpu_seconds()
    threads = environment.default_threads()
    print(f"frameduel harness check: {WORKLOAD}/{SIZE}, batch {BATCH}, fp32, cpu, {threads} threads, "
          f"{alternations} alternations, default MeasureBudget; load average at start "
          f"{os.getloadavg()[0]:.2f}", flush=True)
    try:
        rows = [row for framework in CELLS for row in run_inner(framework, alternations)]
        print("\n1) harness overhead: median(harness medians) / median(bare-loop block times)")
        print_overhead_table(rows)
        print("\n2) repeatability: real worker, two separate processes, ratio of medians")
        print_repeatability(measure_repeatability(threads))
    except RuntimeError as exc:
        print(f"\nerror: {exc}", file=sys.stderr)
        return 1
    wall_s = time.perf_counter() - started
    print()
    print_contention(wall_s, system_busy_seconds() - busy0, own_cpu_seconds() - own0)
    print(f"total wall time {wall_s:.1f} s")
    return 0


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer alternations, for a smoke run")
    parser.add_argument("--inner", choices=sorted(CELLS), help=argparse.SUPPRESS)  # internal: one framework
    parser.add_argument("--alternations", type=int, default=None, help="harness/bare alternations per cell")
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    alternations = args.alternations or (QUICK_ALTERNATIONS if args.quick else FULL_ALTERNATIONS)
    if args.inner:
        return inner_main(args.inner, alternations)
    return outer_main(alternations)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
