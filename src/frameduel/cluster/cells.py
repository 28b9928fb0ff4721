"""`compare --executor ray`: every cell round a Ray task, one at a time per machine (machines.py); a
data-parallel cell's workers across the cluster's nodes through Ray Train (train_group.py), with the
cluster to itself."""

from __future__ import annotations

import json
import os
from typing import Any

from frameduel import environment
from frameduel.cluster import node_tasks, train_group
from frameduel.cluster.machines import Machine, discover_machines, one_per_machine
from frameduel.cluster.session import RaySession, RemoteFailure
from frameduel.errors import FrameduelError
from frameduel.runner.data_parallel import group_measurement
from frameduel.runner.plan import Plan
from frameduel.runner.scheduler import Cell, CellStream, StartHook
from frameduel.spec import LOST, Measurement


def driver_thread_settings() -> dict[str, str]:
    """The thread variables this (the driver's) process has: the nodes' workers get exactly these."""
    return {name: os.environ[name] for name in environment.THREAD_ENV_VARS if name in os.environ}


class RayCells:
    """A CellExecutor on a Ray cluster at `address` (None: a local one-node cluster started for the run)."""

    def __init__(self, address: str | None) -> None:
        self.session = RaySession(address)  # checks the address now, before the run is created
        self.connected = False

    def close(self) -> None:
        """Disconnect (and stop the local cluster started for the run): after the run's last added round."""
        if self.connected:
            self.session.disconnect()
            self.connected = False

    def run(self, cells: list[Cell], plan: Plan, on_start: StartHook) -> CellStream:
        if plan.parallel != 1:
            raise FrameduelError("--parallel is for the local executor; on Ray each machine runs one timing cell "
                                 "at a time and machines run in parallel")
        thread_env = driver_thread_settings()
        if not self.connected:
            self.session.connect()
            self.connected = True
        session = self.session
        machines = discover_machines(session, thread_env)

        def submit(machine: Machine, cell: Cell) -> Any:
            # The whole node: nothing else Ray schedules (a sweep trial) may share the machine's CPUs.
            return session.submit(node_tasks.measure_cell, cell[1].to_dict(), plan.budget.to_dict(),
                                  plan.launch, thread_env, cpus=machine.node.cpus, node_id=machine.node.node_id)

        single = [cell for cell in cells if cell[1].workers == 1]
        for cell, machine, result in one_per_machine(session, machines, single, lambda c: c[1].comparison_group,
                                                     submit, lambda c, _: on_start(c)):
            yield cell, measurement_of(cell, machine, result)
        # A group spans machines, so it runs after the rest, alone: one group at a time on the cluster.
        for cell in (cell for cell in cells if cell[1].workers > 1):
            on_start(cell)
            job = {"kind": "measure", "spec": cell[1].to_dict(), "budget": plan.budget.to_dict()}
            ref = session.submit(train_group.run_group_on_ray, job, thread_env, plan.budget.timeout_s, cpus=0)
            for _, outcome in session.completed({ref: cell}):
                yield cell, group_measurement_of(cell, outcome)


def measurement_of(cell: Cell, machine: Machine | None, result: dict[str, Any] | RemoteFailure) -> Measurement:
    if isinstance(result, RemoteFailure):
        where = f" on {machine.host}" if machine else ""
        placement = {"executor": "ray", "host": machine.host, "machine_class": machine.machine_class,
                     "ray_node_id": machine.node.node_id} if machine else {"executor": "ray"}
        return Measurement(spec=cell[1], status=LOST if result.lost else "failed", error=f"{result.cause}{where}",
                           placement=placement)
    measurement = Measurement.from_json(result["measurement"])
    measurement.placement = {**result["placement"], "concurrent": 1}
    return measurement


def group_measurement_of(cell: Cell, outcome: dict[str, Any] | RemoteFailure) -> Measurement:
    """A data-parallel cell from Ray Train's workers: worker 0's timings, every worker's memory, each
    worker's node in placement["workers"]."""
    if isinstance(outcome, RemoteFailure):
        return Measurement(spec=cell[1], status="failed", error=f"the group's coordinator: {outcome.cause}",
                           placement={"executor": "ray"})
    workers = outcome["workers"]
    placement = {"executor": "ray", "launcher": outcome["trainer"], "concurrent": 1, "workers": workers,
                 **({key: workers[0][key] for key in ("host", "ray_node_id", "machine_class", "environment")}
                    if workers else {})}
    if outcome["failure"] is not None:
        return Measurement(spec=cell[1], status="failed", error=outcome["failure"], placement=placement)
    measurement = group_measurement([Measurement.from_json(json.dumps(result["measurement"]))
                                     for result in outcome["results"]], outcome["wall_s"], outcome["trainer"])
    measurement.placement = placement
    return measurement
