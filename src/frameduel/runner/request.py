"""`frameduel compare`'s options into a MatrixRequest (runner/plan.py expands and checks it against the
registries and this machine); options that contradict each other are refused first, one line each."""

from __future__ import annotations

from pathlib import Path

from frameduel.checkpoints import resolve_workload
from frameduel.errors import FrameduelError
from frameduel.runner.plan import MatrixRequest, parse_duration
from frameduel.spec import split_list


def check_compare_options(no_parity: bool, recheck_parity: bool, resume: str | None, budget: str | None) -> None:
    if no_parity and recheck_parity:
        raise FrameduelError("--no-parity skips the parity proof and --recheck-parity forces it; give one of the two")
    if resume and (budget is not None or recheck_parity):
        raise FrameduelError("--resume continues a run with its own budget and parity; leave out --budget and "
                             "--recheck-parity")


def parse_counts(option: str, value: str) -> tuple[int, ...]:
    """'1,2' -> (1, 2), or one line naming the option and what it takes."""
    try:
        return tuple(int(item) for item in split_list(value) or ())
    except ValueError:
        raise FrameduelError(f"{option} takes comma-separated whole numbers, e.g. 1,2; got '{value}'") from None


def compare_request(workloads: str | None, checkpoint: Path | None, frameworks: str, modes: str | None,
                    tasks: str | None, precisions: str, preset: str, size: str | None, device: str | None,
                    threads: int | None, repeats: int | None, timeout_s: float | None, seed: int, peak: bool | None,
                    launch: str, lora_rank: int, lora_alpha: float, lora_targets: str | None, parallel: int,
                    workers: str, scaling: str, cluster: bool, budget: str | None, busy_cores: float) -> MatrixRequest:
    """The comma-separated options split (workloads None: mlp,cnn, or the checkpoint's family), the counts and
    the budget parsed; --modes items kept as given (spec.mode_items reads them). cluster: the cells run on Ray,
    one timing cell per machine at a time. busy_cores: other processes' use of this machine (doctor)."""
    if cluster and parallel != 1:
        raise FrameduelError("--parallel is for --executor local; on Ray, machines run in parallel and each "
                             "runs one timing cell at a time")
    workloads, checkpoint_path = resolve_workload(workloads, checkpoint, "mlp,cnn")
    return MatrixRequest(
        workloads=split_list(workloads) or (), frameworks=split_list(frameworks) or (), modes=split_list(modes),
        tasks=split_list(tasks), precisions=split_list(precisions) or (), preset=preset, size=size, device=device,
        threads=threads, repeats=repeats, timeout_s=timeout_s, seed=seed, peak=peak, launch=launch,
        checkpoint=checkpoint_path, lora_rank=lora_rank, lora_alpha=lora_alpha, lora_targets=split_list(lora_targets),
        parallel=parallel, workers=parse_counts("--workers", workers), scaling=split_list(scaling) or (),
        cluster=cluster, budget_s=parse_duration(budget) if budget is not None else None, busy_cores=busy_cores,
    )
