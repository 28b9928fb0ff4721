"""The scheduler and workers for real: subprocesses, SQLite, kills, timeouts, interrupts, resume."""

from __future__ import annotations

import signal
import sqlite3
import subprocess

import psutil
import pytest

from frameduel.runner.plan import MatrixRequest, build_plan
from frameduel.runner.scheduler import spawn_measure, start_run
from frameduel.spec import Measurement, RunSpec
from frameduel.store import Store
from tests.conftest import TINY_BUDGET, cli_command, run_cli, wait_for

# Eight cells (train/infer x 4 processes) of the numpy reference framework: real worker processes, forked
# from a real zygote, with no torch or TensorFlow import to pay; the harness is what these tests test.
SMALL_MATRIX = ("compare", "--workloads", "mlp", "--size", "tiny", "--frameworks", "numpy", "--threads", "1",
                "--repeats", "4", "--no-parity")
CELLS = 8


@pytest.mark.parametrize("framework, mode", [("torch", "eager"), ("tf", "function")])
def test_worker_measures_a_cell_in_its_own_process(framework, mode, tmp_path, frameworks):
    spec = RunSpec(workload="mlp", framework=framework, mode=mode, task="train", size="tiny", threads=1)
    result = spawn_measure(spec, TINY_BUDGET, tmp_path)
    assert result.status == "ok", result.error
    assert len(result.step_seconds) >= 3 and all(s > 0 for s in result.step_seconds)
    assert result.runtime["intra_op_threads"] == 1
    assert result.first_step_s > 0 and result.compile_s >= 0
    assert result.peak_rss_mb > result.baseline_rss_mb > 50  # a framework was really loaded
    if mode == "function":
        assert result.trace_s > 0


def test_worker_past_its_timeout_is_killed_and_recorded(tmp_path):
    spec = RunSpec(workload="mlp", framework="torch", mode="eager", task="train", size="tiny", threads=1)
    budget = TINY_BUDGET.__class__(**{**TINY_BUDGET.to_dict(), "timeout_s": 0.3})
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    result = spawn_measure(spec, budget, tmp_path)
    assert result.status == "timeout" and "--timeout" in result.error
    leftovers = {p.pid for p in psutil.Process().children(recursive=True)} - before
    assert not leftovers


def cells_in(db_path) -> list[tuple[str, str, str | None]]:
    query = "SELECT cell_key, status, error FROM cells ORDER BY id"
    try:
        return list(sqlite3.connect(db_path).execute(query))
    except sqlite3.OperationalError:  # the CLI has not created the schema yet
        return []


def worker_of(process: subprocess.Popen) -> psutil.Process | None:
    """The cell's worker: a spawned `frameduel.jobs.entry`, or a child forked from a zygote."""
    for child in psutil.Process(process.pid).children(recursive=True):
        try:
            command, parent = " ".join(child.cmdline()), child.parent()
            if "frameduel.jobs.entry" in command or (
                    "frameduel.jobs.zygote" in command and "frameduel.jobs.zygote" in " ".join(parent.cmdline())):
                return child
        except psutil.NoSuchProcess:
            continue
    return None


def test_a_killed_worker_fails_its_cell_and_the_matrix_goes_on(db_path):
    compare = subprocess.Popen(cli_command(*SMALL_MATRIX, "--db", str(db_path)),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for(lambda: worker_of(compare)).send_signal(signal.SIGKILL)  # the first cell's worker
    out, err = compare.communicate(timeout=300)
    assert compare.returncode == 0, err
    statuses = [status for _, status, _ in cells_in(db_path)]
    assert statuses == ["failed"] + ["ok"] * (CELLS - 1)
    assert "killed by SIGKILL" in cells_in(db_path)[0][2]
    assert "failed" in out


def test_interrupted_run_resumes_without_redoing_finished_cells(db_path):
    compare = subprocess.Popen(cli_command(*SMALL_MATRIX, "--db", str(db_path)),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for(lambda: len(cells_in(db_path)) >= 1 if db_path.exists() else False)
    compare.send_signal(signal.SIGINT)
    out, err = compare.communicate(timeout=120)
    assert compare.returncode == 130
    [run_id] = [line.split("--resume ")[1].strip() for line in err.splitlines() if "--resume" in line]
    store = Store(db_path)
    assert store.get_run(run_id).status == "interrupted"
    query = "SELECT cell_key, round, id FROM cells"  # a cell has a row per round: (key, round) names one
    ids_before = {(key, round_index): row_id for key, round_index, row_id in sqlite3.connect(db_path).execute(query)}
    assert 1 <= len(ids_before) < CELLS

    resumed = run_cli("compare", "--resume", run_id, "--db", str(db_path))
    assert resumed.returncode == 0, resumed.stderr
    assert store.get_run(run_id).status == "complete"
    assert len(cells_in(db_path)) == CELLS
    ids_after = {(key, round_index): row_id for key, round_index, row_id in sqlite3.connect(db_path).execute(query)}
    assert all(ids_after[key] == row_id for key, row_id in ids_before.items())  # not redone


def test_resume_runs_only_the_missing_cells(db_path):
    plan = build_plan(MatrixRequest(workloads=("mlp",), frameworks=("numpy",), tasks=("train", "infer"),
                                    size="tiny", device="cpu", threads=1, repeats=1))
    store = Store(db_path)
    run_id = start_run(store, plan)
    train_spec, infer_spec = plan.specs
    store.save_measurement(run_id, 0, Measurement(spec=train_spec, status="ok", step_seconds=[42.0]))
    store.set_run_status(run_id, "interrupted")

    result = run_cli("compare", "--resume", run_id, "--db", str(db_path))
    assert result.returncode == 0, result.stderr
    stored = {m.spec.task: m for _, m in store.measurements(run_id)}
    assert stored["train"].step_seconds == [42.0]  # the finished cell was not measured again
    assert stored["infer"].status == "ok" and stored["infer"].step_seconds != [42.0]
    progress_lines = [line for line in result.stdout.splitlines() if "ms/step" in line]
    assert len(progress_lines) == 1 and "mlp infer b1 fp32 numpy eager:" in progress_lines[0]


def test_a_compiled_cell_reports_its_graph_breaks(tmp_path, cxx_compiler):
    # dynamo never traces nn.LSTM: the "compile" cell is partly eager, and the report must be able to say so
    spec = RunSpec(workload="lstm", framework="torch", mode="compile", task="infer", size="tiny", batch_size=1)
    result = spawn_measure(spec, TINY_BUDGET, tmp_path)
    assert result.status == "ok", result.error
    assert result.runtime["compiled_graphs"] == 0
    assert any("LSTM" in reason for reason in result.runtime["eager_fallback_reasons"])
    mlp = spawn_measure(RunSpec(workload="mlp", framework="torch", mode="compile", task="infer", size="tiny",
                             batch_size=1), TINY_BUDGET, tmp_path)
    assert mlp.runtime["compiled_graphs"] >= 1 and mlp.runtime["eager_fallback_reasons"] == []
