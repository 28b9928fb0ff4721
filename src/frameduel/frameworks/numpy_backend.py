"""NumPy, the reference framework: the mlp workload written out by hand (forward, backward, Adam), nothing else.

Two uses. It is the fifth framework, added through the registry alone (spec.FRAMEWORK_INFO), so it shows
what adding one takes and that what it lacks is "unsupported" with the reason, never a KeyError (README,
"Adding a framework"). And its import costs nothing, so the harness's tests (kills, timeouts, resume,
orchestration, fork servers) run real worker processes without paying torch's or TensorFlow's 3-8 s.
The model matches model_torch.MLP's structure, parameter names and initialisation scheme; it is not held
to parity (it has no shared weights map), so its verdicts against torch or tf are not proven like for like.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from frameduel.checkpoints import model_config
from frameduel.errors import Unsupported
from frameduel.frameworks import Generation, Step
from frameduel.spec import RunSpec
from frameduel.workloads.base import Batch, OptimizerConfig, Workload

DTYPES = {"fp32": np.float32, "fp64": np.float64}


@dataclass
class MLP:
    """Linear+ReLU stack in torch's state_dict names: body.<2i>.weight (out, in), .bias; head.weight, .bias."""

    params: dict[str, np.ndarray]
    depth: int
    training: bool = True
    grads: dict[str, np.ndarray] = field(default_factory=dict)

    def names(self) -> list[str]:
        return [f"body.{2 * i}" for i in range(self.depth)] + ["head"]

    def forward(self, x: np.ndarray, keep: list[np.ndarray] | None = None) -> np.ndarray:
        for index, name in enumerate(self.names()):
            if keep is not None:
                keep.append(x)
            x = x @ self.params[f"{name}.weight"].T + self.params[f"{name}.bias"]  # (B, in) -> (B, out)
            if index < self.depth:
                x = np.maximum(x, 0)
        return x  # logits (B, classes)

    def loss_and_grads(self, x: np.ndarray, targets: np.ndarray) -> float:
        """Mean cross-entropy of the batch; its gradients left in self.grads."""
        inputs: list[np.ndarray] = []
        logits = self.forward(x, inputs)
        shifted = logits - logits.max(axis=1, keepdims=True)
        probs = np.exp(shifted)
        probs /= probs.sum(axis=1, keepdims=True)
        loss = float(-np.mean(np.log(probs[np.arange(len(targets)), targets])))
        grad = probs
        grad[np.arange(len(targets)), targets] -= 1
        grad /= len(targets)  # d loss / d logits (B, classes)
        for index in reversed(range(len(self.names()))):
            name = self.names()[index]
            self.grads[f"{name}.weight"] = grad.T @ inputs[index]
            self.grads[f"{name}.bias"] = grad.sum(axis=0)
            if index:
                grad = (grad @ self.params[f"{name}.weight"]) * (inputs[index] > 0)  # through the ReLU before
        return loss


class Adam:
    """torch.optim.Adam's update, with the workload's pinned settings."""

    def __init__(self, model: MLP, config: OptimizerConfig) -> None:
        self.model, self.config, self.step = model, config, 0
        self.m = {k: np.zeros_like(v) for k, v in model.params.items()}
        self.v = {k: np.zeros_like(v) for k, v in model.params.items()}

    def apply(self) -> None:
        c, self.step = self.config, self.step + 1
        for name, grad in self.model.grads.items():
            self.m[name] = c.beta1 * self.m[name] + (1 - c.beta1) * grad
            self.v[name] = c.beta2 * self.v[name] + (1 - c.beta2) * grad * grad
            m_hat = self.m[name] / (1 - c.beta1**self.step)
            v_hat = self.v[name] / (1 - c.beta2**self.step)
            self.model.params[name] -= c.learning_rate * m_hat / (np.sqrt(v_hat) + c.epsilon)


def unsupported(what: str) -> Unsupported:
    return Unsupported(f"numpy (the reference framework) runs the mlp workload's train and infer only; {what} "
                       "is torch's, tf's and the Keras backends'")


def configure(spec: RunSpec) -> dict[str, Any]:
    """numpy's matmuls use its BLAS's threads (set by the environment at import); seeds are per model."""
    if spec.device != "cpu":
        raise unsupported(f"device {spec.device}")
    if spec.precision not in DTYPES:
        raise unsupported(f"precision {spec.precision}")
    return {"framework_version": np.__version__, "intra_op_threads": spec.threads, "device_name": "cpu"}


def use_precision(spec: RunSpec) -> None:
    configure(spec)


def build_model(workload: Workload, spec: RunSpec) -> MLP:
    if workload.name != "mlp" or spec.lora or spec.adapter:
        raise unsupported(f"workload {workload.name}" + (" with LoRA" if spec.lora or spec.adapter else ""))
    config = model_config(workload, spec.checkpoint, spec.size)
    rng, dtype = np.random.default_rng(spec.seed), DTYPES[spec.precision]
    widths = [config.in_features] + [config.hidden] * config.depth + [config.classes]
    names = [f"body.{2 * i}" for i in range(config.depth)] + ["head"]
    params = {}
    for name, (fan_in, fan_out) in zip(names, zip(widths, widths[1:], strict=False), strict=True):
        bound = 1.0 / math.sqrt(fan_in)  # as common_torch.init_linear: U(-1/sqrt(fan_in), ...), zero bias
        params[f"{name}.weight"] = rng.uniform(-bound, bound, (fan_out, fan_in)).astype(dtype)
        params[f"{name}.bias"] = np.zeros(fan_out, dtype)
    return MLP(params, config.depth)


def to_tensors(workload: Workload, spec: RunSpec, batch: Batch) -> tuple[np.ndarray, np.ndarray]:
    return batch.inputs.astype(DTYPES[spec.precision]), batch.targets


def make_optimizer(model: MLP, spec: RunSpec, opt: OptimizerConfig) -> Adam:
    if opt.name != "adam":
        raise unsupported(f"optimizer {opt.name}")
    return Adam(model, opt)


def make_train_fn(model: MLP, spec: RunSpec, optimizer: Adam) -> Callable[[np.ndarray, np.ndarray], float]:
    def train(inputs: np.ndarray, targets: np.ndarray) -> float:
        loss = model.loss_and_grads(inputs, targets)
        optimizer.apply()
        return loss
    return train


def make_infer_fn(model: MLP, spec: RunSpec) -> Callable[[np.ndarray], np.ndarray]:
    return model.forward


def make_step(workload: Workload, spec: RunSpec, batch: Batch) -> Step:
    model = build_model(workload, spec)
    inputs, targets = to_tensors(workload, spec, batch)
    if spec.task == "infer":
        return Step(run=lambda: model.forward(inputs), sync=lambda: None, model=model)
    if spec.task != "train":
        raise unsupported(f"task {spec.task}")
    train = make_train_fn(model, spec, make_optimizer(model, spec, workload.optimizer))
    return Step(run=lambda: train(inputs, targets), sync=lambda: None, model=model)


def make_generation(workload: Workload, spec: RunSpec, batch: Batch, prompt_ids: np.ndarray | None = None,
                    new_tokens: int | None = None) -> Generation:
    raise unsupported("generation")


def compile_facts(spec: RunSpec) -> dict[str, Any]:
    return {}


def parameter_counts(workload: Workload, model: MLP) -> tuple[int, int]:
    count = sum(p.size for p in model.params.values())
    return count, count


def save_adapter(workload: Workload, model: MLP, spec: RunSpec, directory: Path) -> Path:
    raise unsupported("LoRA")


def set_training(model: MLP, training: bool) -> None:
    model.training = training


def to_numpy(value: Any) -> np.ndarray:
    return np.asarray(value)


def peak_device_memory_mb(spec: RunSpec) -> float | None:
    return None


def is_out_of_memory(exc: BaseException) -> bool:
    return isinstance(exc, MemoryError)


def export_weights(workload: Workload, model: MLP) -> dict[str, np.ndarray]:
    return {name: value.copy() for name, value in model.params.items()}


def import_weights(workload: Workload, model: MLP, weights: Mapping[str, np.ndarray]) -> None:
    model.params = {name: np.asarray(weights[name], model.params[name].dtype).copy() for name in model.params}


def shared_weights(workload: Workload, model: MLP) -> list[tuple[list[str], str]]:
    return []


def forward(workload: Workload, spec: RunSpec, model: MLP, batch: Batch) -> np.ndarray:
    return model.forward(to_tensors(workload, spec, batch)[0])


def capture_activations(workload: Workload, model: MLP, run: Callable[[], object]) -> dict[str, np.ndarray]:
    raise unsupported("parity's activations")


def optimizer_state(workload: Workload, model: MLP, optimizer: Adam) -> dict[str, np.ndarray]:
    raise unsupported("parity's optimizer state")


def align_adam_epsilon(optimizer: Adam) -> Adam:
    return optimizer
