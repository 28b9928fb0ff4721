"""Two stored runs side by side: the same cells matched up, the speedup from run A to run B, and what changed.

Cells match on what they compute -- workload, size, task, batch, precision, framework, mode -- and not on where or
how they ran (device, threads, seed), so runs on two machines, with two thread counts or two library versions can be
compared. A matched cell's speedup is median_A / median_B of the pooled step times, with the bootstrap CI and the
verdict of every other frameduel speedup (summary.speedup and Ratio.verdict, the same ±2% band): "faster" means
run B is faster. Cells only one run has are listed, and so is every environment field that differs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from frameduel.analysis.compare import summarize_stored_run
from frameduel.analysis.summary import CellSummary, Ratio, RunSummary, speedup
from frameduel.report.tables import interval_ms, ms, status_text
from frameduel.report.terminal import VERDICT_STYLES
from frameduel.spec import RunSpec
from frameduel.store import Store

SETTINGS = ("device", "threads", "seed")  # spec fields left out of the match, shown as differences instead


def match_group(spec: RunSpec) -> str:
    return f"{spec.workload}/{spec.size}/{spec.task}/b{spec.batch_size}/{spec.precision}"


def match_key(spec: RunSpec) -> str:
    """What a cell computes, whatever the machine: the identity two runs' cells are matched on."""
    return f"{match_group(spec)} {spec.framework} {spec.mode}"


@dataclass(frozen=True)
class RunSide:
    """One run as the diff needs it: its summary and its environment fingerprint."""

    run_id: str
    summary: RunSummary
    environment: dict[str, Any]


def cell_brief(cell: CellSummary) -> dict[str, Any]:
    ci = cell.step_ci
    return {
        "key": cell.spec.key,
        "status": cell.status,
        "error": cell.error,
        "median_ms": cell.step.median * 1e3 if cell.step else None,
        "median_ci_ms": [ci.low * 1e3, ci.high * 1e3] if ci else None,
        "noisy": cell.noisy,
        "contended": cell.contended,
    }


@dataclass(frozen=True)
class CellDiff:
    match: str  # match_key of both cells
    a: CellSummary
    b: CellSummary
    ratio: Ratio | None  # A time / B time; None when either cell has no steady-state timings (failed, oom, ...)

    def to_dict(self) -> dict[str, Any]:
        ratio = self.ratio
        return {
            "match": self.match, "a": cell_brief(self.a), "b": cell_brief(self.b),
            "speedup": ratio.value if ratio else None,
            "speedup_ci": [ratio.ci.low, ratio.ci.high] if ratio else None,
            "verdict": ratio.verdict if ratio else None,
        }


@dataclass(frozen=True)
class EnvChange:
    """One field that differs: a dotted path into the fingerprint (e.g. "packages.torch") or a cell setting."""

    key: str
    a: str | None  # None: absent in run A
    b: str | None

    @property
    def line(self) -> str:
        a, b = ("(absent)" if value is None else value for value in (self.a, self.b))
        return f"{self.key}: {a} -> {b}"

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.key, "a": self.a, "b": self.b}


@dataclass
class RunDiff:
    run_a: str
    run_b: str
    matched: list[CellDiff]  # in run A's cell order
    only_a: list[CellSummary]
    only_b: list[CellSummary]
    environment: list[EnvChange]

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_a": self.run_a, "run_b": self.run_b,
            "matched": [cell.to_dict() for cell in self.matched],
            "only_in_a": [cell_brief(cell) for cell in self.only_a],
            "only_in_b": [cell_brief(cell) for cell in self.only_b],
            "environment": [change.to_dict() for change in self.environment],
        }


def by_match_key(cells: list[CellSummary]) -> tuple[dict[str, CellSummary], list[CellSummary]]:
    """Cells by match key, plus any that repeat a key (a plan has one device/threads/seed, so only a
    hand-built run has those); the repeats can never be matched and are listed as unmatched."""
    keyed: dict[str, CellSummary] = {}
    repeats = []
    for cell in cells:
        if keyed.setdefault(match_key(cell.spec), cell) is not cell:
            repeats.append(cell)
    return keyed, repeats


def diff_cell(a: CellSummary, b: CellSummary, run_a: str, run_b: str) -> CellDiff:
    ratio = None
    if a.step is not None and b.step is not None:
        ratio = speedup(match_group(a.spec), f"{run_b} vs {run_a}", faster=b, baseline=a)  # median_A / median_B
    return CellDiff(match_key(a.spec), a, b, ratio)


def diff_runs(a: RunSide, b: RunSide) -> RunDiff:
    cells_a, repeats_a = by_match_key(a.summary.cells)
    cells_b, repeats_b = by_match_key(b.summary.cells)
    matched = [diff_cell(cell, cells_b[key], a.run_id, b.run_id) for key, cell in cells_a.items() if key in cells_b]
    return RunDiff(
        run_a=a.run_id,
        run_b=b.run_id,
        matched=matched,
        only_a=[cell for key, cell in cells_a.items() if key not in cells_b] + repeats_a,
        only_b=[cell for key, cell in cells_b.items() if key not in cells_a] + repeats_b,
        environment=settings_changes(a.summary, b.summary) + environment_changes(a.environment, b.environment),
    )


def flatten(data: dict[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested fingerprint -> {"cpu.model": "...", "packages.torch": "2.13.0", ...}; lists as JSON."""
    flat: dict[str, str] = {}
    for key, value in data.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, f"{path}."))
        else:
            flat[path] = json.dumps(value) if isinstance(value, list) else str(value)
    return flat


def environment_changes(env_a: dict[str, Any], env_b: dict[str, Any]) -> list[EnvChange]:
    """What differs between two fingerprints, less the doctor's readings (load, busy processes: they differ
    every minute and are shown in each run's report)."""
    flat_a, flat_b = (flatten({k: v for k, v in env.items() if k != "doctor"}) for env in (env_a, env_b))
    keys = list(flat_a) + [key for key in flat_b if key not in flat_a]
    return [EnvChange(key, flat_a.get(key), flat_b.get(key)) for key in keys if flat_a.get(key) != flat_b.get(key)]


def settings_changes(a: RunSummary, b: RunSummary) -> list[EnvChange]:
    """The spec fields left out of the match (device, threads, seed), where the two runs used different ones."""
    changes = []
    for name in SETTINGS:
        values_a = ", ".join(sorted({str(getattr(c.spec, name)) for c in a.cells})) or None
        values_b = ", ".join(sorted({str(getattr(c.spec, name)) for c in b.cells})) or None
        if values_a != values_b:
            changes.append(EnvChange(f"cells.{name}", values_a, values_b))
    return changes


def step_text(cell: CellSummary) -> str:
    return f"{ms(cell.step.median)}{interval_ms(cell.step_ci)}" if cell.step else cell.status


def notes_text(diff: CellDiff) -> Text:
    """Warnings (failed, noisy, contended) of either side: a difference they explain is not the code's."""
    notes = [f"{side}: {status_text(cell)}" for side, cell in (("A", diff.a), ("B", diff.b))
             if cell.status != "ok" or cell.noisy or cell.contended]
    return Text("; ".join(notes), style="yellow")


def verdict_cell(ratio: Ratio | None) -> Text:
    if ratio is None:
        return Text("-")
    return Text(ratio.verdict, style=VERDICT_STYLES.get(ratio.verdict, "yellow"))


def diff_table(diff: RunDiff) -> Table:
    table = Table(title=f"run {diff.run_a} (A) -> run {diff.run_b} (B): speedup = A step time / B step time; "
                        ">1 = B faster", header_style="bold")
    for column in ("cell", "A step ms [95% CI]", "B step ms [95% CI]", "speedup A->B x [95% CI]", "verdict", "notes"):
        table.add_column(column, overflow="fold")
    for cell in diff.matched:
        ratio = cell.ratio
        speedup_text = f"{ratio.value:.3g} [{ratio.ci.low:.3g}, {ratio.ci.high:.3g}]" if ratio else "-"
        table.add_row(Text(cell.match), Text(step_text(cell.a)), Text(step_text(cell.b)), speedup_text,
                      verdict_cell(ratio), notes_text(cell))
    return table


def print_diff(console: Console, diff: RunDiff) -> None:
    if diff.matched:
        console.print(diff_table(diff))
    else:
        console.print(f"runs {diff.run_a} and {diff.run_b} have no cells in common", markup=False)
    for side, run_id, cells in (("A", diff.run_a, diff.only_a), ("B", diff.run_b, diff.only_b)):
        for cell in cells:
            console.print(f"only in run {run_id} ({side}): {match_key(cell.spec)}  step ms {step_text(cell)}",
                          highlight=False, markup=False)
    if not diff.environment:
        console.print("environment: no differences")
        return
    console.print("[bold]environment differences (A -> B):[/bold]")
    for change in diff.environment:
        console.print(f"  {change.line}", highlight=False, markup=False)


def stored_side(store: Store, run_id: str) -> RunSide:
    run, summary = summarize_stored_run(store, run_id)
    return RunSide(run_id, summary, run.environment)


def diff_stored_runs(store: Store, run_a: str, run_b: str) -> RunDiff:
    return diff_runs(stored_side(store, run_a), stored_side(store, run_b))
