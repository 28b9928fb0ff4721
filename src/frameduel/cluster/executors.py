"""Where a command's cells, runs or trials go (--executor, --address): this machine, or a Ray cluster whose
address is checked before anything starts. Ray's modules are imported only when a command asks for a
cluster: their import costs seconds."""

from __future__ import annotations

import functools

from frameduel.accuracy.run import RunExecutor, local_runs
from frameduel.errors import FrameduelError
from frameduel.runner.scheduler import CellExecutor
from frameduel.spec import check_choice
from frameduel.sweep import TrialExecutor, TrialSearch

EXECUTORS = ("local", "ray")


def cell_executor(executor: str, address: str | None) -> CellExecutor | None:
    """None for this machine; a Ray executor whose cluster was checked to be reachable."""
    if check_choice("executor", executor, EXECUTORS) == "local":
        if address is not None:
            raise FrameduelError("--address names a Ray cluster; add --executor ray")
        return None
    from frameduel.cluster.cells import RayCells

    return RayCells(address)


def accuracy_runs(executor: str, address: str | None) -> RunExecutor:
    """`accuracy`'s runs one at a time here, or each a Ray task holding a whole machine."""
    if cell_executor(executor, address) is None:  # checks the address before anything starts
        return local_runs
    from frameduel.cluster.trials import ray_accuracy_runs

    return functools.partial(ray_accuracy_runs, address)


def trial_executor(executor: str, address: str | None, search: str | None,
                   cpus_per_trial: int) -> TrialExecutor | TrialSearch | None:
    """None: a sweep's trials on this machine's cores; else Ray trials, or Ray Tune drawing them (--search)."""
    if cell_executor(executor, address) is None:  # checks the address before anything starts
        if search is not None:
            raise FrameduelError("--search draws its trials with Ray Tune; add --executor ray")
        return None
    if search is not None:
        from frameduel.cluster.tune import TuneSearch

        return TuneSearch(address, cpus_per_trial)
    from frameduel.cluster.trials import RayTrials

    return RayTrials(address, cpus_per_trial)
