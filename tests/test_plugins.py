"""Bring-your-own-workload: a real plugin runs end to end; broken plugins get a one-line error."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import cli_command

pytestmark = pytest.mark.usefixtures("frameworks")  # torch/TensorFlow workers: the slow tier

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def run_with_path(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(EXAMPLES), str(tmp_path)]), "COLUMNS": "200"}
    return subprocess.run(cli_command(*args), capture_output=True, text=True, env=env, timeout=600)


def test_example_plugin_is_benchmarked_and_passes_parity(tmp_path):
    db = str(tmp_path / "db.sqlite")
    result = run_with_path(tmp_path, "compare", "--workloads", "softmax_regression", "--size", "tiny",
                           "--modes", "eager", "--tasks", "train", "--threads", "1", "--repeats", "1", "--no-parity",
                           "--db", db)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("ms/step") == 2 and "failed" not in result.stdout
    parity = run_with_path(tmp_path, "parity", "softmax_regression", "--direction", "torch-to-tf", "--steps", "3",
                          "--no-modes")
    assert parity.returncode == 0, parity.stdout + parity.stderr
    assert "PASS" in parity.stdout


BROKEN_PLUGINS = {
    "no_workload": ("X = 1\n", "must define WORKLOAD = Workload("),
    "raises": ("raise RuntimeError('boom')\n", "importing workload module 'broken.raises' failed: RuntimeError: boom"),
    "missing_size": (
        "from frameduel.workloads import Workload\n"
        "WORKLOAD = Workload(name='x', description='', presets={'tiny': 1}, make_batch=print,\n"
        "                    model_modules={'torch': 'json', 'tf': 'json'})\n",
        "has no preset for size(s) small, base",
    ),
    "missing_model": (
        "from frameduel.workloads import Workload\n"
        "WORKLOAD = Workload(name='x', description='', presets={'tiny': 1, 'small': 1, 'base': 1},\n"
        "                    make_batch=print, model_modules={'torch': 'json', 'tf': 'nowhere.model_tf'})\n",
        "model module 'nowhere.model_tf' for tf cannot be found",
    ),
}


@pytest.mark.parametrize("name", sorted(BROKEN_PLUGINS))
def test_broken_plugins_get_a_clear_error(tmp_path, name):
    source, message = BROKEN_PLUGINS[name]
    package = tmp_path / "broken"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / f"{name}.py").write_text(source)
    result = run_with_path(tmp_path, "compare", "--workloads", f"broken.{name}", "--db", str(tmp_path / "db"))
    assert result.returncode == 2, result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr


def test_a_plugin_path_that_does_not_exist(tmp_path):
    result = run_with_path(tmp_path, "compare", "--workloads", "no_such_pkg.model", "--db", str(tmp_path / "db"))
    assert result.returncode == 2 and "cannot import workload module 'no_such_pkg.model'" in result.stderr


def test_plugin_example_has_no_framework_import_at_module_level():
    code = "import softmax_regression, sys; assert 'torch' not in sys.modules and 'tensorflow' not in sys.modules"
    env = {**os.environ, "PYTHONPATH": str(EXAMPLES)}
    assert subprocess.run([sys.executable, "-c", code], env=env).returncode == 0
