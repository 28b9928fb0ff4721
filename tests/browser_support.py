"""What the browser tests share: the Chromium processes a run may leave behind."""

from __future__ import annotations

import psutil


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
