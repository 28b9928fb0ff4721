"""Shared test helpers: a real CLI in a real subprocess, against a real SQLite file; the test tiers.

Tiers come from the fixtures a test uses (pytest_collection_modifyitems): a test that starts torch or
TensorFlow workers uses `frameworks` (a module's pytestmark usually says so), a browser test `browser`
or `browser_export`, a cluster test `cluster_address`, a torch.compile test `cxx_compiler`. Each brings
its markers, and every one of them `slow`:

    pytest -m "not slow"     the fast tier for the inner loop: no framework import, no browser, no Ray
    pytest                   everything (CI)
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from frameduel.cluster.session import allow_loopback_cluster
from frameduel.spec import MeasureBudget
from tests.tools import cxx_compiler  # noqa: F401 - a fixture, shared by every module

# Ray reads this switch once, at its first import, and any test may be the first to import ray in this
# process; without it, a driver here is sent to the host's external address where the 127.0.0.1 test
# clusters do not listen (CI's failure: "Failed to connect to GCS at address 192.0.2.2").
allow_loopback_cluster()

# Just enough sampling to exercise every code path; tests check behaviour, not speed.
TINY_BUDGET = MeasureBudget(warmup_steps=1, warmup_seconds=0.0, min_samples=3, min_seconds=0.0,
                            max_seconds=0.2, timeout_s=180)


# Fixture -> the markers a test using it gets.
FIXTURE_MARKERS = {
    "frameworks": ("framework", "slow"),
    "cxx_compiler": ("framework", "slow"),
    "browser": ("browser", "slow"),
    "browser_export": ("browser", "slow"),
    "cluster_address": ("ray", "slow"),
}
MARKERS = {
    "slow": "starts framework workers, a browser or a cluster: left out of the fast tier (-m 'not slow')",
    "framework": "starts torch, TensorFlow or JAX workers (or imports them)",
    "browser": "runs headless Chromium",
    "ray": "starts a Ray cluster",
}


def pytest_configure(config: pytest.Config) -> None:
    for name, text in MARKERS.items():
        config.addinivalue_line("markers", f"{name}: {text}")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        for name in sorted({marker for fixture in item.fixturenames for marker in FIXTURE_MARKERS.get(fixture, ())}):
            item.add_marker(name)


def job_processes() -> set[int]:
    """This process's descendants that run frameduel jobs (workers, fork servers, groups' ranks)."""
    found = set()
    for child in psutil.Process().children(recursive=True):
        try:
            if "frameduel.jobs" in " ".join(child.cmdline()) and child.status() != psutil.STATUS_ZOMBIE:
                found.add(child.pid)
        except psutil.Error:
            continue
    return found


@pytest.fixture
def frameworks() -> Iterator[None]:
    """A test that starts framework workers: after it, none of the job processes it started may be left."""
    before = job_processes()
    yield
    deadline = time.monotonic() + 10.0
    while (left := job_processes() - before) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not left, f"job processes left running after the test: {sorted(left)}"


@pytest.fixture(autouse=True)
def restored_environment() -> Iterator[None]:
    """No environment leaks from one test to the next (KERAS_BACKEND set in-process reached later CLIs)."""
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)


@pytest.fixture(autouse=True, scope="session")
def isolated_default_db(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Commands run without --db write to a throw-away database, never the user's own."""
    os.environ["FRAMEDUEL_DB"] = str(tmp_path_factory.mktemp("default-db") / "results.sqlite")


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "results.sqlite"


def cli_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "frameduel.cli", *args]


def run_cli(*args: str, timeout: float = 600, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": "200", **(env or {})}
    return subprocess.run(cli_command(*args), capture_output=True, text=True, timeout=timeout, env=env)


def cli_in_process(*args: str) -> subprocess.CompletedProcess:
    """The CLI run in this process by typer's CliRunner: for input refused before any work starts (one-line
    errors), where a subprocess would only add an interpreter's start-up. Same fields as run_cli's result."""
    from typer.testing import CliRunner

    from frameduel.cli import app

    result = CliRunner().invoke(app, list(args), env={"COLUMNS": "200"})
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return subprocess.CompletedProcess(list(args), result.exit_code, result.stdout, result.stderr)


def wait_for(predicate, timeout: float = 120.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("condition not reached in time")
