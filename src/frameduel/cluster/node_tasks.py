"""What runs inside a Ray worker process: the same workers as a local run, started the same way.

A Ray task never measures in its own process: it starts the cell's worker exactly as the local
executor does (a fork from a per-framework zygote kept for the life of the Ray worker, or a fresh
interpreter) and returns the worker's result with where it ran. The Ray worker's environment is
Ray's (it sets OMP_NUM_THREADS to the task's CPUs, for one); the driver's thread settings replace it,
so a cell measures the same thing on the cluster as on the driver's own machine.
"""

from __future__ import annotations

import atexit
import fcntl
import os
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from frameduel import environment
from frameduel.accuracy.run import spawn_training
from frameduel.jobs.process import Zygote, run_job
from frameduel.runner.scheduler import spawn_measure as measure
from frameduel.spec import MeasureBudget, RunSpec

# A machine-wide ledger of pinned cores, one lock file per core: Ray counts CPUs but does not say
# which cores a task may use, and several Ray nodes (or a local sweep) may share one machine. flock
# locks die with the process that holds them, so a killed trial never leaves a core taken.
CORE_LOCKS = Path(tempfile.gettempdir()) / f"frameduel-cores-{os.getuid()}"

_workdir: Path | None = None
_zygotes: dict[str, Zygote] = {}


def workdir() -> Path:
    """This Ray worker's scratch folder for the workers' result and stderr files."""
    global _workdir
    if _workdir is None:
        _workdir = Path(tempfile.mkdtemp(prefix="frameduel-ray-"))
    return _workdir


@atexit.register
def close_zygotes() -> None:
    for zygote in _zygotes.values():
        zygote.close()


def placement() -> dict[str, Any]:
    """Where this task ran: its node, host and the machine class (environment.machine_class) of the node."""
    import ray

    fingerprint = environment.fingerprint()
    return {"executor": "ray", "host": fingerprint["hostname"], "ray_node_id": ray.get_runtime_context().get_node_id(),
            "machine_class": environment.machine_class(fingerprint), "environment": fingerprint}


def alive() -> bool:
    """A node's answer to RaySession.node_answers: it can still run a task."""
    return True


def machine_facts(thread_env: dict[str, str]) -> dict[str, Any]:
    """placement() as a cell of this run would see it: under the driver's thread settings (part of the class)."""
    use_thread_settings(thread_env)
    return placement()


def use_thread_settings(thread_env: dict[str, str]) -> None:
    """The driver's thread variables, exactly: set what it set, unset what it did not (Ray's own)."""
    for name in environment.THREAD_ENV_VARS:
        if name in thread_env:
            os.environ[name] = thread_env[name]
        else:
            os.environ.pop(name, None)


def measure_cell(spec: dict[str, Any], budget: dict[str, Any], launch: str, thread_env: dict[str, str]) -> dict:
    """One round of one compare cell: {"measurement": Measurement JSON, "placement": ...}."""
    use_thread_settings(thread_env)
    cell = RunSpec.from_dict(spec)
    launcher = run_job
    if launch == "fork":
        launcher = _zygotes.setdefault(cell.framework, Zygote(cell.framework, workdir())).run_job
    measurement = measure(cell, MeasureBudget.from_dict(budget), workdir(), launcher)
    return {"measurement": measurement.to_json(), "placement": placement()}


@contextmanager
def claimed_cores(count: int) -> Iterator[list[int]]:
    """`count` of this process's cores no other frameduel trial on the machine holds, held until the
    block ends; [] (run unpinned) when fewer are free, e.g. a node that advertises more CPUs than it has."""
    CORE_LOCKS.mkdir(exist_ok=True)
    held: list[tuple[int, int]] = []
    try:
        for core in sorted(os.sched_getaffinity(0)):
            if len(held) == count:
                break
            fd = os.open(CORE_LOCKS / f"cpu{core}.lock", os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                held.append((core, fd))
            except BlockingIOError:
                os.close(fd)
        yield [core for core, _ in held] if len(held) == count else []
    finally:
        for _, fd in held:
            os.close(fd)  # closing the descriptor releases its lock


def train(spec: dict[str, Any], max_epochs: int, timeout_s: float, options: dict[str, Any], pin_cores: int | None,
          thread_env: dict[str, str]) -> dict:
    """One training run (an accuracy run or a sweep trial): {"run": TrainingRun dict, "cpus", "started_at",
    "finished_at" (epoch seconds), "placement"}. pin_cores: pin the worker to that many free cores of
    this machine (a trial); None: do not pin (a run that has the machine to itself)."""
    use_thread_settings(thread_env)
    run_spec = RunSpec.from_dict(spec)
    started = time.time()
    if pin_cores is None:
        run, cpus = spawn_training(run_spec, max_epochs, timeout_s, **options), []
    else:
        with claimed_cores(pin_cores) as cpus:
            run = spawn_training(run_spec, max_epochs, timeout_s, **options, cpus=cpus or None)
    return {"run": {**run.to_dict(), "spec": spec}, "cpus": cpus, "started_at": started, "finished_at": time.time(),
            "placement": placement()}
