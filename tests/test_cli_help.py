"""Every command's --help exits 0 with its usage (help texts are plain text: no rich markup to trip on)."""

from __future__ import annotations

import pytest
from typer.main import get_command
from typer.testing import CliRunner

from frameduel.cli import app

COMMANDS = sorted(get_command(app).commands)  # type: ignore[attr-defined]


def test_every_command_is_listed():
    assert {"compare", "sweep", "accuracy", "parity", "serve", "loadtest", "report"} <= set(COMMANDS)


@pytest.mark.parametrize("command", COMMANDS)
def test_help_exits_0(command):
    result = CliRunner().invoke(app, [command, "--help"], env={"COLUMNS": "120"})
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output and command in result.output
    assert "Traceback" not in result.output
