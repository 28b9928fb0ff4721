"""`frameduel report SWEEP_ID`: a stored sweep as HTML (figure embedded), Markdown and JSON, no training.

The trials are made-up curves stored the way `frameduel sweep` stores them (start_sweep, run_sweep), so
these tests are fast and know exactly which configuration must come out best.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from frameduel import environment
from frameduel.accuracy.run import AccuracyRequest, TrainingRun
from frameduel.report.sweep_document import build_sweep_document, write_sweep_report
from frameduel.store import Store
from frameduel.sweep import SweepRequest, Trial, TrialResult, plan_trials, trial_spec
from tests.conftest import run_cli
from tests.test_cli import assert_user_error

SWEEP_ID = "sweep-20261203-140000-ab12"
REQUEST = SweepRequest(AccuracyRequest(workloads=("mlp",), frameworks=("torch", "tf"), seeds=2, target=0.9,
                                       max_epochs=5), {"lr": (1e-3, 1e-2)}, parallel=2)
SLOW = [0.3, 0.5, 0.6, 0.7, 0.75]  # lr=1e-3: never reaches 0.9 in 5 epochs
FAST = {"torch": [0.6, 0.92], "tf": [0.5, 0.8, 0.93]}  # lr=1e-2: stops once it reaches 0.9
OOM = "worker died: SIGKILL (out of memory?)"


def made_up_result(trial: Trial, index: int) -> TrialResult:
    spec = trial_spec(trial, REQUEST, threads=1)
    cpus = [index % 2]
    if (trial.framework, trial.value("lr", 0), trial.seed) == ("tf", 1e-3, 1):
        return TrialResult(trial, TrainingRun(spec, "failed", OOM), cpus, index, index + 0.5)
    accuracy = FAST[trial.framework] if trial.value("lr", 0) == 1e-2 else SLOW
    epoch_seconds = [1.5 + 0.1 * trial.seed] + [0.4 + 0.05 * trial.seed] * (len(accuracy) - 1)  # 1st compiles
    run = TrainingRun(spec, "ok", None, epoch_seconds, accuracy, [1.0] * len(accuracy), sum(epoch_seconds) + 0.3)
    return TrialResult(trial, run, cpus, index, index + run.wall_s)


@pytest.fixture
def swept(db_path: Path) -> list[TrialResult]:
    """7 of the 8 planned trials (torch lr=1e-3 seed 1 never ran), one of them failed."""
    trials = [t for t in plan_trials(REQUEST) if (t.framework, t.value("lr", 0), t.seed) != ("torch", 1e-3, 1)]
    results = [made_up_result(trial, i) for i, trial in enumerate(trials)]
    fingerprint = environment.fingerprint()
    store = Store(db_path)
    store.save_result("sweep", SWEEP_ID, REQUEST.to_dict(), fingerprint)
    for result in reversed(results):  # finishing order is not plan order
        store.save_result("sweep-trial", f"{SWEEP_ID}/{result.trial.key}", result.to_dict(), fingerprint)
    store.close()
    return results


def test_sweep_report_writes_html_markdown_and_json(swept, db_path, tmp_path):
    written = write_sweep_report(Store(db_path), SWEEP_ID, tmp_path / "out")
    assert [path.name for path in written] == ["sweep.html", "sweep.md", "sweep.json"]
    page, markdown = (written[0].read_text(), written[1].read_text())
    assert "<img alt='test accuracy vs training time' src='data:image/png;base64," in page
    for text in (page, markdown):
        assert f"frameduel sweep {SWEEP_ID}" in text
        assert "trains to test accuracy 0.9 on load_digits" in text and "s to 0.9 median [range]" in text
        assert f"Trials: 7 of 8 done, 1 failed; finish it with: frameduel sweep --resume {SWEEP_ID}" in text
        assert "mlp torch: lr=0.01: 1.98 [1.9-2.05] s, 2/2 seeds reached it (seed 0: 1.9 s; seed 1: 2.05 s)" in text
        assert "mlp tf: lr=0.01: " in text and "mlp torch: lr=0.001: " not in text  # only the best is listed
        assert "mlp torch: 1 of 2 configurations reached the target" in text
        assert "mlp/tf/function/lr=0.001/s1" in text and OOM in text  # the failed trial, with its error
        assert "Machine: " in text and "logical cores" in text
    data = json.loads(written[2].read_text())
    assert data["sweep_id"] == SWEEP_ID and data["planned_trials"] == 8
    assert SweepRequest.from_dict(data["request"]) == REQUEST
    by_key = {r.trial.key: r for r in swept}
    assert [TrialResult.from_dict(t) for t in data["trials"]] == [by_key[t["key"]] for t in data["trials"]]
    assert len(data["trials"]) == 7
    assert {(b["framework"], b["config"]) for b in data["best"]} == {("torch", "lr=0.01"), ("tf", "lr=0.01")}


def test_sweep_report_reads_trials_in_plan_order_and_skips_failed_curves(swept, db_path):
    doc = build_sweep_document(Store(db_path), SWEEP_ID)
    assert [r.trial.key for r in doc.results] == [r.trial.key for r in swept]  # stored reversed
    assert doc.figure is not None and doc.figure.startswith("data:image/png;base64,")


def test_sweep_report_without_a_finished_epoch_has_no_figure(db_path):
    store = Store(db_path)
    store.save_result("sweep", SWEEP_ID, REQUEST.to_dict(), {})
    trial = plan_trials(REQUEST)[0]
    failed = TrialResult(trial, TrainingRun(trial_spec(trial, REQUEST, 1), "timeout", "no result within 900s"))
    store.save_result("sweep-trial", f"{SWEEP_ID}/{trial.key}", failed.to_dict(), {})
    doc = build_sweep_document(store, SWEEP_ID)
    assert doc.figure is None and doc.summaries[0].seconds_to_target is None


def test_report_command_writes_a_sweep_report(swept, db_path, tmp_path):
    out = tmp_path / "report"
    done = run_cli("report", SWEEP_ID, "--out", str(out), "--db", str(db_path))
    assert done.returncode == 0, done.stderr
    assert all(f"wrote {out / name}" in done.stdout for name in ("sweep.html", "sweep.md", "sweep.json"))
    assert json.loads((out / "sweep.json").read_text())["sweep_id"] == SWEEP_ID


def test_tensorboard_and_mlflow_are_for_compare_runs_only(swept, db_path, tmp_path):
    done = run_cli("report", SWEEP_ID, "--tensorboard", str(tmp_path / "tb"), "--db", str(db_path))
    assert_user_error(done, "--tensorboard and --mlflow apply to compare runs")


def test_report_of_an_unknown_id_is_still_the_one_line_run_error(swept, db_path, tmp_path):
    assert_user_error(run_cli("report", "sweep-nope", "--out", str(tmp_path), "--db", str(db_path)),
                      "no run 'sweep-nope'")
