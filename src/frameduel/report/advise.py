"""`frameduel advise`: a recommendation per scenario, from this run's measurements plus documented facts.

Each criterion gives each framework the run measured (torch and tf; Keras 3 on torch or JAX where the
run has them) a share of one point: measured criteria split it by the speed (or memory, or
compile-time) ratios of the frameworks' best cells, but only where a ratio's CI clears the noise band;
otherwise those frameworks count as even. Ecosystem criteria are documented facts, not measurements,
and say so. A scenario weighs the criteria (SCENARIO_WEIGHTS, the one table to edit); a winner (which
may be "Keras 3 on JAX") is named only when its weighted share beats the next one's by more than
DECISIVE_MARGIN.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

from frameduel.analysis.compare import summarize_stored_run
from frameduel.analysis.evidence import (
    EDGE_FORMATS,
    Evidence,
    Figures,
    best_artefact_latency,
    best_served_throughput,
    export_success,
    geometric_mean,
    load_evidence,
    pair_figures,
    served_generation,
)
from frameduel.analysis.summary import NOISE_BAND, CellSummary, RunSummary, group_label
from frameduel.spec import FRAMEWORK_INFO, FRAMEWORKS, NATIVE_FRAMEWORKS, check_choice
from frameduel.stats import NOISE_THRESHOLD
from frameduel.store import Store

# criterion -> weight, per scenario. Weights of criteria without evidence in a run are dropped and
# the rest renormalised. "deployed latency", "edge latency", "edge size", "edge memory", "export success",
# "served throughput" and "served generation" come from `frameduel export` / `frameduel loadtest [--llm]` results
# of the run's workloads (analysis/evidence.py); the edge ones weigh toolchain against toolchain where fair edge
# pairs exist.
SCENARIO_WEIGHTS: dict[str, dict[str, float]] = {
    "research": {"training speed": 0.35, "compile cost": 0.15, "memory": 0.10, "research ecosystem": 0.40},
    "serving": {"inference latency": 0.20, "inference throughput": 0.15, "memory": 0.10, "deployed latency": 0.10,
                "served throughput": 0.10, "serving ecosystem": 0.35},
    "edge": {"inference latency": 0.10, "memory": 0.15, "edge latency": 0.15, "edge size": 0.05, "edge memory": 0.05,
             "export success": 0.10, "edge ecosystem": 0.40},
    # Fine-tuning an open-weight model is LoRA far more often than a full fine-tune: it weighs more. Serving
    # many users at once (continuous batching) is what most deployed LLMs do: it weighs as much as one stream.
    "llm": {"generation speed": 0.20, "served generation": 0.20, "fine-tuning speed": 0.15, "fine-tuning memory": 0.10,
            "training speed": 0.05, "memory": 0.05, "llm ecosystem": 0.25},
    "training": {"training speed": 0.60, "compile cost": 0.20, "memory": 0.20},
}
DECISIVE_MARGIN = 0.05  # weighted shares closer than this are a tie

# Documented ecosystem facts, not measured by frameduel (revisit as they age): each framework's strength
# on a 0-1 scale; a criterion's shares are the strengths of the frameworks in the run, normalised. With
# torch and tf alone, torch's share is its strength (the two add up to 1). Keras 3 on torch or JAX keeps
# the Keras model (and KerasHub's) but leaves TF's deployment tools and PyTorch's own training libraries.
# What each ecosystem criterion rests on; each framework's share of it is in the registry
# (spec.FrameworkInfo.ecosystem), so a new framework brings its own.
ECOSYSTEM_TEXTS: dict[str, str] = {
    "research ecosystem": "most new ML research code and papers ship PyTorch implementations; JAX is the other "
                          "research stack (Google, DeepMind), which Keras 3 on JAX reaches",
    "serving ecosystem": "TF Serving is mature with batching and versioning; TorchServe is in limited maintenance, "
                         "but Triton and the KServe v2 protocol serve both (ONNX/TorchScript); a Keras model on "
                         "torch or JAX exports through torch.export/ONNX or jax2tf, less travelled routes",
    "edge ecosystem": "TFLite/LiteRT is the most deployed on-device runtime (Android, microcontrollers); PyTorch's "
                      "ExecuTorch is newer; Keras on other backends reaches LiteRT only through a TF export",
    "llm ecosystem": "Hugging Face Transformers, PEFT and TRL are PyTorch-first and TF support was deprecated in "
                     "Transformers; Keras 3 has LoRA built in (enable_lora) and KerasHub ships Llama/Gemma on every "
                     "backend, but open checkpoints and adapters are published in PyTorch's layout",
}


def ecosystem_facts() -> dict[str, tuple[dict[str, float], str]]:
    """criterion -> (framework -> share, the documented reason), from the registry."""
    return {name: ({fw: dict(info.ecosystem)[name] for fw, info in FRAMEWORK_INFO.items() if info.ecosystem}, text)
            for name, text in ECOSYSTEM_TEXTS.items()}


@dataclass(frozen=True)
class Criterion:
    name: str
    shares: dict[str, float]  # framework -> its share of one point
    evidence: str
    measured: bool

    @property
    def torch_share(self) -> float:
        return self.shares.get("torch", 0.0)


@dataclass(frozen=True)
class Advice:
    scenario: str
    winner: str | None  # a framework; None: no meaningful difference
    scores: dict[str, float]  # framework -> weighted share; they add up to 1
    criteria: list[tuple[Criterion, float]]  # with the normalised weight used
    notes: list[str] = field(default_factory=list)  # parity status of the run's workloads

    @property
    def winner_label(self) -> str:
        """'Keras 3 on JAX (keras-jax)', or 'no meaningful difference'."""
        if self.winner is None:
            return "no meaningful difference"
        return f"{FRAMEWORK_INFO[self.winner].label} ({self.winner})"

    def to_dict(self) -> dict[str, object]:
        return {"scenario": self.scenario, "winner": self.winner, "winner_label": self.winner_label,
                "scores": self.scores, "notes": self.notes,
                "criteria": [{"name": c.name, "weight": w, "shares": c.shares, "evidence": c.evidence,
                              "measured": c.measured} for c, w in self.criteria]}


def best(cells: list[CellSummary], framework: str, key: Callable[[CellSummary], float | None]) -> float | None:
    values = [key(c) for c in cells if c.spec.framework == framework and c.step is not None]
    values = [v for v in values if v is not None]
    return min(values) if values else None


def contenders(summary: RunSummary) -> list[str]:
    """The frameworks the run measured, in display order."""
    measured = {cell.spec.framework for cell in summary.cells if cell.step is not None}
    return [fw for fw in FRAMEWORKS if fw in measured]


def normalised(strengths: dict[str, float]) -> dict[str, float]:
    total = sum(strengths.values())
    return {fw: value / total for fw, value in strengths.items()}


def ratio_criterion(name: str, summary: RunSummary, selects: Callable[[CellSummary], bool],
                    cost: Callable[[CellSummary], float | None], unit: str) -> Criterion | None:
    """Lower cost is better. Per group (those where every contender has a cost), each framework's strength
    is the cheapest cost over its own (1 for the cheapest); a time whose best-vs-best speedup against the
    cheapest sits inside the noise band counts as even (1). Shares: the geometric mean of the strengths
    over groups, normalised. With two frameworks: torch's share is tf_cost / (tf_cost + torch_cost)."""
    frameworks = contenders(summary)
    strengths: dict[str, list[float]] = {fw: [] for fw in frameworks}
    lines = []
    for group, cells in summary.measured_groups().items():
        chosen = [c for c in cells if selects(c)]
        costs = {fw: best(chosen, fw, cost) for fw in frameworks}
        if len(frameworks) < 2 or not all(costs.values()):
            continue
        cheapest = min(costs, key=costs.get)
        timed = name not in ("memory", "fine-tuning memory", "compile cost")
        notes = []
        for fw in frameworks:
            even = timed and fw != cheapest and within_noise(summary, group, fw, cheapest)
            strengths[fw].append(1.0 if even else costs[cheapest] / costs[fw])
            unstable = instability(summary, group) if even else ""
            notes.append(f"{fw} {cost_text(costs[fw], unit)}"
                         + (f" (inconclusive: {unstable})" if unstable else " (within noise)" if even else ""))
        lines.append(f"{group_label(chosen[0])}: " + " vs ".join(notes))
    if not lines:
        return None
    means = {fw: math.exp(sum(math.log(x) for x in values) / len(values)) for fw, values in strengths.items()}
    return Criterion(name, normalised(means), "; ".join(lines), measured=True)


def cost_text(value: float, unit: str) -> str:
    """Times per step, request or generation in ms ('0.271 ms/request'); other units as they are."""
    if unit.startswith("s/"):
        return f"{value * 1e3:.3g} ms/{unit[2:]}"
    return f"{value:.3g} {unit}"


def within_noise(summary: RunSummary, group: str, framework: str, other: str) -> bool:
    """Whether the two frameworks' best cells of the group are within the noise band of each other."""
    ratio = summary.best_pair(group, framework, other)
    return ratio is not None and ratio.ci.low <= 1 + NOISE_BAND and ratio.ci.high >= 1 / (1 + NOISE_BAND)


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
    return Criterion(name, {"torch": r / (1 + r), "tf": 1 / (1 + r)}, "; ".join(lines), measured=True)


def edge_criteria(exports: list[dict]) -> dict[str, Criterion | None]:
    """The edge scenario's toolchain criteria. Where fair edge pairs exist (export/pairs.py: one set of weights
    through ExecuTorch and through LiteRT) they decide, ExecuTorch's figures counting for torch and LiteRT's
    for tf; otherwise edge latency is each source framework's best edge artefact (a torch model's TFLite,
    converted through its Keras twin, then counts for torch)."""
    latency = pair_figures(exports, lambda side: side.p50_ms) or best_artefact_latency(exports, EDGE_FORMATS)
    # RSS moves by allocator pages and heap growth: its spread is taken as the noise threshold, 1 MB at least.
    memory = pair_figures(exports, lambda side: side.artefact_rss_mb, noise=NOISE_THRESHOLD, floor=1.0)
    return {
        "edge latency": figures_criterion("edge latency", latency, "ms p50 batch 1", higher_is_better=False),
        "edge size": figures_criterion("edge size", pair_figures(exports, lambda side: side.size_bytes, noise=0.0),
                                       "bytes", higher_is_better=False),
        "edge memory": figures_criterion("edge memory", memory, "MB RSS added by the artefact",
                                         higher_is_better=False),
    }


def deployment_criteria(evidence: Evidence) -> dict[str, Criterion]:
    """Criteria from stored export and load-test results, where both frameworks have some."""
    found = {
        "deployed latency": figures_criterion("deployed latency", best_artefact_latency(evidence.exports),
                                              "ms p50 batch 1", higher_is_better=False),
        **edge_criteria(evidence.exports),
        "served throughput": figures_criterion("served throughput", best_served_throughput(evidence.loadtests),
                                               "samples/s served", higher_is_better=True),
        "served generation": figures_criterion("served generation", served_generation(evidence.llm_loadtests),
                                               "output tok/s, continuous batching", higher_is_better=True),
    }
    success = export_success(evidence.exports)
    if "torch" in success and "tf" in success:
        rates = {fw: valid / attempted for fw, (valid, attempted) in success.items()}
        total = rates["torch"] + rates["tf"]
        torch_share = rates["torch"] / total if total else 0.5
        found["export success"] = Criterion(
            "export success", {"torch": torch_share, "tf": 1 - torch_share},
            "; ".join(f"{fw}: {valid} of {attempted} artefacts valid" for fw, (valid, attempted) in success.items()),
            measured=True)
    return {name: criterion for name, criterion in found.items() if criterion is not None}


def advise(summary: RunSummary, scenario: str, evidence: Evidence | None = None) -> Advice:
    """The scenario's weighted shares for every framework the run measured. A criterion counts only where
    it covers them all: export and serving results exist for torch and tf only, so a run with Keras'
    other backends is advised on its measured cells and the documented facts."""
    evidence = evidence or Evidence()
    frameworks = contenders(summary) or list(NATIVE_FRAMEWORKS)
    available = measured_criteria(summary)
    available.update(deployment_criteria(evidence))
    # a framework without documented shares (a new one) leaves these criteria out instead of failing
    available.update({name: Criterion(name, normalised({fw: strengths[fw] for fw in frameworks if fw in strengths}),
                                      f"documented fact: {text}", measured=False)
                      for name, (strengths, text) in ecosystem_facts().items()})
    available = {name: c for name, c in available.items() if set(c.shares) == set(frameworks)}
    weights = {name: w for name, w in SCENARIO_WEIGHTS[scenario].items() if name in available}
    total = sum(weights.values())
    used = [(available[name], w / total) for name, w in weights.items()]
    scores = {fw: sum(c.shares[fw] * w for c, w in used) for fw in frameworks}
    ranked = sorted(scores, key=scores.get, reverse=True)
    winner = ranked[0] if len(ranked) > 1 and scores[ranked[0]] - scores[ranked[1]] > DECISIVE_MARGIN else None
    notes = evidence.parity_notes(summary.workloads)
    return Advice(scenario, winner, scores, used, notes)


def advise_stored_run(store: Store, run_id: str, scenario: str) -> Advice:
    """advise() for a stored run, with the parity, export and serving evidence of its workloads."""
    check_choice("scenario", scenario, tuple(SCENARIO_WEIGHTS))
    _, summary = summarize_stored_run(store, run_id)
    return advise(summary, scenario, load_evidence(store, summary.workloads))
