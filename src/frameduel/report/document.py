"""The report of one stored run, as data: every rendering (HTML, Markdown, JSON) reads this one model.

Contents: run header and environment, cell statistics, speedups with their verdicts, the check of
well-known claims against this run, the compile break-even (how many steps repay a compiled mode's
compile time), full fine-tune against LoRA, data-parallel scaling, and the figures.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from frameduel.analysis.evidence import Evidence
from frameduel.analysis.summary import CellSummary, Ratio, RunSummary
from frameduel.analysis.verdict import Verdict, verdicts
from frameduel.report import plots
from frameduel.report.browser_claim import BROWSER_CLAIM, check_browser_claim
from frameduel.report.claims import ClaimResult, check_claims
from frameduel.report.edge_claim import EDGE_CLAIM, check_edge_claim
from frameduel.report.finetuning import LoraComparison, lora_comparisons
from frameduel.report.llm_serving import LLM_CLAIM, check_llm_claim
from frameduel.report.scaling import Scaling, scaling_rows
from frameduel.store import RunRecord


@dataclass(frozen=True)
class BreakEven:
    """Compile time repaid by faster steps: steps = compile_s / (eager step - compiled step)."""

    group: str
    framework: str
    mode: str
    compile_s: float
    eager_step_s: float
    compiled_step_s: float

    @property
    def steps(self) -> float | None:
        """Steps after which the compiled mode is ahead in total time; None if it never is."""
        saving = self.eager_step_s - self.compiled_step_s
        return self.compile_s / saving if saving > 0 else None

    def to_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "steps": self.steps}


@dataclass(frozen=True)
class Figure:
    title: str
    data_uri: str  # a PNG, embedded: the report makes no network request


@dataclass
class Report:
    run: RunRecord
    summary: RunSummary
    break_even: list[BreakEven]
    claims: list[ClaimResult]
    figures: list[Figure] = field(default_factory=list)
    evidence: Evidence = field(default_factory=Evidence)  # stored parity, export and load-test results
    finetuning: list[LoraComparison] = field(default_factory=list)  # full fine-tune vs LoRA
    scaling: list[Scaling] = field(default_factory=list)  # data-parallel cells against one worker

    @property
    def headline(self) -> list[Ratio]:
        """Framework against framework, each at its best mode: the first thing a reader wants."""
        return self.summary.headline

    @property
    def verdicts(self) -> list[Verdict]:
        return verdicts(self.summary, self.evidence)

    @property
    def verdict_lines(self) -> list[str]:
        """The same lines `compare` and `show` print first."""
        return [verdict.line() for verdict in self.verdicts]

    @property
    def caveats(self) -> list[str]:
        """What a reader must know before trusting a number: partial compilation, contention, noise, and
        workloads whose two implementations are not proven the same model in every mode."""
        lines = []
        for cell in self.summary.cells:
            label = f"{cell.spec.comparison_group} {cell.spec.framework} {cell.spec.mode}"
            reasons = "; ".join(cell.runtime.get("eager_fallback_reasons", []))
            if cell.runtime.get("compiled_graphs") == 0:
                lines.append(f"{label}: torch.compile compiled nothing, the whole model ran eagerly ({reasons})")
            elif cell.runtime.get("graph_breaks"):
                lines.append(f"{label}: torch.compile hit {cell.runtime['graph_breaks']} graph break(s), so part "
                             f"of the model ran eagerly ({reasons})")
            if cell.contended:
                lines.append(f"{label}: other processes kept {cell.background_cores:.2f} cores busy while it was "
                             "measured; re-run on a quiet machine")
            if cell.noisy:
                lines.append(f"{label}: noisy (IQR/median >= 10%); its CI is wide")
            if cell.unstable:
                lines.append(f"{label}: unstable across processes, {cell.spread:.0%} apart ({cell.process_range}); "
                             "its CI is wide")
            lines += [f"{label}: process {p.round + 1} left out of the estimate, {p.reason}" for p in cell.excluded]
            if cell.shared_machine:
                lines.append(f"{label}: measured beside {cell.concurrent - 1} other timing cell(s) (--parallel); "
                             "they shared memory bandwidth and caches, so its times are not a quiet machine's")
        lines += self.summary.incomparable
        lines += [line for line, proven in self.data_parallel_parity() if not proven]
        return lines + self.evidence.parity_caveats(self.summary.workloads)

    def data_parallel_parity(self) -> list[tuple[str, bool]]:
        """(line, proven) per workload and worker count of the run's data-parallel cells."""
        counts = sorted({(c.spec.workload, c.spec.workers) for c in self.summary.cells if c.spec.workers > 1})
        return [self.evidence.data_parallel_status(workload, workers) for workload, workers in counts]

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run.id,
            "status": self.run.status,
            "created_at": self.run.created_at,
            "plan": self.run.plan,
            "environment": self.run.environment,
            **self.summary.to_dict(),
            "break_even": [item.to_dict() for item in self.break_even],
            "finetuning": [item.to_dict() for item in self.finetuning],
            "scaling": [{**dataclasses.asdict(row), "verdict": row.verdict} for row in self.scaling],
            "claims": [claim.to_dict() for claim in self.claims],
            "verdict": self.verdict_lines,
            "verdicts": [verdict.to_dict() for verdict in self.verdicts],
            "caveats": self.caveats,
            "data_parallel_parity": [line for line, _ in self.data_parallel_parity()],
            "parity": self.evidence.parity_notes(self.summary.workloads),
            "exports": self.evidence.exports,
            "loadtests": self.evidence.loadtests,
            "llm_loadtests": self.evidence.llm_loadtests,
        }


def break_even_rows(summary: RunSummary) -> list[BreakEven]:
    rows = []
    by_group: dict[tuple[str, str], dict[str, CellSummary]] = {}
    for cell in summary.cells:
        if cell.step is not None:
            by_group.setdefault((cell.spec.comparison_group, cell.spec.framework), {})[cell.spec.mode] = cell
    for (group, framework), modes in by_group.items():
        eager = modes.get("eager")
        for mode, cell in modes.items():
            if eager is None or mode == "eager" or cell.compile_s is None:
                continue
            rows.append(BreakEven(group, framework, mode, cell.compile_s, eager.step.median, cell.step.median))
    return rows


def build_report(run: RunRecord, summary: RunSummary, with_figures: bool = True,
                 evidence: Evidence | None = None) -> Report:
    evidence = evidence or Evidence()
    claims = [*check_claims(summary), ClaimResult(BROWSER_CLAIM, *check_browser_claim(evidence.exports)),
              ClaimResult(EDGE_CLAIM, *check_edge_claim(evidence.exports)),
              ClaimResult(LLM_CLAIM, *check_llm_claim(evidence.llm_loadtests))]
    report = Report(run=run, summary=summary, break_even=break_even_rows(summary), claims=claims,
                    evidence=evidence, finetuning=lora_comparisons(summary), scaling=scaling_rows(summary))
    if with_figures:
        report.figures = make_figures(summary)
    return report


def make_figures(summary: RunSummary) -> list[Figure]:
    figures = []
    for group, cells in summary.measured_groups().items():
        figures.append(Figure(f"Throughput: {group}", plots.throughput_bars(group, cells)))
        if all(cell.latency for cell in cells):
            figures.append(Figure(f"Latency: {group}", plots.latency_distribution(group, cells)))
    if any(cell.peak_rss_mb for cell in summary.cells):
        figures.append(Figure("Peak memory per cell", plots.memory_bars(summary)))
    return figures
