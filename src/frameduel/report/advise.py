"""`frameduel advise`: a recommendation per scenario, from this run's measurements plus documented facts.

Each criterion gives each framework a share of one point: measured criteria split it by the speed
(or memory, or compile-time) ratio of the frameworks' best cells — but only where that ratio's CI
clears the noise band; otherwise it is split evenly. Ecosystem criteria are documented facts, not
measurements, and say so. A scenario weighs the criteria (SCENARIO_WEIGHTS, the one table to edit);
a winner is named only when its weighted share beats the other's by more than DECISIVE_MARGIN.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

from frameduel.report.evidence import (
    EDGE_FORMATS,
    Evidence,
    Figures,
    best_artefact_latency,
    best_served_throughput,
    export_success,
    geometric_mean,
)
from frameduel.report.summary import NOISE_BAND, CellSummary, RunSummary, group_label

# criterion -> weight, per scenario. Weights of criteria without evidence in a run are dropped and
# the rest renormalised. "deployed latency", "edge latency", "export success" and "served throughput"
# come from `frameduel export` / `frameduel loadtest` results of the run's workloads (report/evidence.py).
SCENARIO_WEIGHTS: dict[str, dict[str, float]] = {
    "research": {"training speed": 0.35, "compile cost": 0.15, "memory": 0.10, "research ecosystem": 0.40},
    "serving": {"inference latency": 0.20, "inference throughput": 0.15, "memory": 0.10, "deployed latency": 0.10,
                "served throughput": 0.10, "serving ecosystem": 0.35},
    "edge": {"inference latency": 0.15, "memory": 0.20, "edge latency": 0.15, "export success": 0.10,
             "edge ecosystem": 0.40},
    # Fine-tuning an open-weight model is LoRA far more often than a full fine-tune: it weighs more.
    "llm": {"generation speed": 0.30, "fine-tuning speed": 0.20, "fine-tuning memory": 0.10, "training speed": 0.10,
            "memory": 0.05, "llm ecosystem": 0.25},
    "training": {"training speed": 0.60, "compile cost": 0.20, "memory": 0.20},
}
DECISIVE_MARGIN = 0.05  # weighted shares closer than this are a tie

# Documented ecosystem facts (torch share, statement). Not measured by frameduel; revisit as they age.
ECOSYSTEM_FACTS: dict[str, tuple[float, str]] = {
    "research ecosystem": (0.7, "most new ML research code and papers ship PyTorch implementations"),
    "serving ecosystem": (0.4, "TF Serving is mature with batching and versioning; TorchServe is in limited "
                               "maintenance, but Triton and the KServe v2 protocol serve both (ONNX/TorchScript)"),
    "edge ecosystem": (0.35, "TFLite/LiteRT is the most deployed on-device runtime (Android, microcontrollers); "
                             "PyTorch's ExecuTorch is newer"),
    "llm ecosystem": (0.8, "Hugging Face Transformers, PEFT and TRL are PyTorch-first and TF support was "
                           "deprecated in Transformers; Keras 3 has LoRA built in (enable_lora) and KerasHub ships "
                           "Llama/Gemma, but open checkpoints and adapters are published in PyTorch's layout"),
}


@dataclass(frozen=True)
class Criterion:
    name: str
    torch_share: float  # of one point; tf gets the rest
    evidence: str
    measured: bool


@dataclass(frozen=True)
class Advice:
    scenario: str
    winner: str | None  # None: no meaningful difference
    torch_score: float
    tf_score: float
    criteria: list[tuple[Criterion, float]]  # with the normalised weight used
    notes: list[str] = field(default_factory=list)  # parity status of the run's workloads

    def to_dict(self) -> dict[str, object]:
        return {"scenario": self.scenario, "winner": self.winner, "torch_score": self.torch_score,
                "tf_score": self.tf_score, "notes": self.notes,
                "criteria": [{"name": c.name, "weight": w, "torch_share": c.torch_share, "evidence": c.evidence,
                              "measured": c.measured} for c, w in self.criteria]}


def best(cells: list[CellSummary], framework: str, key: Callable[[CellSummary], float | None]) -> float | None:
    values = [key(c) for c in cells if c.spec.framework == framework and c.step is not None]
    values = [v for v in values if v is not None]
    return min(values) if values else None


def ratio_criterion(name: str, summary: RunSummary, selects: Callable[[CellSummary], bool],
                    cost: Callable[[CellSummary], float | None], unit: str) -> Criterion | None:
    """Lower cost is better. The torch share is tf_cost / (tf_cost + torch_cost), geometric mean over
    groups; a group whose best-vs-best speedup CI sits inside the noise band counts as even."""
    ratios, lines = [], []
    for group, cells in summary.measured_groups().items():
        chosen = [c for c in cells if selects(c)]
        torch_cost, tf_cost = best(chosen, "torch", cost), best(chosen, "tf", cost)
        if not torch_cost or not tf_cost:
            continue
        even = name not in ("memory", "fine-tuning memory", "compile cost") and within_noise(summary, group)
        ratios.append(1.0 if even else tf_cost / torch_cost)
        unstable = instability(summary, group) if even else ""
        note = f" (inconclusive: {unstable})" if unstable else " (within noise)" if even else ""
        lines.append(f"{group_label(chosen[0])}: torch {cost_text(torch_cost, unit)} vs tf "
                     f"{cost_text(tf_cost, unit)}{note}")
    if not ratios:
        return None
    r = math.exp(sum(math.log(x) for x in ratios) / len(ratios))  # >1: torch cheaper
    return Criterion(name, r / (1 + r), "; ".join(lines), measured=True)


def cost_text(value: float, unit: str) -> str:
    """Times per step, request or generation in ms ('0.271 ms/request'); other units as they are."""
    if unit.startswith("s/"):
        return f"{value * 1e3:.3g} ms/{unit[2:]}"
    return f"{value:.3g} {unit}"


def within_noise(summary: RunSummary, group: str) -> bool:
    headline = [r for r in summary.headline if r.group == group]
    return bool(headline) and headline[0].ci.low <= 1 + NOISE_BAND and headline[0].ci.high >= 1 / (1 + NOISE_BAND)


def instability(summary: RunSummary, group: str) -> str:
    """'' when the group's cells are stable across processes, else which cells' processes disagree."""
    unstable = [cell for cell in summary.measured_groups().get(group, []) if cell.unstable]
    return "; ".join(f"{cell.spec.framework} {cell.spec.mode} processes {cell.spread:.0%} apart" for cell in unstable)


def median_step(cell: CellSummary) -> float | None:
    return cell.step.median if cell.step else None


def measured_criteria(summary: RunSummary) -> dict[str, Criterion]:
    step = median_step
    specs = {
        "training speed": (lambda c: c.spec.task == "train", step, "s/step"),
        "inference latency": (lambda c: c.spec.task == "infer" and c.spec.batch_size == 1, step, "s/request"),
        "inference throughput": (lambda c: c.spec.task == "infer" and c.spec.batch_size > 1, step, "s/batch"),
        "generation speed": (lambda c: c.spec.task == "generate", step, "s/generation"),
        "fine-tuning speed": (lambda c: c.spec.task == "finetune", step, "s/step"),
        "fine-tuning memory": (lambda c: c.spec.task == "finetune", lambda c: c.peak_rss_mb, "MB peak"),
        "compile cost": (lambda c: c.spec.mode != "eager", lambda c: c.compile_s or None, "s compile"),
        "memory": (lambda c: True, lambda c: c.peak_rss_mb, "MB peak"),
    }
    found = {name: ratio_criterion(name, summary, *spec) for name, spec in specs.items()}
    return {name: criterion for name, criterion in found.items() if criterion is not None}


def figures_criterion(name: str, figures: Figures, unit: str, higher_is_better: bool) -> Criterion | None:
    """Per workload, torch's figure against tf's (geometric mean). A gap inside the noise band, or inside
    either figure's own spread (IQR/median), counts as even: these are single measurements, not CIs."""
    ratios, lines = [], []
    for workload, by_framework in sorted(figures.items()):
        if "torch" not in by_framework or "tf" not in by_framework:
            continue
        torch_fig, tf_fig = by_framework["torch"], by_framework["tf"]
        ratio = torch_fig.value / tf_fig.value if higher_is_better else tf_fig.value / torch_fig.value  # >1: torch
        even = abs(math.log(ratio)) < math.log(1 + max(NOISE_BAND, torch_fig.noise, tf_fig.noise))
        ratios.append(1.0 if even else ratio)
        lines.append(f"{workload}: torch {torch_fig.value:.3g} ({torch_fig.source}) vs tf {tf_fig.value:.3g} "
                     f"({tf_fig.source}) {unit}" + (" (within noise)" if even else ""))
    if not ratios:
        return None
    r = geometric_mean(ratios)
    return Criterion(name, r / (1 + r), "; ".join(lines), measured=True)


def deployment_criteria(evidence: Evidence) -> dict[str, Criterion]:
    """Criteria from stored export and load-test results, where both frameworks have some."""
    found = {
        "deployed latency": figures_criterion("deployed latency", best_artefact_latency(evidence.exports),
                                              "ms p50 batch 1", higher_is_better=False),
        "edge latency": figures_criterion("edge latency", best_artefact_latency(evidence.exports, EDGE_FORMATS),
                                          "ms p50 batch 1", higher_is_better=False),
        "served throughput": figures_criterion("served throughput", best_served_throughput(evidence.loadtests),
                                               "samples/s served", higher_is_better=True),
    }
    success = export_success(evidence.exports)
    if "torch" in success and "tf" in success:
        rates = {fw: valid / attempted for fw, (valid, attempted) in success.items()}
        total = rates["torch"] + rates["tf"]
        found["export success"] = Criterion(
            "export success", rates["torch"] / total if total else 0.5,
            "; ".join(f"{fw}: {valid} of {attempted} artefacts valid" for fw, (valid, attempted) in success.items()),
            measured=True)
    return {name: criterion for name, criterion in found.items() if criterion is not None}


def advise(summary: RunSummary, scenario: str, evidence: Evidence | None = None) -> Advice:
    evidence = evidence or Evidence()
    available = measured_criteria(summary)
    available.update(deployment_criteria(evidence))
    available.update({name: Criterion(name, share, f"documented fact: {text}", measured=False)
                      for name, (share, text) in ECOSYSTEM_FACTS.items()})
    weights = {name: w for name, w in SCENARIO_WEIGHTS[scenario].items() if name in available}
    total = sum(weights.values())
    used = [(available[name], w / total) for name, w in weights.items()]
    torch_score = sum(c.torch_share * w for c, w in used)
    tf_score = 1.0 - torch_score
    winner = None
    if abs(torch_score - tf_score) > DECISIVE_MARGIN:
        winner = "torch" if torch_score > tf_score else "tf"
    notes = evidence.parity_notes(summary.workloads)
    return Advice(scenario, winner, torch_score, tf_score, used, notes)
