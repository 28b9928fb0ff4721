"""Popular claims about the two frameworks, checked against a run's own measurements.

Each claim is tested group by group (a comparison group is workload/size/task/bBATCH/precision/device), with the
run's speedups: baseline step time / candidate step time, so ">1" means the candidate is faster and "speeds up by
30%" means a speedup of 1.30. A group that lacks the cells a claim needs is skipped.

* "torch.compile speeds up training/inference by 30–60%": torch compile vs torch eager, claimed range [1.30, 1.60].
* "XLA speeds up TensorFlow by 15–20%": tf xla vs tf function -- graph mode, not eager, is what XLA adds to -- with
  claimed range [1.15, 1.20]. The summary holds no such ratio, so it is computed from the two cells' samples exactly
  like every other speedup (summary.speedup: ratio of medians with a bootstrap CI).
* "PyTorch has lower overhead on small models": torch best vs tf best (each framework's fastest mode) in the
  small-model groups: the mlp workload, and any batch-1 inference group.

Rules, exactly:

* A range claim classifies each group by its speedup's 95% CI:
  - "in range": the CI overlaps the claimed range and clears the noise band above 1 (Ratio.verdict is "faster");
  - "outside": the CI lies entirely below the range's low end or entirely above its high end;
  - "unclear": neither (a CI wide enough to reach both into the range and into "no meaningful difference").
  It is *supported* when more than half of the groups are in range, *not supported* when more than half are outside,
  and *inconclusive* otherwise. A speedup far above the range does not support "30–60%": the evidence says "above".
* The small-model claim is *supported* when torch best is "faster" in more than half of the small-model groups, *not
  supported* when it is "slower" (tf wins) in more than half, and *inconclusive* otherwise.
* "LoRA is a PyTorch-only story; TensorFlow has no official LoRA library": judged from the finetune cells
  (report/finetuning.py): *not supported* where Keras' built-in LoRA ran in more finetune groups than it failed.
* "With the right backend, Keras 3 outperforms reference PyTorch implementations" (Keras' own benchmark):
  per group with torch and a Keras backend, the fastest Keras backend's best mode (tf is Keras 3 on
  TensorFlow; keras-torch, keras-jax) against torch's best mode: *supported* when Keras is "faster" in
  more than half the groups, *not supported* when torch is.
* "Keras' torch backend is slower than native PyTorch": keras-torch's best mode against torch's best mode
  per group: *supported* when torch is "faster" in more than half, *not supported* when keras-torch is.
* "DDP scales linearly across multiple GPUs": torch's data-parallel scaling rows (report/scaling.py), weak
  scaling where the run has it (the claim's usual sense: the batch per device held), else strong. A row is
  linear when its whole efficiency CI is at 0.9 or more, sublinear when it lies below 0.9, else unclear;
  *supported* when more than half are linear, *not supported* when more than half are sublinear. Judged on
  the hardware present, which the evidence names: worker processes on CPU cores are not GPUs, and the
  verdict says so.
* "TensorFlow's graph compilation can achieve slightly better utilization in multi-GPU training": per
  (workload, scaling, workers), TF's best graph mode (function or xla) against torch's best mode, by
  scaling efficiency: TF better where its CI lies wholly above torch's, torch better where the reverse;
  *supported* when TF is better in more than half, *not supported* when torch is, else *inconclusive*.
* A claim that no group tests is *inconclusive*, with the evidence "no cells in this run test this claim".
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np

from frameduel.analysis.summary import CellSummary, Ratio, RunSummary, speedup
from frameduel.report.finetuning import LORA_CLAIM, check_lora_claim
from frameduel.report.scaling import Scaling, scaling_rows

CLAIM_STATUSES: tuple[str, ...] = ("supported", "not supported", "inconclusive")
NO_EVIDENCE = "no cells in this run test this claim"
SMALL_MODEL_CLAIM = "PyTorch has lower overhead on small models"
SMALL_WORKLOADS: tuple[str, ...] = ("mlp",)  # besides these, every batch-1 inference group counts as small
LINEAR_SCALING_CLAIM = "DDP scales linearly across multiple GPUs"
KERAS_BEST_CLAIM = "With the right backend, Keras 3 outperforms reference PyTorch implementations"
KERAS_TORCH_CLAIM = "Keras' torch backend is slower than native PyTorch"
KERAS_BACKENDS: tuple[str, ...] = ("tf", "keras-torch", "keras-jax")  # "tf" runs the Keras models on TensorFlow
GRAPH_UTILISATION_CLAIM = "TensorFlow's graph compilation can achieve slightly better utilization in multi-GPU training"
GRAPH_MODES: tuple[str, ...] = ("function", "xla")


@dataclass(frozen=True)
class ClaimResult:
    claim: str
    status: str  # one of CLAIM_STATUSES
    evidence: list[str]  # a summary line, then one line per group tested, with its numbers

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class RangeClaim:
    """A claim that framework+mode is low..high times as fast as framework+baseline_mode."""

    text: str
    framework: str
    mode: str
    baseline_mode: str
    low: float
    high: float


RANGE_CLAIMS: tuple[RangeClaim, ...] = (
    RangeClaim("torch.compile speeds up training/inference by 30–60%", "torch", "compile", "eager", 1.30, 1.60),
    RangeClaim("XLA speeds up TensorFlow by 15–20%", "tf", "xla", "function", 1.15, 1.20),
)


def check_claims(summary: RunSummary) -> list[ClaimResult]:
    """Every claim, in a fixed order: the range claims, the small-model claim, the LoRA claim."""
    groups = summary.measured_groups()
    results = [check_range_claim(claim, groups, summary.ratios) for claim in RANGE_CLAIMS]
    results.append(check_small_model_claim(groups, summary.ratios))
    status, evidence = check_lora_claim(summary)
    results.append(ClaimResult(LORA_CLAIM, status, evidence))
    results += [check_keras_best_claim(summary, groups), check_keras_torch_claim(summary, groups)]
    rows = scaling_rows(summary)
    results += [check_linear_scaling_claim(rows), check_graph_utilisation_claim(rows)]
    return results


def keras_against_torch(summary: RunSummary, groups: dict[str, list[CellSummary]], claim: str,
                        keras_frameworks: tuple[str, ...], keras_wins_supports: bool) -> ClaimResult:
    """Per group: the fastest of keras_frameworks (best mode) against torch's best mode."""
    found: list[tuple[str, str, Ratio]] = []
    for group, cells in groups.items():
        keras_best = [cell for fw in keras_frameworks if (cell := best_cell(cells, fw)) is not None]
        if keras_best and best_cell(cells, "torch") is not None:
            fastest = min(keras_best, key=lambda c: c.step.median).spec.framework
            ratio = summary.best_pair(group, fastest, "torch")
            if ratio is not None:
                found.append((group, fastest, ratio))
    if not found:
        return ClaimResult(claim, "inconclusive", [NO_EVIDENCE])
    verdicts = [ratio.verdict for *_, ratio in found]
    keras_wins, torch_wins = verdicts.count("faster"), verdicts.count("slower")
    headline = (f"{'/'.join(keras_frameworks)} (best) vs torch (best): Keras faster in {keras_wins}, torch faster "
                f"in {torch_wins}, no meaningful difference in {len(found) - keras_wins - torch_wins} of {len(found)}")
    lines = [f"{group}: {framework} vs torch {ratio_text(ratio)} {ratio.verdict}" for group, framework, ratio in found]
    supporting, refuting = (keras_wins, torch_wins) if keras_wins_supports else (torch_wins, keras_wins)
    return ClaimResult(claim, majority(supporting, refuting, len(found)), [headline, *lines])


def check_keras_best_claim(summary: RunSummary, groups: dict[str, list[CellSummary]]) -> ClaimResult:
    return keras_against_torch(summary, groups, KERAS_BEST_CLAIM, KERAS_BACKENDS, keras_wins_supports=True)


def check_keras_torch_claim(summary: RunSummary, groups: dict[str, list[CellSummary]]) -> ClaimResult:
    return keras_against_torch(summary, groups, KERAS_TORCH_CLAIM, ("keras-torch",), keras_wins_supports=False)


def cell_of(cells: list[CellSummary], framework: str, mode: str) -> CellSummary | None:
    return next((c for c in cells if c.spec.framework == framework and c.spec.mode == mode), None)


def ratio_between(group: str, candidate: CellSummary, baseline: CellSummary, ratios: list[Ratio]) -> Ratio:
    """The run's own ratio of these two cells; computed the same way when the summary does not hold it."""
    for ratio in ratios:
        if ratio.faster == candidate.spec.key and ratio.baseline == baseline.spec.key:
            return ratio
    label = f"{candidate.spec.framework} {candidate.spec.mode} vs {baseline.spec.framework} {baseline.spec.mode}"
    return speedup(group, label, candidate, baseline)


def ratio_text(ratio: Ratio) -> str:
    # Three decimals, not three digits: the claimed ranges' ends (1.15 vs 1.20) differ in the second.
    return f"{ratio.value:.3f}x [{ratio.ci.low:.3f}, {ratio.ci.high:.3f}]"


def majority(supporting: int, refuting: int, total: int) -> str:
    if 2 * supporting > total:
        return "supported"
    if 2 * refuting > total:
        return "not supported"
    return "inconclusive"


def range_outcome(ratio: Ratio, claim: RangeClaim) -> str:
    if ratio.ci.high < claim.low:
        return "below"
    if ratio.ci.low > claim.high:
        return "above"
    return "in range" if ratio.verdict == "faster" else "unclear"


def check_range_claim(claim: RangeClaim, groups: dict[str, list[CellSummary]], ratios: list[Ratio]) -> ClaimResult:
    found: list[tuple[str, Ratio, str]] = []
    for group, cells in groups.items():
        candidate = cell_of(cells, claim.framework, claim.mode)
        baseline = cell_of(cells, claim.framework, claim.baseline_mode)
        if candidate is not None and baseline is not None:
            ratio = ratio_between(group, candidate, baseline, ratios)
            found.append((group, ratio, range_outcome(ratio, claim)))
    if not found:
        return ClaimResult(claim.text, "inconclusive", [NO_EVIDENCE])
    outcomes = [outcome for _, _, outcome in found]
    inside, outside = outcomes.count("in range"), outcomes.count("below") + outcomes.count("above")
    median = float(np.median([ratio.value for _, ratio, _ in found]))
    headline = (f"{claim.framework} {claim.mode} vs {claim.framework} {claim.baseline_mode}, claimed "
                f"[{claim.low:.2f}, {claim.high:.2f}]x: {inside} of {len(found)} group(s) in range, {outside} "
                f"outside; median speedup {median:.3f}x")
    lines = [f"{group}: {ratio_text(ratio)} {outcome}" for group, ratio, outcome in found]
    return ClaimResult(claim.text, majority(inside, outside, len(found)), [headline, *lines])


def is_small_model_group(cells: list[CellSummary]) -> bool:
    spec = cells[0].spec  # every cell of a group shares workload, task and batch
    return spec.workload in SMALL_WORKLOADS or (spec.task == "infer" and spec.batch_size == 1)


def best_cell(cells: list[CellSummary], framework: str) -> CellSummary | None:
    """The framework's fastest mode in a group, chosen as summary.group_ratios chooses it."""
    own = [c for c in cells if c.spec.framework == framework]
    return min(own, key=lambda c: c.step.median) if own else None


def check_small_model_claim(groups: dict[str, list[CellSummary]], ratios: list[Ratio]) -> ClaimResult:
    found: list[tuple[str, CellSummary, CellSummary, Ratio]] = []
    for group, cells in groups.items():
        torch_best, tf_best = best_cell(cells, "torch"), best_cell(cells, "tf")
        if is_small_model_group(cells) and torch_best is not None and tf_best is not None:
            found.append((group, torch_best, tf_best, ratio_between(group, torch_best, tf_best, ratios)))
    if not found:
        return ClaimResult(SMALL_MODEL_CLAIM, "inconclusive", [NO_EVIDENCE])
    verdicts = [ratio.verdict for *_, ratio in found]
    torch_wins, tf_wins = verdicts.count("faster"), verdicts.count("slower")
    headline = (f"torch best vs tf best in small-model groups ({', '.join(SMALL_WORKLOADS)}, batch-1 inference): "
                f"torch faster in {torch_wins}, tf faster in {tf_wins}, no meaningful difference in "
                f"{len(found) - torch_wins - tf_wins} of {len(found)}")
    lines = [f"{group}: torch {t.spec.mode} vs tf {f.spec.mode} {ratio_text(ratio)} {ratio.verdict}"
             for group, t, f, ratio in found]
    return ClaimResult(SMALL_MODEL_CLAIM, majority(torch_wins, tf_wins, len(found)), [headline, *lines])


def hardware(rows: list[Scaling]) -> str:
    """What the scaling ran on, in the claim's terms: GPUs, or CPU processes that stand in for them."""
    devices = sorted({row.device for row in rows})
    return "GPU workers" if devices == ["cuda"] else f"worker processes on {'/'.join(devices).upper()} cores, not GPUs"


def efficiency_text(row: Scaling) -> str:
    return f"{row.efficiency:.2f} [{row.efficiency_ci.low:.2f}, {row.efficiency_ci.high:.2f}]"


def check_linear_scaling_claim(rows: list[Scaling]) -> ClaimResult:
    torch_rows = [row for row in rows if row.framework == "torch"]
    weak = [row for row in torch_rows if row.kind == "weak"]
    judged = weak or torch_rows
    if not judged:
        return ClaimResult(LINEAR_SCALING_CLAIM, "inconclusive", [NO_EVIDENCE])
    verdicts = [row.verdict for row in judged]
    linear, sublinear = verdicts.count("linear"), verdicts.count("sublinear")
    headline = (f"torch DDP, {judged[0].kind} scaling on {hardware(judged)}: of {len(judged)} row(s), {linear} "
                f"linear (whole CI at an efficiency of 0.9 or more), {sublinear} sublinear (CI below 0.9), "
                f"{len(judged) - linear - sublinear} unclear")
    lines = [f"{row.model} {row.mode} x{row.workers}: efficiency {efficiency_text(row)} {row.verdict}"
             for row in judged]
    return ClaimResult(LINEAR_SCALING_CLAIM, majority(linear, sublinear, len(judged)), [headline, *lines])


def check_graph_utilisation_claim(rows: list[Scaling]) -> ClaimResult:
    groups: dict[tuple[str, str, int], list[Scaling]] = {}
    for row in rows:
        groups.setdefault((row.model, row.kind, row.workers), []).append(row)
    found = []
    for (model, kind, workers), group in groups.items():
        tf_rows = [row for row in group if row.framework == "tf" and row.mode in GRAPH_MODES]
        torch_rows = [row for row in group if row.framework == "torch"]
        if tf_rows and torch_rows:
            tf_best = max(tf_rows, key=lambda row: row.efficiency)
            torch_best = max(torch_rows, key=lambda row: row.efficiency)
            if tf_best.efficiency_ci.low > torch_best.efficiency_ci.high:
                outcome = "tf better"
            elif torch_best.efficiency_ci.low > tf_best.efficiency_ci.high:
                outcome = "torch better"
            else:
                outcome = "CIs overlap"
            found.append((f"{model} {kind} x{workers}", tf_best, torch_best, outcome))
    if not found:
        return ClaimResult(GRAPH_UTILISATION_CLAIM, "inconclusive", [NO_EVIDENCE])
    outcomes = [outcome for *_, outcome in found]
    headline = (f"scaling efficiency, tf best graph mode vs torch best mode, on "
                f"{hardware([row for _, tf_row, torch_row, _ in found for row in (tf_row, torch_row)])}: tf better "
                f"in {outcomes.count('tf better')}, torch better in {outcomes.count('torch better')}, CIs overlap in "
                f"{outcomes.count('CIs overlap')} of {len(found)}")
    lines = [f"{label}: tf {tf_row.mode} {efficiency_text(tf_row)} vs torch {torch_row.mode} "
             f"{efficiency_text(torch_row)}: {outcome}" for label, tf_row, torch_row, outcome in found]
    return ClaimResult(GRAPH_UTILISATION_CLAIM, majority(outcomes.count("tf better"), outcomes.count("torch better"),
                                                         len(found)), [headline, *lines])
