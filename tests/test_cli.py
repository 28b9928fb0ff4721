"""Bad input at the command line: exit code 2 and one line naming the problem, never a traceback."""

from __future__ import annotations

import json

import pytest

from frameduel import environment
from tests.conftest import cli_in_process, run_cli


def assert_user_error(result, fragment: str) -> None:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    message = result.stderr.strip()
    assert fragment in message
    assert "\n" not in message, f"expected one line, got: {message!r}"


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["compare", "--workloads", "bert9000"], "unknown workload 'bert9000'; choose from: mlp, cnn"),
        (["compare", "--frameworks", "torch", "--modes", "xla"], "mode 'xla' is not valid for torch"),
        (["compare", "--frameworks", "torch,jax"], "unknown framework 'jax'; choose from: torch, tf"),
        (["compare", "--preset", "huge"], "unknown preset 'huge'"),
        (["compare", "--threads", "0"], "threads must be >= 1"),
        (["compare", "--device", "tpu"], "unknown device 'tpu'; choose from: cpu, cuda"),
        (["compare", "--workloads", ","], "empty list"),
        (["show", "no-such-run"], "no run 'no-such-run'"),
        (["compare", "--resume", "no-such-run"], "no run 'no-such-run'"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args, fragment, db_path):
    assert_user_error(cli_in_process(*args, "--db", str(db_path)), fragment)


def test_the_installed_command_gives_the_same_one_line_error(db_path):
    """The real entry point in a process of its own, once: what the in-process runs stand for."""
    assert_user_error(run_cli("compare", "--workloads", "bert9000", "--db", str(db_path)), "unknown workload")


def test_unsupported_precision_is_exit_2(db_path):
    if environment.precision_supported("bf16", "cpu"):
        pytest.skip("this CPU does bf16 natively")
    assert_user_error(cli_in_process("compare", "--precisions", "bf16", "--device", "cpu", "--db", str(db_path)),
                      "precision 'bf16' is not supported natively on this cpu")


def test_unknown_option_is_exit_2():
    result = run_cli("compare", "--frobnicate")
    assert result.returncode == 2 and "No such option" in result.stderr


def test_env_prints_the_fingerprint_as_json():
    result = run_cli("env", "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["cpu"]["logical_cores"] >= 1
    assert data["packages"]["torch"] is not None and "python" in data


def test_runs_on_an_empty_database_lists_nothing(db_path):
    result = run_cli("runs", "--db", str(db_path))
    assert result.returncode == 0, result.stderr


def test_every_command_prints_its_help():
    """Help texts hold brackets ("NAME[/versions/V]"); they must print as text, never crash as markup."""
    from typer.main import get_command
    from typer.testing import CliRunner

    from frameduel.cli import app

    names = sorted(get_command(app).commands)
    assert {"compare", "parity", "loadtest", "serve", "export"} <= set(names)
    for name in names:
        result = CliRunner().invoke(app, [name, "--help"])
        assert result.exit_code == 0, f"{name} --help: {result.output}{result.exception!r}"
        assert "Usage:" in result.output
    assert "NAME[/versions/V]" in CliRunner().invoke(app, ["loadtest", "--help"]).output
