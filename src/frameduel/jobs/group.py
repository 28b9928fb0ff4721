"""Start a data-parallel group of worker processes on this machine and wait for it: the group job's parent side.

The framework's launcher (FrameworkInfo.data_parallel_launcher) starts the workers: "torchrun" through
torch's own launcher (torch.distributed.run: rendezvous on 127.0.0.1, no restarts); "TF_CONFIG" one
process per worker, each given a TF_CONFIG that names every worker's 127.0.0.1 port. Every worker runs
jobs/rank.py on cores of its own and writes its Envelope to rank<R>.json (and what its part asks for)
into the group's directory.

A worker that dies, fails or hangs fails the group, within a bounded time: the launcher polls every
process, stops at the first death or failed result, and then kills every process it started (and
every worker pid recorded), so nothing is left measuring beside the next cell.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from frameduel.jobs.cores import core_slots
from frameduel.jobs.envelope import Envelope, read_envelope
from frameduel.jobs.process import JobOutcome, job_environment, kill_group, last_line
from frameduel.spec import FRAMEWORK_INFO, RunSpec

RANK_MODULE = "frameduel.jobs.rank"
RANK_ENV = "FRAMEDUEL_RANK"  # TF workers' rank (torchrun sets RANK for torch's)
TIMEOUT_ENV = "FRAMEDUEL_COLLECTIVE_TIMEOUT_S"  # read by the data-parallel backends' configure
POLL_S = 0.05
# How long a collective waits for a peer before failing: a dead peer is noticed at once by its exit,
# this bounds a peer that hangs alive. Long enough for a peer still compiling its first step.
COLLECTIVE_TIMEOUT_S = 120.0
SETTLE_S = 3.0  # after a failure: how long the launchers get to exit, so a death can be told from its echo


@dataclass
class GroupOutcome:
    results: list[Envelope | None]  # each worker's rank<R>.json, by rank
    failure: str | None = None  # why the group did not finish: the first death, failure or the timeout
    pids: list[int] = field(default_factory=list)  # every worker process, for the caller's checks


def free_ports(count: int) -> list[int]:
    """Ports the kernel hands out now (bound together, so distinct), for TF_CONFIG or the rendezvous."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def worker_commands(framework: str, workers: int, job_path: Path) -> list[tuple[list[str], dict[str, str]]]:
    """(command, environment) of each process to start: torchrun once, or one per TF worker."""
    launcher = FRAMEWORK_INFO[framework].data_parallel_launcher
    launch = [sys.executable, "-m", "frameduel.jobs.launch"]
    base = {**job_environment(), "GLOO_SOCKET_IFNAME": "lo", TIMEOUT_ENV: str(COLLECTIVE_TIMEOUT_S)}
    if launcher == "torchrun":
        torchrun = [*launch, "torch.distributed.run", "--nnodes=1", f"--nproc-per-node={workers}",
                    "--rdzv-backend=c10d", f"--rdzv-endpoint=127.0.0.1:{free_ports(1)[0]}",
                    "--local-addr=127.0.0.1", "--max-restarts=0", "--monitor-interval=0.1",
                    "-m", "frameduel.jobs.launch", RANK_MODULE, str(job_path)]
        return [(torchrun, base)]  # launch pops PARENT_PID_ENV, so the workers check no parent pid
    ports = free_ports(workers)
    commands = []
    for rank in range(workers):
        tf_config = {"cluster": {"worker": [f"127.0.0.1:{port}" for port in ports]},
                     "task": {"type": "worker", "index": rank}}
        commands.append(([*launch, RANK_MODULE, str(job_path)],
                         {**base, "TF_CONFIG": json.dumps(tf_config), RANK_ENV: str(rank)}))
    return commands


def run_group(spec: RunSpec, job: dict[str, Any], workdir: Path, timeout_s: float) -> GroupOutcome:
    """Run `job` (a part named in jobs/kinds.GROUP_PARTS) on spec.workers workers, each on its own cores."""
    job = {**job, "spec": spec.to_dict(), "out_dir": str(workdir), "rank_cpus": core_slots(spec.workers)}
    job_path = workdir / "job.json"
    job_path.write_text(json.dumps(job))
    processes = []
    for index, (command, env) in enumerate(worker_commands(spec.framework, spec.workers, job_path)):
        with open(workdir / f"process{index}.stderr", "w") as stderr:
            processes.append(subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                              stderr=stderr, env=env, start_new_session=True))
    try:
        failure = wait_for_group(processes, workdir, spec.workers, time.monotonic() + timeout_s, timeout_s)
    finally:
        pids = recorded_pids(workdir, spec.workers)
        stop(processes, pids)
    return GroupOutcome(results=[read_result(workdir, rank) for rank in range(spec.workers)], failure=failure,
                        pids=pids)


def wait_for_group(processes: list[subprocess.Popen], workdir: Path, workers: int, deadline: float,
                   timeout_s: float) -> str | None:
    """None once every process exited cleanly; else the first sign of failure, named. A worker's death
    is the cause where there is one: its peers' collective errors ("connection reset by peer") are
    only its consequence, and they often come first."""
    failure = first_failure(processes, workdir, workers, deadline, timeout_s)
    if failure is None:
        return None
    settle = time.monotonic() + SETTLE_S  # the launchers notice a death and exit within their poll
    while time.monotonic() < settle and any(process.poll() is None for process in processes):
        time.sleep(POLL_S)
    dead = [rank for rank in range(workers) if read_result(workdir, rank) is None and not alive(workdir, rank)]
    if not dead:
        return failure
    if len(processes) == 1:  # torchrun: its failure summary has each worker's exit code
        reasons = {rank: torchrun_reason(workdir / "process0.stderr", rank) for rank in dead}
        # torchrun stops the survivors of a death with SIGTERM: the worker that died otherwise is the cause,
        # whichever rank's death was noticed first (on a busy machine, often a survivor's).
        rank = next((r for r in dead if reasons[r] != "killed by SIGTERM"), dead[0])
        return f"worker {rank} {reasons[rank]}; then {failure}"
    return f"{death_cause(workdir, dead[0], processes[dead[0]].returncode)}; then {failure}"


def first_failure(processes: list[subprocess.Popen], workdir: Path, workers: int, deadline: float,
                  timeout_s: float) -> str | None:
    while True:
        for rank in range(workers):
            result = read_result(workdir, rank)
            if result is not None and not result.ok:
                return f"worker {rank}: {result.error or result.status}"
        codes = [process.poll() for process in processes]
        for index, code in enumerate(codes):
            if code not in (None, 0):
                return death_cause(workdir, index, code) if len(processes) > 1 else \
                    f"torchrun exited with code {code}: {torchrun_reason(workdir / 'process0.stderr')}"
        if all(code == 0 for code in codes):
            missing = [rank for rank in range(workers) if read_result(workdir, rank) is None]
            return f"worker(s) {missing} exited without a result" if missing else None
        if time.monotonic() > deadline:
            return f"the group of {workers} workers did not finish within {timeout_s:.0f} s"
        time.sleep(POLL_S)


def alive(workdir: Path, rank: int) -> bool:
    """Whether worker `rank` is running (a zombie has died; one not started yet counts as alive)."""
    path = workdir / f"rank{rank}.pid"
    if not path.exists():
        return True
    try:
        return psutil.Process(int(path.read_text())).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def death_cause(workdir: Path, index: int, code: int | None) -> str:
    """'worker 1 killed by SIGKILL: <its last words>' (TF: process index = worker), worded as every
    job's death is (JobOutcome.death_cause)."""
    tail = last_line(workdir / f"process{index}.stderr")
    if code is None:
        return f"worker {index} died" + (f": {tail}" if tail else "")
    return JobOutcome(timed_out=False, returncode=code, stderr_tail=tail).death_cause(f"worker {index}")


def torchrun_reason(stderr: Path, rank: int | None = None) -> str:
    """How worker `rank` ended, from torchrun's failure summary ("rank : 1 (local_rank: 1)" then
    "exitcode : -9 (pid: 123)"): 'killed by SIGKILL'; else torchrun's last line. Without a rank: the
    worker its summary names as the root cause (the others it stopped itself, with SIGTERM)."""
    text = stderr.read_text(errors="replace") if stderr.exists() else ""
    if rank is None and "Root Cause" in text:
        text = text[text.index("Root Cause"):]
    for found_rank, code in re.findall(r"rank\s*:\s*(\d+)[^\n]*\n\s*exitcode\s*:\s*(-?\d+)", text):
        if rank is None or int(found_rank) == rank:
            code = int(code)
            return f"killed by {signal.Signals(-code).name}" if code < 0 else f"exited with code {code}"
    return last_line(stderr)


def read_result(workdir: Path, rank: int) -> Envelope | None:
    return read_envelope(workdir / f"rank{rank}.json")


def recorded_pids(workdir: Path, workers: int) -> list[int]:
    paths = [workdir / f"rank{rank}.pid" for rank in range(workers)]
    return [int(path.read_text()) for path in paths if path.exists()]


def stop(processes: list[subprocess.Popen], worker_pids: list[int]) -> None:
    """Kill every process group started, then any worker still alive (torchrun's are in sessions of
    their own; they also die with torchrun, by PR_SET_PDEATHSIG)."""
    for process in processes:
        kill_group(process)
    for pid in worker_pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
