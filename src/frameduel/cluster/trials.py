"""Training runs on a Ray cluster: sweep trials on their own CPUs, accuracy runs one machine at a time.

A sweep trial compares itself with other trials run the same way, so it reserves only its CPUs and
Ray packs as many as fit; node_tasks.train pins it to cores no other trial on the machine holds. An
accuracy run is a timing (seconds to a target accuracy) with every core of the driver's thread count,
so like a compare cell it has a machine to itself (machines.py).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

from frameduel.accuracy.run import AccuracyRequest, TrainingRun
from frameduel.cluster import node_tasks
from frameduel.cluster.cells import driver_thread_settings
from frameduel.cluster.machines import Machine, discover_machines, one_per_machine
from frameduel.cluster.session import RaySession, RemoteFailure
from frameduel.errors import FrameduelError
from frameduel.spec import LOST, RunSpec
from frameduel.sweep import SweepRequest, Trial, TrialResult, trial_options, trial_spec


def training_run(spec: RunSpec, result: dict[str, Any] | RemoteFailure) -> TrainingRun:
    if isinstance(result, RemoteFailure):
        return TrainingRun(spec, LOST if result.lost else "failed", result.cause)
    return TrainingRun(**{**result["run"], "spec": spec})


def with_lost_nodes(session: RaySession, nodes: list[str], gone: set[str], failure: RemoteFailure) -> RemoteFailure:
    """A trial holds no node of its own, so one that failed while a node of the cluster died is taken for lost with
    it (--resume runs it again; a trial that fails by itself fails again there). gone: nodes found dead so far."""
    gone.update(node for node in nodes if node not in gone and not session.node_answers(node))
    return RemoteFailure(f"{failure.cause}; {len(gone)} Ray node(s) of the cluster are gone", lost=True) if gone \
        else failure


class RayTrials:
    """A TrialExecutor on a Ray cluster at `address` (None: a local one-node cluster for the sweep)."""

    def __init__(self, address: str | None, cpus_per_trial: int = 1) -> None:
        if cpus_per_trial < 1:
            raise FrameduelError(f"--cpus-per-trial must be >= 1, got {cpus_per_trial}")
        self.session = RaySession(address)  # checks the address now, before the sweep is created
        self.cpus_per_trial = cpus_per_trial

    def run(self, trials: list[Trial], request: SweepRequest) -> Iterator[TrialResult]:
        a, thread_env = request.accuracy, driver_thread_settings()
        with self.session as session:
            largest = max((node.cpus for node in session.nodes()), default=0)
            if largest < self.cpus_per_trial:
                raise FrameduelError(f"--cpus-per-trial {self.cpus_per_trial}: no node of the cluster has that many "
                                     f"CPUs (the largest has {largest})")
            started, nodes, gone = time.time(), [node.node_id for node in session.nodes()], set()
            pending = {session.submit(node_tasks.train, trial_spec(trial, request, self.cpus_per_trial).to_dict(),
                                      a.max_epochs, a.timeout_s, trial_options(trial, request), self.cpus_per_trial,
                                      thread_env, cpus=self.cpus_per_trial): trial for trial in trials}
            for trial, result in session.completed(pending):
                spec = trial_spec(trial, request, self.cpus_per_trial)
                if isinstance(result, RemoteFailure):
                    result = with_lost_nodes(session, nodes, gone, result)
                    yield TrialResult(trial, training_run(spec, result), [], 0.0, time.time() - started)
                    continue
                yield TrialResult(trial, training_run(spec, result), result["cpus"],
                                  result["started_at"] - started, result["finished_at"] - started,
                                  result["placement"])


def ray_accuracy_runs(address: str | None, specs: list[RunSpec], request: AccuracyRequest,
                      on_start: Callable[[RunSpec], None] | None = None) -> Iterator[TrainingRun]:
    """Each accuracy run a Ray task holding a whole machine; yielded as each ends."""
    thread_env = driver_thread_settings()
    with RaySession(address) as session:
        machines = discover_machines(session, thread_env)

        def submit(machine: Machine, spec: RunSpec) -> Any:
            return session.submit(node_tasks.train, spec.to_dict(), request.max_epochs, request.timeout_s, {}, None,
                                  thread_env, cpus=machine.node.cpus, node_id=machine.node.node_id)

        # Each (workload, framework) pair's seeds are one comparison: on one class of machine.
        for spec, _, result in one_per_machine(session, machines, specs, lambda s: s.workload, submit,
                                               lambda s, _: on_start(s) if on_start else None):
            yield training_run(spec, result)
