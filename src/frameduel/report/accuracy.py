"""Terminal rendering of time to accuracy: one line per finished run, then the side-by-side table."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from rich.console import Console
from rich.table import Table

from frameduel.accuracy.run import AccuracyRequest, AccuracySummary, TrainingRun


def seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.3g}"


def accuracy_text(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def run_line(run: TrainingRun, target: float) -> str:
    spec = run.spec
    label = f"{spec.workload} {spec.framework} {spec.mode} seed {spec.seed}"
    if run.status != "ok":
        return f"[red]x[/red] {label}: [red]{run.status}[/red] {run.error or ''}"
    epochs = run.epochs_to(target)
    final = f"final {accuracy_text(run.accuracy[-1])} after {len(run.accuracy)} epochs"
    if epochs is None:
        return f"[yellow]-[/yellow] {label}: {target:g} not reached (best {accuracy_text(max(run.accuracy))}), {final}"
    return f"[green]v[/green] {label}: {target:g} at epoch {epochs} ({seconds(run.seconds_to(target))} s), {final}"


def to_target_text(summary: AccuracySummary) -> tuple[str, str]:
    """(epochs, seconds) cells; "not reached" with the best accuracy when the median run fell short."""
    if summary.ok_runs == 0:
        return "[red]failed[/red]", "-"
    if summary.epochs_to_target is None:
        return f"[yellow]not reached[/yellow] (best {accuracy_text(summary.best_accuracy)})", "-"
    return f"{summary.epochs_to_target:g}", seconds(summary.seconds_to_target)


def accuracy_table(summaries: list[AccuracySummary], request: AccuracyRequest) -> Table:
    title = (f"Time to {request.target:g} test accuracy on digits (medians over {request.seeds} seed(s); "
             f"batch {request.batch_size}, {request.device}, {request.threads} thread(s), "
             f"max {request.max_epochs} epochs)")
    table = Table(title=title, header_style="bold")
    for column in ("workload", "fw", "mode", "reached", "epochs to target", "s to target",
                   "1st epoch s", "later epoch s", "final acc", "best acc"):
        table.add_column(column, overflow="fold")
    workload = None
    for summary in summaries:
        if summary.workload != workload and workload is not None:
            table.add_section()
        label = summary.workload if summary.workload != workload else ""
        workload = summary.workload
        epochs, secs = to_target_text(summary)
        table.add_row(label, summary.framework, summary.mode, f"{summary.reached}/{summary.seeds}", epochs, secs,
                      seconds(summary.first_epoch_s), seconds(summary.steady_epoch_s),
                      accuracy_text(summary.final_accuracy), accuracy_text(summary.best_accuracy))
    return table


def print_accuracy(console: Console, summaries: list[AccuracySummary], request: AccuracyRequest) -> None:
    console.print(accuracy_table(summaries, request))
    for summary in summaries:
        for error in summary.errors:
            console.print(f"[red]{summary.workload} {summary.framework}[/red] {error}", highlight=False)
    console.print("s to target: training steps only (evaluation excluded), summed over epochs up to the one that "
                  "reached the target; the 1st epoch includes tracing/compilation.", style="dim")


def accuracy_json(
    runs: list[TrainingRun], summaries: list[AccuracySummary], request: AccuracyRequest
) -> dict[str, Any]:
    return {
        "request": asdict(request),
        "summaries": [summary.to_dict() for summary in summaries],
        "runs": [run.to_dict() for run in runs],
    }
