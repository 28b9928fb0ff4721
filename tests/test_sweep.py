"""`frameduel sweep`: a grid trained to a target in parallel on disjoint cores, stored as each trial finishes."""

from __future__ import annotations

import json
import sqlite3

import pytest

from frameduel.accuracy.run import AccuracyRequest, TrainingRun
from frameduel.errors import FrameduelError
from frameduel.jobs.cores import core_slots
from frameduel.store import Store
from frameduel.sweep import SweepRequest, Trial, TrialResult, check_sweep, parse_grid, remaining_samples
from tests.conftest import run_cli
from tests.test_cli import assert_user_error

pytestmark = pytest.mark.usefixtures("frameworks")  # torch/TensorFlow workers: the slow tier

SWEEP = ("sweep", "--workloads", "mlp", "--grid", "lr=1e-3,1e-2", "--seeds", "1", "--target", "0.9",
         "--max-epochs", "12", "--parallel", "2", "--json")


@pytest.fixture(scope="module")
def swept(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, str]:
    db = str(tmp_path_factory.mktemp("sweep") / "results.sqlite")
    done = run_cli(*SWEEP, "--db", db)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout), db


def test_every_trial_trains_to_the_target_on_cores_of_its_own(swept):
    result, db = swept
    trials = result["trials"]
    assert len(trials) == 4  # 2 learning rates x 2 frameworks x 1 seed
    assert {(t["trial"]["framework"], dict(t["trial"]["config"])["lr"]) for t in trials} == {
        (fw, lr) for fw in ("torch", "tf") for lr in (1e-3, 1e-2)}
    for trial in trials:
        run = trial["run"]
        assert run["status"] == "ok", run["error"]
        assert run["runtime"]["cpus"] == trial["cpus"] and len(trial["cpus"]) == 1  # pinned, threads = cores
        assert run["spec"]["threads"] == 1
        reached = next(i for i, acc in enumerate(run["accuracy"]) if acc >= 0.9)
        assert len(run["accuracy"]) == reached + 1  # stopped at the target, not at max epochs
    overlapping = [(a, b) for a in trials for b in trials if a is not b
                   and a["started_s"] < b["finished_s"] and b["started_s"] < a["finished_s"]]
    assert overlapping and all(a["cpus"] != b["cpus"] for a, b in overlapping)  # ran at once, never on one core
    assert {b["framework"] for b in result["best"]} == {"torch", "tf"}
    assert len(Store(db).results("sweep-trial")) == 4


def test_resume_runs_only_the_trials_that_are_not_stored(swept):
    result, db = swept
    sweep_id = result["sweep_id"]
    lost = result["trials"][0]["key"]
    with sqlite3.connect(db) as connection:  # as if the sweep had been killed before this trial finished
        connection.execute("DELETE FROM results WHERE kind = 'sweep-trial' AND key = ?", (f"{sweep_id}/{lost}",))
    done = run_cli("sweep", "--resume", sweep_id, "--json", "--db", db)
    assert done.returncode == 0, done.stderr[-3000:]
    ran = [line for line in done.stderr.splitlines() if "(cores " in line]
    assert len(ran) == 1 and ran[0].startswith(lost)
    assert len(json.loads(done.stdout)["trials"]) == 4


@pytest.mark.parametrize("args, message", [
    ([], "empty grid"),
    (["--grid", "momentum=0.9"], "unknown grid key 'momentum'"),
    (["--grid", "lr="], "--grid lr has no values"),
    (["--grid", "lr=fast"], "is not a list of numbers"),
    (["--grid", "batch_size=0"], "--grid batch_size: 0 is not a batch size"),
    (["--grid", "lr=1e-3", "--parallel", "0"], "--parallel must be >= 1"),
    (["--grid", "lr=1e-3", "--parallel", "64"], "never share a core"),
    (["--grid", "lr=1e-3", "--workloads", "gpt"], "cannot train on the digits data set"),
    (["--resume", "sweep-nope"], "no sweep 'sweep-nope'"),
])
def test_bad_sweeps_are_one_line_before_anything_starts(args, message, db_path):
    assert_user_error(run_cli("sweep", *args, "--db", str(db_path)), message)


def test_core_slots_split_the_cores_disjointly():
    slots = core_slots(None)
    assert sorted(core for slot in slots for core in slot) == sorted({core for slot in slots for core in slot})
    assert all(len(slot) == 1 for slot in slots)
    with pytest.raises(FrameduelError):
        parse_grid(["lr=1e-3", "nope=1"])


def test_a_search_resumes_by_drawing_only_the_missing_trials():
    request = SweepRequest(AccuracyRequest(workloads=("mlp",), frameworks=("torch", "tf"), seeds=2),
                           parse_grid(["lr=1e-4..1e-1"], ranges=True), search="random", samples=3)
    check_sweep(request)
    assert SweepRequest.from_dict(json.loads(json.dumps(request.to_dict()))) == request
    done = [TrialResult(Trial("mlp", "torch", "eager", 0, (("lr", 0.01),)), TrainingRun(spec=None, status="ok"))] * 2
    assert remaining_samples(request, done) == {("mlp", "torch", 0): 1, ("mlp", "torch", 1): 3,
                                                ("mlp", "tf", 0): 3, ("mlp", "tf", 1): 3}


@pytest.mark.parametrize("items, ranges, message", [
    (["lr=1e-4..1e-1"], False, "a range needs --search random"),
    (["batch_size=16..64"], True, "a range is for learning rates"),
    (["lr=1e-1..1e-4"], True, "LOW < HIGH"),
])
def test_bad_search_ranges_are_refused(items, ranges, message):
    with pytest.raises(FrameduelError, match=message):
        parse_grid(items, ranges=ranges)
