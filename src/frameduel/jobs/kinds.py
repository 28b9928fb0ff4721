"""The registry of job kinds: name -> "module:function" run in the child as function(payload) -> Envelope.

Named as strings: the jobs layer sits below the tracks whose modules these are, and imports none of them;
the child imports exactly the one its job needs (a zygote has most of them imported already).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from frameduel.jobs.envelope import Envelope

JOB_KINDS: dict[str, str] = {
    "measure": "frameduel.runner.worker:measure_in_worker",  # one benchmark cell
    "generate": "frameduel.runner.generate:generate_in_worker",  # greedy ids and decode timings
    "finetune": "frameduel.runner.finetune:finetune_in_worker",  # LoRA steps, adapters in PEFT format
    "parity": "frameduel.parity.worker:parity_in_worker",  # one side (or the modes check) of a parity proof
    "accuracy": "frameduel.accuracy.worker:accuracy_in_worker",  # training to a target accuracy
    "convert": "frameduel.export.convert_worker:convert_in_worker",  # deployment artefacts of one framework
    "validate": "frameduel.export.validate_worker:validate_in_worker",  # an artefact's gate and benchmark
}


# The parts one worker of a data-parallel group runs (rank.py), each function(job, spec) -> Envelope.
GROUP_PARTS: dict[str, str] = {
    "measure": "frameduel.runner.data_parallel_rank:measure_rank",  # a train cell's step, then the all-reduce
    "train": "frameduel.parity.data_parallel:train_rank",  # parity's training passes from given weights
}


def group_part(name: str) -> Callable[..., Envelope]:
    module, _, function = GROUP_PARTS[name].partition(":")
    return getattr(importlib.import_module(module), function)


def job_function(kind: str) -> Callable[[dict[str, Any]], Envelope]:
    if kind not in JOB_KINDS:
        raise ValueError(f"unknown job kind '{kind}'; one of {', '.join(JOB_KINDS)}")
    module, _, name = JOB_KINDS[kind].partition(":")
    return getattr(importlib.import_module(module), name)


def job_module(kind: str) -> str:
    return JOB_KINDS[kind].partition(":")[0]
