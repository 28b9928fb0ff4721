"""Training on the digits data, in whichever process runs it: an accuracy run's job, export's digits model.

Framework-free until called: the backend is passed in. The digits split ships with scikit-learn
(datasets.load_digits_split); nothing is downloaded.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from types import ModuleType
from typing import Any

import numpy as np

from frameduel.datasets import DigitsSplit, epoch_batches, shuffle_rng
from frameduel.spec import SIZES, RunSpec
from frameduel.workloads import Workload, get_workload
from frameduel.workloads.base import Batch

DIGITS_BATCH = 64  # a digits model's training batch: `frameduel accuracy`'s default, export's digits model


def digits_workload(workload: Workload) -> Workload:
    """The workload with its digits config as every size preset, so the backend builds the digits-sized model."""
    return dataclasses.replace(workload, presets=dict.fromkeys(SIZES, workload.digits.config))


def digits_batch(workload: Workload, images: np.ndarray, labels: np.ndarray) -> Batch:
    return Batch(inputs=workload.digits.to_inputs(images), targets=labels)


def train_epochs(backend: ModuleType, spec: RunSpec, data: DigitsSplit, max_epochs: int,
                 learning_rate: float | None = None, stop_at: float | None = None,
                 on_epoch: Callable[[dict[str, float]], bool] | None = None) -> dict[str, list[float]]:
    workload = digits_workload(get_workload(spec.workload))
    if learning_rate is not None:
        workload = dataclasses.replace(workload, optimizer=dataclasses.replace(workload.optimizer,
                                                                               learning_rate=learning_rate))
    return fit_digits(backend, workload, spec, backend.build_model(workload, spec), data, max_epochs, stop_at,
                      on_epoch)


def fit_digits(backend: ModuleType, workload: Workload, spec: RunSpec, model: Any, data: DigitsSplit,
               max_epochs: int, stop_at: float | None = None,
               on_epoch: Callable[[dict[str, float]], bool] | None = None) -> dict[str, list[float]]:
    """Train model in place on the digits train split (workload: a digits_workload); return its per-epoch
    curve. on_epoch sees each epoch's figures and returns False to stop there."""
    infer = backend.make_infer_fn(model, spec)
    train = backend.make_train_fn(model, spec, backend.make_optimizer(model, spec, workload.optimizer))
    test_inputs, _ = backend.to_tensors(workload, spec, digits_batch(workload, data.test_images, data.test_labels))
    rng = shuffle_rng(spec.seed)
    curve: dict[str, list[float]] = {"epoch_seconds": [], "accuracy": [], "loss": []}
    for _ in range(max_epochs):
        batches = [backend.to_tensors(workload, spec, digits_batch(workload, data.train_images[idx],
                                                                   data.train_labels[idx]))
                   for idx in epoch_batches(len(data.train_labels), spec.batch_size, rng)]
        backend.set_training(model, True)
        started = time.perf_counter()
        losses = [train(inputs, targets) for inputs, targets in batches]
        backend.to_numpy(losses[-1])  # reading the last loss waits for the device: the epoch has finished
        curve["epoch_seconds"].append(time.perf_counter() - started)
        curve["loss"].append(float(np.mean([backend.to_numpy(loss) for loss in losses])))
        backend.set_training(model, False)
        predictions = np.argmax(backend.to_numpy(infer(test_inputs)), axis=1)  # logits (N_test, 10) -> (N_test,)
        curve["accuracy"].append(float(np.mean(predictions == data.test_labels)))
        if on_epoch is not None and not on_epoch({key: values[-1] for key, values in curve.items()}):
            break
        if stop_at is not None and curve["accuracy"][-1] >= stop_at:
            break
    return curve
