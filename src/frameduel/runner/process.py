"""Run one framework job in a fresh Python process: JSON job on stdin, bounded in time, never orphaned.

The benchmark worker, the parity sides and the accuracy runs all go through here, so a timeout or a
Ctrl-C kills the job's whole process group (inductor compile workers included) in every one of them.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class JobOutcome:
    timed_out: bool
    returncode: int | None  # None when timed out
    stderr_tail: str  # the last non-empty line the job wrote to stderr, truncated

    def death_cause(self, what: str) -> str:
        """'<what> killed by SIGKILL: <tail>' / '<what> exited with code N: <tail>'."""
        if self.returncode is not None and self.returncode < 0:
            cause = f"{what} killed by {signal.Signals(-self.returncode).name}"
        else:
            cause = f"{what} exited with code {self.returncode}"
        return f"{cause}: {self.stderr_tail}" if self.stderr_tail else cause


def last_line(path: Path) -> str:
    lines = [line.strip() for line in path.read_text(errors="replace").splitlines() if line.strip()]
    return lines[-1][:300] if lines else ""


def kill_group(process: subprocess.Popen) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait()


def run_job(module: str, args: list[str], job_json: str, timeout_s: float, workdir: Path) -> JobOutcome:
    """Run `python -m module *args` with job_json on stdin; stderr goes to a file in workdir."""
    stderr_path = workdir / f"{secrets.token_hex(4)}.stderr"
    with open(stderr_path, "w") as stderr:
        # A new session makes the job a process-group leader, so killing the group kills its children.
        process = subprocess.Popen(
            [sys.executable, "-m", module, *args],
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=stderr, text=True,
            start_new_session=True, env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        try:
            process.communicate(job_json, timeout=timeout_s)
        except subprocess.TimeoutExpired:
            kill_group(process)
            return JobOutcome(timed_out=True, returncode=None, stderr_tail=last_line(stderr_path))
        except BaseException:  # Ctrl-C: leave no orphan job behind
            kill_group(process)
            raise
    return JobOutcome(timed_out=False, returncode=process.returncode, stderr_tail=last_line(stderr_path))
