"""Faults in the results database and signals to `compare`, on real runs (numpy reference framework): nothing
lost, every error one line, every run resumable."""

from __future__ import annotations

import pytest

from tests.faults.store_scenarios import (
    INTERRUPTS,
    LOCK_S,
    disk_full,
    interrupted_runs,
    store_locked,
    truncated_database,
)
from tests.faults.support import one_line

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("frameworks")]  # every job process must be gone after


def test_a_database_locked_for_10_s_loses_no_cell_and_the_run_finishes(tmp_path):
    row = store_locked(tmp_path)
    assert row.details["returncode"] == 0, row.details["stderr"]
    assert row.lost == 0 and row.details["statuses"] == ["ok"] and row.details["run_status"] == "complete"
    assert row.details["during_lock"] == 0  # nothing was written while the other process held the lock...
    assert row.details["finished_in_lock"] >= 1, "no cell finished during the lock: the fault was not exercised"
    assert "Traceback" not in row.details["stderr"]
    assert row.recover_s is not None and row.recover_s < LOCK_S  # ...and what waited was written once it let go


def test_a_full_disk_is_one_line_and_every_cell_stored_before_it_resumes(tmp_path):
    row = disk_full(tmp_path)
    details = row.details
    assert details["returncode"] == 2 and details["one_line"], details["stderr"]
    assert "results database" in details["stderr"] and "--resume" in details["stderr"]
    assert ("disk is full" if details["mounted"] else "disk I/O error") in details["stderr"]
    assert details["stored_at_fault"] >= 2
    assert details["resume_returncode"] == 0, details["resume_stderr"]
    assert row.lost == 0 and details["cells"] == details["planned"]


def test_a_truncated_database_is_one_line_naming_it_and_is_never_written(tmp_path):
    row = truncated_database(tmp_path)
    for name, (returncode, stderr) in row.details["results"].items():
        assert returncode == 2 and one_line(stderr), f"{name}: {stderr}"
        assert row.details["path"] in stderr and "damaged" in stderr and "--db NEW_PATH" in stderr, name
    assert not row.details["touched"] and not row.details["side_files"]  # nothing overwritten, nothing created
    assert row.details["fresh_returncode"] == 0  # the way on the line names: a new database


def test_sigterm_and_sigint_at_random_moments_each_resume_completes_with_no_round_lost_or_doubled(tmp_path):
    row = interrupted_runs(tmp_path)
    details = row.details
    assert not details["problems"], details["problems"]
    assert len(details["exits"]) == INTERRUPTS and details["exits"].count(130) >= INTERRUPTS // 2
    assert details["left_running"] == 0
    assert details["final_returncode"] == 0, details["final_stderr"]
    assert not details["missing"] and not details["extra"] and not details["redone"]
    assert row.lost == 0 and details["statuses"] == ["ok"] and details["run_status"] == "complete"
