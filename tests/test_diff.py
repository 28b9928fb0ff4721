"""Two stored runs compared cell by cell: synthetic measurements in a real SQLite file, the real CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from frameduel.analysis.summary import summarize_run
from frameduel.report.diff import RunSide, diff_runs
from frameduel.runner.plan import Plan
from frameduel.spec import MeasureBudget, Measurement, RunSpec
from frameduel.store import Store
from tests.conftest import run_cli

ENV_A = {"cpu": {"model": "Old CPU", "logical_cores": 4}, "packages": {"torch": "2.12.0", "numpy": "2.1.0"}}
ENV_B = {"cpu": {"model": "New CPU", "logical_cores": 4}, "packages": {"torch": "2.13.0", "numpy": "2.1.0"},
         "gpus": []}


def fake(framework: str, mode: str, median_s: float, threads: int = 1, seed: int = 0,
         status: str = "ok") -> Measurement:
    rng = np.random.default_rng(seed)
    samples = (median_s * (1 + 0.01 * rng.standard_normal(200))).tolist() if status == "ok" else []
    spec = RunSpec(workload="mlp", framework=framework, mode=mode, task="train", size="tiny", threads=threads)
    return Measurement(spec=spec, status=status, step_seconds=samples, error=None if status == "ok" else "boom")


def store_run(store: Store, run_id: str, environment: dict, *measurements: Measurement) -> None:
    plan = Plan(preset="quick", specs=tuple(m.spec for m in measurements), budget=MeasureBudget(), repeats=1)
    store.create_run(run_id, plan.to_dict(), environment)
    for measurement in measurements:
        store.save_measurement(run_id, 0, measurement)
    store.set_run_status(run_id, "complete")


@pytest.fixture
def two_runs(db_path: Path) -> Path:
    """B (4 threads, newer machine) is 2x faster in torch eager, equal in tf eager; each run has one cell of its own."""
    store = Store(db_path)
    store_run(store, "run-a", ENV_A, fake("torch", "eager", 0.010), fake("tf", "eager", 0.010, seed=1),
              fake("torch", "compile", 0.008, seed=2))
    store_run(store, "run-b", ENV_B, fake("torch", "eager", 0.005, threads=4, seed=3),
              fake("tf", "eager", 0.010, threads=4, seed=4), fake("tf", "function", 0.0, threads=4, status="oom"))
    store.close()
    return db_path


def stored_side(store: Store, run_id: str) -> RunSide:
    run = store.get_run(run_id)
    summary = summarize_run(store.measurements(run_id), list(Plan.from_dict(run.plan).specs))
    return RunSide(run_id, summary, run.environment)


def test_matched_cells_get_a_speedup_and_the_shared_verdict(two_runs):
    store = Store(two_runs)
    diff = diff_runs(stored_side(store, "run-a"), stored_side(store, "run-b"))
    by_match = {cell.match: cell for cell in diff.matched}
    assert list(by_match) == ["mlp/tiny/train/b32/fp32 torch eager", "mlp/tiny/train/b32/fp32 tf eager"]
    faster = by_match["mlp/tiny/train/b32/fp32 torch eager"].ratio
    assert abs(faster.value - 2.0) < 0.05 and faster.ci.contains(faster.value) and faster.verdict == "faster"
    assert by_match["mlp/tiny/train/b32/fp32 tf eager"].ratio.verdict == "no meaningful difference"
    assert [c.spec.mode for c in diff.only_a] == ["compile"]
    assert [(c.spec.mode, c.status) for c in diff.only_b] == [("function", "oom")]


def test_environment_and_setting_differences_are_listed(two_runs):
    store = Store(two_runs)
    diff = diff_runs(stored_side(store, "run-a"), stored_side(store, "run-b"))
    lines = [change.line for change in diff.environment]
    assert lines == ["cells.threads: 1 -> 4", "cpu.model: Old CPU -> New CPU", "packages.torch: 2.12.0 -> 2.13.0",
                     "gpus: (absent) -> []"]


def test_a_run_against_itself_has_no_differences(two_runs):
    store = Store(two_runs)
    side = stored_side(store, "run-a")
    diff = diff_runs(side, side)
    assert diff.environment == [] and diff.only_a == [] and diff.only_b == []
    assert {cell.ratio.verdict for cell in diff.matched} == {"no meaningful difference"}


def test_cli_table_names_the_winner_and_the_unmatched_cells(two_runs):
    result = run_cli("diff", "run-a", "run-b", "--db", str(two_runs))
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "faster" in out and "no meaningful difference" in out
    assert "only in run run-a (A): mlp/tiny/train/b32/fp32 torch compile" in out
    assert "only in run run-b (B): mlp/tiny/train/b32/fp32 tf function  step ms oom" in out
    assert "packages.torch: 2.12.0 -> 2.13.0" in out


def test_cli_json(two_runs):
    result = run_cli("diff", "run-a", "run-b", "--json", "--db", str(two_runs))
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    torch_eager = data["matched"][0]
    assert torch_eager["match"] == "mlp/tiny/train/b32/fp32 torch eager" and torch_eager["verdict"] == "faster"
    assert abs(torch_eager["speedup"] - 2.0) < 0.05 and abs(torch_eager["a"]["median_ms"] - 10.0) < 0.1
    assert [c["key"].split("/")[-2] for c in data["only_in_b"]] == ["function"]
    assert {"key": "cells.threads", "a": "1", "b": "4"} in data["environment"]


def test_cli_unknown_run_is_one_line_and_exit_2(two_runs):
    result = run_cli("diff", "run-a", "no-such-run", "--db", str(two_runs))
    assert result.returncode == 2 and "Traceback" not in result.stderr + result.stdout
    assert result.stderr.strip().count("\n") == 0 and "no run 'no-such-run'" in result.stderr
