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
    ratio: Ratio  # torch best vs tf best: > 1 means torch is faster
    torch: CellSummary
    tf: CellSummary
    flags: list[str] = field(default_factory=list)

    @property
    def winner(self) -> str | None:
        return {"faster": "torch", "slower": "tf"}.get(self.ratio.verdict)

    def line(self) -> str:
        r, torch, tf = self.ratio, f"torch {self.torch.spec.mode}", f"tf {self.tf.spec.mode}"
        if self.winner == "torch":
            text = f"{torch} is {r.value:.3g}x faster than {tf} [{r.ci.low:.3g}, {r.ci.high:.3g}]"
        elif self.winner == "tf":
            text = f"{tf} is {1 / r.value:.3g}x faster than {torch} [{1 / r.ci.high:.3g}, {1 / r.ci.low:.3g}]"
        else:
            text = f"{r.verdict}: {torch} vs {tf} {r.value:.3g}x [{r.ci.low:.3g}, {r.ci.high:.3g}]"
        return f"{self.group}: {text}" + (f" ({'; '.join(self.flags)})" if self.flags else "")


def cell_flags(cell: CellSummary) -> list[str]:
    """'torch eager: unstable across processes (3 processes: 0.12-0.27 ms/step), noisy', or nothing."""
    flags = []
    if cell.unstable:
        flags.append(f"unstable across processes ({cell.process_range})")
    flags += [name for name, on in (("noisy", cell.noisy), ("contended", cell.contended),
                                    ("partly eager", cell.partly_eager), ("parallel", cell.shared_machine)) if on]
    return [f"{cell.spec.framework} {cell.spec.mode}: {', '.join(flags)}"] if flags else []


def verdicts(summary: RunSummary, evidence: Evidence | None = None) -> list[Verdict]:
    """One Verdict per group that has both frameworks measured, in the run's order."""
    cells = {cell.spec.key: cell for cell in summary.cells}
    unproven = set(evidence.unproven_workloads(summary.workloads)) if evidence else set()
    found = []
    for ratio in summary.headline:
        torch, tf = cells[ratio.faster], cells[ratio.baseline]
        flags = cell_flags(torch) + cell_flags(tf)
        if evidence is not None and torch.spec.workload in unproven:
            flags.append("parity not proven")
        found.append(Verdict(group_label(torch), ratio, torch, tf, flags))
    return found
