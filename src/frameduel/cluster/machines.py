"""Timing jobs on a Ray cluster: one at a time per machine, each comparison group on one machine class.

A timing cell that shares a machine measures its neighbour as much as itself, so a machine (all Ray
nodes on one host: a test cluster's nodes are one machine) runs one timing job at a time, and the
job holds every CPU of its node, so nothing else Ray schedules lands beside it. Machines of the
same class (environment.machine_class: same hardware, software and thread settings) run jobs in
parallel; a comparison group (the cells whose speedups are computed) is bound to the class of the
machine that takes its first job, so its speedups never mix machines.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

from frameduel.cluster import node_tasks
from frameduel.cluster.session import NODE_PROBE_TIMEOUT_S, RayNode, RaySession, RemoteFailure
from frameduel.errors import FrameduelError

Job = TypeVar("Job")


@dataclass(frozen=True)
class Machine:
    host: str
    node: RayNode  # the node its jobs run on: the host's node with the most CPUs
    machine_class: str


def discover_machines(session: RaySession, thread_env: dict[str, str]) -> list[Machine]:
    """The cluster's machines, each with its class read on the machine itself under the run's thread
    settings (thread_env: the driver's). Every node with a CPU is asked; a node that does not answer (one that
    died, which the cluster may not know yet) is left out, and each host's machine is its answering node with the
    most CPUs."""
    nodes = [node for node in session.nodes() if node.cpus >= 1]
    if not nodes:
        raise FrameduelError("the Ray cluster has no node with a CPU; add one with `ray start --address HEAD`")
    pending = {session.submit(node_tasks.machine_facts, thread_env, cpus=0, node_id=node.node_id): node
               for node in nodes}
    hosts: dict[str, Machine] = {}
    for node, facts in session.results_within(pending, NODE_PROBE_TIMEOUT_S):
        if isinstance(facts, RemoteFailure) and facts.raised:
            raise FrameduelError(f"Ray node {node.node_id[:8]} on {node.address} cannot run frameduel: {facts.cause}; "
                                 "install frameduel in the Python environment the cluster's nodes use")
        if isinstance(facts, RemoteFailure):
            continue  # gone
        if node.address not in hosts or node.cpus > hosts[node.address].node.cpus:
            hosts[node.address] = Machine(node.address, node, facts["machine_class"])
    if not hosts:
        raise FrameduelError("no node of the Ray cluster answered; check it with `ray status`")
    return sorted(hosts.values(), key=lambda machine: machine.host)


def one_per_machine(session: RaySession, machines: list[Machine], jobs: list[Job], group_of: Callable[[Job], str],
                    submit: Callable[[Machine, Job], Any],
                    on_start: Callable[[Job, Machine], None] | None = None
                    ) -> Iterator[tuple[Job, Machine | None, Any]]:
    """Run every job as submit(machine, job) (which returns a Ray object ref), in order where machines
    allow; yield (job, machine, result or RemoteFailure) as each ends (machine None: no machine was left)."""
    waiting, free = list(jobs), list(machines)
    bound: dict[str, str] = {}  # comparison group -> machine class
    running: dict[Any, tuple[Job, Machine]] = {}  # Ray object ref -> what it runs where

    def dispatch() -> None:
        for machine in list(free):
            job = next((j for j in waiting if bound.get(group_of(j), machine.machine_class) == machine.machine_class),
                       None)
            if job is None:
                continue
            waiting.remove(job)
            free.remove(machine)
            bound[group_of(job)] = machine.machine_class
            if on_start:
                on_start(job, machine)
            running[submit(machine, job)] = (job, machine)

    dispatch()
    for (job, machine), result in session.completed(running):
        if isinstance(result, RemoteFailure) and not session.node_answers(machine.node.node_id):
            result = RemoteFailure(f"{result.cause}; its Ray node {machine.node.node_id[:8]} is gone", lost=True)
        if not (isinstance(result, RemoteFailure) and result.lost):  # a lost machine takes no more jobs
            free.append(machine)
        yield job, machine, result
        dispatch()
    for job in waiting:  # every machine of their class was lost
        yield job, None, RemoteFailure(f"no machine of class {bound.get(group_of(job))} is left in the cluster",
                                       lost=True)
