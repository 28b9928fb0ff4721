"""What a test needs from the machine, checked one way: skip locally with the reason, fail under CI.

CI runs the README's test command, which installs every tool below (scripts/install-system-deps for the
system packages, the [cpu,dev] extras for the Python ones, `frameduel browser setup` for the browser
runtimes), so a missing tool there is a broken set-up, never a reason to skip: a green CI cannot hide it.
"""

from __future__ import annotations

import importlib
import os
import shutil
from types import ModuleType

import pytest

INSTALL_SYSTEM_DEPS = "scripts/install-system-deps"


def skip_or_fail(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{reason}; CI must run the README's test command, which installs it")
    pytest.skip(reason)


def require_module(name: str, extra: str = "cpu,dev") -> ModuleType:
    """The module, imported (pytest.importorskip's twin, but a failure under CI)."""
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        skip_or_fail(f"{name} is not importable ({exc}); install the [{extra}] extras: pip install -e '.[{extra}]'")
        raise  # not reached: skip_or_fail raises


def require_executable(name: str, package: str | None = None) -> str:
    """The executable's path, or skip/fail naming the install step."""
    path = shutil.which(name)
    if path is None:
        skip_or_fail(f"{name} is not installed; run {INSTALL_SYSTEM_DEPS} "
                     f"(Debian: apt-get install {package or name})")
    return path


@pytest.fixture
def cxx_compiler() -> str:
    """torch.compile's inductor builds its CPU kernels with g++ (torch._inductor.config.cpp.cxx)."""
    return require_executable("g++")
