"""Stored runs on the terminal: the list (`frameduel runs`), one run (`show`, and `compare` when it ends) as
tables or as JSON, the advice drawn from one (`advise`), and this machine's fingerprint (`env`)."""

from __future__ import annotations

import json
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from frameduel.analysis.evidence import Evidence
from frameduel.analysis.summary import RunSummary
from frameduel.analysis.verdict import verdicts
from frameduel.report.advise import Advice
from frameduel.report.terminal import print_summary
from frameduel.runner.plan import Plan
from frameduel.store import RunRecord


def print_runs(console: Console, runs: list[tuple[RunRecord, int]]) -> None:
    """One row per run, newest first: its rounds done out of its plan's."""
    table = Table(header_style="bold", box=None, padding=(0, 1))
    for column in ("run id", "created", "status", "preset", "rounds done", "workloads"):
        table.add_column(column, no_wrap=column != "workloads")
    for run, finished in runs:
        plan = Plan.from_dict(run.plan)
        workloads = sorted({spec.workload for spec in plan.specs})
        table.add_row(run.id, run.created_at[:19].replace("T", " "), run.status, plan.preset,
                      f"{finished} / {len(plan.schedule())}", ",".join(workloads))
    console.print(table)


def run_json(run: RunRecord, summary: RunSummary, evidence: Evidence) -> dict[str, Any]:
    found = verdicts(summary, evidence)
    return {"run_id": run.id, "status": run.status, "environment": run.environment, **summary.to_dict(),
            "verdict": [v.line() for v in found], "verdicts": [v.to_dict() for v in found]}


def print_run(console: Console, run: RunRecord, summary: RunSummary, evidence: Evidence, wide: bool = False,
              speedups: bool = False) -> None:
    """The verdict, then the cell table titled with the machine, threads and processes per cell."""
    cpu = run.environment["cpu"]["model"]
    threads = summary.cells[0].spec.threads if summary.cells else "?"
    rounds = Plan.from_dict(run.plan).repeats
    sizes = ",".join(sorted({cell.spec.model_label for cell in summary.cells}))
    print_summary(console, summary, f"run {run.id} ({run.status}): size {sizes}; {cpu}, {threads} threads, "
                  f"{rounds} processes/cell", evidence, wide, speedups)


def print_environment(console: Console, fingerprint: dict[str, Any]) -> None:
    table = Table(show_header=False)
    for key, value in fingerprint.items():
        table.add_row(key, json.dumps(value) if isinstance(value, (dict, list)) else str(value))
    console.print(table)


def print_advice(console: Console, advice: Advice, scenario: str) -> None:
    """The recommendation, then each criterion's weight, shares and evidence, then parity's notes."""
    scores = ", ".join(f"{fw} {score:.2f}" for fw, score in advice.scores.items())
    console.print(f"{scenario}: [bold]{escape(advice.winner_label)}[/bold] ({scores})")
    table = Table(header_style="bold")
    for column in ("criterion", "weight", *(f"{fw} share" for fw in advice.scores), "evidence"):
        table.add_column(column, overflow="fold")
    for criterion, weight in advice.criteria:
        kind = "" if criterion.measured else " (documented)"
        table.add_row(criterion.name + kind, f"{weight:.2f}", *(f"{criterion.shares[fw]:.2f}" for fw in advice.scores),
                      criterion.evidence)
    console.print(table)
    for note in advice.notes:
        console.print(f"parity: {note}", highlight=False)
