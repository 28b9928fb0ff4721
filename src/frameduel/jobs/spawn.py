"""The parent side of every job: start it, bound it in time, and read what it left, or why it left nothing."""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any

from frameduel.jobs.envelope import Envelope, read_envelope
from frameduel.jobs.process import JobOutcome, run_job

# How a job process is started: run_job (a new interpreter) or a fork server's run_job (process.Zygote).
Launcher = Callable[[str, list[str], str, float, Path], JobOutcome]
ENTRY_MODULE = "frameduel.jobs.entry"


def cgroup_oom_kills() -> int | None:
    """The kernel's OOM-kill counter for our cgroup (v2), to tell an OOM kill from any other SIGKILL."""
    try:
        relative = Path("/proc/self/cgroup").read_text().strip().split("::", 1)[1]
        events = Path("/sys/fs/cgroup", relative.lstrip("/"), "memory.events").read_text()
    except (OSError, IndexError):
        return None
    for line in events.splitlines():
        name, _, value = line.partition(" ")
        if name == "oom_kill":
            return int(value)
    return None


def spawn_job(kind: str, payload: dict[str, Any], timeout_s: float, workdir: Path, what: str,
              launcher: Launcher = run_job) -> Envelope:
    """Run one job of `kind` on `payload` in its own process and return its Envelope. Never raises for the
    job: overstaying timeout_s is "timeout"; dying without a result is "oom" when the cgroup's OOM killer
    struck, else "failed" with the death's cause, worded with `what` ("torch worker", "validation")."""
    result_path = workdir / f"{kind}-{secrets.token_hex(4)}.json"
    oom_before = cgroup_oom_kills()
    outcome = launcher(ENTRY_MODULE, [kind, str(result_path)], json.dumps(payload), timeout_s, workdir)
    envelope = read_envelope(result_path)
    if envelope is not None:
        return envelope
    if outcome.timed_out:
        return Envelope("timeout", f"{what} gave no result within {timeout_s:g}s")
    oom_after = cgroup_oom_kills()
    oom = oom_before is not None and oom_after is not None and oom_after > oom_before
    return Envelope("oom" if oom else "failed", outcome.death_cause(what))
