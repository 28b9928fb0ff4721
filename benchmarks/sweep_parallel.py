"""Wall time of one sweep run serially, with trials in parallel on disjoint cores, and on a Ray cluster.

    .venv/bin/python benchmarks/sweep_parallel.py            # 24 trials: mlp and cnn, both frameworks,
                                                             # 3 learning rates, 2 seeds, target 0.95
    .venv/bin/python benchmarks/sweep_parallel.py --quick    # 8 trials: mlp only, 2 learning rates

Each trial is a fresh process that imports its framework, trains to the target and stops. The same sweep
runs three times: serially, with --parallel N (N trials at once, each pinned to its own cores), and with
--executor ray on a two-node Ray cluster that this script starts on 127.0.0.1 (1 CPU per node, so two
trials at once) and shuts down at the end. It prints:

- the three wall times and the speedups serial / parallel, serial / ray and parallel / ray;
- the per-trial overhead of each executor: the mean over trials of finished_s - started_s - run.wall_s
  (time the sweep saw a trial take beyond the worker's own wall time: launch, hand-off, and on Ray the
  task scheduling), for --parallel and for Ray, and Ray's extra over local;
- the cluster's start-up time, timed apart and not counted in Ray's wall time;
- the best time to target per framework in each run (contention shows as a slower time to target).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from statistics import mean

from frameduel.cluster.local import local_cluster

Run = tuple[float, dict]  # (wall seconds, the sweep's --json summary)

def sweep(args: list[str], executor_args: list[str], db: Path) -> Run:
    """One `frameduel sweep` run, timed."""
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "frameduel.cli", "sweep", *args, *executor_args, "--json",
                           "--db", str(db)], capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"frameduel sweep {' '.join(executor_args)} failed:\n{done.stderr}")
    return time.perf_counter() - started, json.loads(done.stdout)


def mean_overhead_s(summary: dict) -> float:
    """Mean over trials of the time the sweep saw each one take beyond the worker's own wall time."""
    return mean(t["finished_s"] - t["started_s"] - t["run"]["wall_s"] for t in summary["trials"]
                if t["run"]["wall_s"] is not None)


def print_report(serial: Run, parallel: Run, ray: Run, parallel_n: int, startup_s: float) -> None:
    (serial_s, serial_json), (parallel_s, parallel_json), (ray_s, ray_json) = serial, parallel, ray
    trials = len(serial_json["trials"])
    local = f"--parallel {parallel_n}"
    print(f"{trials} trials: serial {serial_s:.1f} s ({serial_s / trials:.2f} s/trial), {local} {parallel_s:.1f} s, "
          f"ray (2 nodes x 1 CPU) {ray_s:.1f} s")
    print(f"speedup over serial: {local} {serial_s / parallel_s:.2f}x, ray {serial_s / ray_s:.2f}x; "
          f"ray vs {local}: {parallel_s / ray_s:.2f}x")
    local_overhead, ray_overhead = mean_overhead_s(parallel_json), mean_overhead_s(ray_json)
    print(f"per-trial overhead (mean of finished - started - worker wall): {local} {local_overhead:.2f} s, "
          f"ray {ray_overhead:.2f} s, ray extra {ray_overhead - local_overhead:+.2f} s")
    print(f"ray cluster start-up: {startup_s:.1f} s (not in ray's wall time)")
    print(f"best time to target per framework (s, median over seeds): serial vs {local} vs ray")
    for a, b, c in zip(serial_json["best"], parallel_json["best"], ray_json["best"], strict=True):
        print(f"  {a['workload']} {a['framework']}: {a['config']} {a['seconds_to_target']} vs {b['config']} "
              f"{b['seconds_to_target']} vs {c['config']} {c['seconds_to_target']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="8 trials: mlp only, 2 learning rates, target 0.9")
    parser.add_argument("--parallel", type=int, default=2, help="trials at once in the local parallel run")
    options = parser.parse_args()
    if options.quick:
        args = ["--workloads", "mlp", "--grid", "lr=1e-3,1e-2", "--seeds", "2", "--target", "0.9"]
    else:
        args = ["--workloads", "mlp,cnn", "--grid", "lr=1e-3,3e-3,1e-2", "--seeds", "2", "--target", "0.95"]
    with tempfile.TemporaryDirectory() as tmp:
        serial = sweep(args, ["--parallel", "1"], Path(tmp) / "serial.sqlite")
        parallel = sweep(args, ["--parallel", str(options.parallel)], Path(tmp) / "parallel.sqlite")
        with local_cluster(nodes=2, cpus_per_node=1) as (address, startup_s):
            ray = sweep(args, ["--executor", "ray", "--address", address], Path(tmp) / "ray.sqlite")
    print_report(serial, parallel, ray, options.parallel, startup_s)


if __name__ == "__main__":
    main()
