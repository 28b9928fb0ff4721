from __future__ import annotations

import sqlite3

import pytest

from frameduel.errors import FrameduelError
from frameduel.spec import Measurement, RunSpec
from frameduel.store import Store


def measurement(mode: str = "eager", status: str = "ok") -> Measurement:
    spec = RunSpec(workload="mlp", framework="torch", mode=mode, task="train", size="tiny")
    return Measurement(spec=spec, status=status, step_seconds=[0.003, 0.001, 0.002], compile_s=0.5,
                       runtime={"framework_version": "x"})


def test_measurement_and_raw_samples_survive_a_reopen(db_path):
    store = Store(db_path)
    store.create_run("r1", {"preset": "quick"}, {"python": "3.11"})
    store.save_measurement("r1", 0, measurement())
    store.close()

    reopened = Store(db_path)
    [(round_index, loaded)] = reopened.measurements("r1")
    assert round_index == 0
    assert loaded == measurement()  # samples keep their measurement order
    assert reopened.finished_rounds("r1") == {(measurement().spec.key, 0)}
    assert reopened.get_run("r1").environment == {"python": "3.11"}
    raw = sqlite3.connect(db_path).execute("SELECT COUNT(*) FROM samples").fetchone()[0]
    assert raw == 3


def test_failed_cells_are_stored_and_count_as_finished(db_path):
    store = Store(db_path)
    store.create_run("r1", {}, {})
    store.save_measurement("r1", 0, measurement("compile", status="timeout"))
    assert store.count_finished("r1") == 1
    [(_, loaded)] = store.measurements("r1")
    assert loaded.status == "timeout"


def test_saving_a_round_again_replaces_it_without_duplicating_samples(db_path):
    store = Store(db_path)
    store.create_run("r1", {}, {})
    store.save_measurement("r1", 0, measurement())
    store.save_measurement("r1", 0, measurement())
    assert store.count_finished("r1") == 1
    assert sqlite3.connect(db_path).execute("SELECT COUNT(*) FROM samples").fetchone()[0] == 3


def test_identical_environments_are_stored_once(db_path):
    store = Store(db_path)
    store.create_run("r1", {}, {"cpu": "x"})
    store.create_run("r2", {}, {"cpu": "x"})
    assert sqlite3.connect(db_path).execute("SELECT COUNT(*) FROM environments").fetchone()[0] == 1
    assert [run.id for run, _ in store.list_runs()] in (["r2", "r1"], ["r1", "r2"])


def test_unknown_run_is_a_user_error(db_path):
    with pytest.raises(FrameduelError, match="no run 'nope'.*frameduel runs"):
        Store(db_path).get_run("nope")


def test_a_file_that_is_not_a_database_is_a_user_error(tmp_path):
    bogus = tmp_path / "bogus.sqlite"
    bogus.write_text("this is not sqlite " * 100)
    with pytest.raises(FrameduelError, match="cannot open results database"):
        Store(bogus)


def test_a_version_2_database_is_upgraded_in_place_and_keeps_its_runs(tmp_path):
    path = tmp_path / "old.sqlite"
    store = Store(path)
    store.create_run("kept", {"preset": "quick"}, {"cpu": "x"})
    store.close()
    db = sqlite3.connect(path)
    db.execute("DROP TABLE results")  # what a version-2 database looked like
    db.execute("PRAGMA user_version=2")
    db.commit()
    db.close()
    upgraded = Store(path)
    assert upgraded.get_run("kept").plan == {"preset": "quick"}
    upgraded.save_result("export", "k", {"v": 1}, {"cpu": "x"})
    upgraded.save_result("export", "k", {"v": 2}, {"cpu": "x"})
    assert [r.data for r in upgraded.results("export")] == [{"v": 2}]  # newest per key
    assert len(upgraded.results("export", latest_per_key=False)) == 2


def test_a_newer_schema_is_refused_with_the_fix(tmp_path):
    path = tmp_path / "new.sqlite"
    db = sqlite3.connect(path)
    db.execute("PRAGMA user_version=99")
    db.close()
    with pytest.raises(FrameduelError, match="schema version 99.*pass --db NEW_PATH"):
        Store(path)
