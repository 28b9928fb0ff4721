"""The transformer, gpt and lstm workloads: same model in both frameworks, and a real worker cell each."""

from __future__ import annotations

import importlib
import os

import numpy as np
import pytest

from frameduel.runner.scheduler import spawn_measure
from frameduel.spec import RunSpec
from frameduel.workloads import get_workload
from tests.conftest import TINY_BUDGET
from tests.tools import require_module

pytestmark = pytest.mark.usefixtures("frameworks")  # torch/TensorFlow workers: the slow tier

ZOO = ("transformer", "gpt", "lstm")


def trainable_count(workload_name: str, framework: str, size: str) -> int:
    workload = get_workload(workload_name)
    model = importlib.import_module(workload.model_modules[framework]).build(workload.config(size))
    if framework == "torch":
        return sum(p.numel() for p in model.parameters() if p.requires_grad)
    return sum(int(np.prod(v.shape)) for v in model.trainable_variables)


@pytest.mark.parametrize("size", ["tiny", "small"])  # small adds a second layer everywhere
@pytest.mark.parametrize("name", ZOO)
def test_trainable_parameter_counts_match(name: str, size: str) -> None:
    require_module("torch")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")  # as frameworks.tf_backend does
    require_module("keras")
    assert trainable_count(name, "torch", size) == trainable_count(name, "tf", size)


@pytest.mark.parametrize("name", ZOO)
def test_make_batch_is_deterministic_and_fits_the_loss_contract(name: str) -> None:
    workload = get_workload(name)
    config = workload.config("tiny")
    a, b = workload.make_batch(config, 64, 7), workload.make_batch(config, 64, 7)
    assert np.array_equal(a.inputs, b.inputs) and np.array_equal(a.targets, b.targets)
    assert a.inputs.dtype == np.int64 and a.targets.dtype == np.int64
    rows = a.inputs.size if name == "gpt" else 64  # the LM predicts every position: (B*T,) targets
    assert a.targets.shape == (rows,)
    assert len(np.unique(a.targets)) > 1  # labels actually vary with the data


@pytest.mark.parametrize("framework", ["torch", "tf"])
@pytest.mark.parametrize("name", ZOO)
def test_train_cell_runs_in_a_worker(name: str, framework: str, tmp_path) -> None:
    spec = RunSpec(workload=name, framework=framework, mode="eager", task="train", batch_size=4, size="tiny")
    measurement = spawn_measure(spec, TINY_BUDGET, tmp_path)
    assert measurement.status == "ok", measurement.error
    assert measurement.step_seconds
