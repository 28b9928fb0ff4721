"""PyTorch side: eager and torch.compile steps, fp32 and autocast mixed precision."""

from __future__ import annotations

import contextlib
import importlib
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from frameduel.frameworks import Step
from frameduel.spec import RunSpec
from frameduel.workloads.base import Batch, Workload

AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def configure(spec: RunSpec) -> dict[str, Any]:
    """Pin threads and seeds before anything runs; report what is actually in force."""
    torch.set_num_threads(spec.threads)
    torch.set_num_interop_threads(spec.threads)
    torch.manual_seed(spec.seed)
    if spec.device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    return {
        "framework_version": torch.__version__,
        "intra_op_threads": torch.get_num_threads(),
        "inter_op_threads": torch.get_num_interop_threads(),
        "device_name": torch.cuda.get_device_name() if spec.device == "cuda" else "cpu",
        "cuda_version": torch.version.cuda,
        "mkldnn": torch.backends.mkldnn.is_available(),
    }


def autocast(spec: RunSpec) -> contextlib.AbstractContextManager:
    if spec.precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device_type=spec.device, dtype=AUTOCAST_DTYPES[spec.precision])


def build_model(workload: Workload, spec: RunSpec) -> torch.nn.Module:
    model_module = importlib.import_module(workload.model_modules["torch"])
    return model_module.build(workload.config(spec.size)).to(spec.device)


def to_tensors(workload: Workload, spec: RunSpec, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
    """Place the batch on the device once: steps measure compute, not host-to-device copies."""
    model_module = importlib.import_module(workload.model_modules["torch"])
    inputs = np.ascontiguousarray(model_module.to_native_layout(batch.inputs))
    return torch.from_numpy(inputs).to(spec.device), torch.from_numpy(batch.targets).to(spec.device)


def make_step(workload: Workload, spec: RunSpec, batch: Batch) -> Step:
    model = build_model(workload, spec)
    inputs, targets = to_tensors(workload, spec, batch)
    # The model is compiled, as training scripts do; the optimizer step stays eager.
    forward = torch.compile(model) if spec.mode == "compile" else model
    sync = torch.cuda.synchronize if spec.device == "cuda" else _no_sync
    if spec.task == "infer":
        model.eval()

        def infer_step() -> torch.Tensor:
            with torch.no_grad(), autocast(spec):
                return forward(inputs)

        return Step(run=infer_step, sync=sync)

    model.train()
    opt = workload.optimizer
    optimizer = torch.optim.Adam(
        model.parameters(), lr=opt.learning_rate, betas=(opt.beta1, opt.beta2), eps=opt.epsilon
    )
    # fp16 needs loss scaling to keep small gradients from underflowing; bf16 does not.
    scaler = torch.amp.GradScaler(spec.device, enabled=spec.precision == "fp16")

    def train_step() -> torch.Tensor:
        optimizer.zero_grad(set_to_none=True)
        with autocast(spec):
            logits = forward(inputs)
        loss = F.cross_entropy(logits.float(), targets)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        return loss

    return Step(run=train_step, sync=sync)


def _no_sync() -> None:
    """CPU kernels run synchronously: a step has finished when its call returns."""


def peak_device_memory_mb(spec: RunSpec) -> float | None:
    if spec.device != "cuda":
        return None
    return torch.cuda.max_memory_allocated() / 2**20


def is_out_of_memory(exc: BaseException) -> bool:
    return isinstance(exc, (torch.OutOfMemoryError, MemoryError))
