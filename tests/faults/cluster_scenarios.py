"""A Ray node killed mid-compare and mid-sweep, on a real Ray test cluster bound to 127.0.0.1.

The cluster: a head with no CPU (so it runs no cell or trial) and two worker nodes of one CPU each, real GCS,
raylets and worker processes (ray.cluster_utils.Cluster). A node is killed the way a machine dies: every one
of its processes gets SIGKILL (Cluster.remove_node, not graceful). Cells and trials are real workers of the
numpy reference framework, forked from zygotes the Ray workers keep.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil

from frameduel.cluster.session import allow_loopback_cluster
from tests.conftest import run_cli, wait_for
from tests.faults.store_scenarios import (
    compare_args,
    no_leftovers,
    only_run,
    planned_rounds,
    start_compare,
    stored,
)
from tests.faults.support import FaultRow, one_line


@contextlib.contextmanager
def ray_cluster(workers: int = 2) -> Iterator[Any]:
    allow_loopback_cluster()  # before ray is imported
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, connect=False, head_node_args={
        "num_cpus": 0, "node_ip_address": "127.0.0.1", "include_dashboard": False})
    try:
        for _ in range(workers):
            cluster.add_node(num_cpus=1, node_ip_address="127.0.0.1")
        cluster.wait_for_nodes()
        yield cluster
    finally:
        cluster.shutdown()


def raylet_pid(node: Any) -> int:
    return node.all_processes["raylet"][0].process.pid


def node_running(cluster: Any, task: str) -> Any | None:
    """The worker node one of whose Ray workers runs a task called `task` ("ray::measure_cell") now.

    Only a Ray worker itself (a raylet's child) counts: it retitles itself "ray::IDLE" when its task ends,
    while a zygote it forked keeps the task's title for good, so a descendant's title says nothing about
    what the node runs now (CI killed a node whose trial had finished, and nothing was lost)."""
    raylets = {raylet_pid(node): node for node in cluster.worker_nodes}
    for process in psutil.process_iter():
        try:
            if process.ppid() in raylets and " ".join(process.cmdline()).startswith(f"ray::{task}"):
                return raylets[process.ppid()]
        except psutil.Error:
            continue
    return None


def last_line(text: str) -> str:
    lines = text.strip().splitlines()
    return lines[-1] if lines else ""


def ray_args(cluster: Any) -> tuple[str, ...]:
    return ("--executor", "ray", "--address", cluster.address)


def _node_lost_mid_compare(tmp: Path, cluster: Any, repeats: int = 3) -> FaultRow:
    db = tmp / "results.sqlite"
    compare, lines = start_compare(*compare_args(db, repeats), *ray_args(cluster))
    wait_for(lambda: len(stored(db)) >= 1, timeout=300)
    before = stored(db)
    node = wait_for(lambda: node_running(cluster, "measure_cell"), timeout=120)  # the next cell is running on it
    killed_at = time.monotonic()
    cluster.remove_node(node, allow_graceful=False)
    _, err = compare.communicate(timeout=600)
    out = lines.text()
    reported_s = time.monotonic() - killed_at
    at_fault, run_id = stored(db), only_run(db)
    started = time.monotonic()
    resumed = run_cli("compare", "--resume", run_id, *ray_args(cluster), "--db", str(db), timeout=900)
    recover_s = time.monotonic() - started
    after = stored(db)
    redone = sum(after.get(key) != value for key, value in at_fault.items())
    missing = planned_rounds(db, run_id) - set(after)
    return FaultRow(
        "Ray node killed mid-compare", f"SIGKILL to every process of the node running cell {len(before) + 1} of "
        f"{2 * repeats}", "a pinned probe task the node no longer runs: cells 'lost', not stored",
        f"exit {compare.returncode} {reported_s:.0f} s later: {last_line(err)}; --resume exit {resumed.returncode}, "
        f"{len(after)}/{2 * repeats} rounds", len(missing) + redone, recover_s,
        {"returncode": compare.returncode, "stderr": err, "stdout": out,
         "stored_at_fault": len(at_fault), "resume_returncode": resumed.returncode,
         "resume_stderr": resumed.stderr, "redone": redone, "missing": sorted(missing), "one_line": one_line(err),
         "statuses": sorted({status for _, status in after.values()})})


def stored_trials(db: Path) -> dict[str, dict]:
    if not db.exists():
        return {}
    with contextlib.closing(sqlite3.connect(db, timeout=30)) as connection:
        try:
            rows = connection.execute("SELECT key, id, data FROM results WHERE kind = 'sweep-trial'").fetchall()
        except sqlite3.OperationalError:
            return {}
    return {key: {"id": row_id, **json.loads(data)} for key, row_id, data in rows}


def sweep_id_of(db: Path) -> str:
    with contextlib.closing(sqlite3.connect(db, timeout=30)) as connection:
        return connection.execute("SELECT key FROM results WHERE kind = 'sweep'").fetchone()[0]


SWEEP = ("sweep", "--workloads", "mlp", "--frameworks", "numpy", "--grid", "lr=1e-2,3e-2", "--seeds", "3",
         "--target", "0.99", "--max-epochs", "4")  # ~2 s an epoch: a trial runs for a while


def _node_lost_mid_sweep(tmp: Path, cluster: Any) -> FaultRow:
    db = tmp / "sweep.sqlite"
    sweep, lines = start_compare(*SWEEP, *ray_args(cluster), "--db", str(db))
    wait_for(lambda: len(stored_trials(db)) >= 1, timeout=300)
    node = wait_for(lambda: node_running(cluster, "train"), timeout=120)
    cluster.remove_node(node, allow_graceful=False)
    _, err = sweep.communicate(timeout=900)
    out = lines.text()
    at_fault = stored_trials(db)
    sweep_id = sweep_id_of(db)
    started = time.monotonic()
    resumed = run_cli("sweep", "--resume", sweep_id, *ray_args(cluster), "--db", str(db), timeout=900)
    recover_s = time.monotonic() - started
    after = stored_trials(db)
    redone = sum(after.get(key, {}).get("id") != value["id"] for key, value in at_fault.items())
    planned = 2 * 3
    return FaultRow(
        "Ray node killed mid-sweep", "SIGKILL to every process of a node running a trial",
        "trials that failed while a node stopped answering: 'lost', not stored",
        f"exit {sweep.returncode}: {last_line(err)}; --resume exit {resumed.returncode}, "
        f"{len(after)}/{planned} trials", (planned - len(after)) + redone, recover_s,
        {"returncode": sweep.returncode, "stderr": err, "stdout": out, "stored_at_fault": len(at_fault),
         "resume_returncode": resumed.returncode, "resume_stderr": resumed.stderr, "redone": redone,
         "trials": len(after), "one_line": one_line(err)})


def node_lost_mid_compare(tmp: Path, cluster: Any, repeats: int = 3) -> FaultRow:
    with no_leftovers():
        return _node_lost_mid_compare(tmp, cluster, repeats)


def node_lost_mid_sweep(tmp: Path, cluster: Any) -> FaultRow:
    with no_leftovers():
        return _node_lost_mid_sweep(tmp, cluster)
