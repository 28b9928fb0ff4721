"""What an artefact is judged on: the source model's inputs and outputs, kept beside the artefact.

The source framework's convert worker writes ``reference.npz`` (numpy arrays, no pickle); every
validation worker reads it back. Keys:

    batch/<b>/x          canonical inputs at each gate batch size b (1, 2 and max_batch)
    batch/<b>/logits     the source model's outputs for them
    digits/x             the digits test split in the workload's canonical layout (size "digits" only)
    digits/labels        its labels
    digits/logits        the source model's outputs for it: the task metric's baseline

Size "digits" is the workload's digits configuration trained on scikit-learn's bundled load_digits
(``frameduel accuracy``'s data and split); it is the only size with a task metric, so it is the one
that lets int8 artefacts be judged by accuracy rather than by raw output differences.

A language model (gpt, llama; preset or checkpoint) is exported as its forward pass: token ids (B, T)
in, logits (B, T, vocab) out, one row of logits per sample like every other artefact, where the
training contract flattens them to (B*T, vocab) for the loss (``sequence_logits``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from frameduel.checkpoints import model_config
from frameduel.datasets import load_digits_split
from frameduel.export.contract import INPUT_NAME, OUTPUT_NAME, sequence_logits  # noqa: F401 - re-exported
from frameduel.training.digits import digits_batch, digits_workload
from frameduel.workloads import Workload
from frameduel.workloads.base import Batch

REFERENCE_FILE = "reference.npz"
DIGITS_SIZE = "digits"
# Every workload here takes one input and returns logits; artefacts name their tensors the same way.
CALIBRATION_SAMPLES = 128  # representative inputs for full-int8 calibration
EXPORT_SAMPLE_BATCH = 2  # torch.export specialises a batch axis of size 1, so trace with 2


@dataclass(frozen=True)
class Reference:
    batches: dict[int, tuple[np.ndarray, np.ndarray]]  # batch size -> (inputs, source outputs)
    digits: tuple[np.ndarray, np.ndarray, np.ndarray] | None  # (inputs, labels, source outputs)


def gate_batch_sizes(max_batch: int) -> tuple[int, ...]:
    return tuple(sorted({1, 2, max_batch}))


def source_workload(workload: Workload, size: str) -> tuple[Workload, str]:
    """(workload whose presets build the model, preset name) for an export size."""
    if size == DIGITS_SIZE:
        return digits_workload(workload), "tiny"  # every preset of a digits workload is its digits config
    return workload, size


def per_sample(workload: Workload, inputs: np.ndarray, logits: np.ndarray) -> np.ndarray:
    """The source model's outputs as an artefact returns them: a language model's (B*T, vocab) as (B, T, vocab)."""
    return logits.reshape(*inputs.shape[:2], logits.shape[-1]) if sequence_logits(workload) else logits


def eval_inputs(workload: Workload, size: str, batch: int, seed: int, checkpoint: str | None = None) -> np.ndarray:
    """Gate inputs: digits test images (real data) for size "digits", else the workload's own batches
    (of the checkpoint's config, when there is one: its vocabulary and context)."""
    if size == DIGITS_SIZE:
        test = load_digits_split().test_images
        return workload.digits.to_inputs(test[np.arange(batch) % len(test)])
    built, preset = source_workload(workload, size)
    return built.make_batch(model_config(built, checkpoint, preset), batch, 1000 + seed).inputs


def calibration_inputs(workload: Workload, size: str, seed: int, checkpoint: str | None = None) -> np.ndarray:
    """Representative inputs for full-int8 calibration, never the gate's: digits train images or fresh batches."""
    if size == DIGITS_SIZE:
        return workload.digits.to_inputs(load_digits_split().train_images[:CALIBRATION_SAMPLES])
    built, preset = source_workload(workload, size)
    return built.make_batch(model_config(built, checkpoint, preset), CALIBRATION_SAMPLES, 3000 + seed).inputs


def digits_test_batch(workload: Workload) -> Batch:
    split = load_digits_split()
    return digits_batch(workload, split.test_images, split.test_labels)


def save_reference(path: Path, reference: Reference) -> None:
    arrays = {}
    for batch, (inputs, outputs) in reference.batches.items():
        arrays[f"batch/{batch}/{INPUT_NAME}"], arrays[f"batch/{batch}/{OUTPUT_NAME}"] = inputs, outputs
    if reference.digits is not None:
        arrays["digits/x"], arrays["digits/labels"], arrays["digits/logits"] = reference.digits
    np.savez(path, **arrays)


def load_reference(path: Path) -> Reference:
    """allow_pickle=False: a reference file is data, never code."""
    with np.load(path, allow_pickle=False) as archive:
        arrays = {name: archive[name] for name in archive.files}
    sizes = sorted(int(key.split("/")[1]) for key in arrays if key.startswith("batch/") and key.endswith(INPUT_NAME))
    batches = {b: (arrays[f"batch/{b}/{INPUT_NAME}"], arrays[f"batch/{b}/{OUTPUT_NAME}"]) for b in sizes}
    digits = (arrays["digits/x"], arrays["digits/labels"], arrays["digits/logits"]) if "digits/x" in arrays else None
    return Reference(batches=batches, digits=digits)
