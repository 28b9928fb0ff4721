"""How do DDP and tf.distribute scale here? Data-parallel train cells at 1 and 2 workers, locally and on Ray.

    .venv/bin/python benchmarks/data_parallel.py            # mlp and cnn, size small, quick preset (3 processes)
    .venv/bin/python benchmarks/data_parallel.py --quick    # mlp, size tiny, 2 processes per cell
    .venv/bin/python benchmarks/data_parallel.py --no-ray   # the local run only

Runs `frameduel compare --tasks train --workers 1,2 --scaling strong,weak` (1 thread per worker, so
1 x 1 thread against 2 x 1 thread on a 2-core machine) into a results database of its own: once with
the local launchers (torchrun, TF_CONFIG processes), once with --executor ray on a two-node Ray cluster
that this script starts on 127.0.0.1 (1 CPU per node; the groups start through Ray Train, one worker
per node). For each run it prints its wall time, the scaling table (samples/s at 1 and 2 workers,
efficiency with its 95% CI across processes, the all-reduce's share of a step) and the verdicts of the
two scaling claims on this hardware.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from frameduel.analysis.summary import summarize_run
from frameduel.cluster.local import local_cluster
from frameduel.report.claims import check_graph_utilisation_claim, check_linear_scaling_claim
from frameduel.report.scaling import SCALING_COLUMNS, scaling_rows, scaling_table_rows
from frameduel.runner.plan import Plan
from frameduel.store import Store


def compare(args: list[str], db: Path) -> float:
    """Wall seconds of one `frameduel compare` run into db."""
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "frameduel.cli", "compare", *args, "--db", str(db)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"frameduel compare {' '.join(args)} failed:\n{done.stderr}")
    return time.perf_counter() - started


def print_scaling(title: str, wall_s: float, db: Path) -> None:
    store = Store(db)
    run, _ = store.list_runs()[0]
    summary = summarize_run(store.measurements(run.id), list(Plan.from_dict(run.plan).specs))
    failed = [cell for cell in summary.cells if cell.status != "ok"]
    rows = scaling_rows(summary)
    print(f"\n## {title}: {wall_s:.0f} s, {len(summary.cells)} cells" +
          (f", {len(failed)} not ok: {[(c.spec.key, c.error) for c in failed]}" if failed else ""))
    widths = [max(len(column), *(len(row[i]) for row in scaling_table_rows(rows))) for i, column in
              enumerate(SCALING_COLUMNS)]
    for row in [list(SCALING_COLUMNS), *scaling_table_rows(rows)]:
        print("  ".join(value.ljust(width) for value, width in zip(row, widths, strict=True)))
    for claim in (check_linear_scaling_claim(rows), check_graph_utilisation_claim(rows)):
        print(f"- {claim.claim}: {claim.status} ({claim.evidence[0]})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="mlp, size tiny, 2 worker processes per cell")
    parser.add_argument("--no-ray", action="store_true", help="skip the run on the local Ray cluster")
    options = parser.parse_args()
    args = ["--tasks", "train", "--workers", "1,2", "--scaling", "strong,weak", "--threads", "1"]
    args += ["--workloads", "mlp", "--size", "tiny", "--repeats", "2"] if options.quick else \
        ["--workloads", "mlp,cnn", "--size", "small", "--preset", "quick"]
    with tempfile.TemporaryDirectory() as tmp:
        local_db = Path(tmp) / "local.sqlite"
        print_scaling("local (torchrun, TF_CONFIG)", compare(args, local_db), local_db)
        if not options.no_ray:
            ray_db = Path(tmp) / "ray.sqlite"
            with local_cluster(nodes=2, cpus_per_node=1) as (address, startup_s):
                wall_s = compare([*args, "--executor", "ray", "--address", address], ray_db)
            print_scaling(f"Ray Train on 2 nodes x 1 CPU (cluster start-up {startup_s:.0f} s, not included)",
                          wall_s, ray_db)


if __name__ == "__main__":
    main()
