"""`frameduel parity`'s options into requests, every one checked before any process starts, and the proof run
and stored: one request per training task (full training; LoRA fine-tuning where the workload has it), or
the data-parallel proof (--workers N)."""

from __future__ import annotations

from pathlib import Path

from frameduel import environment
from frameduel.checkpoints import model_config, resolve_workload
from frameduel.errors import FrameduelError
from frameduel.frameworks import check_framework
from frameduel.jobs.cores import core_slots
from frameduel.jobs.servers import ForkServers
from frameduel.parity.check import (
    NATIVE_DIRECTIONS,
    ModesReport,
    ParityReport,
    ParityRequest,
    check_parity,
    check_parity_support,
    directions_for,
    save_parity,
)
from frameduel.parity.data_parallel import DATA_PARALLEL_PARITY, DataParallelParity, check_data_parallel
from frameduel.spec import SIZES, TRAINING_TASKS, LoraSettings, check_choice, split_list
from frameduel.store import Store
from frameduel.workloads import get_workload


def parity_requests(workload: str | None, checkpoint: Path | None, size: str, frameworks: str, direction: str,
                    steps: int, batch_size: int, seed: int, modes: bool, tasks: str | None, lora_rank: int,
                    lora_alpha: float, lora_targets: str | None) -> list[ParityRequest]:
    """One request per task proven (workload None: the checkpoint's family); a workload without parity support,
    a bad size, checkpoint, framework or direction is one line now."""
    workload, checkpoint_path = resolve_workload(workload, checkpoint, usage="to check (e.g. frameduel parity mlp)")
    check_parity_support(get_workload(workload))
    check_choice("size", size, SIZES)
    if checkpoint_path is not None:
        model_config(get_workload(workload), checkpoint_path, size)  # refuses a bad one now
    chosen = tuple(check_framework(fw) for fw in split_list(frameworks) or ())
    if direction != "both":
        check_choice("direction", direction, ("both", *NATIVE_DIRECTIONS))
    return [ParityRequest(workload, size, directions_for(chosen, direction), steps, batch_size, seed,
                          check_modes=modes, checkpoint=checkpoint_path, task=task,
                          lora=parity_lora(workload, task, lora_rank, lora_alpha, lora_targets))
            for task in parity_tasks(workload, tasks)]


def parity_tasks(workload: str, requested: str | None) -> list[str]:
    """The training tasks to prove: full training, and LoRA fine-tuning where the workload has it."""
    trainable = [task for task in get_workload(workload).tasks if task in TRAINING_TASKS]
    chosen = split_list(requested) or tuple(trainable)
    for task in chosen:
        check_choice(f"parity task of {workload}", task, trainable)
    return list(chosen)


def parity_lora(workload: str, task: str, rank: int, alpha: float, targets: str | None) -> LoraSettings | None:
    if task != "finetune":
        return None
    w = get_workload(workload)
    return w.lora_settings(rank, alpha, split_list(targets) or w.lora_modules)


def prove_requests(store: Store, requests: list[ParityRequest]) -> tuple[list[ParityReport], list[ModesReport]]:
    """Every request's directions and modes check, each task's stored (with this machine's fingerprint)."""
    fingerprint = environment.fingerprint()
    reports: list[ParityReport] = []
    modes_reports: list[ModesReport] = []
    with ForkServers() as servers:  # each framework imported once for all its side and modes jobs
        for request in requests:
            task_reports, modes_report = check_parity(request, servers.launcher)
            save_parity(store, task_reports, modes_report, fingerprint)
            reports += task_reports
            modes_reports += [modes_report] if modes_report else []
    return reports, modes_reports


def prove_data_parallel(store: Store, workload: str | None, workers: int, steps: int, batch_size: int, size: str,
                        seed: int) -> DataParallelParity:
    """`parity --workers N`: N data-parallel workers train what one process does; checked, run, stored."""
    if workload is None:
        raise FrameduelError("name a workload to check, e.g. frameduel parity mlp --workers 2")
    check_choice("size", size, SIZES)
    if "train" not in get_workload(workload).tasks:
        raise FrameduelError(f"{workload} has no train task; data parallel trains")
    if batch_size % workers or workers > len(core_slots(None)):
        raise FrameduelError(f"--workers {workers} needs a core each and a --batch-size divisible by it "
                             f"(got {batch_size}, {len(core_slots(None))} cores)")
    report = check_data_parallel(workload, workers, steps, batch_size, size, seed)
    store.save_result(DATA_PARALLEL_PARITY, f"{workload}-{size}-w{workers}", report.to_dict(),
                      environment.fingerprint())
    return report
