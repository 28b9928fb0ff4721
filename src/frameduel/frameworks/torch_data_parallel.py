"""PyTorch data parallel: one DistributedDataParallel worker of a group started by torchrun.

The same public names as torch_backend (the ones a measured cell and a parity run call), so a worker
measures a data-parallel step with the very code that measures one process (runner/worker.py); the
rest is torch_backend's own. torchrun's launcher (torch.distributed.run, started by
jobs/group.py) sets RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT; on a Ray
cluster, Ray Train's TorchTrainer has joined the worker to its group before the job starts.

Each worker takes its contiguous 1/N of the global batch. DDP averages the gradients over the workers,
so with equal shards every worker applies the gradient of the global batch's mean loss: one process
over the whole batch, up to summation order. BatchNorm normalises with each worker's own shard
(torch's SyncBatchNorm runs on GPUs only), which is the one place where N workers train another model.
"""

from __future__ import annotations

import datetime
import os
import time
from typing import Any

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from frameduel.frameworks import Step, batch_shard, torch_backend
from frameduel.frameworks.torch_backend import (  # noqa: F401 - the rest of the backend's surface, unchanged
    align_adam_epsilon,
    compile_facts,
    export_weights,
    import_weights,
    is_out_of_memory,
    make_optimizer,
    optimizer_state,
    parameter_counts,
    peak_device_memory_mb,
    to_numpy,
)
from frameduel.spec import RunSpec
from frameduel.workloads.base import Batch, Workload

# The model of the last make_step: allreduce_seconds reduces tensors of its gradients' sizes.
_stepped: list = []
# Whether this worker joined the group itself (torchrun) and so leaves it in close(); a group that Ray
# Train set up is Ray Train's to destroy.
_joined_here: list[bool] = []


def configure(spec: RunSpec) -> dict[str, Any]:
    """The backend's configuration, then this worker joins its group. A collective that waits longer
    than the launcher's timeout (FRAMEDUEL_COLLECTIVE_TIMEOUT_S) for a dead peer fails instead of
    hanging (gloo and nccl both honour it)."""
    timeout_s = float(os.environ.get("FRAMEDUEL_COLLECTIVE_TIMEOUT_S", "120"))
    facts = torch_backend.configure(spec)
    if not dist.is_initialized():  # torchrun: each worker joins here (Ray Train has set the device too)
        if spec.device == "cuda":
            torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))
        dist.init_process_group("nccl" if spec.device == "cuda" else "gloo",
                                timeout=datetime.timedelta(seconds=timeout_s))
        _joined_here.append(True)
    return {**facts, "data_parallel": {"implementation": "DistributedDataParallel",
                                       "backend": dist.get_backend(), "rank": dist.get_rank(),
                                       "workers": dist.get_world_size()}}


def rank() -> int:
    return dist.get_rank()


def shard(batch: Batch) -> Batch:
    """This worker's contiguous 1/N of the global batch."""
    return batch_shard(batch, dist.get_rank(), dist.get_world_size())


def to_tensors(workload: Workload, spec: RunSpec, batch: Batch) -> tuple:
    """This worker's shard of a global batch, on the device."""
    return torch_backend.to_tensors(workload, spec, shard(batch))


def first_worker_value(value: float) -> float:
    """Worker 0's value on every worker (Step.agree)."""
    tensor = torch.tensor([value], dtype=torch.float64)
    dist.broadcast(tensor, src=0)
    return float(tensor.item())


def peer_pids() -> tuple[int, ...]:
    """The other workers' process ids."""
    pids = torch.zeros(dist.get_world_size(), dtype=torch.int64)
    pids[dist.get_rank()] = os.getpid()
    dist.all_reduce(pids)
    return tuple(int(pid) for pid in pids.tolist() if pid != os.getpid())


def build_model(workload: Workload, spec: RunSpec) -> torch.nn.Module:
    """The backend's model; DDP wraps it in make_train_fn (its construction broadcasts worker 0's weights)."""
    return torch_backend.build_model(workload, spec)


def make_train_fn(model: torch.nn.Module, spec: RunSpec, optimizer: torch.optim.Optimizer):  # noqa: ANN201
    """The backend's own train step, run through DDP: its backward all-reduces the gradients in buckets,
    overlapped with the rest of the backward. Compile mode compiles the DDP module, as torch's docs do."""
    device_ids = [torch.cuda.current_device()] if spec.device == "cuda" else None
    return torch_backend.make_train_fn(DistributedDataParallel(model, device_ids=device_ids), spec, optimizer)


def make_step(workload: Workload, spec: RunSpec, batch: Batch) -> Step:
    """One data-parallel train step on this worker's shard of the global batch."""
    model = build_model(workload, spec)
    inputs, targets = to_tensors(workload, spec, batch)
    train = make_train_fn(model, spec, make_optimizer(model, spec, workload.optimizer))
    sync = torch.cuda.synchronize if spec.device == "cuda" else torch_backend._no_sync
    _stepped.append(model)
    return Step(run=lambda: train(inputs, targets), sync=sync, model=model, agree=first_worker_value,
                peer_pids=peer_pids())


def allreduce_seconds(spec: RunSpec, repeats: int) -> list[float]:
    """Seconds per all-reduce of a buffer the size of the model's gradients, timed on its own with the
    group's backend (DDP's buckets hold the same bytes). DDP overlaps its all-reduce with the backward,
    so this bounds from above what the all-reduce adds to a step."""
    model = _stepped[-1]
    elements = sum(p.numel() for p in model.parameters() if p.requires_grad)
    buffer = torch.zeros(elements, dtype=torch.float32, device=spec.device)
    times = []
    for _ in range(repeats + 2):  # two warm-up rounds: the first all-reduce sets up the connections
        dist.barrier()
        start = time.perf_counter()
        dist.all_reduce(buffer)
        if spec.device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return times[2:]


def close() -> None:
    """Leave the group together: a worker tearing gloo down while a peer still talks to it aborts."""
    if dist.is_initialized():
        dist.barrier()
        if _joined_here:
            dist.destroy_process_group()
