"""Write artefacts of one source model, in a process of one framework's own.

    the "convert" job (jobs/kinds.py), spawned, payload:

    {"workload", "size", "framework" (this process's), "source" (the source model's framework),
      "formats", "work_dir", "epochs", "seed", "threads", "max_batch", "checkpoint" (a Hugging Face
      model directory or null)}

When framework == source, the worker builds the source model (for size "digits": trained `epochs`
epochs on load_digits; with a checkpoint: its config and weights) and writes into work_dir:

    weights.npz      its weights in canonical (torch state_dict) form, for a twin in the other framework
    reference.npz    the gate's inputs and the source model's outputs (see export/reference.py)
    source.json      {"status", "error", "weights_sha256", "framework_version", "train"}

Otherwise (torch -> TFLite through the Keras twin) it builds its own twin and loads weights.npz.
Then, per format, ``<format>/`` holds the artefact and ``<format>.json`` says {"status": "ok", facts}
or {"status": "failed", "error"}: one converter failing never stops the others.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from frameduel.datasets import load_digits_split
from frameduel.export.reference import (
    DIGITS_SIZE,
    EXPORT_SAMPLE_BATCH,
    Reference,
    calibration_inputs,
    digits_test_batch,
    eval_inputs,
    gate_batch_sizes,
    per_sample,
    save_reference,
    source_workload,
)
from frameduel.frameworks import load_backend, load_exporter
from frameduel.jobs.child import error_line
from frameduel.jobs.envelope import Envelope
from frameduel.jobs.process import write_result
from frameduel.spec import FRAMEWORK_INFO, RunSpec
from frameduel.training.digits import DIGITS_BATCH, fit_digits
from frameduel.workloads import Workload, get_workload
from frameduel.workloads.base import Batch
from frameduel.workloads.weight_files import load_weights, save_weights

WEIGHTS_FILE = "weights.npz"
SOURCE_FILE = "source.json"


def weights_digest(weights: dict[str, np.ndarray]) -> str:
    digest = hashlib.sha256()
    for name in sorted(weights):
        digest.update(name.encode())
        digest.update(np.ascontiguousarray(weights[name]).tobytes())
    return digest.hexdigest()


def forward(backend: ModuleType, workload: Workload, spec: RunSpec, model: Any, inputs: np.ndarray) -> np.ndarray:
    return backend.forward(workload, spec, model, Batch(inputs=inputs, targets=np.zeros(len(inputs), np.int64)))


def build_source(backend: ModuleType, job: dict[str, Any], workload: Workload, spec: RunSpec,
                 work_dir: Path, framework_version: str) -> Any:
    """Build (and for size "digits", train) the source model; write weights, reference and source facts."""
    model = backend.build_model(workload, spec)
    size, seed = job["size"], job["seed"]
    train: dict[str, Any] = {}
    if size == DIGITS_SIZE:
        curve = fit_digits(backend, workload, spec, model, load_digits_split(), job["epochs"])
        train = {"data": "sklearn load_digits", "epochs": job["epochs"], "batch_size": spec.batch_size,
                 "test_accuracy": curve["accuracy"][-1]}
    backend.set_training(model, False)
    weights = backend.export_weights(workload, model)
    save_weights(work_dir / WEIGHTS_FILE, weights)
    base = get_workload(job["workload"])
    batches = {}
    for batch in gate_batch_sizes(job["max_batch"]):
        inputs = eval_inputs(base, size, batch, seed, spec.checkpoint)
        batches[batch] = (inputs, per_sample(base, inputs, forward(backend, workload, spec, model, inputs)))
    digits = None
    if size == DIGITS_SIZE:
        test = digits_test_batch(base)
        digits = (test.inputs, test.targets, forward(backend, workload, spec, model, test.inputs))
    save_reference(work_dir / "reference.npz", Reference(batches=batches, digits=digits))
    source = {"status": "ok", "weights_sha256": weights_digest(weights), "train": train,
              "framework_version": framework_version}
    write_result(work_dir / SOURCE_FILE, json.dumps(source))
    return model


def convert_in_worker(job: dict[str, Any]) -> Envelope:
    """The "convert" job: each format's result written as it ends (a crash in one keeps the others')."""
    framework, work_dir = job["framework"], Path(job["work_dir"])
    base = get_workload(job["workload"])
    workload, preset = source_workload(base, job["size"])
    # Training (size "digits") uses the framework's default mode, as `frameduel accuracy` does.
    spec = RunSpec(workload=base.name, framework=framework, mode=FRAMEWORK_INFO[framework].training_mode,
                   task="train", size=preset, batch_size=DIGITS_BATCH, threads=job["threads"], seed=job["seed"],
                   checkpoint=job.get("checkpoint"))
    backend = load_backend(framework)
    runtime = backend.configure(spec)
    try:
        if framework == job["source"]:
            model = build_source(backend, job, workload, spec, work_dir, runtime["framework_version"])
        else:  # the twin: built to the same config (a checkpoint's too), then given the source's weights
            model = backend.build_model(workload, spec)
            backend.import_weights(workload, model, load_weights(work_dir / WEIGHTS_FILE))
    except Exception as exc:  # noqa: BLE001 - no model to convert: every format fails with this reason
        failure = {"status": "failed", "error": f"building the {framework} model failed: {error_line(exc)}"}
        names = [SOURCE_FILE] * (framework == job["source"]) + [f"{fmt}.json" for fmt in job["formats"]]
        for name in names:
            write_result(work_dir / name, json.dumps(failure))
        return Envelope("failed", failure["error"], files=names)
    exporter = load_exporter(framework)
    sample = eval_inputs(base, job["size"], EXPORT_SAMPLE_BATCH, job["seed"], spec.checkpoint)
    calibration = calibration_inputs(base, job["size"], job["seed"], spec.checkpoint)
    for fmt in job["formats"]:
        out_dir = work_dir / fmt
        out_dir.mkdir()
        try:
            facts = exporter.export_artefact(fmt, workload, model, sample, calibration, out_dir, job["max_batch"])
            result = {"status": "ok", **facts}
        except Exception as exc:  # noqa: BLE001 - a conversion failure is this format's result
            result = {"status": "failed", "error": error_line(exc)}
        write_result(work_dir / f"{fmt}.json", json.dumps(result))
    return Envelope("ok", files=[f"{fmt}.json" for fmt in job["formats"]])
