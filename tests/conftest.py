"""Shared test helpers: a real CLI in a real subprocess, against a real SQLite file."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from frameduel.spec import MeasureBudget
from tests.tools import cxx_compiler  # noqa: F401 - a fixture, shared by every module

# Just enough sampling to exercise every code path; tests check behaviour, not speed.
TINY_BUDGET = MeasureBudget(warmup_steps=1, warmup_seconds=0.0, min_samples=3, min_seconds=0.0,
                            max_seconds=0.2, timeout_s=180)


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


def wait_for(predicate, timeout: float = 120.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("condition not reached in time")
