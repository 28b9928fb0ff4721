"""The codebase stays ruff-clean (the style guide's convention 6), checked with every test run."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from tests.tools import skip_or_fail

ROOT = Path(__file__).resolve().parents[1]


def test_ruff_is_clean():
    ruff = shutil.which("ruff", path=str(Path(sys.executable).parent)) or shutil.which("ruff")
    if ruff is None:
        skip_or_fail("ruff is not installed (it comes with the [dev] extra: pip install -e '.[cpu,dev]')")
    result = subprocess.run([ruff, "check", "src", "tests", "benchmarks"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
