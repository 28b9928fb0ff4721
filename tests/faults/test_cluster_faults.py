"""A Ray node killed mid-compare and mid-sweep: the run says what was lost with it, and --resume completes it."""

from __future__ import annotations

import pytest

from tests.faults.cluster_scenarios import node_lost_mid_compare, node_lost_mid_sweep, ray_cluster
from tests.tools import require_module

require_module("ray")
pytestmark = [pytest.mark.slow, pytest.mark.ray]


@pytest.fixture
def cluster():
    with ray_cluster() as started:
        yield started


def test_a_node_killed_mid_compare_names_its_lost_cells_and_resume_completes_them(tmp_path, cluster):
    row = node_lost_mid_compare(tmp_path, cluster)
    details = row.details
    assert details["returncode"] == 2 and "Traceback" not in details["stderr"], details["stderr"]
    last = details["stderr"].strip().splitlines()[-1]  # Ray may warn before it
    assert "lost with their machine" in last and "--resume" in last
    assert "round" in last  # it names the lost rounds
    assert details["resume_returncode"] == 0, details["resume_stderr"]
    assert row.lost == 0 and details["statuses"] == ["ok"]


def test_a_node_killed_mid_sweep_names_its_lost_trials_and_resume_completes_them(tmp_path, cluster):
    row = node_lost_mid_sweep(tmp_path, cluster)
    details = row.details
    assert details["returncode"] == 2 and "Traceback" not in details["stderr"], details["stderr"]
    last = details["stderr"].strip().splitlines()[-1]  # the trials' lines come before it, on stderr too
    assert "lost with their machine" in last and "sweep --resume" in last
    assert details["resume_returncode"] == 0, details["resume_stderr"]
    assert row.lost == 0 and details["trials"] == 6
