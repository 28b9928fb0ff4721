"""What the browser tests share: skip locally when a browser tool is missing, but fail under CI.

CI runs the README's test command, which installs Chromium and runs `frameduel browser setup`, so a
missing tool there is a broken set-up, never a reason to skip.
"""

from __future__ import annotations

import os

import psutil
import pytest


def skip_or_fail(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{reason}; CI must run the README's test command, which installs it")
    pytest.skip(reason)


def chromium_processes(marker: str) -> list[int]:
    """Chromium processes whose command line holds marker (e.g. a profile directory's prefix)."""
    found = []
    for process in psutil.process_iter(["name", "cmdline"]):
        try:
            if "chrom" in (process.info["name"] or "") and marker in " ".join(process.info["cmdline"] or ()):
                found.append(process.pid)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found
