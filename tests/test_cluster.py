"""`--executor ray` on a real two-node Ray cluster started here on 127.0.0.1, and compare --parallel.

The cluster is Ray's own test cluster (ray.cluster_utils.Cluster): a head and a worker node, real
GCS, raylets and worker processes, shut down at the end of the module, which then checks that no Ray
process and no frameduel worker is left running.
"""

from __future__ import annotations

import contextlib
import json
import signal
import sqlite3
import subprocess
from collections import Counter

import psutil
import pytest

from frameduel.cluster.local import local_cluster
from frameduel.cluster.session import allow_loopback_cluster
from tests.conftest import cli_command, run_cli, wait_for
from tests.test_cli import assert_user_error
from tests.tools import require_module

allow_loopback_cluster()  # before ray is imported: one test drives the cluster from this process
require_module("ray")

TINY_COMPARE = ("compare", "--workloads", "mlp", "--size", "tiny", "--tasks", "train", "--modes", "eager,function",
                "--no-parity", "--timeout", "240")
TINY_SWEEP = ("sweep", "--workloads", "mlp", "--grid", "lr=1e-2", "--seeds", "1", "--target", "0.5",
              "--max-epochs", "2")


def ray_processes() -> list[psutil.Process]:
    found = []
    for process in psutil.process_iter():
        try:
            command = " ".join(process.cmdline())
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
        if "ray/core/src" in command or command.startswith("ray::") or "frameduel.jobs.zygote" in command \
                or "frameduel.jobs.entry" in command:
            found.append(process)
    return found


@pytest.fixture(scope="module")
def cluster_address():
    before = {p.pid for p in ray_processes()}
    with local_cluster(nodes=2, cpus_per_node=1) as (address, _):
        yield address

    def left() -> list[psutil.Process]:
        return [p for p in ray_processes() if p.pid not in before and p.is_running()
                and p.status() != psutil.STATUS_ZOMBIE]

    with contextlib.suppress(AssertionError):
        wait_for(lambda: not left(), timeout=30)
    assert not left(), f"left running: {[' '.join(p.cmdline())[:80] for p in left()]}"


def measurements(db: str) -> list[dict]:
    """Every stored cell round, as finished, with its spec."""
    with sqlite3.connect(db) as connection:
        try:
            rows = connection.execute("SELECT measurement, spec, status, error FROM cells ORDER BY id").fetchall()
        except sqlite3.OperationalError:  # the database is not created yet
            return []
    return [{**json.loads(body), "spec": json.loads(spec), "status": status, "error": error}
            for body, spec, status, error in rows]


def test_sweep_on_the_cluster_pins_each_trial_to_a_core_of_its_own(cluster_address, tmp_path):
    db = str(tmp_path / "results.sqlite")
    result = run_cli(*TINY_SWEEP, "--executor", "ray", "--address", cluster_address, "--json", "--db", db)
    assert result.returncode == 0, result.stderr
    trials = json.loads(result.stdout)["trials"]
    assert sorted(t["trial"]["framework"] for t in trials) == ["tf", "torch"]
    assert all(t["run"]["status"] == "ok" and t["placement"]["executor"] == "ray" for t in trials)
    assert all(len(t["cpus"]) == 1 and t["run"]["runtime"]["cpus"] == t["cpus"] for t in trials)
    overlapped = max(t["started_s"] for t in trials) < min(t["finished_s"] for t in trials)
    if overlapped:  # two 1-CPU nodes ran both trials at once: on different cores
        assert trials[0]["cpus"] != trials[1]["cpus"]


def test_a_random_search_with_asha_stops_bad_trials_and_stores_every_one(cluster_address, tmp_path):
    db = str(tmp_path / "results.sqlite")
    result = run_cli("sweep", "--workloads", "mlp", "--frameworks", "torch", "--grid", "lr=1e-5..3e-1", "--search",
                     "random", "--samples", "3", "--early-stop", "asha", "--seeds", "1", "--target", "0.99",
                     "--max-epochs", "4", "--executor", "ray", "--address", cluster_address, "--json", "--db", db)
    assert result.returncode == 0, result.stderr
    trials = json.loads(result.stdout)["trials"]
    assert len(trials) == 3 and len({t["key"] for t in trials}) == 3
    rates = [dict(t["trial"]["config"])["lr"] for t in trials]
    assert all(1e-5 <= lr <= 3e-1 for lr in rates)
    # ASHA keeps the best third after 2 epochs; the others stop there (or an epoch later: the worker sees
    # the stop after the epoch it is in); a target of 0.99 is out of reach, so none ends early on its own.
    stopped = [t for t in trials if t["run"]["status"] == "stopped"]
    assert stopped and all(2 <= len(t["run"]["accuracy"]) < 4 for t in stopped)
    assert [t["run"]["status"] for t in trials].count("ok") >= 1


def zygote_child_under_ray() -> psutil.Process | None:
    """A cell's worker forked by a zygote that a Ray worker process ("ray::measure_cell") started."""
    for process in ray_processes():
        try:
            parent = process.parent()
            if "frameduel.jobs.zygote" in " ".join(process.cmdline()) and parent and \
                    "frameduel.jobs.zygote" in " ".join(parent.cmdline()) and \
                    " ".join(parent.parent().cmdline()).startswith("ray::"):
                return process
        except (psutil.NoSuchProcess, AttributeError):
            continue
    return None


def test_a_killed_ray_worker_fails_only_its_cell_and_the_rest_record_where_they_ran(cluster_address, tmp_path):
    db = str(tmp_path / "results.sqlite")
    compare = subprocess.Popen(cli_command(*TINY_COMPARE, "--repeats", "1", "--executor", "ray", "--address",
                                           cluster_address, "--db", db),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    cell_worker = wait_for(zygote_child_under_ray)
    ray_worker = cell_worker.parent().parent()
    ray_worker.send_signal(signal.SIGKILL)  # the Ray worker process running the first cell
    psutil.wait_procs([cell_worker], timeout=10)
    assert not cell_worker.is_running(), "the cell's own worker outlived the Ray worker that started it"
    out, err = compare.communicate(timeout=300)
    assert compare.returncode == 0, err
    rows = measurements(db)
    assert sorted(m["status"] for m in rows) == ["failed", "ok", "ok"]
    failed = next(m for m in rows if m["status"] == "failed")
    assert "Ray worker process running it died" in failed["error"]
    # Where each cell ran: both nodes are on 127.0.0.1, one machine, so its timing cells ran one at a
    # time on one node, and their speedups (one machine class) were computed.
    placements = [m["placement"] for m in rows]
    assert all(p["executor"] == "ray" and p["machine_class"] for p in placements)
    assert len({p["ray_node_id"] for p in placements}) == 1 and len({p["machine_class"] for p in placements}) == 1
    assert next(p for p in placements if "environment" in p)["environment"]["cpu"]["model"]
    assert "incomparable" not in out and "not computed" not in out


def test_a_killed_driver_leaves_a_run_that_resumes_locally(cluster_address, tmp_path):
    db = str(tmp_path / "results.sqlite")
    compare = subprocess.Popen(cli_command(*TINY_COMPARE, "--repeats", "2", "--executor", "ray", "--address",
                                           cluster_address, "--db", db),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for(lambda: len(measurements(db)) >= 2 if (tmp_path / "results.sqlite").exists() else False)
    compare.send_signal(signal.SIGKILL)
    compare.wait(timeout=30)
    finished = measurements(db)
    assert 2 <= len(finished) < 6
    with sqlite3.connect(db) as connection:
        (run_id,) = connection.execute("SELECT id FROM runs").fetchone()
    resumed = run_cli("compare", "--resume", run_id, "--json", "--db", db)
    assert resumed.returncode == 0, resumed.stderr
    rows = measurements(db)
    assert len(rows) == 6 and all(m["status"] == "ok" for m in rows)
    rounds = Counter((m["spec"]["framework"], m["spec"]["mode"]) for m in rows)
    assert sorted(rounds.values()) == [2, 2, 2]  # nothing lost, nothing measured twice
    assert {m["placement"]["executor"] for m in rows[len(finished):]} == {"local"}
    wait_for(lambda: not zygote_child_under_ray(), timeout=30)  # the dead driver's cells did not live on


@pytest.mark.parametrize("command", [TINY_COMPARE, TINY_SWEEP, ("accuracy", "--workloads", "mlp")])
def test_an_unreachable_address_is_one_line_before_anything_starts(command, db_path):
    result = run_cli(*command, "--executor", "ray", "--address", "127.0.0.1:1", "--db", str(db_path)) \
        if command[0] != "accuracy" else run_cli(*command, "--executor", "ray", "--address", "127.0.0.1:1")
    assert_user_error(result, "cannot reach a Ray cluster at 127.0.0.1:1")
    assert not db_path.exists() or not measurements(str(db_path))


def test_address_without_ray_executor_is_refused(db_path):
    assert_user_error(run_cli(*TINY_COMPARE, "--address", "127.0.0.1:1", "--db", str(db_path)), "--executor ray")


def test_parallel_timing_cells_are_pinned_apart_and_flagged(tmp_path):
    db = str(tmp_path / "results.sqlite")
    result = run_cli("compare", "--workloads", "mlp", "--size", "tiny", "--tasks", "train", "--modes", "eager",
                     "--frameworks", "torch", "--repeats", "2", "--parallel", "2", "--no-parity", "--db", db)
    assert result.returncode == 0, result.stderr
    rows = measurements(db)
    assert len(rows) == 2 and all(m["placement"]["concurrent"] == 2 and len(m["placement"]["cpus"]) == 1
                                  for m in rows)
    assert rows[0]["placement"]["cpus"] != rows[1]["placement"]["cpus"]
    assert all(m["spec"]["threads"] == 1 for m in rows)
    assert "P parallel" in result.stdout


def test_data_parallel_cells_span_the_nodes_through_ray_train(cluster_address, tmp_path):
    """torch through TorchTrainer, TF through TensorflowTrainer: one worker per node, each on a core of
    its own (both nodes share this host), measured by the same job as a torchrun group's workers."""
    db = str(tmp_path / "results.sqlite")
    result = run_cli("compare", "--workloads", "mlp", "--size", "tiny", "--tasks", "train", "--modes", "eager",
                     "--workers", "2", "--repeats", "1", "--no-parity", "--executor", "ray", "--address",
                     cluster_address, "--db", db)
    assert result.returncode == 0, result.stderr
    rows = measurements(db)
    assert sorted(m["spec"]["framework"] for m in rows) == ["tf", "torch"]
    for row in rows:
        assert row["status"] == "ok", row["error"]
        trainer = {"torch": "Ray Train TorchTrainer", "tf": "Ray Train TensorflowTrainer"}[row["spec"]["framework"]]
        placement, facts = row["placement"], row["runtime"]["data_parallel"]
        assert placement["launcher"] == facts["launcher"] == trainer and facts["workers"] == 2
        workers = placement["workers"]
        assert [w["rank"] for w in workers] == [0, 1] and len({w["ray_node_id"] for w in workers}) == 2
        assert len(workers[0]["cpus"]) == len(workers[1]["cpus"]) == 1 and workers[0]["cpus"] != workers[1]["cpus"]
        assert [w["pid"] for w in row["runtime"]["workers"]] == [w["pid"] for w in workers]
    with sqlite3.connect(db) as connection:  # the all-reduce timed alone, in every group
        counts = connection.execute("SELECT COUNT(*) FROM samples WHERE series = 'allreduce' GROUP BY cell_id")
        assert [count for (count,) in counts] == [20, 20]


def test_a_killed_ray_train_worker_fails_its_group_quickly_and_names_it(cluster_address):
    import dataclasses
    import threading
    import time

    from frameduel.cluster.cells import RayCells
    from frameduel.runner.plan import MatrixRequest, build_plan
    from frameduel.spec import MeasureBudget

    plan = build_plan(MatrixRequest(workloads=("mlp",), frameworks=("torch",), modes=("eager",), tasks=("train",),
                                    workers=(2,), size="tiny", repeats=1, cluster=True))
    plan = dataclasses.replace(plan, budget=MeasureBudget(warmup_steps=1, warmup_seconds=0.0, min_samples=10_000,
                                                          max_samples=10_000, min_seconds=120.0, max_seconds=120.0,
                                                          timeout_s=200.0))
    measured = []
    cells = RayCells(cluster_address)

    def measure() -> None:
        try:
            measured.extend(cells.run([(0, plan.specs[0])], plan, lambda cell: None))
        finally:
            cells.close()  # disconnect: the fixture's teardown removes the cluster's nodes

    thread = threading.Thread(target=measure)
    thread.start()

    def train_workers() -> list[psutil.Process]:
        return [p for p in ray_processes() if "RayTrainWorker" in " ".join(p.cmdline())]

    wait_for(lambda: len(train_workers()) == 2, timeout=120)
    time.sleep(15)  # both have joined the group and are stepping
    victim = train_workers()[1]
    victim.kill()
    killed = time.monotonic()
    thread.join(120)
    failed_after = time.monotonic() - killed
    (_, measurement), = measured
    print(f"failed {failed_after:.1f} s after the kill: {measurement.error[:100]}")
    assert measurement.status == "failed" and f"(pid {victim.pid} on" in measurement.error
    assert "died" in measurement.error.split(";")[0] and failed_after < 15
    wait_for(lambda: not train_workers(), timeout=30)
