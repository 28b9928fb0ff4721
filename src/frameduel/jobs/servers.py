"""Fork servers by framework and slot for a command's jobs: each imports its framework once, and every job
of that framework then forks from it instead of paying the 3-8 s import (zygote.py)."""

from __future__ import annotations

import tempfile
import threading
from pathlib import Path

from frameduel.jobs.process import Zygote
from frameduel.jobs.spawn import Launcher


class ForkServers:
    """Zygotes keyed (framework, slot): a zygote serves one job at a time, so jobs that run side by side
    take different slots. Started on first use, in one work directory, stopped by close()."""

    def __init__(self) -> None:
        self.workdir: tempfile.TemporaryDirectory | None = None
        self.zygotes: dict[tuple[str, int], Zygote] = {}
        self.lock = threading.Lock()  # two threads may ask for their first launcher at once

    def __enter__(self) -> ForkServers:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def directory(self) -> Path:
        with self.lock:
            if self.workdir is None:
                self.workdir = tempfile.TemporaryDirectory(prefix="frameduel-")
            return Path(self.workdir.name)

    def launcher(self, framework: str, slot: int = 0) -> Launcher:
        """Run a job forked from the framework's zygote for this slot."""
        directory = self.directory()
        with self.lock:
            return self.zygotes.setdefault((framework, slot), Zygote(framework, directory)).run_job

    def close_slot(self, slot: int) -> None:
        """Stop the zygotes of one slot (e.g. parity's second one, once parity is done)."""
        with self.lock:
            for key in [key for key in self.zygotes if key[1] == slot]:
                self.zygotes.pop(key).close()

    def close(self) -> None:
        with self.lock:
            for zygote in self.zygotes.values():
                zygote.close()
            self.zygotes.clear()
            if self.workdir is not None:
                self.workdir.cleanup()
                self.workdir = None
