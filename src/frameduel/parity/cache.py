"""Parity out of the box: `compare` proves the workloads it compares are the same model in both frameworks
(float64, tiny, every mode) before it measures anything, once per workload and package versions.

A proof stored by an earlier `compare` or `frameduel parity` with the same package versions (torch,
TensorFlow, Keras, JAX, numpy, frameduel) is reused; new versions, or --recheck-parity, prove it again.
It runs before the first timed cell, never beside one, and its jobs fork from the run's own zygotes, so
it pays no framework import of its own.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from frameduel.errors import FrameduelError
from frameduel.parity.check import (
    LauncherFor,
    ParityRequest,
    check_parity,
    check_parity_support,
    directions_for,
    save_parity,
    spawned,
)
from frameduel.store import Store
from frameduel.workloads import get_workload

NOT_A_MODEL = ("gemm",)  # one matmul: nothing to prove


@dataclass(frozen=True)
class ParityStep:
    workload: str
    outcome: str  # "cached", "checked", "skipped"
    seconds: float = 0.0
    why: str = ""  # for "skipped": the reason


def same_versions(stored: dict[str, Any], current: dict[str, Any]) -> bool:
    return stored.get("packages") == current.get("packages")


def cached(store: Store, request: ParityRequest, fingerprint: dict[str, Any]) -> bool:
    """Every direction and the modes check of this request are stored, measured with these package versions."""
    parity = [r for r in store.results("parity") if r.data.get("workload") == request.workload
              and r.data.get("task", "train") == request.task_label and r.data.get("size") == request.model_label
              and same_versions(r.environment, fingerprint)]
    directions = {f"{r.data['source']}-to-{r.data['target']}" for r in parity}
    modes = [r for r in store.results("parity-modes") if r.data.get("workload") == request.workload
             and r.data.get("task", "train") == request.task_label and same_versions(r.environment, fingerprint)]
    return set(request.directions) <= directions and bool(modes)


def parity_request(workload: str, frameworks: tuple[str, ...], checkpoint: str | None) -> ParityRequest:
    """What `frameduel parity WORKLOAD` checks by default, for the frameworks compared: tiny, float64 and
    float32, both ways between torch and tf (and torch to each Keras backend), every compiled mode."""
    check_parity_support(get_workload(workload))
    return ParityRequest(workload, "tiny", directions_for(frameworks), checkpoint=checkpoint)


def prove_parity(store: Store, workloads: tuple[str, ...], frameworks: tuple[str, ...], checkpoint: str | None,
                 fingerprint: dict[str, Any], recheck: bool = False,
                 launcher: LauncherFor = spawned) -> list[ParityStep]:
    """Prove each workload's parity unless a proof with these versions is stored (or recheck); store each."""
    steps = []
    for workload in workloads:
        if workload in NOT_A_MODEL:
            continue
        try:
            request = parity_request(workload, frameworks, checkpoint)
        except FrameduelError as exc:  # a plugin without a weight map, frameworks with nothing to hold to torch
            steps.append(ParityStep(workload, "skipped", why=str(exc)))
            continue
        if not recheck and cached(store, request, fingerprint):
            steps.append(ParityStep(workload, "cached"))
            continue
        started = time.perf_counter()
        reports, modes = check_parity(request, launcher)
        save_parity(store, reports, modes, fingerprint)
        steps.append(ParityStep(workload, "checked", time.perf_counter() - started))
    return steps
