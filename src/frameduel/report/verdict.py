"""The answer first: one line per comparison group, each framework at its best mode.

`compare` and `show` print these lines before anything else, and the report's Verdict section is the
same lines: which framework wins (only where the speedup's CI clears the noise band), by how much,
and the flags that qualify it (noisy, contended, unstable across processes, parity not proven).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from frameduel.report.evidence import Evidence
from frameduel.report.summary import CellSummary, Ratio, RunSummary, group_label


@dataclass(frozen=True)
class Verdict:
    group: str  # e.g. "mlp/small train b32"
    ratio: Ratio  # first's best vs second's best: > 1 means first is faster
    first: CellSummary
    second: CellSummary
    flags: list[str] = field(default_factory=list)
    prefix: str = ""  # "best of 4: " on the line that names the fastest of several frameworks

    @property
    def winner(self) -> str | None:
        return {"faster": self.first.spec.framework, "slower": self.second.spec.framework}.get(self.ratio.verdict)

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
        return f"{self.group}: {self.prefix}{text}" + (f" ({'; '.join(self.flags)})" if self.flags else "")


def cell_flags(cell: CellSummary) -> list[str]:
    """'torch eager: unstable across processes (3 processes: 0.12-0.27 ms/step), noisy', or nothing."""
    flags = []
    if cell.unstable:
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

    def verdict(ratio: Ratio, prefix: str = "") -> Verdict:
        first, second = cells[ratio.faster], cells[ratio.baseline]
        flags = cell_flags(first) + cell_flags(second)
        if evidence is not None and first.spec.workload in unproven:
            flags.append("parity not proven")
        return Verdict(group_label(first), ratio, first, second, flags, prefix)

    by_group: dict[str, list[Ratio]] = {}
    for ratio in summary.headline:
        by_group.setdefault(ratio.group, []).append(ratio)
    found = []
    for group, ratios in by_group.items():
        found += [verdict(ratio) for ratio in ratios]
        best = best_per_framework(summary.measured_groups()[group])
        pair = summary.best_pair(group, best[0][0], best[1][0]) if len(best) >= 3 else None
        if pair is not None:
            found.append(verdict(pair, f"best of {len(best)}: "))
    return found


def best_per_framework(cells: list[CellSummary]) -> list[tuple[str, CellSummary]]:
    """(framework, its fastest cell), fastest first."""
    best: dict[str, CellSummary] = {}
    for cell in cells:
        current = best.get(cell.spec.framework)
        if current is None or cell.step.median < current.step.median:
            best[cell.spec.framework] = cell
    return sorted(best.items(), key=lambda item: item[1].step.median)
