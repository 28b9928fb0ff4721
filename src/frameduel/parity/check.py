"""Run both sides of a parity check and judge them against stated tolerances.

Direction torch -> tf: the torch worker initialises the model and exports its weights; the tf worker
builds its own model, loads those weights through the workload's weight map, and both compute the
same forward pass, activations and training-loss curves. tf -> torch is the mirror image.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from frameduel.errors import FrameduelError
from frameduel.parity.worker import PARITY_OPTIMIZERS
from frameduel.runner.process import run_job
from frameduel.spec import RunSpec

DIRECTIONS = {"torch-to-tf": ("torch", "tf"), "tf-to-torch": ("tf", "torch")}


@dataclass(frozen=True)
class Tolerances:
    """fp32 tolerances, each relative to the scale of the reference values it judges.

    forward: max |out_a - out_b| / max |out_a| on the evaluation batch.
    loss: max over steps of |loss_a - loss_b| / |loss_a|, for every optimizer, at every step.
    activation: the per-layer threshold the divergence report uses to name the first parting layer.
    weights: the round trip (source export -> target import -> target export) must be exact.
    """

    forward: float = 1e-4
    loss: float = 1e-4
    activation: float = 1e-4
    weights: float = 0.0


@dataclass(frozen=True)
class LayerDiff:
    name: str  # torch module name
    shape: tuple[int, ...]
    max_abs: float
    rel: float  # max_abs / max |reference activation|
    ok: bool


@dataclass
class ParityReport:
    workload: str
    size: str
    source: str
    target: str
    tolerances: Tolerances
    forward_rel: float = float("nan")
    weights_max_abs: float = float("nan")
    loss_source: dict[str, list[float]] = field(default_factory=dict)
    loss_target: dict[str, list[float]] = field(default_factory=dict)
    loss_rel: dict[str, float] = field(default_factory=dict)  # max over steps, per optimizer
    layers: list[LayerDiff] = field(default_factory=list)  # in torch's execution order
    error: str | None = None

    @property
    def first_divergent_layer(self) -> LayerDiff | None:
        return next((layer for layer in self.layers if not layer.ok), None)

    @property
    def forward_ok(self) -> bool:
        return self.forward_rel <= self.tolerances.forward

    @property
    def loss_ok(self) -> bool:
        return bool(self.loss_rel) and all(rel <= self.tolerances.loss for rel in self.loss_rel.values())

    @property
    def weights_ok(self) -> bool:
        return self.weights_max_abs <= self.tolerances.weights

    @property
    def passed(self) -> bool:
        return self.error is None and self.forward_ok and self.loss_ok and self.weights_ok

    def to_dict(self) -> dict[str, Any]:
        first = self.first_divergent_layer
        return {**asdict(self), "passed": self.passed, "forward_ok": self.forward_ok, "loss_ok": self.loss_ok,
                "weights_ok": self.weights_ok, "first_divergent_layer": first.name if first else None}


def max_rel_diff(reference: np.ndarray, other: np.ndarray) -> tuple[float, float]:
    """(max abs difference, that difference relative to the reference's largest magnitude)."""
    if reference.shape != other.shape:
        return float("inf"), float("inf")
    max_abs = float(np.max(np.abs(reference.astype(np.float64) - other))) if reference.size else 0.0
    scale = float(np.max(np.abs(reference))) if reference.size else 0.0
    return max_abs, max_abs / scale if scale > 0 else max_abs


def run_side(spec: RunSpec, steps: int, out_dir: Path, weights_in: Path | None, timeout_s: float) -> dict[str, Any]:
    job = {"spec": spec.to_dict(), "steps": steps, "out_dir": str(out_dir),
           "weights_in": str(weights_in) if weights_in else None}
    outcome = run_job("frameduel.parity.worker", [], json.dumps(job), timeout_s, out_dir)
    if outcome.timed_out:
        return {"status": "timeout", "error": f"{spec.framework} side gave no result within {timeout_s:g}s"}
    manifest_path = out_dir / f"{spec.framework}.json"
    if not manifest_path.exists():
        return {"status": "failed", "error": outcome.death_cause(f"{spec.framework} side")}
    return json.loads(manifest_path.read_text())


def load_side(out_dir: Path, framework: str) -> dict[str, np.ndarray]:
    with np.load(out_dir / f"{framework}.npz", allow_pickle=False) as archive:
        return {name: archive[name] for name in archive.files}


def compare_sides(report: ParityReport, source: dict[str, np.ndarray], target: dict[str, np.ndarray],
                  torch_order: list[str]) -> None:
    """Fill the report's figures from the two sides' arrays (source values are the reference)."""
    _, report.forward_rel = max_rel_diff(source["output"], target["output"])
    weight_names = [name for name in source if name.startswith("weights/")]
    report.weights_max_abs = max(
        (max_rel_diff(source[name], target[name])[0] if name in target else float("inf") for name in weight_names),
        default=float("inf"),
    )
    for optimizer in PARITY_OPTIMIZERS:
        a, b = source[f"loss/{optimizer}"], target[f"loss/{optimizer}"]
        report.loss_source[optimizer], report.loss_target[optimizer] = a.tolist(), b.tolist()
        report.loss_rel[optimizer] = float(np.max(np.abs(a - b) / np.maximum(np.abs(a), 1e-12)))
    for name in torch_order:
        key = f"act/{name}"
        if key in source and key in target:
            max_abs, rel = max_rel_diff(source[key], target[key])
            report.layers.append(LayerDiff(name, tuple(source[key].shape), max_abs, rel,
                                           rel <= report.tolerances.activation))


def check_parity(workload: str, size: str = "tiny", direction: str = "torch-to-tf", steps: int = 10,
                 batch_size: int = 8, seed: int = 0, threads: int = 1, tolerances: Tolerances = Tolerances(),
                 timeout_s: float = 600.0, weights_in: Path | None = None) -> ParityReport:
    """Transfer weights source -> target and compare. `weights_in` replaces the source's own weights
    (e.g. a user's checkpoint, or a deliberately corrupted one in tests)."""
    if direction not in DIRECTIONS:
        raise FrameduelError(f"unknown direction '{direction}'; choose from: {', '.join(DIRECTIONS)}")
    source_fw, target_fw = DIRECTIONS[direction]
    specs = {fw: RunSpec(workload=workload, framework=fw, mode="eager", task="train", size=size,
                         batch_size=batch_size, seed=seed, threads=threads) for fw in DIRECTIONS[direction]}
    report = ParityReport(workload=workload, size=size, source=source_fw, target=target_fw, tolerances=tolerances)
    with tempfile.TemporaryDirectory(prefix="frameduel-parity-") as tmp:
        out_dir = Path(tmp)
        source = run_side(specs[source_fw], steps, out_dir, weights_in, timeout_s)
        target = source if source["status"] != "ok" else run_side(
            specs[target_fw], steps, out_dir, out_dir / f"{source_fw}.npz", timeout_s)
        if source["status"] != "ok" or target["status"] != "ok":
            report.error = (source if source["status"] != "ok" else target)["error"]
            return report
        torch_order = (source if source_fw == "torch" else target)["activation_order"]
        compare_sides(report, load_side(out_dir, source_fw), load_side(out_dir, target_fw), torch_order)
    return report
