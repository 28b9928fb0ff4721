"""TensorFlow data parallel: one worker of a MultiWorkerMirroredStrategy group, one process per worker.

The same public names as tf_backend (the ones a measured cell and a parity run call); the rest is
tf_backend's own. jobs/group.py starts the workers with TF_CONFIG naming every worker's
127.0.0.1 port; the strategy's collective ops run over them (ring all-reduce on CPU, NCCL on GPUs,
where each worker process sees one GPU, as a DDP worker does).

Each worker takes its contiguous 1/N of the global batch and differentiates 1/N of its mean loss;
Keras' optimizer sums the workers' gradients (an all-reduce in the replica context), so every worker
applies the gradient of the global batch's mean loss, as DDP's averaging does. BatchNorm normalises
with each worker's own shard, as in torch's twin.
"""

from __future__ import annotations

import os
import time
from typing import Any

from frameduel.frameworks.lean_import import without_optional_extras

with without_optional_extras():  # before anything imports Keras (tf_backend does the same)
    import keras
    import tensorflow as tf

from frameduel.frameworks import Step, batch_shard, tf_backend  # noqa: E402
from frameduel.frameworks.tf_backend import (  # noqa: F401 - the rest of the backend's surface, unchanged
    align_adam_epsilon,
    compile_facts,
    export_weights,
    import_weights,
    is_out_of_memory,
    optimizer_state,
    parameter_counts,
    peak_device_memory_mb,
    to_numpy,
)
from frameduel.spec import RunSpec
from frameduel.workloads.base import Batch, OptimizerConfig, Workload

_strategy: tf.distribute.MultiWorkerMirroredStrategy | None = None

# The model of the last make_step: allreduce_seconds reduces tensors of its gradients' sizes.
_stepped: list = []


def configure(spec: RunSpec) -> dict[str, Any]:
    """The backend's configuration (threads must be set before the runtime starts), then the strategy,
    which connects to the other workers. A collective that waits longer than the launcher's timeout
    (FRAMEDUEL_COLLECTIVE_TIMEOUT_S) fails."""
    global _strategy
    timeout_s = float(os.environ.get("FRAMEDUEL_COLLECTIVE_TIMEOUT_S", "120"))
    facts = tf_backend.configure(spec)
    implementation = tf.distribute.experimental.CommunicationImplementation
    options = tf.distribute.experimental.CommunicationOptions(
        implementation=implementation.NCCL if spec.device == "cuda" else implementation.RING,
        timeout_seconds=timeout_s)
    _strategy = tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)
    return {**facts, "data_parallel": {"implementation": "MultiWorkerMirroredStrategy",
                                       "backend": "nccl" if spec.device == "cuda" else "ring", "rank": rank(),
                                       "workers": _strategy.num_replicas_in_sync}}


def strategy() -> tf.distribute.MultiWorkerMirroredStrategy:
    if _strategy is None:
        raise RuntimeError("configure(spec) joins the group before anything else runs")
    return _strategy


def rank() -> int:
    return strategy().cluster_resolver.task_id


def shard(batch: Batch) -> Batch:
    return batch_shard(batch, rank(), strategy().num_replicas_in_sync)


def to_tensors(workload: Workload, spec: RunSpec, batch: Batch) -> tuple:
    """This worker's shard of a global batch, on the device."""
    return tf_backend.to_tensors(workload, spec, shard(batch))


def first_worker_value(value: float) -> float:
    """Worker 0's value on every worker (Step.agree): a sum in which only worker 0 puts its value."""
    mine = tf.constant(value if rank() == 0 else 0.0, dtype=tf.float64)
    return float(strategy().experimental_local_results(_sum_over_workers(mine))[0])


@tf.function
def _sum_over_workers(value: tf.Tensor) -> tf.Tensor:
    # The value is copied inside the replica function: a tensor from outside has no device the
    # strategy's collective can reduce to ("destinations can not be empty").
    return strategy().run(lambda: tf.distribute.get_replica_context().all_reduce("sum", tf.identity(value)))


def peer_pids() -> tuple[int, ...]:
    """The other workers' process ids: each puts its own in its slot of a summed vector."""
    mine = [0.0] * strategy().num_replicas_in_sync
    mine[rank()] = float(os.getpid())
    pids = strategy().experimental_local_results(_sum_over_workers(tf.constant(mine, dtype=tf.float64)))[0]
    return tuple(int(pid) for pid in to_numpy(pids) if int(pid) != os.getpid())


def build_model(workload: Workload, spec: RunSpec) -> keras.Model:
    """Variables made under the strategy's scope are mirrored: one copy per worker, kept in step."""
    with strategy().scope():
        return tf_backend.build_model(workload, spec)


def make_optimizer(model: keras.Model, spec: RunSpec, opt: OptimizerConfig) -> keras.optimizers.Optimizer:
    with strategy().scope():
        return tf_backend.make_optimizer(model, spec, opt)


def make_train_fn(model: keras.Model, spec: RunSpec, optimizer: keras.optimizers.Optimizer):  # noqa: ANN201
    """The backend's gradients on this worker's shard, then the optimizer step, whose gradient sum is
    the all-reduce. XLA compiles the forward and backward: TensorFlow cannot compile collective ops
    into an XLA cluster on CPU ("tf2xla conversion failed ... CollectiveReduceV2"), so the all-reduce
    and the update run in the tf.function graph around it, as Keras' own jit_compile does under a strategy."""
    workers = strategy().num_replicas_in_sync
    gradients = tf_backend.make_gradient_fn(model, optimizer, loss_share=1.0 / workers)
    if spec.mode == "xla":
        gradients = tf.function(gradients, jit_compile=True)

    def replica_step(x: tf.Tensor, y: tf.Tensor) -> tf.Tensor:
        loss, grads = gradients(x, y)
        optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=True))
        return loss  # this worker's own mean loss

    def train_step(x: tf.Tensor, y: tf.Tensor) -> tf.Tensor:
        return strategy().run(replica_step, args=(x, y))

    step = train_step if spec.mode == "eager" else tf.function(train_step)
    return lambda x, y: strategy().experimental_local_results(step(x, y))[0]


def make_step(workload: Workload, spec: RunSpec, batch: Batch) -> Step:
    """One data-parallel train step on this worker's shard of the global batch."""
    model = build_model(workload, spec)
    inputs, targets = to_tensors(workload, spec, batch)
    train = make_train_fn(model, spec, make_optimizer(model, spec, workload.optimizer))
    sync = tf_backend._sync_device if spec.device == "cuda" else tf_backend._no_sync
    _stepped.append(model)
    return Step(run=lambda: train(inputs, targets), sync=sync, model=model, agree=first_worker_value,
                peer_pids=peer_pids())


def allreduce_seconds(spec: RunSpec, repeats: int) -> list[float]:
    """Seconds per all-reduce of tensors shaped like the model's gradients, timed on its own through
    the strategy (the optimizer's gradient sum is this very call): what the all-reduce adds to a step."""
    shapes = [(tuple(v.shape), v.dtype) for v in _stepped[-1].trainable_variables]

    @tf.function
    def reduce_like_gradients() -> list[tf.Tensor]:
        def replica() -> list[tf.Tensor]:
            return tf.distribute.get_replica_context().all_reduce("sum", [tf.zeros(s, d) for s, d in shapes])

        return strategy().run(replica)

    times = []
    for _ in range(repeats + 2):  # two warm-up rounds: tracing, and the first collective's set-up
        first_worker_value(0.0)  # a barrier: every worker starts the timed all-reduce together
        start = time.perf_counter()
        reduced = reduce_like_gradients()
        to_numpy(strategy().experimental_local_results(reduced)[0][0])
        times.append(time.perf_counter() - start)
    return times[2:]


def close() -> None:
    """The strategy's collective server lives as long as the process."""
