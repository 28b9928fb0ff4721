"""The answer first: one line per comparison group, each framework at its best mode.

`compare` and `show` print these lines before anything else, and the report's Verdict section is the
same lines: which framework wins (only where the speedup's CI clears the noise band), by how much,
and the flags that qualify it (noisy, contended, unstable across processes, parity not proven).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from frameduel.analysis.evidence import Evidence
from frameduel.analysis.summary import EQUIVALENCE_BAND, NOISE_BAND, Budget, CellSummary, Ratio, RunSummary, group_label

OUTCOMES = {"faster": "winner", "slower": "winner", "no meaningful difference": "no-difference",
            "inconclusive": "inconclusive"}


@dataclass(frozen=True)
class Verdict:
    group: str  # e.g. "mlp/small train b32"
    ratio: Ratio  # first's best vs second's best: > 1 means first is faster
    first: CellSummary
    second: CellSummary
    flags: list[str] = field(default_factory=list)
    best_of: int = 0  # on the line that names the fastest of several frameworks: how many were measured
    # Why an inconclusive verdict is one, each with what would resolve it; empty otherwise.
    reasons: list[str] = field(default_factory=list)

    @property
    def winner(self) -> str | None:
        return {"faster": self.first.spec.framework, "slower": self.second.spec.framework}.get(self.ratio.verdict)

    @property
    def prefix(self) -> str:
        return f"best of {self.best_of}: " if self.best_of else ""

    @property
    def outcome(self) -> str:
        """"winner", "no-difference" or "inconclusive"."""
        return OUTCOMES[self.ratio.verdict]

    def to_dict(self) -> dict[str, Any]:
        """The verdict as data (compare --json, the report's JSON); line() is its human rendering."""
        r = self.ratio
        winner = self.first if r.verdict == "faster" else self.second if r.verdict == "slower" else None
        return {
            "group": self.group,
            "comparison_group": self.first.spec.comparison_group,
            "best_of": self.best_of or None,
            "sides": [side_dict(cell) for cell in (self.first, self.second)],
            "outcome": self.outcome,
            "winner": winner.spec.framework if winner else None,
            # the second side's median step time over the first's: > 1 means the first side is faster
            "speedup": {"value": r.value, "ci": {"low": r.ci.low, "high": r.ci.high}},
            "bands": {"winner_beyond": NOISE_BAND, "equivalence_within": EQUIVALENCE_BAND},
            "reasons": self.reasons,
            "flags": self.flags,
            "line": self.line(),
        }

    def line(self) -> str:
        r = self.ratio
        first = f"{self.first.spec.framework} {self.first.spec.mode}"
        second = f"{self.second.spec.framework} {self.second.spec.mode}"
        if r.verdict == "faster":
            text = f"{first} is {r.value:.3g}x faster than {second} [{r.ci.low:.3g}, {r.ci.high:.3g}]"
        elif r.verdict == "slower":
            text = f"{second} is {1 / r.value:.3g}x faster than {first} [{1 / r.ci.high:.3g}, {1 / r.ci.low:.3g}]"
        else:
            text = f"{r.verdict}: {first} vs {second} {r.value:.3g}x [{r.ci.low:.3g}, {r.ci.high:.3g}]"
        notes = self.reasons + self.flags
        return f"{self.group}: {self.prefix}{text}" + (f" ({'; '.join(notes)})" if notes else "")


def side_dict(cell: CellSummary) -> dict[str, Any]:
    return {"framework": cell.spec.framework, "mode": cell.spec.mode, "cell": cell.spec.key,
            "median_s": cell.step.median, "ci_s": {"low": cell.step_ci.low, "high": cell.step_ci.high},
            "processes": len(cell.process_medians), "left_out": len(cell.excluded)}


def duration_text(seconds: float) -> str:
    """A --budget value that reads well: 90 -> '90s', 300 -> '5m'."""
    return f"{math.ceil(seconds / 60)}m" if seconds >= 120 else f"{math.ceil(seconds)}s"


def inconclusive_reasons(ratio: Ratio, first: CellSummary, second: CellSummary, budget: Budget | None) -> list[str]:
    """Why the run could not decide, each with the fix: what was spent, how busy the machine was, which cell
    moved between processes. Computed from the stored run, so `show` says the same as `compare` did."""
    cells = (first, second)
    if budget is None:
        reasons = [f"{max(c.processes for c in cells)} processes per cell, fixed by --repeats: leave it out so "
                   "frameduel adds processes until it decides"]
    elif all(cell.processes >= budget.max_processes for cell in cells):
        gap = abs(ratio.value - 1)
        reasons = [f"{budget.max_processes} processes per cell measured (the cap): the two are {gap:.1%} apart, "
                   f"less than this machine's scatter resolves; a quieter machine (frameduel doctor) decides it"]
    else:
        reasons = [f"budget ran out ({budget.spent:.0f} of {budget.seconds:.0f} s measured): rerun with --budget "
                   f"{duration_text(2 * budget.seconds)}"]
    busy = [load for cell in cells if cell.contended for load in cell.kept_background]
    if busy:
        reasons.append(f"machine busy: {np.median(busy):.1f} of {first.spec.threads} cores used by other processes "
                       "while it sampled (frameduel doctor names them)")
    reasons += [f"cell unstable: {cell.spec.framework} {cell.spec.mode} {cell.process_range}"
                for cell in cells if cell.unstable]
    return reasons


def cell_flags(cell: CellSummary, with_unstable: bool = True) -> list[str]:
    """'torch eager: unstable across processes (3 processes: 0.12-0.27 ms/step), noisy', or nothing (the
    instability left out where an inconclusive verdict's reasons already name it)."""
    flags = []
    if cell.unstable and with_unstable:
        flags.append(f"unstable across processes ({cell.process_range})")
    flags += [name for name, on in (("noisy", cell.noisy), ("contended", cell.contended),
                                    ("partly eager", cell.partly_eager), ("parallel", cell.shared_machine)) if on]
    return [f"{cell.spec.framework} {cell.spec.mode}: {', '.join(flags)}"] if flags else []


def verdicts(summary: RunSummary, evidence: Evidence | None = None) -> list[Verdict]:
    """Per group with two or more frameworks measured, in the run's order: its first framework (torch)
    against each other one, each at its best mode; with three or more, also the fastest of them all
    against the runner-up."""
    cells = {cell.spec.key: cell for cell in summary.cells}
    unproven = set(evidence.unproven_workloads(summary.workloads)) if evidence else set()

    def verdict(ratio: Ratio, best_of: int = 0) -> Verdict:
        first, second = cells[ratio.faster], cells[ratio.baseline]
        decided = ratio.verdict != "inconclusive"
        flags = cell_flags(first, decided) + cell_flags(second, decided)
        if evidence is not None and first.spec.workload in unproven:
            flags.append("parity not proven")
        reasons = (inconclusive_reasons(ratio, first, second, summary.budget) if ratio.verdict == "inconclusive"
                   else [])
        return Verdict(group_label(first), ratio, first, second, flags, best_of, reasons)

    by_group: dict[str, list[Ratio]] = {}
    for ratio in summary.headline:
        by_group.setdefault(ratio.group, []).append(ratio)
    found = []
    for group, ratios in by_group.items():
        found += [verdict(ratio) for ratio in ratios]
        best = best_per_framework(summary.measured_groups()[group])
        pair = summary.best_pair(group, best[0][0], best[1][0]) if len(best) >= 3 else None
        if pair is not None:
            found.append(verdict(pair, len(best)))
    return found


def best_per_framework(cells: list[CellSummary]) -> list[tuple[str, CellSummary]]:
    """(framework, its fastest cell), fastest first."""
    best: dict[str, CellSummary] = {}
    for cell in cells:
        current = best.get(cell.spec.framework)
        if current is None or cell.step.median < current.step.median:
            best[cell.spec.framework] = cell
    return sorted(best.items(), key=lambda item: item[1].step.median)
