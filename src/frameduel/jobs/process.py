"""Run one framework job in a fresh Python process: JSON job on stdin, bounded in time, never orphaned.

The benchmark worker, the parity sides and the accuracy runs all go through here, so a timeout or a
Ctrl-C kills the job's whole process group (inductor compile workers included) in every one of them.
"""

from __future__ import annotations

import json
import os
import secrets
import select
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from frameduel.jobs.launch import PARENT_PID_ENV


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


def write_result(path: Path, text: str) -> None:
    """A worker's result file, written then renamed: the parent never reads half a result."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    tmp.replace(path)


def last_line(path: Path) -> str:
    if not path.exists():  # a forked worker killed before it opened its stderr file wrote nothing
        return ""
    lines = [line.strip() for line in path.read_text(errors="replace").splitlines() if line.strip()]
    return lines[-1][:300] if lines else ""


def kill_group(process: subprocess.Popen) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait()


def job_environment() -> dict[str, str]:
    """A job's environment: ours, unbuffered, and our pid, so that the job dies with us (jobs/launch.py)."""
    return {**os.environ, "PYTHONUNBUFFERED": "1", PARENT_PID_ENV: str(os.getpid())}


def run_job(module: str, args: list[str], job_json: str, timeout_s: float, workdir: Path) -> JobOutcome:
    """Run `python -m module *args` with job_json on stdin; stderr goes to a file in workdir. The job
    dies with this process even if this process is killed (jobs/launch.py)."""
    stderr_path = workdir / f"{secrets.token_hex(4)}.stderr"
    with open(stderr_path, "w") as stderr:
        # A new session makes the job a process-group leader, so killing the group kills its children.
        process = subprocess.Popen(
            [sys.executable, "-m", "frameduel.jobs.launch", module, *args],
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=stderr, text=True,
            start_new_session=True, env=job_environment(),
        )
        try:
            process.communicate(job_json, timeout=timeout_s)
        except subprocess.TimeoutExpired:
            kill_group(process)
            return JobOutcome(timed_out=True, returncode=None, stderr_tail=last_line(stderr_path))
        except BaseException:  # Ctrl-C: leave no orphan job behind
            kill_group(process)
            raise
    kill_group(process)  # stragglers (compile workers) must not run during the next cell
    return JobOutcome(timed_out=False, returncode=process.returncode, stderr_tail=last_line(stderr_path))


# One long-lived thread starts every fork server. Linux sends the parent-death signal (launch.py) when the
# *thread* that forked a child exits, not the process; a fork server first asked for from a pool thread (the
# parity checks', a parallel run's) must outlive that thread, and serve the rounds added after it.
_KEEPER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="frameduel-fork-server-parent")


def popen_from_keeper(*args: Any, **kwargs: Any) -> subprocess.Popen:
    return _KEEPER.submit(subprocess.Popen, *args, **kwargs).result()


class Zygote:
    """Parent side of a fork server (jobs/zygote.py): the same run_job, with the framework imported once.

    Started lazily on the first job; if it dies, the job fails with its last words and the next job
    starts a new one. close() stops it and any child still running.
    """

    def __init__(self, framework: str, workdir: Path, start_timeout_s: float = 300.0) -> None:
        self.framework, self.workdir, self.start_timeout_s = framework, workdir, start_timeout_s
        self.process: subprocess.Popen | None = None
        self.stderr_path = workdir / f"zygote-{framework}-{secrets.token_hex(4)}.stderr"

    def start(self) -> None:
        with open(self.stderr_path, "w") as stderr:
            self.process = popen_from_keeper(
                [sys.executable, "-m", "frameduel.jobs.zygote", self.framework],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr, start_new_session=True,
                env=job_environment(),
            )
        if self.read_reply(self.start_timeout_s) != {"ready": True}:
            self.close()
            raise RuntimeError(f"the {self.framework} fork server did not start: {last_line(self.stderr_path)}")

    def read_reply(self, timeout_s: float) -> dict | None:
        """The next reply line, or None at end of file or after timeout_s."""
        assert self.process is not None and self.process.stdout is not None
        ready, _, _ = select.select([self.process.stdout], [], [], max(timeout_s, 0.0))
        if not ready:
            return None
        line = self.process.stdout.readline()
        return json.loads(line) if line else None

    def run_job(self, module: str, args: list[str], job_json: str, timeout_s: float, workdir: Path) -> JobOutcome:
        if self.process is None or self.process.poll() is not None:
            self.start()
        assert self.process is not None and self.process.stdin is not None
        stderr_path = workdir / f"{secrets.token_hex(4)}.stderr"
        request = {"module": module, "args": args, "stdin": job_json, "stderr": str(stderr_path)}
        self.process.stdin.write((json.dumps(request) + "\n").encode())
        self.process.stdin.flush()
        started = time.monotonic()
        forked = self.read_reply(timeout_s)
        if forked is None:
            self.close()
            return JobOutcome(False, -signal.SIGKILL, f"the {self.framework} fork server died: "
                              f"{last_line(self.stderr_path)}")
        try:
            ended = self.read_reply(timeout_s - (time.monotonic() - started))
            if ended is None:  # overstayed: kill the child's group; the zygote reaps it and reports
                kill_pid_group(forked["pid"])
                self.read_reply(30.0)
                return JobOutcome(timed_out=True, returncode=None, stderr_tail=last_line(stderr_path))
        except BaseException:  # Ctrl-C: leave no orphan job behind
            kill_pid_group(forked["pid"])
            self.close()
            raise
        return JobOutcome(timed_out=False, returncode=ended["returncode"], stderr_tail=last_line(stderr_path))

    def close(self) -> None:
        if self.process is not None:
            kill_group(self.process)
            self.process = None


def kill_pid_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
