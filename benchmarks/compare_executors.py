"""Does a cell measure the same on Ray as locally? One compare matrix run both ways, cell by cell.

    .venv/bin/python benchmarks/compare_executors.py            # mlp, size small, train and infer
    .venv/bin/python benchmarks/compare_executors.py --quick    # mlp, size tiny, train only, 2 repeats

Runs `frameduel compare --workloads mlp --modes eager,function --json` (quick preset) twice, each into
its own results database: once locally, once with --executor ray on a two-node Ray cluster that this
script starts on 127.0.0.1 (1 CPU per node) and shuts down at the end. It prints each run's wall time
and the cluster's start-up time (timed apart), then per cell (framework/mode/task) the local median
ms/step [95% CI] beside Ray's, and "same within CIs": yes when each median lies inside the other run's
CI, otherwise which one falls outside; last, how many cells agree out of how many both runs measured.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from frameduel.cluster.local import local_cluster

Figures = tuple[float, float, float]  # (median, CI low, CI high), seconds per step


def compare(args: list[str], executor_args: list[str], db: Path) -> tuple[float, dict]:
    """(wall seconds, the --json summary) of one `frameduel compare` run."""
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "frameduel.cli", "compare", *args, *executor_args, "--json",
                           "--db", str(db)], capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"frameduel compare {' '.join(executor_args)} failed:\n{done.stderr}")
    return time.perf_counter() - started, json.loads(done.stdout)


def cell_figures(summary: dict) -> dict[str, tuple[str, Figures]]:
    """key -> ("framework/mode/task", figures) for every cell with a steady-state timing and a CI."""
    return {cell["key"]: (f"{cell['spec']['framework']}/{cell['spec']['mode']}/{cell['spec']['task']}",
                          (cell["step"]["median"], cell["step_ci"]["low"], cell["step_ci"]["high"]))
            for cell in summary["cells"] if cell["step"] and cell["step_ci"]}


def agreement(local: Figures, ray: Figures) -> str:
    """"yes" when each median lies inside the other's CI, else which median falls outside the other's CI."""
    outside = [f"{name} median outside {other}'s CI" for name, (median, _, _), other, (_, low, high)
               in (("local", local, "ray", ray), ("ray", ray, "local", local)) if not low <= median <= high]
    return "no: " + ", ".join(outside) if outside else "yes"


def ms(figures: Figures) -> str:
    median, low, high = (value * 1e3 for value in figures)
    return f"{median:.3g} [{low:.3g}, {high:.3g}]"


def print_report(local: dict, ray: dict) -> None:
    local_cells, ray_cells = cell_figures(local), cell_figures(ray)
    shared = [key for key in local_cells if key in ray_cells]
    width = max((len(local_cells[key][0]) for key in shared), default=4)
    print(f"{'cell':<{width}}  {'local ms/step [95% CI]':<26}  {'ray ms/step [95% CI]':<26}  same within CIs")
    agree = 0
    for key in shared:
        (label, here), (_, there) = local_cells[key], ray_cells[key]
        verdict = agreement(here, there)
        agree += verdict == "yes"
        print(f"{label:<{width}}  {ms(here):<26}  {ms(there):<26}  {verdict}")
    missing = sorted(set(local_cells) ^ set(ray_cells))
    print(f"{agree} of {len(shared)} cells agree within CIs" + (f"; measured by one run only: {missing}"
                                                                  if missing else ""))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="size tiny, train only, 2 worker processes per cell")
    options = parser.parse_args()
    args = ["--workloads", "mlp", "--modes", "eager,function", "--preset", "quick"]
    args += ["--size", "tiny", "--tasks", "train", "--repeats", "2"] if options.quick else \
        ["--size", "small", "--tasks", "train,infer"]
    with tempfile.TemporaryDirectory() as tmp:
        local_s, local = compare(args, [], Path(tmp) / "local.sqlite")
        with local_cluster(nodes=2, cpus_per_node=1) as (address, startup_s):
            ray_s, ray = compare(args, ["--executor", "ray", "--address", address], Path(tmp) / "ray.sqlite")
    print(f"compare: local {local_s:.1f} s, ray (2 nodes x 1 CPU) {ray_s:.1f} s; "
          f"ray cluster start-up {startup_s:.1f} s (not in ray's wall time)")
    print_report(local, ray)


if __name__ == "__main__":
    main()
