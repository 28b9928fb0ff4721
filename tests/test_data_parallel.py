"""Data-parallel training: cells of N workers (torch DDP through torchrun, TF MultiWorkerMirroredStrategy),
proven to train what one process trains, measured, and failing cleanly when a worker dies."""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from pathlib import Path

import psutil
import pytest

from frameduel.analysis.evidence import load_evidence
from frameduel.analysis.summary import summarize_run
from frameduel.errors import FrameduelError
from frameduel.jobs.group import run_group
from frameduel.report.scaling import scaling_rows
from frameduel.runner.plan import MatrixRequest, build_plan
from frameduel.runner.worker import measure_cell
from frameduel.spec import MeasureBudget, RunSpec
from frameduel.store import Store
from tests.conftest import TINY_BUDGET, run_cli

pytestmark = pytest.mark.usefixtures("frameworks")  # torch/TensorFlow workers: the slow tier


def train_spec(framework: str, mode: str, workers: int, batch_size: int = 16) -> RunSpec:
    return RunSpec(workload="mlp", framework=framework, mode=mode, task="train", size="tiny",
                   batch_size=batch_size, threads=1, workers=workers)


def test_the_plan_expands_worker_counts_and_scalings_into_train_cells():
    plan = build_plan(MatrixRequest(workloads=("mlp",), frameworks=("torch",), modes=("eager",),
                                    workers=(1, 2), scaling=("strong", "weak")))
    pairs = sorted((spec.task, spec.batch_size, spec.workers) for spec in plan.specs)
    # One worker is the same cell under both scalings; inference stays in one process.
    assert pairs == [("infer", 1, 1), ("train", 32, 1), ("train", 32, 2), ("train", 64, 2)]
    assert {spec.threads for spec in plan.specs} == {1}  # 1 x 1 thread against 2 x 1 thread
    assert len({spec.comparison_group for spec in plan.specs}) == 4  # 2 workers is another group


@pytest.mark.parametrize("request_args, message", [
    ({"workers": (64,)}, "needs a core per worker"),
    ({"workers": (1, 2), "parallel": 2}, "leave out --parallel"),
    ({"workers": (2,), "threads": 2}, "needs 4 cores"),
    ({"workers": (2,), "scaling": ("sideways",)}, "unknown scaling"),
])
def test_bad_worker_requests_are_refused_with_the_fix(request_args, message):
    with pytest.raises(FrameduelError, match=message):
        build_plan(MatrixRequest(workloads=("mlp",), **request_args))


def test_a_spec_refuses_an_uneven_split_and_untrained_workers():
    with pytest.raises(FrameduelError, match="does not split evenly"):
        train_spec("torch", "eager", 2, batch_size=15)
    with pytest.raises(FrameduelError, match="data-parallel workers train"):
        dataclasses.replace(train_spec("torch", "eager", 1), task="infer", workers=2)


def test_cli_refuses_non_numeric_workers():
    result = run_cli("compare", "--workers", "one,two", timeout=60)
    assert result.returncode == 2 and "whole numbers" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("framework, mode", [("torch", "eager"), ("tf", "xla")])
def test_a_data_parallel_cell_is_measured_on_every_worker_and_scales(framework, mode):
    """Both workers run in processes of their own, step in lockstep, and their memory is summed; the
    all-reduce is timed alone; the scaling row follows from the one-worker cell."""
    one, two = (measure_cell(train_spec(framework, mode, workers), TINY_BUDGET) for workers in (1, 2))
    assert one.status == two.status == "ok", (one.error, two.error)
    workers = two.runtime["workers"]
    assert len({worker["pid"] for worker in workers}) == 2 and two.runtime["process"]["pid"] == workers[0]["pid"]
    assert two.runtime["data_parallel"]["workers"] == 2
    assert two.peak_rss_mb == pytest.approx(sum(worker["peak_rss_mb"] for worker in workers))
    assert len(two.series["allreduce"]) == 20 and min(two.series["allreduce"]) > 0
    rows = scaling_rows(summarize_run([(0, one), (0, two)], [one.spec, two.spec]))
    assert [(row.kind, row.workers) for row in rows] == [("strong", 2)]
    assert 0 < rows[0].efficiency_ci.low <= rows[0].efficiency <= rows[0].efficiency_ci.high
    assert not psutil.pid_exists(workers[1]["pid"])


def test_n_workers_train_what_one_process_trains_in_both_frameworks(db_path):
    result = run_cli("parity", "mlp", "--workers", "2", "--steps", "4", "--json", "--db", str(db_path), timeout=600)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["passed"] and set(report["judgements"]) == {"torch 2 vs torch 1", "tf 2 vs tf 1", "tf 2 vs torch 2"}
    for judgement in report["judgements"].values():  # float64 summation order, no more
        assert max(figure["rel"] for figure in judgement["figures"].values()) < 1e-12
    assert report["replica_spread"] == {"torch 2": 0.0, "tf 2": 0.0}
    # Stored: a report of a run with 2-worker mlp cells says it is proven, one with 4 workers that it is not.
    evidence = load_evidence(Store(db_path), ["mlp"])
    line, proven = evidence.data_parallel_status("mlp", 2)
    assert proven and "data-parallel parity proven (tiny, float64" in line
    assert not evidence.data_parallel_status("mlp", 4)[1]


@pytest.mark.parametrize("framework", ["torch", "tf"])
def test_a_killed_worker_fails_the_cell_quickly_and_leaves_no_process(framework, tmp_path: Path):
    long_budget = MeasureBudget(warmup_steps=1, warmup_seconds=0.0, min_samples=10_000, max_samples=10_000,
                                min_seconds=120.0, max_seconds=120.0, timeout_s=200.0)
    spec = train_spec(framework, "eager", 2)
    outcome = {}

    def run() -> None:
        outcome["group"] = run_group(spec, {"kind": "measure", "budget": long_budget.to_dict()}, tmp_path, 150.0)

    thread = threading.Thread(target=run)
    thread.start()
    victim = tmp_path / "rank1.pid"
    deadline = time.monotonic() + 120
    while not (victim.exists() and (tmp_path / "rank0.pid").exists()) and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(4.0)  # into the measurement: both workers have joined and are stepping
    psutil.Process(int(victim.read_text())).kill()
    killed = time.monotonic()
    thread.join(120)
    failed_after = time.monotonic() - killed
    print(f"{framework}: failed {failed_after:.1f} s after the kill: {outcome['group'].failure[:80]}")
    group = outcome["group"]
    assert group.failure is not None and "worker 1" in group.failure and "SIGKILL" in group.failure, group.failure
    assert failed_after < 15, failed_after
    assert len(group.pids) == 2 and not any(psutil.pid_exists(pid) for pid in group.pids)
    assert json.loads((tmp_path / "job.json").read_text())["rank_cpus"] == [[0], [1]]
