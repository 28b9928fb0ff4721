"""One framework's side of a parity check, in a process of its own.

    the "parity" job (jobs/kinds.py), spawned or forked from the framework's zygote

A *side* job runs the same passes over one or more weight sets (the framework's own initialisation,
or weights another framework's job exported) in each precision asked for, and writes
``<out_dir>/<framework>-<weights>-<precision>.npz`` per pair:

    roundtrip/weights/<name>      the weights as this framework holds them after the import
    eval/output, eval/act/<layer> eval-mode forward on the evaluation batch, per-layer activations
    stress/...                    the same with stressed weights and inputs (see stress.py)
    <opt>/loss                    training losses, SGD and Adam, each run from the same weights
    <opt>/act/<layer>             activations during the first training step (train mode)
    <opt>/weights/<name>          every weight and buffer after training (BatchNorm statistics too)
    <opt>/slots/<name>/<slot>     the optimizer's slots after training (Adam's m and v), and slots/step
    <opt>-step1/...               the same weights and slots after the first step
    <opt>/eval_output             eval-mode forward on a held-out batch after training
    stress-sgd/...                one SGD step from the stressed weights (loss, activations, weights)

A *modes* job runs the framework's compiled modes against its own eager mode (fp32): forward output,
one SGD and one Adam step, written to ``<out_dir>/<framework>-modes.npz`` as ``<mode>/...``.
``<out_dir>/<framework>-<job>.json`` holds the status and each layer order.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from frameduel.checkpoints import model_config
from frameduel.frameworks import load_backend
from frameduel.jobs.envelope import Envelope
from frameduel.parity.stress import stress_inputs, stress_weights
from frameduel.spec import MODES, RunSpec
from frameduel.workloads import Workload, get_workload
from frameduel.workloads.base import Batch, OptimizerConfig
from frameduel.workloads.weight_files import load_weights, save_weights

# Plain SGD needs a larger step than Adam for the loss to move visibly in a few steps.
PARITY_OPTIMIZERS = {"sgd": 0.05, "adam": None}  # name -> learning rate override (None: workload's)
NUMPY_DTYPES = {"fp64": np.float64, "fp32": np.float32}


@dataclasses.dataclass(frozen=True)
class ParityBatches:
    """Every batch a side uses; both sides derive the very same ones from the seed."""

    evaluation: Batch
    training: list[Batch]
    held_out: Batch  # eval forward after training, on data the training never saw
    stress: Batch  # inputs scaled by stress.INPUT_GAIN


def parity_batches(workload: Workload, spec: RunSpec, steps: int) -> ParityBatches:
    config = model_config(workload, spec.checkpoint, spec.size)
    make = lambda offset: workload.make_batch(config, spec.batch_size, offset + spec.seed)  # noqa: E731
    stress = make(4000)
    return ParityBatches(evaluation=make(1000), training=[make(2000 + i) for i in range(steps)],
                         held_out=make(3000), stress=Batch(stress_inputs(stress.inputs), stress.targets))


def optimizer_config(workload: Workload, name: str) -> OptimizerConfig:
    """The workload's optimizer settings, each rounded to the nearest float32.

    Keras on TensorFlow turns a Python float hyperparameter into a float32 tensor before casting it to
    the variable's dtype (tf.cast(0.999, tf.float64) is 0.99900001287...), and keeps the learning rate
    in a float32 variable; in a float64 model that alone moves Adam's first step by 7e-6. Values that
    float32 holds exactly reach both frameworks unchanged.
    """
    base = workload.optimizer
    exact = lambda value: float(np.float32(value))  # noqa: E731
    return dataclasses.replace(base, name=name, learning_rate=exact(PARITY_OPTIMIZERS[name] or base.learning_rate),
                               beta1=exact(base.beta1), beta2=exact(base.beta2), epsilon=exact(base.epsilon))


class Side:
    """One model of one framework and precision, and the passes parity runs on it."""

    def __init__(self, backend: ModuleType, workload: Workload, spec: RunSpec) -> None:
        self.backend, self.workload, self.spec = backend, workload, spec
        self.model = backend.build_model(workload, spec)

    def load(self, weights: dict[str, np.ndarray]) -> None:
        dtype = NUMPY_DTYPES[self.spec.precision]
        self.backend.import_weights(self.workload, self.model, {k: v.astype(dtype) for k, v in weights.items()})

    def weights(self) -> dict[str, np.ndarray]:
        return self.backend.export_weights(self.workload, self.model)

    def eval_pass(self, prefix: str, weights: dict[str, np.ndarray], batch: Batch) -> dict[str, np.ndarray]:
        self.load(weights)
        outputs: list[np.ndarray] = []
        acts = self.backend.capture_activations(
            self.workload, self.model, lambda: outputs.append(self.backend.forward(self.workload, self.spec,
                                                                                    self.model, batch)))
        return {f"{prefix}/output": outputs[0], **{f"{prefix}/act/{name}": a for name, a in acts.items()}}

    def train_pass(self, prefix: str, weights: dict[str, np.ndarray], opt: OptimizerConfig, batches: list[Batch],
                   held_out: Batch | None, capture: bool = True) -> dict[str, np.ndarray]:
        """Train from `weights`; the losses, first-step activations (eager only: a traced step has no
        values to record) and the whole state afterwards."""
        backend, workload, spec = self.backend, self.workload, self.spec
        self.load(weights)
        optimizer = backend.align_adam_epsilon(backend.make_optimizer(self.model, spec, opt))
        train = backend.make_train_fn(self.model, spec, optimizer)
        tensors = [backend.to_tensors(workload, spec, batch) for batch in batches]
        losses = []
        acts: dict[str, np.ndarray] = {}
        if capture:
            acts = backend.capture_activations(workload, self.model, lambda: losses.append(train(*tensors[0])))
        else:
            losses.append(train(*tensors[0]))
        arrays = {f"{prefix}/act/{name}": a for name, a in acts.items()}
        if len(tensors) > 1:  # the state after one step tells which slot an optimizer difference enters
            arrays.update(self.state(f"{prefix}-step1", optimizer))
        losses += [train(*pair) for pair in tensors[1:]]
        arrays[f"{prefix}/loss"] = np.asarray([float(backend.to_numpy(loss)) for loss in losses])
        arrays.update(self.state(prefix, optimizer))
        if held_out is not None:
            backend.set_training(self.model, False)
            arrays[f"{prefix}/eval_output"] = backend.forward(workload, spec, self.model, held_out)
        return arrays

    def state(self, prefix: str, optimizer: object) -> dict[str, np.ndarray]:
        """Every weight and buffer, every optimizer slot and the step count, in canonical names."""
        slots = self.backend.optimizer_state(self.workload, self.model, optimizer)
        return ({f"{prefix}/weights/{name}": w for name, w in self.weights().items()}
                | {f"{prefix}/slots/{name}": s for name, s in slots.items()})


def side_arrays(side: Side, initial: dict[str, np.ndarray], batches: ParityBatches) -> dict[str, np.ndarray]:
    """Every pass of one weight set on one side (see the module docstring for the names)."""
    side.load(initial)
    arrays = {f"roundtrip/weights/{name}": value for name, value in side.weights().items()}
    # Trainable only: totals differ by design (Keras holds BatchNorm statistics as variables, torch as
    # buffers); what trains must be the same. With LoRA: the adapters, and nothing of the base.
    trainable = side.backend.parameter_counts(side.workload, side.model)[1]
    arrays["params/trainable"] = np.asarray([trainable])
    arrays.update(side.eval_pass("eval", initial, batches.evaluation))
    stressed = stress_weights(initial, side.spec.seed)
    arrays.update(side.eval_pass("stress", stressed, batches.stress))
    for name in PARITY_OPTIMIZERS:
        arrays.update(side.train_pass(name, initial, optimizer_config(side.workload, name), batches.training,
                                      batches.held_out))
    arrays.update(side.train_pass("stress-sgd", stressed, optimizer_config(side.workload, "sgd"), [batches.stress],
                                  None))
    return arrays


def run_side_job(job: dict[str, Any]) -> Envelope:
    """Initialise and/or load weight sets, run every pass in every precision; the layer order of the shared
    weights in data, the arrays written in out_dir."""
    out_dir, framework = Path(job["out_dir"]), job["framework"]
    base = RunSpec.from_dict(job["spec"])
    backend, workload = load_backend(framework), get_workload(base.workload)
    backend.configure(base)  # fp32: a framework's own initialisation is its float32 one
    weight_sets = {}
    for label, path in job["weight_sets"].items():
        if path is None:  # this framework initialises: export for the other side, then use it here too
            weight_sets[label] = Side(backend, workload, base).weights()
            save_weights(out_dir / f"init-{label}.npz", weight_sets[label])
        else:
            weight_sets[label] = load_weights(Path(path))
    batches = parity_batches(workload, base, job["steps"])
    shared = backend.shared_weights(workload, Side(backend, workload, base).model)
    files = []
    for precision in job["precisions"]:
        spec = dataclasses.replace(base, precision=precision)
        backend.use_precision(spec)
        for label, initial in weight_sets.items():
            arrays = side_arrays(Side(backend, workload, spec), initial, batches)
            files.append(f"{framework}-{label}-{precision}.npz")
            np.savez(out_dir / files[-1], **arrays)
    return Envelope("ok", data={"shared_weights": shared}, files=files)


def run_modes_job(job: dict[str, Any]) -> Envelope:
    """Each compiled mode against eager, same framework, same weights, fp32."""
    out_dir, framework = Path(job["out_dir"]), job["framework"]
    base = RunSpec.from_dict(job["spec"])
    backend, workload = load_backend(framework), get_workload(base.workload)
    backend.configure(base)
    batches = parity_batches(workload, base, 1)
    initial = Side(backend, workload, base).weights()
    arrays: dict[str, np.ndarray] = {}
    for mode in MODES[framework]:
        side = Side(backend, workload, dataclasses.replace(base, mode=mode))
        side.load(initial)
        arrays[f"{mode}/output"] = backend.forward(workload, side.spec, side.model, batches.evaluation)
        for name in PARITY_OPTIMIZERS:
            arrays.update(side.train_pass(f"{mode}/{name}", initial, optimizer_config(workload, name),
                                          batches.training, None, capture=False))
    np.savez(out_dir / f"{framework}-modes.npz", **arrays)
    return Envelope("ok", files=[f"{framework}-modes.npz"])


PARTS = {"side": run_side_job, "modes": run_modes_job}


def parity_in_worker(payload: dict[str, Any]) -> Envelope:
    """The "parity" job: one side of a direction, or one framework's modes check (payload["kind"])."""
    return PARTS[payload["kind"]](payload)
