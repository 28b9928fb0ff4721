"""A compare run as it goes, on the terminal: the parity proof's lines, the run's first line, a progress bar
with an ETA over the cells, and one line per finished cell."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from frameduel.analysis.evidence import Evidence
from frameduel.parity.cache import ParityStep
from frameduel.report.terminal import ms
from frameduel.runner.plan import Plan
from frameduel.runner.scheduler import CellCallback, pending_cells
from frameduel.spec import Measurement, RunSpec
from frameduel.store import Store


def cell_line(spec: RunSpec, measurement: Measurement) -> str:
    workers = f" {spec.workers} workers" if spec.workers > 1 else ""
    label = f"{spec.workload} {spec.task} b{spec.batch_size}{workers} {spec.precision} {spec.framework} {spec.mode}"
    if measurement.status != "ok":
        return f"[red]x[/red] {label}: [red]{measurement.status}[/red] {measurement.error or ''}"
    median = sorted(measurement.step_seconds)[len(measurement.step_seconds) // 2]
    return f"[green]v[/green] {label}: {ms(median)} ms/step"


def eta_text(seconds: float) -> str:
    minutes, secs = divmod(int(round(seconds)), 60)
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def print_busy_machine(out: Console, machine: dict[str, Any], threads: int) -> None:
    out.print(f"machine busy: {machine['busy_cores']:.1f} of {machine['affinity_cores']} cores used by other "
              f"processes, so each framework gets {threads} thread(s) (a spinning thread pool beside a busy core "
              f"measures the other process); --threads {machine['affinity_cores']} overrides",
              highlight=False, soft_wrap=True)


def print_parity_intro(out: Console, plan: Plan) -> None:
    out.print(f"parity: proving {', '.join(plan.workloads)} the same model in {', '.join(plan.frameworks)} "
              "(float64, tiny, every mode; once per package versions; --no-parity skips it)", highlight=False,
              soft_wrap=True)


def print_parity_steps(out: Console, steps: list[ParityStep], evidence: Evidence) -> None:
    """One line per workload: its parity status (or why it was skipped), and whether it was stored before."""
    for step in steps:
        line = step.why if step.outcome == "skipped" else evidence.parity_status(step.workload)[0]
        when = {"cached": " (stored earlier with these package versions)",
                "checked": f" ({step.seconds:.0f} s)"}.get(step.outcome, "")
        out.print(f"  {escape(line)}{when}", highlight=False, soft_wrap=True)


def print_run_start(out: Console, run_id: str, plan: Plan, db: Path) -> None:
    out.print(f"run [bold]{run_id}[/bold]: {len(plan.specs)} cells x {plan.repeats} processes"
              + (", more where a verdict needs them" if plan.adaptive else "") + f", db {db}",
              soft_wrap=True)  # the run id and the path must stay greppable on one line


@contextmanager
def cell_progress(out: Console, store: Store, run_id: str, plan: Plan) -> Iterator[CellCallback]:
    """A progress bar over every round of the plan (growing by each process a verdict adds) and one line per
    finished cell, through the callback yielded. On Ctrl-C the bar is taken down before the interrupt goes on."""
    added_before = sum(round_index >= plan.repeats for _, round_index in store.finished_rounds(run_id))
    total = len(plan.schedule()) + added_before
    done = total - len(pending_cells(store, run_id, plan))
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TextColumn("ETA {task.fields[eta]}"))
    # The ETA starts from the plan's estimate per worker and follows the measured pace once cells finish.
    finished = {"rounds": 0, "seconds": 0.0, "started": time.monotonic()}

    def eta() -> str:
        left = total - done - finished["rounds"]
        pace = (finished["seconds"] / finished["rounds"]) if finished["rounds"] else plan.estimated_round_s()
        return eta_text(left * pace)

    with Progress(*columns, console=out, transient=True) as progress:
        bar = progress.add_task("starting", total=total, completed=done, eta=eta())

        def on_cell(round_index: int, spec: RunSpec, measurement: Measurement | None) -> None:
            nonlocal total
            if measurement is None:
                added = round_index >= plan.repeats
                if added:  # a process a verdict asked for: the bar grows by one
                    total += 1
                    progress.update(bar, total=total)
                which = f"{round_index + 1}, added for a verdict" if added else f"{round_index + 1}/{plan.repeats}"
                progress.update(bar, description=f"{spec.workload} {spec.task} {spec.framework} {spec.mode} "
                                f"(process {which})")
                return
            progress.console.print(cell_line(spec, measurement), highlight=False)
            finished["rounds"] += 1
            finished["seconds"] = time.monotonic() - finished["started"]
            progress.update(bar, advance=1, eta=eta())

        try:
            yield on_cell
        except KeyboardInterrupt:
            progress.stop()
            raise


class TerminalView:
    """A compare as it goes on one console (stderr under --json, so stdout stays JSON): analysis.compare's
    CompareView."""

    def __init__(self, out: Console) -> None:
        self.out = out

    def threads_lowered(self, machine: dict[str, Any], threads: int) -> None:
        print_busy_machine(self.out, machine, threads)

    def parity_started(self, plan: Plan) -> None:
        print_parity_intro(self.out, plan)

    def parity_proven(self, steps: list[ParityStep], evidence: Evidence) -> None:
        print_parity_steps(self.out, steps, evidence)

    def run_started(self, run_id: str, plan: Plan, db: Path) -> None:
        print_run_start(self.out, run_id, plan, db)

    def measuring(self, store: Store, run_id: str, plan: Plan) -> AbstractContextManager[CellCallback]:
        return cell_progress(self.out, store, run_id, plan)
