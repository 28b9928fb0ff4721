"""Wall time of one sweep run serially and with trials in parallel on disjoint cores, as a speedup.

    .venv/bin/python benchmarks/sweep_parallel.py            # 24 trials: mlp and cnn, both frameworks,
                                                             # 3 learning rates, 2 seeds, target 0.95
    .venv/bin/python benchmarks/sweep_parallel.py --quick    # 8 trials: mlp only, 2 learning rates

Each trial is a fresh process that imports its framework, trains to the target and stops; with
--parallel N, N trials run at once, each pinned to its own cores. The sweep's own summary gives the
time-to-target figures; this script prints the wall times and the speedup parallel / serial, and the
median time-to-target of each framework in both runs (contention shows as a slower time to target).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def sweep(args: list[str], parallel: int, db: Path) -> tuple[float, dict]:
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "frameduel.cli", "sweep", *args, "--parallel", str(parallel),
                           "--json", "--db", str(db)], capture_output=True, text=True, check=True)
    return time.perf_counter() - started, json.loads(done.stdout)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--parallel", type=int, default=2)
    options = parser.parse_args()
    if options.quick:
        args = ["--workloads", "mlp", "--grid", "lr=1e-3,1e-2", "--seeds", "2", "--target", "0.9"]
    else:
        args = ["--workloads", "mlp,cnn", "--grid", "lr=1e-3,3e-3,1e-2", "--seeds", "2", "--target", "0.95"]
    with tempfile.TemporaryDirectory() as tmp:
        serial_s, serial = sweep(args, 1, Path(tmp) / "serial.sqlite")
        parallel_s, parallel = sweep(args, options.parallel, Path(tmp) / "parallel.sqlite")
    trials = len(serial["trials"])
    print(f"{trials} trials: serial {serial_s:.1f} s ({serial_s / trials:.2f} s/trial), --parallel "
          f"{options.parallel} {parallel_s:.1f} s: speedup {serial_s / parallel_s:.2f}x")
    print("best time to target per framework (s, median over seeds): serial vs parallel")
    for a, b in zip(serial["best"], parallel["best"], strict=True):
        print(f"  {a['workload']} {a['framework']}: {a['config']} {a['seconds_to_target']} vs {b['config']} "
              f"{b['seconds_to_target']}")


if __name__ == "__main__":
    main()
