"""`frameduel sweep`'s output: every configuration over its seeds, the best per framework, how much the
hyperparameters matter to each framework. The rows and lines here are shared with the sweep report
documents (report/sweep_document.py), so terminal and HTML/Markdown say the same thing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from frameduel.jobs.cores import core_slots
from frameduel.report.accuracy import run_line
from frameduel.report.generation import number
from frameduel.sweep import (
    ConfigSummary,
    SweepRequest,
    TrialResult,
    best_configs,
    planned_trial_count,
    sensitivity,
)

LEFT_COLUMNS = ("workload", "fw", "config")


def seconds_text(s: ConfigSummary) -> str:
    if s.seconds_to_target is None:
        return "not reached"
    low, high = s.seconds_range or (s.seconds_to_target, s.seconds_to_target)
    return f"{s.seconds_to_target:.3g} [{low:.3g}-{high:.3g}]"


def config_columns(target: float) -> tuple[str, ...]:
    return (*LEFT_COLUMNS, "reached", f"s to {target:g} median [range]", "epochs", "best acc")


def config_row(s: ConfigSummary) -> list[str]:
    return [s.workload, s.framework, s.config, f"{s.reached}/{s.seeds}", seconds_text(s),
            number(s.epochs_to_target), number(s.best_accuracy, 3)]


def config_table(summaries: list[ConfigSummary], target: float) -> Table:
    table = Table(header_style="bold", box=None, padding=(0, 1, 0, 0))
    for column in config_columns(target):
        table.add_column(column, justify="left" if column in LEFT_COLUMNS else "right")
    for s in summaries:
        table.add_row(*config_row(s))
    return table


def best_line(s: ConfigSummary) -> str:
    return f"{s.workload} {s.framework}: {s.config}: {seconds_text(s)} s, {s.reached}/{s.seeds} seeds reached it"


def sensitivity_lines(summaries: list[ConfigSummary]) -> list[str]:
    lines = []
    for (workload, framework), (reached, total, ratio) in sensitivity(summaries).items():
        spread = f"; the slowest is {ratio:.2g}x the fastest" if ratio else ""
        lines.append(f"{workload} {framework}: {reached} of {total} configurations reached the target{spread}")
    return lines


def print_sweep(console: Console, sweep_id: str, summaries: list[ConfigSummary], target: float,
                at_once: str) -> None:
    """at_once: how the trials ran, e.g. '2 at a time' (each trial on disjoint cores either way)."""
    console.print(f"[bold]sweep {sweep_id}[/bold]: time to test accuracy {target:g} on load_digits, "
                  f"trials {at_once} on disjoint cores", highlight=False, soft_wrap=True)
    console.print(config_table(summaries, target))
    console.print("[bold]Best configuration per framework[/bold] (lowest median time to target; range over seeds):",
                  highlight=False)
    for s in best_configs(summaries):
        console.print(f"  {best_line(s)}", highlight=False)
    for line in sensitivity_lines(summaries):
        console.print(f"  sensitivity {line}", highlight=False)


def sweep_json(sweep_id: str, results: list[TrialResult], summaries: list[ConfigSummary]) -> dict[str, Any]:
    return {"sweep_id": sweep_id, "trials": [r.to_dict() for r in results],
            "configs": [s.to_dict() for s in summaries], "best": [s.to_dict() for s in best_configs(summaries)],
            "sensitivity": [{"workload": w, "framework": f, "reached": r, "configs": t, "slowest_over_fastest": x}
                            for (w, f), (r, t, x) in sensitivity(summaries).items()]}


def trials_at_once(request: SweepRequest, ray_cpus: int | None) -> str:
    """How the trials run: N at a time on this machine's cores (one slot each), or on Ray with ray_cpus CPUs each."""
    return f"{len(core_slots(request.parallel))} at a time" if ray_cpus is None else f"on Ray, {ray_cpus} CPU(s) each"


def print_sweep_start(console: Console, sweep_id: str, request: SweepRequest, at_once: str, db: Path) -> None:
    console.print(f"sweep [bold]{sweep_id}[/bold]: {planned_trial_count(request)} trials, {at_once}, db {db}",
                  soft_wrap=True, highlight=False)


def trial_line(result: TrialResult, target: float) -> str:
    return f"{result.trial.key} (cores {','.join(map(str, result.cpus))}): {run_line(result.run, target)}"
