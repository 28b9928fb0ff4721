"""`compare` acting on what it measures, through the real CLI: parity before measuring (cached per package
versions), threads matched to the cores other processes leave free, `frameduel doctor`, structured verdicts,
and the one-line errors of the new options."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from frameduel.runner.plan import parse_duration
from tests.conftest import cli_in_process, run_cli
from tests.test_cli import assert_user_error

TINY = ("compare", "--workloads", "mlp", "--size", "tiny", "--tasks", "infer", "--modes", "eager", "--repeats", "1")


@pytest.fixture
def busy_core() -> Iterator[subprocess.Popen]:
    """Another process keeping one core busy (a plain busy loop), stopped after the test."""
    loop = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    time.sleep(0.5)
    yield loop
    loop.kill()
    loop.wait()


@pytest.mark.parametrize("args, fragment", [
    (("--budget", "0"), "--budget must be more than 0"),
    (("--budget", "-5m"), "--budget must be more than 0"),
    (("--budget", "soon"), "--budget takes a duration such as 90s, 5m or 1h; got 'soon'"),
    (("--budget", "nan"), "--budget must be more than 0"),
    (("--no-parity", "--recheck-parity"), "--no-parity skips the parity proof and --recheck-parity forces it"),
    (("--budget", "5m", "--repeats", "3"), "--repeats fixes the processes per cell and --budget adapts them"),
])
def test_bad_budget_and_parity_options_are_one_line(args, fragment, db_path):
    assert_user_error(cli_in_process("compare", *args, "--db", str(db_path)), fragment)


def test_durations_read_as_people_write_them():
    assert [parse_duration(text) for text in ("90", "90s", "5m", "1.5h", " 2M ")] == [90, 90, 300, 5400, 120]


def test_compare_proves_parity_first_then_reuses_the_proof_for_these_versions(db_path, frameworks):
    first = run_cli(*TINY, "--json", "--db", str(db_path))
    assert first.returncode == 0, first.stderr
    assert "parity: proving mlp the same model in torch, tf" in first.stderr
    assert "mlp: parity proven (float64" in first.stderr and "all modes" in first.stderr
    verdicts = json.loads(first.stdout)["verdicts"]
    assert [v["group"] for v in verdicts] == ["mlp/tiny infer b1"]
    assert "parity not proven" not in verdicts[0]["flags"]
    assert verdicts[0]["outcome"] in ("winner", "no-difference", "inconclusive")
    assert {side["framework"] for side in verdicts[0]["sides"]} == {"torch", "tf"}
    assert verdicts[0]["line"] == json.loads(first.stdout)["verdict"][0]
    again = run_cli(*TINY, "--db", str(db_path))
    assert again.returncode == 0 and "(stored earlier with these package versions)" in again.stdout
    skipped = run_cli(*TINY, "--no-parity", "--db", str(db_path))
    assert skipped.returncode == 0 and "parity:" not in skipped.stdout


def test_a_compare_beside_a_busy_core_gives_the_frameworks_the_free_one(busy_core, db_path, frameworks):
    result = run_cli(*TINY, "--frameworks", "torch", "--no-parity", "--json", "--db", str(db_path))
    assert result.returncode == 0, result.stderr
    assert "machine busy:" in result.stderr and "each framework gets 1 thread(s)" in result.stderr
    [cell] = json.loads(result.stdout)["cells"]
    assert cell["spec"]["threads"] == 1
    doctor = json.loads(result.stdout)["environment"]["doctor"]
    assert doctor["before"]["busy_cores"] >= 0.75 and "after" in doctor


def test_doctor_names_a_busy_process_with_a_fix(busy_core):
    result = run_cli("doctor", "--json")
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout)
    assert found["busy_cores"] >= 0.75
    assert any(p["pid"] == busy_core.pid for p in found["busy_processes"])
    [busy] = [p for p in found["problems"] if p["what"].startswith("machine busy:")]
    assert str(busy_core.pid) in busy["what"] and busy["fix"]
    text = run_cli("doctor")
    assert text.returncode == 0 and "problem: machine busy:" in text.stdout and "fix:" in text.stdout


def test_doctor_rejects_a_sampling_time_of_zero():
    assert_user_error(cli_in_process("doctor", "--seconds", "0"), "--seconds must be > 0")
