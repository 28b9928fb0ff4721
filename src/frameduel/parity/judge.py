"""Judge two sides' arrays against stated tolerances, and name what differs first (framework-free).

Every figure is a relative difference, each against the scale of the reference values it judges:

- outputs and layer activations: max |a - b| / max |a| of that tensor;
- loss curves: |a - b| / |a| at every step;
- state after training: max |a - b| of a tensor / the largest |a| among tensors of its kind (weights
  and buffers; each optimizer slot: m, v, ...). Not per tensor: a tensor that is mathematically zero
  (the gradient of a key bias, which softmax ignores) holds only rounding noise, and Adam's m and v
  of it are noise of noise;
- the weight round trip (source export -> target import -> target export) must be exact.

Trained state is compared in the weight map's normal form: where one Keras variable stands for
several torch tensors (the LSTM's single bias for torch's b_ih + b_hh), both sides' tensors are
written as that variable would write them back, so (b_ih, b_hh) and (b_ih + b_hh, 0) are the same state.

Findings are ordered so the most specific comes first: a side that did not compute in float64, a
divergent layer (by pass, in execution order), then a state tensor (after step 1 before after training,
optimizer slots before the weights they move), then the round trip, whole outputs and loss curves.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from frameduel.stats import max_rel_diff
from frameduel.workloads.weight_layouts import LAYOUTS


@dataclass(frozen=True)
class Tolerances:
    forward: float  # eval-mode outputs (fresh, stressed and after training)
    activation: float  # each layer's output
    loss: float  # every step of every loss curve
    state: float  # every weight, buffer and optimizer slot after training
    weights: float = 0.0  # the round trip is a copy

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


# Measured on this project's five workloads at tiny size (README, "Parity"): float64 sides agree to
# ~1e-13 or better, so 1e-9 leaves four orders of margin and still catches a 1e-8 deviation. fp32
# sides agree to ~1e-6; 1e-4 is the fp32 line's bound.
TOLERANCES = {
    "fp64": Tolerances(forward=1e-9, activation=1e-9, loss=1e-9, state=1e-9),
    "fp32": Tolerances(forward=1e-4, activation=1e-4, loss=1e-4, state=1e-4),
}
# A compiled mode against the same framework's eager mode, fp32: kernels may fuse and reorder sums.
MODE_TOLERANCES = Tolerances(forward=1e-4, activation=1e-4, loss=1e-4, state=1e-4)

# (array prefix, label) of the passes whose layers are compared, in the order they are searched.
LAYER_PASSES = (("eval", "eval"), ("sgd", "train step"), ("stress", "stressed"),
                ("stress-sgd", "stressed train step"))
TRAIN_PASSES = ("sgd", "adam", "stress-sgd")  # loss curves and state after training
# States compared, the first step's before the last: after one step an optimizer difference still
# sits in the slot it enters (a different beta2 moves only v, a different beta1 only m).
STATES = ("sgd-step1", "adam-step1", *TRAIN_PASSES)
OUTPUTS = (("eval/output", "forward"), ("stress/output", "forward, stressed"),
           ("sgd/eval_output", "sgd: eval after training"), ("adam/eval_output", "adam: eval after training"))

Arrays = dict[str, np.ndarray]


@dataclass(frozen=True)
class LayerDiff:
    name: str  # torch module name
    shape: tuple[int, ...]
    max_abs: float
    rel: float  # max_abs / max |reference activation|
    ok: bool


@dataclass(frozen=True)
class Finding:
    """One thing over tolerance, named: a layer, a tensor, an output or a curve."""

    check: str  # layer, state, weights, output, loss
    name: str  # e.g. "body.1", "adam/slots/head.weight/v", "forward", "sgd loss"
    where: str  # the pass or step, e.g. "stressed", "step 3"
    rel: float
    tolerance: float

    def line(self) -> str:
        where = f" ({self.where})" if self.where else ""
        return f"{self.check} {self.name}{where}: {self.rel:.2e} > {self.tolerance:g}"

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "rel": finite(self.rel), "line": self.line()}


@dataclass
class Judgement:
    """Two sides compared at one precision: figures (label -> (worst, tolerance)), layers, findings."""

    precision: str
    tolerances: Tolerances
    figures: dict[str, tuple[float, float]] = field(default_factory=dict)
    layers: dict[str, list[LayerDiff]] = field(default_factory=dict)  # pass label -> execution order
    findings: list[Finding] = field(default_factory=list)
    loss_curves: dict[str, tuple[list[float], list[float]]] = field(default_factory=dict)  # reference, other

    @property
    def passed(self) -> bool:
        return not self.findings

    def to_dict(self) -> dict[str, Any]:
        return {"precision": self.precision, "tolerances": self.tolerances.to_dict(), "passed": self.passed,
                "figures": {label: {"rel": finite(rel), "tolerance": tol}
                            for label, (rel, tol) in self.figures.items()},
                "layers": {label: [{**asdict(layer), "max_abs": finite(layer.max_abs), "rel": finite(layer.rel)}
                                   for layer in layers] for label, layers in self.layers.items()},
                "findings": [finding.to_dict() for finding in self.findings],
                "loss_curves": {name: {"reference": a, "other": b} for name, (a, b) in self.loss_curves.items()}}


def finite(value: float) -> float | None:
    """JSON has no infinity: a figure that cannot be computed (a tensor on one side only) is null."""
    return value if math.isfinite(value) else None


SharedWeights = list[tuple[list[str], str]]  # torch names one Keras variable holds, and their layout


def judge(precision: str, reference: Arrays, other: Arrays, torch_order: list[str],
          shared: SharedWeights = ()) -> Judgement:
    """Compare `other` with `reference` (the source side); torch_order lists every array name in the
    torch side's order (layers in execution order, tensors in state_dict order)."""
    result = Judgement(precision, TOLERANCES[precision])
    judge_dtype(result, reference, other)
    judge_counts(result, reference, other)
    for prefix in STATES:
        reference, other = (normal_form(arrays, f"{prefix}/weights/", shared) for arrays in (reference, other))
    for prefix, label in LAYER_PASSES:
        judge_layers(result, reference, other, prefix, label, torch_order)
    for prefix in STATES:
        if any(key.startswith(f"{prefix}/weights/") for key in reference):
            judge_state(result, reference, other, prefix, torch_order)
    judge_round_trip(result, reference, other)
    for key, label in OUTPUTS:
        judge_output(result, reference, other, key, label, result.tolerances.forward)
    for prefix in TRAIN_PASSES:
        judge_loss(result, reference, other, prefix)
    return result


def normal_form(arrays: Arrays, prefix: str, shared: SharedWeights) -> Arrays:
    """The tensors under prefix as the weight map writes them back (see the module docstring)."""
    normal = dict(arrays)
    for names, layout in shared:
        keys = [prefix + name for name in names]
        if all(key in arrays for key in keys):
            values = LAYOUTS[layout].to_canonical(LAYOUTS[layout].from_canonical(*(arrays[key] for key in keys)))
            normal.update(zip(keys, values, strict=True))
    return normal


def judge_layers(result: Judgement, reference: Arrays, other: Arrays, prefix: str, label: str,
                 torch_order: list[str]) -> None:
    marker = f"{prefix}/act/"
    names = [key for key in torch_order if key.startswith(marker) and key in reference and key in other]
    tolerance = result.tolerances.activation
    layers = []
    for key in names:
        max_abs, rel = max_rel_diff(reference[key], other[key])
        layers.append(LayerDiff(key.removeprefix(marker), tuple(reference[key].shape), max_abs, rel, rel <= tolerance))
    result.layers[label] = layers
    result.figures[f"layers, {label}"] = (max((layer.rel for layer in layers), default=0.0), tolerance)
    first = next((layer for layer in layers if not layer.ok), None)
    if first is not None:
        result.findings.append(Finding("layer", first.name, label, first.rel, tolerance))


def judge_state(result: Judgement, reference: Arrays, other: Arrays, prefix: str, torch_order: list[str]) -> None:
    """Every weight, buffer and optimizer slot after training; a tensor on one side only fails by name."""
    tolerance = result.tolerances.state
    steps = "step 1" if prefix.endswith("-step1") else "training"
    keys = state_keys(reference, other, prefix, torch_order)
    scales: dict[str, float] = {}
    for key in keys:
        if key in reference:
            scales[state_kind(key)] = max(scales.get(state_kind(key), 0.0), float(np.max(np.abs(reference[key]))))
    worst, first = 0.0, None
    for key in keys:
        if key not in reference or key not in other or reference[key].shape != other[key].shape:
            rel = math.inf
        else:
            rel = max_rel_diff(reference[key], other[key])[0] / (scales[state_kind(key)] or 1.0)
        worst = max(worst, rel)
        if rel > tolerance and first is None:
            side = "" if key in reference and key in other else (" only on the source side" if key in reference
                                                                  else " only on the target side")
            first = Finding("state", key + side, f"after {steps}", rel, tolerance)
    result.figures[f"{prefix.removesuffix('-step1')}: state after {steps}"] = (worst, tolerance)
    if first is not None:
        result.findings.append(first)


def state_keys(reference: Arrays, other: Arrays, prefix: str, torch_order: list[str]) -> list[str]:
    """Slots first (an optimizer difference shows there before it moves the weights), then weights,
    each in torch's order; a step count is compared only where both optimizers keep one (Keras' SGD
    counts steps, torch's does not)."""
    slots, weights = f"{prefix}/slots/", f"{prefix}/weights/"
    present = set(reference) | set(other)
    ordered = [k for k in torch_order if k in present] + sorted(present - set(torch_order))
    step = f"{slots}step"
    if not (step in reference and step in other):
        ordered = [k for k in ordered if k != step]
    return [k for k in ordered if k.startswith(slots)] + [k for k in ordered if k.startswith(weights)]


def state_kind(key: str) -> str:
    """'adam/slots/head.weight/v' -> 'adam/slots/v'; 'adam/weights/head.weight' -> 'adam/weights'."""
    prefix, kind, rest = key.split("/", 2)
    return f"{prefix}/{kind}/{rest.rsplit('/', 1)[-1]}" if kind == "slots" else f"{prefix}/{kind}"


def judge_round_trip(result: Judgement, reference: Arrays, other: Arrays) -> None:
    marker = "roundtrip/weights/"
    names = sorted({k for k in reference if k.startswith(marker)} | {k for k in other if k.startswith(marker)})
    worst, first = 0.0, None
    for key in names:
        diff = max_rel_diff(reference[key], other[key])[0] if key in reference and key in other else math.inf
        worst = max(worst, diff)
        if diff > result.tolerances.weights and first is None:
            first = Finding("weights", key.removeprefix(marker), "round trip", diff, result.tolerances.weights)
    result.figures["weights round trip (max abs)"] = (worst, result.tolerances.weights)
    if first is not None:
        result.findings.append(first)


def judge_counts(result: Judgement, reference: Arrays, other: Arrays) -> None:
    """The same model trains the same parameters: counts must be equal (a LoRA side that left a base
    weight trainable, or adapted one module more, differs here before any number moves)."""
    key = "params/trainable"
    if key in reference and key in other and int(reference[key][0]) != int(other[key][0]):
        where = f"{int(reference[key][0])} on the source side, {int(other[key][0])} on the target side"
        result.findings.append(Finding("parameters", "trainable", where, math.inf, 0.0))


def judge_dtype(result: Judgement, reference: Arrays, other: Arrays) -> None:
    """A float64 proof needs both sides to compute in float64: a layer pinned to float32 cannot prove it."""
    if result.precision != "fp64":
        return
    for side, arrays in (("source", reference), ("target", other)):
        dtype = arrays["eval/output"].dtype if "eval/output" in arrays else None
        if dtype is not None and dtype != np.float64:
            result.findings.append(Finding("dtype", "forward", f"the {side} side computed {dtype}, not float64: "
                                           "does a layer pin its dtype?", math.inf, 0.0))


def judge_output(result: Judgement, reference: Arrays, other: Arrays, key: str, label: str, tolerance: float) -> None:
    rel = max_rel_diff(reference[key], other[key])[1] if key in reference and key in other else math.inf
    result.figures[label] = (rel, tolerance)
    if rel > tolerance:
        result.findings.append(Finding("output", label, "", rel, tolerance))


def judge_loss(result: Judgement, reference: Arrays, other: Arrays, prefix: str) -> None:
    a, b = reference[f"{prefix}/loss"], other[f"{prefix}/loss"]
    rel = np.abs(a - b) / np.maximum(np.abs(a), 1e-300) if a.shape == b.shape else np.array([math.inf])
    tolerance = result.tolerances.loss
    result.figures[f"{prefix}: loss curve ({len(a)} steps)"] = (float(np.max(rel)), tolerance)
    result.loss_curves[prefix] = (a.tolist(), b.tolist())
    over = np.flatnonzero(rel > tolerance)
    if over.size:
        result.findings.append(Finding("loss", f"{prefix} loss", f"step {over[0] + 1}", float(rel[over[0]]), tolerance))
