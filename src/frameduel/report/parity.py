"""Terminal rendering of parity: per direction the verdict, every figure against its tolerance (float64,
the proof, beside the informational fp32 line), the layer-by-layer table; then the modes check."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from frameduel.parity.check import PROOF_PRECISION, PROVEN, ModesReport, ParityReport
from frameduel.parity.data_parallel import DataParallelParity
from frameduel.parity.judge import Judgement


def mark(ok: bool) -> str:
    return "[green]ok[/green]" if ok else "[red]FAIL[/red]"


def figure(rel: float, tolerance: float) -> str:
    text = "0" if rel == 0 else f"{rel:.1e}"
    return text if rel <= tolerance else f"[red]{text}[/red]"


def task_note(task_label: str) -> str:
    """'' for full training; ' LoRA r4 a8 on 7 modules' for 'finetune-r4a8-q_proj+...' (the stored label)."""
    if task_label == "train":
        return ""
    _, settings, targets = task_label.split("-", 2)
    modules = targets.split("+")
    return f" LoRA {settings} on {modules[0] if len(modules) == 1 else f'{len(modules)} modules'}"


def print_parity(console: Console, report: ParityReport) -> None:
    title = f"{report.workload}/{report.size}{task_note(report.task)}: {report.source} -> {report.target}"
    if report.error:
        console.print(f"[red]parity {title} could not run:[/red] {escape(report.error)}")
        return
    verdict = f"[green]PASS[/green] ({', '.join(PROVEN)})" if report.passed else "[red]FAIL[/red]"
    console.print(f"[bold]parity {title}[/bold]: {verdict}", highlight=False)
    if report.findings:
        console.print(f"  first divergence: [red]{escape(report.findings[0].line())}[/red]", highlight=False)
    proof, others = report.proof, [j for j in report.judgements if j.precision != PROOF_PRECISION]
    table = Table(header_style="bold", box=None, padding=(0, 1))
    table.add_column("  check")
    table.add_column(f"{proof.precision} rel diff", justify="right")
    table.add_column("tolerance", justify="right")
    table.add_column("")
    for other in others:
        table.add_column(f"{other.precision} (informational)", justify="right")
    for label, (rel, tolerance) in proof.figures.items():
        extra = [figure(*other.figures[label]) if label in other.figures else "-" for other in others]
        table.add_row(f"  {label}", figure(rel, tolerance), f"{tolerance:g}", mark(rel <= tolerance), *extra)
    console.print(table)
    print_layers(console, proof)


def print_layers(console: Console, judgement: Judgement) -> None:
    """One row per probed layer (torch names, execution order), one column per pass."""
    passes = [label for label, layers in judgement.layers.items() if layers]
    if not passes:
        return
    table = Table(title=f"layer by layer ({judgement.precision}, rel diff; the source is the reference)",
                  header_style="bold", title_justify="left")
    table.add_column("layer (torch name)")
    table.add_column("shape")
    for label in passes:
        table.add_column(label, justify="right")
    first = {label: next((layer.name for layer in judgement.layers[label] if not layer.ok), None) for label in passes}
    tolerance = judgement.tolerances.activation
    by_name = {label: {layer.name: layer for layer in judgement.layers[label]} for label in passes}
    for layer in judgement.layers[passes[0]]:
        cells = []
        for label in passes:
            diff = by_name[label].get(layer.name)
            cell = figure(diff.rel, tolerance) if diff else "-"
            cells.append(cell + (" <- first" if first[label] == layer.name else ""))
        table.add_row(layer.name, "x".join(map(str, layer.shape)), *cells)
    console.print(table)


def print_modes(console: Console, report: ModesReport) -> None:
    verdict = "[green]PASS[/green]" if report.passed else "[red]FAIL[/red]"
    console.print(f"[bold]modes {report.workload}/{report.size}{task_note(report.task)}[/bold] (fp32, each "
                  "compiled mode against the same "
                  f"framework's eager mode, same weights): {verdict}", highlight=False)
    for framework, error in report.errors.items():
        console.print(f"  [red]{framework}: could not run:[/red] {escape(error)}", highlight=False)
    for framework, modes in report.judgements.items():
        for mode, judgement in modes.items():
            worst = ", ".join(f"{label} {rel:.1e}" for label, (rel, _) in judgement.figures.items())
            console.print(f"  {framework} {mode}: {mark(judgement.passed)}  {worst}", highlight=False)
            for finding in judgement.findings:
                console.print(f"    [red]{escape(finding.line())}[/red]", highlight=False)


def data_parallel_lines(report: DataParallelParity) -> list[str]:
    """One line per comparison: worst loss and state figures against the float64 tolerance."""
    lines = [f"[bold]data-parallel parity[/bold] {report.workload}: {report.workers} workers vs one process, "
             f"global batch {report.batch_size}, {report.steps} steps of SGD and of Adam, float64"]
    for label, why in report.failures.items():
        lines.append(f"{mark(False)} {label}: did not finish: {escape(why)}")
    for name, judgement in report.judgements.items():
        worst = {kind: max((rel for label, (rel, _) in judgement.figures.items() if kind in label), default=0.0)
                 for kind in ("loss curve", "state after")}
        tolerance = judgement.tolerances.loss
        if not report.binding(name):
            lines.append(f"-- {name}: differs by design, BatchNorm normalises each worker's shard on its own: loss "
                         f"curves {worst['loss curve']:.1e}, trained state {worst['state after']:.1e}")
            continue
        lines.append(f"{mark(judgement.passed)} {name}: loss curves {worst['loss curve']:.1e}, trained state "
                     f"{worst['state after']:.1e} (tolerance {tolerance:g})"
                     + "".join(f"; {escape(finding.line())}" for finding in judgement.findings[:2]))
    for label, spread in report.replica_spread.items():
        lines.append(f"{mark(spread == 0.0)} {label}: workers' states after training differ by {spread:.1e} "
                     "(must be 0: one model, replicated)")
    return lines


def print_data_parallel(console: Console, report: DataParallelParity) -> None:
    for line in data_parallel_lines(report):
        console.print(line, highlight=False, soft_wrap=True)


def parity_json(reports: list[ParityReport], modes_reports: list[ModesReport]) -> dict[str, Any]:
    """`parity --json`: every direction, and the modes check (the first task's, then every task's)."""
    return {"directions": [report.to_dict() for report in reports],
            "modes": modes_reports[0].to_dict() if modes_reports else None,
            "modes_by_task": [m.to_dict() for m in modes_reports]}


def print_parity_reports(console: Console, reports: list[ParityReport], modes_reports: list[ModesReport]) -> None:
    for report in reports:
        print_parity(console, report)
    for modes_report in modes_reports:
        print_modes(console, modes_report)
