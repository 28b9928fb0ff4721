"""One framework's side of a parity check, in a process of its own.

    python -m frameduel.parity.worker < job.json

Builds the model (or loads transferred weights into it), then writes ``<out_dir>/<framework>.npz``:
``weights/<name>`` (canonical, torch state_dict form), ``output`` (eval forward), ``act/<name>``
(per-layer activations, torch layout) and ``loss/<optimizer>`` (training losses, each curve from the
same starting weights), plus ``<framework>.json`` with the activation order and the status.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

import numpy as np

from frameduel.frameworks import load_backend
from frameduel.runner.worker import error_line
from frameduel.spec import RunSpec
from frameduel.workloads import Workload, get_workload
from frameduel.workloads.base import Batch

# Plain SGD needs a larger step than Adam for the loss to move visibly in a few steps.
PARITY_OPTIMIZERS = {"sgd": 0.05, "adam": None}  # name -> learning rate override (None: workload's)


def parity_batches(workload: Workload, spec: RunSpec, steps: int) -> tuple[Batch, list[Batch]]:
    """The evaluation batch and the training batches: both sides derive the very same ones."""
    config = workload.config(spec.size)
    evaluation = workload.make_batch(config, spec.batch_size, 1000 + spec.seed)
    training = [workload.make_batch(config, spec.batch_size, 2000 + spec.seed + i) for i in range(steps)]
    return evaluation, training


def load_weights(path: Path) -> dict[str, np.ndarray]:
    """npz without pickle: a weights file is data, never code."""
    with np.load(path, allow_pickle=False) as archive:
        return {name.removeprefix("weights/"): archive[name] for name in archive.files if name.startswith("weights/")}


def run_side(spec: RunSpec, steps: int, weights_in: Path | None) -> tuple[dict[str, np.ndarray], list[str]]:
    backend = load_backend(spec.framework)
    backend.configure(spec)
    workload = get_workload(spec.workload)
    model = backend.build_model(workload, spec)
    if weights_in is not None:
        backend.import_weights(workload, model, load_weights(weights_in))
    initial = backend.export_weights(workload, model)
    evaluation, training = parity_batches(workload, spec, steps)
    arrays = {f"weights/{name}": value for name, value in initial.items()}
    arrays["output"] = backend.forward(workload, spec, model, evaluation)
    activations = backend.capture_activations(workload, spec, model, evaluation)
    arrays.update({f"act/{name}": value for name, value in activations.items()})
    for name, learning_rate in PARITY_OPTIMIZERS.items():
        opt = dataclasses.replace(workload.optimizer, name=name,
                                  learning_rate=learning_rate or workload.optimizer.learning_rate)
        backend.import_weights(workload, model, initial)  # every curve starts from the same weights
        arrays[f"loss/{name}"] = np.asarray(backend.train_losses(workload, spec, model, training, opt))
    return arrays, list(activations)


def main() -> int:
    job = json.loads(sys.stdin.read())
    spec = RunSpec.from_dict(job["spec"])
    out_dir = Path(job["out_dir"])
    weights_in = Path(job["weights_in"]) if job.get("weights_in") else None
    manifest: dict[str, object] = {"framework": spec.framework, "status": "ok"}
    try:
        arrays, order = run_side(spec, job["steps"], weights_in)
        np.savez(out_dir / f"{spec.framework}.npz", **arrays)
        manifest["activation_order"] = order
    except Exception as exc:  # noqa: BLE001 - reported to the parent as this side's failure
        manifest.update(status="failed", error=error_line(exc))
    (out_dir / f"{spec.framework}.json").write_text(json.dumps(manifest))
    return 0


if __name__ == "__main__":
    sys.exit(main())
