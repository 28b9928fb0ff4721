"""Command-line entry: parse, call one function per command, print. User errors exit 2 in one line."""

from __future__ import annotations

import functools
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from frameduel import environment
from frameduel.accuracy.run import DEFAULT_MODES, AccuracyRequest, local_runs, run_accuracy
from frameduel.analysis.adaptive import AdaptiveRounds
from frameduel.browser.setup import setup_browser
from frameduel.checkpoints import model_config, open_checkpoint
from frameduel.doctor import diagnose
from frameduel.errors import FrameduelError
from frameduel.export.bench import BenchBudget
from frameduel.export.manifest import BROWSER_FORMATS, DEFAULT_FORMATS, FORMATS
from frameduel.export.reference import DIGITS_SIZE
from frameduel.export.run import ExportRequest, run_export, save_results
from frameduel.export.table import print_export
from frameduel.frameworks import check_framework
from frameduel.parity.cache import prove_parity
from frameduel.parity.check import (
    NATIVE_DIRECTIONS,
    ParityRequest,
    check_parity,
    check_parity_support,
    directions_for,
    save_parity,
    spawned,
)
from frameduel.parity.data_parallel import DATA_PARALLEL_PARITY, check_data_parallel
from frameduel.report.accuracy import accuracy_json, print_accuracy, run_line
from frameduel.report.advise import SCENARIO_WEIGHTS
from frameduel.report.advise import advise as advise_scenario
from frameduel.report.diff import RunSide, diff_runs, print_diff
from frameduel.report.doctor import print_doctor
from frameduel.report.document import build_report
from frameduel.report.evidence import load_evidence
from frameduel.report.finetune import print_finetune
from frameduel.report.generation import print_generation
from frameduel.report.mlflow_export import log_to_mlflow
from frameduel.report.parity import data_parallel_lines, print_modes, print_parity
from frameduel.report.render import write_report
from frameduel.report.summary import RunSummary, summarize_planned_run
from frameduel.report.sweep import print_sweep, sweep_json
from frameduel.report.sweep_document import write_sweep_report
from frameduel.report.tensorboard import write_tensorboard
from frameduel.report.terminal import ms, print_summary
from frameduel.report.verdict import verdicts
from frameduel.runner.cores import core_slots
from frameduel.runner.finetune import FinetuneRequest, loss_agreement, run_finetune
from frameduel.runner.generate import GenerateRequest, run_generate
from frameduel.runner.plan import (
    PRESETS,
    TAKEN_CORE,
    MatrixRequest,
    Plan,
    build_plan,
    check_modes,
    modes_for,
    parse_duration,
)
from frameduel.runner.scheduler import CellExecutor, LocalCells, pending_cells, record_doctor_after, run_plan, start_run
from frameduel.spec import DEVICES, FRAMEWORKS, SIZES, TRAINING_TASKS, LoraSettings, Measurement, RunSpec, check_choice
from frameduel.store import RunRecord, Store, default_db_path
from frameduel.sweep import (
    SweepRequest,
    TrialExecutor,
    TrialSearch,
    check_sweep,
    load_sweep,
    parse_grid,
    planned_trial_count,
    run_sweep,
    start_sweep,
    stored_sweep,
    summarize_sweep,
)
from frameduel.workloads import get_workload

# Help texts are plain text: a URL pattern such as NAME[/versions/V] is not rich markup.
app = typer.Typer(add_completion=False, pretty_exceptions_enable=False, no_args_is_help=True, rich_markup_mode=None,
                  help="PyTorch vs TensorFlow, measured side by side on this machine.")
# Piped output (CI logs) is laid out for 100 columns, what the default tables fit, unless $COLUMNS says.
PIPED_WIDTH = 100
console = Console(width=None if sys.stdout.isatty() or "COLUMNS" in os.environ else PIPED_WIDTH)
err_console = Console(stderr=True, width=None if sys.stderr.isatty() or "COLUMNS" in os.environ else PIPED_WIDTH)
USER_ERROR_EXIT = 2

F = TypeVar("F", bound=Callable[..., object])
DbOption = typer.Option(None, "--db", help="results database (default: $FRAMEDUEL_DB or the user data dir)")
WideOption = typer.Option(False, "--wide", help="every column of the cell table (wider than 100 characters)")
SpeedupsOption = typer.Option(False, "--speedups", help="also print every pairwise speedup with its CI")
LoraRankOption = typer.Option(8, "--lora-rank", help="LoRA rank r of the finetune task's adapters")
LoraAlphaOption = typer.Option(16.0, "--lora-alpha", help="LoRA alpha: the update is scaled by alpha / r, as PEFT "
                               "does (Keras' own default, alpha = r, is not used)")
LoraTargetsOption = typer.Option(None, "--lora-targets", help="comma-separated module names to adapt (default: "
                                 "q_proj,v_proj for llama, c_attn for gpt)")
EXECUTORS = ("local", "ray")
FrameworksOption = typer.Option("torch,tf", help="comma-separated: torch, tf, keras-torch, keras-jax (the same "
                                "Keras models as tf, on Keras' torch and JAX backends)")
ExecutorOption = typer.Option("local", help="where cells run: local (this machine) or ray (a Ray cluster: "
                              "each machine one timing cell at a time; see --address)")
AddressOption = typer.Option(None, "--address", help="with --executor ray: the cluster head's HOST:PORT "
                             "(default: start a one-node Ray cluster on this machine for the run)")
CheckpointOption = typer.Option(None, "--checkpoint", help="a Hugging Face model directory (config.json + "
                                "model.safetensors): its config and weights replace the preset's "
                                "(gpt2, llama, mistral)")


def user_errors(command: F) -> F:
    """Turn a FrameduelError into one line on stderr and exit code 2; never a traceback."""

    @functools.wraps(command)
    def wrapper(*args: object, **kwargs: object) -> object:
        try:
            return command(*args, **kwargs)
        except FrameduelError as exc:
            # escape: messages quote user input and paths, which may hold [brackets] rich reads as markup
            err_console.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False, soft_wrap=True)
            raise typer.Exit(USER_ERROR_EXIT) from None

    return wrapper  # type: ignore[return-value]


def cell_executor(executor: str, address: str | None) -> CellExecutor | None:
    """None for this machine; a Ray executor whose cluster was checked to be reachable. Before anything starts."""
    if check_choice("executor", executor, EXECUTORS) == "local":
        if address is not None:
            raise FrameduelError("--address names a Ray cluster; add --executor ray")
        return None
    from frameduel.cluster.cells import RayCells  # Ray's import costs seconds; only runs that use it pay

    return RayCells(address)


def split_list(value: str | None) -> tuple[str, ...] | None:
    if value is None:
        return None
    items = tuple(item.strip() for item in value.split(",") if item.strip())
    if not items:
        raise FrameduelError(f"empty list '{value}'; give comma-separated names, e.g. mlp,cnn")
    return items


def parse_counts(option: str, value: str) -> tuple[int, ...]:
    """'1,2' -> (1, 2), or one line naming the option and what it takes."""
    try:
        return tuple(int(item) for item in split_list(value) or ())
    except ValueError:
        raise FrameduelError(f"{option} takes comma-separated whole numbers, e.g. 1,2; got '{value}'") from None


def open_store(db: Path | None) -> Store:
    return Store(db or default_db_path())


def summarize_stored_run(store: Store, run_id: str) -> tuple[RunRecord, RunSummary]:
    run = store.get_run(run_id)
    return run, summarize_planned_run(store.measurements(run_id), Plan.from_dict(run.plan))


def diff_side(store: Store, run_id: str) -> RunSide:
    run, summary = summarize_stored_run(store, run_id)
    return RunSide(run_id, summary, run.environment)


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


def run_with_progress(store: Store, run_id: str, plan: Plan, quiet: bool, executor: CellExecutor | None = None) -> None:
    """Every round of the plan, then the processes verdicts need (analysis/adaptive.py), with a progress bar."""
    added_before = sum(round_index >= plan.repeats for _, round_index in store.finished_rounds(run_id))
    total = len(plan.schedule()) + added_before
    done = total - len(pending_cells(store, run_id, plan))
    out = err_console if quiet else console
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
            run_plan(store, run_id, plan, on_cell, executor, AdaptiveRounds(store, run_id, plan))
        except KeyboardInterrupt:
            progress.stop()
            err_console.print(f"interrupted; finished cells are stored. Resume with: "
                              f"frameduel compare --resume {run_id}", soft_wrap=True, highlight=False)
            raise typer.Exit(130) from None


@app.command()
@user_errors
def compare(
    workloads: str | None = typer.Option(None, help="comma-separated workloads (default: mlp,cnn, or the "
                                         "checkpoint's family)"),
    frameworks: str = FrameworksOption,
    modes: str | None = typer.Option(None, help="torch: eager,compile; tf: eager,function,xla; keras-torch: "
                                     "eager,compile; keras-jax: eager,jit (default all)"),
    tasks: str | None = typer.Option(
        None, help="train (fwd+bwd+optimizer step: a full fine-tune), infer, generate (KV cache), finetune "
        "(LoRA adapters on the frozen model); default: all a workload supports"
    ),
    precisions: str = typer.Option("fp32", help="fp32, bf16, fp16 (mixed precision; where supported)"),
    preset: str = typer.Option("quick", help=f"measurement effort: {', '.join(PRESETS)}"),
    size: str | None = typer.Option(None, help="model size: tiny, small (CPU default), base (GPU default)"),
    device: str | None = typer.Option(None, help="cpu or cuda (default: cuda when present)"),
    threads: int | None = typer.Option(None, help="intra-op threads per framework (default: all cores)"),
    repeats: int | None = typer.Option(None, help="worker processes per cell (default: from preset)"),
    timeout: float | None = typer.Option(None, help="seconds before a cell's worker is killed"),
    seed: int = typer.Option(0, help="seed for data and weights"),
    peak: bool | None = typer.Option(None, "--peak/--no-peak", help="add GEMM cells for the matmul peak "
                                     "(default: the full preset does)"),
    launch: str = typer.Option("fork", help="how each cell's fresh worker process starts: fork (from a zygote "
                               "that imported the framework once) or spawn (a new interpreter)"),
    parallel: int = typer.Option(1, help="timing cells at once, each on its own cores; they still share memory "
                                 "bandwidth and caches, so every cell is flagged (default 1: one at a time)"),
    workers: str = typer.Option("1", help="data-parallel worker counts of train cells, comma-separated (e.g. "
                                "1,2): torch DDP, TF MultiWorkerMirroredStrategy; started by torchrun and "
                                "TF_CONFIG here, by Ray Train across the nodes with --executor ray"),
    scaling: str = typer.Option("strong", help="with --workers: strong (same global batch at every count), "
                                "weak (same batch per worker), or strong,weak"),
    executor: str = ExecutorOption,
    address: str | None = AddressOption,
    checkpoint: Path | None = CheckpointOption,
    lora_rank: int = LoraRankOption,
    lora_alpha: float = LoraAlphaOption,
    lora_targets: str | None = LoraTargetsOption,
    budget: str | None = typer.Option(None, help="time for the whole measuring, e.g. 90s, 5m, 1h: processes are "
                                      "added to the cells undecided verdicts rest on until it is spent (default: "
                                      "the first rounds' time + 50%, +100% for full)"),
    no_parity: bool = typer.Option(False, "--no-parity", help="skip the parity proof (float64, tiny) that runs "
                                   "before measuring, once per workload and package versions"),
    recheck_parity: bool = typer.Option(False, "--recheck-parity", help="prove parity again even where a proof "
                                        "with these package versions is stored"),
    resume: str | None = typer.Option(None, help="finish an interrupted run; skips finished cells"),
    as_json: bool = typer.Option(False, "--json", help="print the summary as JSON instead of tables"),
    wide: bool = WideOption,
    speedups: bool = SpeedupsOption,
    db: Path | None = DbOption,
) -> None:
    """Run workloads in PyTorch and TensorFlow side by side and print the comparison."""
    if no_parity and recheck_parity:
        raise FrameduelError("--no-parity skips the parity proof and --recheck-parity forces it; give one of the two")
    store = open_store(db)
    cells_executor = cell_executor(executor, address)
    if resume:
        if budget is not None or recheck_parity:
            raise FrameduelError("--resume continues a run with its own budget and parity; leave out --budget and "
                                 "--recheck-parity")
        run_id, plan = resume, Plan.from_dict(store.get_run(resume).plan)
    else:
        if workloads is None:
            workloads = open_checkpoint(checkpoint).workload if checkpoint else "mlp,cnn"
        machine = diagnose().to_dict()
        request = MatrixRequest(
            workloads=split_list(workloads), frameworks=split_list(frameworks), modes=split_list(modes),
            tasks=split_list(tasks), precisions=split_list(precisions), preset=preset, size=size,
            device=device, threads=threads, repeats=repeats, timeout_s=timeout, seed=seed, peak=peak,
            launch=launch, checkpoint=str(checkpoint) if checkpoint else None,
            lora_rank=lora_rank, lora_alpha=lora_alpha, lora_targets=split_list(lora_targets), parallel=parallel,
            workers=parse_counts("--workers", workers), scaling=split_list(scaling),
            cluster=cells_executor is not None, budget_s=parse_duration(budget) if budget is not None else None,
            busy_cores=machine["busy_cores"],
        )
        plan = build_plan(request)
        if threads is None and parallel == 1 and machine["busy_cores"] >= TAKEN_CORE and cells_executor is None:
            (err_console if as_json else console).print(
                f"machine busy: {machine['busy_cores']:.1f} of {machine['affinity_cores']} cores used by other "
                f"processes, so each framework gets {plan.specs[0].threads} thread(s) (a spinning thread pool "
                f"beside a busy core measures the other process); --threads {machine['affinity_cores']} overrides",
                highlight=False, soft_wrap=True)
        if cells_executor is not None and plan.parallel != 1:
            raise FrameduelError("--parallel is for --executor local; on Ray, machines run in parallel and each "
                                 "runs one timing cell at a time")
    out = err_console if as_json else console
    cells_executor = cells_executor or LocalCells()
    if not resume:
        if not no_parity:
            prove_compare_parity(store, plan, cells_executor, recheck_parity, out)
        run_id = start_run(store, plan, machine)
    out.print(f"run [bold]{run_id}[/bold]: {len(plan.specs)} cells x {plan.repeats} processes"
              + (", more where a verdict needs them" if plan.adaptive else "") + f", db {store.path}",
              soft_wrap=True)  # the run id and the path must stay greppable on one line
    run_with_progress(store, run_id, plan, quiet=as_json, executor=cells_executor)
    record_doctor_after(store, run_id)
    show_run(store, run_id, as_json, wide, speedups)


def prove_compare_parity(store: Store, plan: Plan, executor: CellExecutor, recheck: bool, out: Console) -> None:
    """Parity of the compared workloads before any timed cell, forked from the run's zygotes where it runs
    locally; one line per workload."""
    first = plan.specs[0]
    workloads = tuple(dict.fromkeys(spec.workload for spec in plan.specs))
    frameworks = tuple(dict.fromkeys(spec.framework for spec in plan.specs))
    local = isinstance(executor, LocalCells) and plan.launch == "fork"
    out.print(f"parity: proving {', '.join(workloads)} the same model in {', '.join(frameworks)} (float64, tiny, "
              "every mode; once per package versions; --no-parity skips it)", highlight=False, soft_wrap=True)
    steps = prove_parity(store, workloads, frameworks, first.checkpoint, environment.fingerprint(), recheck,
                         executor.launcher if local else spawned)
    if local:
        executor.close_slot(1)  # the modes checks' second zygotes: measuring forks from slot 0 only
    evidence = load_evidence(store, workloads)
    for step in steps:
        line = step.why if step.outcome == "skipped" else evidence.parity_status(step.workload)[0]
        when = {"cached": " (stored earlier with these package versions)",
                "checked": f" ({step.seconds:.0f} s)"}.get(step.outcome, "")
        out.print(f"  {escape(line)}{when}", highlight=False, soft_wrap=True)


def show_run(store: Store, run_id: str, as_json: bool, wide: bool = False, speedups: bool = False) -> None:
    run, summary = summarize_stored_run(store, run_id)
    evidence = load_evidence(store, summary.workloads)
    if as_json:
        found = verdicts(summary, evidence)
        print(json.dumps({"run_id": run_id, "status": run.status, "environment": run.environment,
                          **summary.to_dict(), "verdict": [v.line() for v in found],
                          "verdicts": [v.to_dict() for v in found]}, indent=2))
        return
    cpu = run.environment["cpu"]["model"]
    threads = summary.cells[0].spec.threads if summary.cells else "?"
    rounds = Plan.from_dict(run.plan).repeats
    sizes = ",".join(sorted({cell.spec.model_label for cell in summary.cells}))
    print_summary(console, summary, f"run {run_id} ({run.status}): size {sizes}; {cpu}, {threads} threads, "
                  f"{rounds} processes/cell", evidence, wide, speedups)


@app.command()
@user_errors
def report(
    run_id: str = typer.Argument(..., help="a run id from `frameduel runs`, or a sweep id"),
    out: Path = typer.Option(Path("frameduel-report"), "--out", help="folder for report.html, .md, .json "
                             "(a sweep: sweep.html, .md, .json)"),
    tensorboard: Path | None = typer.Option(None, "--tensorboard", help="also write TensorBoard scalars here"),
    mlflow: str | None = typer.Option(None, "--mlflow", help="also log to this MLflow tracking URI or folder"),
    db: Path | None = DbOption,
) -> None:
    """Write a self-contained HTML report (plots embedded) plus Markdown and JSON versions."""
    store = open_store(db)
    if stored_sweep(store, run_id) is not None:
        if tensorboard is not None or mlflow is not None:
            raise FrameduelError("--tensorboard and --mlflow apply to compare runs, not sweeps; leave them out")
        for path in write_sweep_report(store, run_id, out):
            console.print(f"wrote {path}")
        return
    run, summary = summarize_stored_run(store, run_id)
    try:
        evidence = load_evidence(store, summary.workloads)
        written = write_report(build_report(run, summary, evidence=evidence), out)
        if tensorboard is not None:
            written.append(write_tensorboard(summary, run_id, tensorboard))
    except OSError as exc:
        raise FrameduelError(f"cannot write the report to {out}: {exc.strerror}; pass --out DIR") from None
    for path in written:
        console.print(f"wrote {path}")
    if mlflow is not None:
        mlflow_run = log_to_mlflow(run, summary, mlflow, [path for path in written if path.parent == out])
        console.print(f"logged MLflow run {mlflow_run} (experiment 'frameduel') to {mlflow}")


@app.command()
@user_errors
def show(
    run_id: str = typer.Argument(..., help="a run id from `frameduel runs`"),
    as_json: bool = typer.Option(False, "--json", help="print JSON instead of tables"),
    wide: bool = WideOption,
    speedups: bool = SpeedupsOption,
    db: Path | None = DbOption,
) -> None:
    """Print a stored run's verdict, side-by-side table and (with --speedups) every speedup."""
    show_run(open_store(db), run_id, as_json, wide, speedups)


@app.command()
@user_errors
def runs(db: Path | None = DbOption) -> None:
    """List stored runs, newest first."""
    store = open_store(db)
    table = Table(header_style="bold", box=None, padding=(0, 1))
    for column in ("run id", "created", "status", "preset", "rounds done", "workloads"):
        table.add_column(column, no_wrap=column != "workloads")
    for run, finished in store.list_runs():
        plan = Plan.from_dict(run.plan)
        workloads = sorted({spec.workload for spec in plan.specs})
        table.add_row(run.id, run.created_at[:19].replace("T", " "), run.status, plan.preset,
                      f"{finished} / {len(plan.schedule())}", ",".join(workloads))
    console.print(table)


@app.command()
@user_errors
def env(as_json: bool = typer.Option(False, "--json", help="print JSON")) -> None:
    """Print this machine's environment fingerprint (what every run records)."""
    fingerprint = environment.fingerprint()
    if as_json:
        print(json.dumps(fingerprint, indent=2))
        return
    table = Table(show_header=False)
    for key, value in fingerprint.items():
        table.add_row(key, json.dumps(value) if isinstance(value, (dict, list)) else str(value))
    console.print(table)


@app.command()
@user_errors
def doctor(
    as_json: bool = typer.Option(False, "--json", help="print JSON"),
    seconds: float = typer.Option(1.0, help="how long to sample other processes' CPU use"),
) -> None:
    """What makes this machine noisy for benchmarks, each problem with a one-line fix (as pyperf system show)."""
    if not seconds > 0:
        raise FrameduelError(f"--seconds must be > 0, got {seconds:g}")
    diagnosis = diagnose(seconds).to_dict()
    if as_json:
        print(json.dumps(diagnosis, indent=2))
        return
    print_doctor(console, diagnosis)


@app.command()
@user_errors
def parity(
    workload: str | None = typer.Argument(None, help="workload to check, e.g. mlp (default: the checkpoint's)"),
    size: str = typer.Option("tiny", help="model size: tiny, small, base"),
    direction: str = typer.Option("both", help="torch-to-tf, tf-to-torch or both"),
    frameworks: str = typer.Option("torch,tf", help="torch and what to hold to it: tf (both ways), keras-torch, "
                                   "keras-jax (Keras 3 on those backends, from torch's weights)"),
    steps: int = typer.Option(10, help="training steps compared, per optimizer (SGD and Adam)"),
    batch_size: int = typer.Option(8, help="batch size of the evaluation and training batches"),
    seed: int = typer.Option(0, help="seed for weights and data"),
    modes: bool = typer.Option(True, "--modes/--no-modes", help="also check every compiled mode against eager"),
    checkpoint: Path | None = CheckpointOption,
    tasks: str | None = typer.Option(None, help="train (every weight trained), finetune (LoRA adapters on the "
                                     "frozen model); default: every one the workload has"),
    lora_rank: int = typer.Option(4, "--lora-rank", help="finetune: LoRA rank r"),
    lora_alpha: float = typer.Option(8.0, "--lora-alpha", help="finetune: LoRA alpha (alpha / r != 1, so a "
                                     "scaling difference shows)"),
    lora_targets: str | None = typer.Option(None, "--lora-targets", help="finetune: modules to adapt (default: "
                                            "every Linear LoRA may target, so each adapted path is checked)"),
    workers: int = typer.Option(1, help="instead: prove N data-parallel workers (torch DDP, tf.distribute) train "
                                "what one process does, and the same as each other"),
    as_json: bool = typer.Option(False, "--json", help="print JSON instead of tables"),
    db: Path | None = DbOption,
) -> None:
    """Prove both implementations are the same model: float64 outputs, layers, loss curves and trained state
    (of full training and, for language models, of LoRA fine-tuning)."""
    if workers > 1:
        return data_parallel_parity(workload, workers, steps, batch_size, size, seed, as_json, db)
    if workload is None:
        if checkpoint is None:
            raise FrameduelError("name a workload to check (e.g. frameduel parity mlp), or pass --checkpoint DIR")
        workload = open_checkpoint(checkpoint).workload
    check_parity_support(get_workload(workload))
    check_choice("size", size, SIZES)
    if checkpoint is not None:
        model_config(get_workload(workload), str(checkpoint.resolve()), size)  # refuses a bad one now
    chosen = tuple(check_framework(fw) for fw in split_list(frameworks))
    if direction != "both":
        check_choice("direction", direction, ("both", *NATIVE_DIRECTIONS))
    requests = [ParityRequest(workload, size, directions_for(chosen, direction), steps,
                              batch_size, seed, check_modes=modes,
                              checkpoint=str(checkpoint.resolve()) if checkpoint else None, task=task,
                              lora=parity_lora(workload, task, lora_rank, lora_alpha, lora_targets))
                for task in parity_tasks(workload, tasks)]
    store, fingerprint = open_store(db), environment.fingerprint()
    reports, modes_reports = [], []
    for request in requests:
        task_reports, modes_report = check_parity(request)
        save_parity(store, task_reports, modes_report, fingerprint)
        reports += task_reports
        modes_reports += [modes_report] if modes_report else []
    if as_json:
        print(json.dumps({"directions": [report.to_dict() for report in reports],
                          "modes": modes_reports[0].to_dict() if modes_reports else None,
                          "modes_by_task": [m.to_dict() for m in modes_reports]}, indent=2))
    else:
        for report in reports:
            print_parity(console, report)
        for modes_report in modes_reports:
            print_modes(console, modes_report)
    if not all(report.passed for report in reports) or not all(m.passed for m in modes_reports):
        raise typer.Exit(1)


def data_parallel_parity(workload: str | None, workers: int, steps: int, batch_size: int, size: str, seed: int,
                         as_json: bool, db: Path | None) -> None:
    if workload is None:
        raise FrameduelError("name a workload to check, e.g. frameduel parity mlp --workers 2")
    check_choice("size", size, SIZES)
    if "train" not in get_workload(workload).tasks:
        raise FrameduelError(f"{workload} has no train task; data parallel trains")
    if batch_size % workers or workers > len(core_slots(None)):
        raise FrameduelError(f"--workers {workers} needs a core each and a --batch-size divisible by it "
                             f"(got {batch_size}, {len(core_slots(None))} cores)")
    report = check_data_parallel(workload, workers, steps, batch_size, size, seed)
    open_store(db).save_result(DATA_PARALLEL_PARITY, f"{workload}-{size}-w{workers}", report.to_dict(),
                               environment.fingerprint())
    if as_json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        for line in data_parallel_lines(report):
            console.print(line, highlight=False, soft_wrap=True)
    if not report.passed:
        raise typer.Exit(1)


def parity_tasks(workload: str, requested: str | None) -> list[str]:
    """The training tasks to prove: full training, and LoRA fine-tuning where the workload has it."""
    trainable = [task for task in get_workload(workload).tasks if task in TRAINING_TASKS]
    chosen = split_list(requested) or tuple(trainable)
    for task in chosen:
        check_choice(f"parity task of {workload}", task, trainable)
    return list(chosen)


def parity_lora(workload: str, task: str, rank: int, alpha: float, targets: str | None) -> LoraSettings | None:
    if task != "finetune":
        return None
    w = get_workload(workload)
    return w.lora_settings(rank, alpha, split_list(targets) or w.lora_modules)


@app.command()
@user_errors
def generate(
    workload: str | None = typer.Argument(None, help="gpt or llama (default: the checkpoint's family, else llama)"),
    prompt: str = typer.Option(..., help="prompt token ids, comma-separated, e.g. 1,2,3"),
    new_tokens: int = typer.Option(32, help="tokens to generate greedily"),
    checkpoint: Path | None = CheckpointOption,
    adapter: Path | None = typer.Option(None, "--adapter", help="a PEFT LoRA adapter directory (adapter_config.json "
                                        "+ adapter_model.safetensors) applied in every framework, e.g. one "
                                        "`frameduel finetune` saved"),
    size: str = typer.Option("small", help="model size without a checkpoint: tiny, small, base"),
    frameworks: str = typer.Option("torch,tf", help="comma-separated: torch, tf"),
    modes: str | None = typer.Option(None, help="torch: eager,compile; tf: eager,function,xla (default all)"),
    precision: str = typer.Option("fp32", help="fp32, bf16, fp16 (mixed precision), fp64"),
    batch_size: int = typer.Option(1, help="copies of the prompt decoded together"),
    device: str | None = typer.Option(None, help="cpu or cuda (default: cuda when present)"),
    threads: int | None = typer.Option(None, help="intra-op threads (default: all cores)"),
    seed: int = typer.Option(0, help="seed for the weights when there is no checkpoint"),
    as_json: bool = typer.Option(False, "--json", help="print JSON instead of tables"),
) -> None:
    """Greedy generation from prompt token ids in each framework and mode: the ids, prefill and per-token times."""
    checkpoint_path = str(checkpoint.resolve()) if checkpoint else None
    if workload is None:
        workload = open_checkpoint(checkpoint_path).workload if checkpoint_path else "llama"
    device = check_choice("device", device or environment.default_device(), DEVICES)
    environment.check_device(device)
    environment.check_precision(precision, device)
    if threads is not None and threads < 1:
        raise FrameduelError(f"--threads must be >= 1, got {threads}")
    try:
        prompt_ids = tuple(int(token) for token in split_list(prompt) or ())
    except ValueError:
        raise FrameduelError(f"bad prompt '{prompt}'; give integer token ids, e.g. --prompt 1,2,3") from None
    requested_modes = split_list(modes)
    check_modes(split_list(frameworks), requested_modes)
    specs = tuple(RunSpec(workload=workload, framework=fw, mode=mode, task="generate", precision=precision,
                          batch_size=batch_size, device=device, threads=threads or environment.default_threads(),
                          size=size, seed=seed, checkpoint=checkpoint_path,
                          adapter=str(adapter.resolve()) if adapter else None)
                  for fw in split_list(frameworks) for mode in modes_for(fw, requested_modes))
    request = GenerateRequest(specs, prompt_ids, new_tokens)
    results = run_generate(request)
    if as_json:
        # Without a checkpoint each framework draws its own random weights, so their ids are not comparable.
        print(json.dumps({"workload": workload, "model": specs[0].model_label, "prompt": list(prompt_ids),
                          "same_weights": checkpoint_path is not None, "results": [r.to_dict() for r in results]},
                         indent=2))
    else:
        print_generation(console, results, f"{workload} {specs[0].model_label}, {precision}, batch {batch_size}: "
                         f"{len(prompt_ids)} prompt tokens, {new_tokens} new")
    if not any(r.status == "ok" for r in results):
        raise typer.Exit(1)


@app.command()
@user_errors
def finetune(
    workload: str | None = typer.Argument(None, help="gpt or llama (default: the checkpoint's family, else llama)"),
    checkpoint: Path | None = CheckpointOption,
    size: str = typer.Option("small", help="model size without a checkpoint: tiny, small, base"),
    frameworks: str = typer.Option("torch,tf", help="comma-separated: torch, tf"),
    modes: str | None = typer.Option(None, help="e.g. torch=compile,tf=xla (default: eager)"),
    steps: int = typer.Option(20, help="Adam steps on the workload's synthetic text"),
    batch_size: int = typer.Option(8, help="sequences per step"),
    learning_rate: float = typer.Option(1e-3, "--lr", help="Adam learning rate"),
    lora_rank: int = LoraRankOption,
    lora_alpha: float = LoraAlphaOption,
    lora_targets: str | None = LoraTargetsOption,
    out: Path = typer.Option(Path("frameduel-adapters"), "--out", help="adapters go to OUT/<framework>-<mode>/"),
    threads: int | None = typer.Option(None, help="intra-op threads (default: all cores)"),
    seed: int = typer.Option(0, help="seed for the adapters' init and the data"),
    as_json: bool = typer.Option(False, "--json", help="print JSON instead of tables"),
) -> None:
    """LoRA fine-tuning in each framework from the same start; adapters saved in PEFT's format
    (adapter_config.json + adapter_model.safetensors), loadable by PEFT into transformers."""
    checkpoint_path = str(checkpoint.resolve()) if checkpoint else None
    if workload is None:
        workload = open_checkpoint(checkpoint_path).workload if checkpoint_path else "llama"
    w = get_workload(workload)
    model_config(w, checkpoint_path, check_choice("size", size, SIZES))  # a bad checkpoint: refused now
    lora = w.lora_settings(lora_rank, lora_alpha, split_list(lora_targets))
    if steps < 2 or batch_size < 1 or threads is not None and threads < 1:
        raise FrameduelError("--steps must be >= 2, --batch-size and --threads >= 1")
    chosen = parse_modes(modes)
    specs = tuple(RunSpec(workload=workload, framework=fw, mode=chosen.get(fw, "eager"), task="finetune",
                          batch_size=batch_size, threads=threads or environment.default_threads(), size=size,
                          seed=seed, checkpoint=checkpoint_path, lora=lora)
                  for fw in split_list(frameworks))
    results = run_finetune(FinetuneRequest(specs, steps, out, learning_rate))
    if as_json:
        print(json.dumps({"workload": workload, "model": specs[0].model_label, "lora": specs[0].task_label,
                          "loss_max_rel_diff": loss_agreement(results), "results": [r.to_dict() for r in results]},
                         indent=2))
    else:
        print_finetune(console, results, f"{workload} {specs[0].model_label}, {specs[0].task_label}: {steps} Adam "
                       f"steps, batch {batch_size}, same start in every framework")
    if not all(r.status == "ok" for r in results):
        raise typer.Exit(1)


def parse_modes(value: str | None) -> dict[str, str]:
    """'torch=compile,tf=xla' -> {"torch": "compile", "tf": "xla"}."""
    modes = {}
    for item in split_list(value) or ():
        framework, sep, mode = item.partition("=")
        if not sep:
            raise FrameduelError(f"bad mode '{item}'; give framework=mode pairs, e.g. torch=compile,tf=xla")
        modes[check_choice("framework", framework, FRAMEWORKS)] = mode
    return modes


@app.command()
@user_errors
def accuracy(
    workloads: str = typer.Option("mlp,cnn", help="comma-separated workloads that support the digits data"),
    frameworks: str = FrameworksOption,
    seeds: int = typer.Option(3, help="training runs per framework (seeds 0..N-1: weights and shuffling)"),
    target: float = typer.Option(0.95, help="test accuracy to reach, in (0, 1]"),
    max_epochs: int = typer.Option(40, help="epochs each run trains for"),
    batch_size: int = typer.Option(64, help="training batch size (the last partial batch is dropped)"),
    modes: str | None = typer.Option(
        None, help="framework=mode pairs, e.g. torch=compile,tf=xla (default: "
        + ",".join(f"{fw}={mode}" for fw, mode in DEFAULT_MODES.items()) + ")"
    ),
    device: str | None = typer.Option(None, help="cpu or cuda (default: cuda when present)"),
    threads: int | None = typer.Option(None, help="intra-op threads per framework (default: all cores)"),
    executor: str = ExecutorOption,
    address: str | None = AddressOption,
    as_json: bool = typer.Option(False, "--json", help="print JSON instead of tables"),
) -> None:
    """Time to accuracy on real data: train on scikit-learn's digits until the test accuracy reaches --target."""
    device = check_choice("device", device or environment.default_device(), DEVICES)
    environment.check_device(device)
    if threads is not None and threads < 1:
        raise FrameduelError(f"--threads must be >= 1, got {threads}")
    request = AccuracyRequest(
        workloads=split_list(workloads), frameworks=split_list(frameworks),
        modes={**DEFAULT_MODES, **parse_modes(modes)}, seeds=seeds, target=target, max_epochs=max_epochs,
        batch_size=batch_size, device=device, threads=threads or environment.default_threads(),
    )
    runs_executor = local_runs
    if cell_executor(executor, address) is not None:  # checks the address before anything starts
        from frameduel.cluster.trials import ray_accuracy_runs

        runs_executor = functools.partial(ray_accuracy_runs, address)
    runs, summaries = run_accuracy(
        request, on_run=lambda run: err_console.print(run_line(run, target), highlight=False, soft_wrap=True),
        executor=runs_executor)
    if as_json:
        print(json.dumps(accuracy_json(runs, summaries, request), indent=2))
    else:
        print_accuracy(console, summaries, request)


@app.command()
@user_errors
def sweep(
    workloads: str = typer.Option("mlp,cnn", help="comma-separated workloads that support the digits data"),
    frameworks: str = FrameworksOption,
    grid: list[str] = typer.Option([], "--grid", help="KEY=V1,V2,... (repeatable): lr, batch_size"),
    seeds: int = typer.Option(2, help="trials per configuration and framework (seeds 0..N-1)"),
    target: float = typer.Option(0.95, help="test accuracy each trial trains to, in (0, 1]"),
    max_epochs: int = typer.Option(40, help="a trial that has not reached the target by then stops"),
    parallel: int | None = typer.Option(None, help="trials at once, each pinned to its own cores (default: one "
                                        "per core)"),
    modes: str | None = typer.Option(None, help="e.g. torch=compile,tf=xla (default: torch eager, tf function)"),
    executor: str = typer.Option("local", help="where trials run: local (--parallel at a time) or ray (a Ray "
                                 "cluster: as many as its CPUs hold; see --address)"),
    address: str | None = AddressOption,
    cpus_per_trial: int = typer.Option(1, help="with --executor ray: CPUs each trial reserves (and threads)"),
    search: str | None = typer.Option(None, help="random: Ray Tune draws --samples trials per workload, framework "
                                      "and seed from the grid (lr=LOW..HIGH is log-uniform); needs --executor ray"),
    samples: int = typer.Option(8, help="with --search: trials drawn per workload, framework and seed"),
    early_stop: str | None = typer.Option(None, help="with --search: asha (Ray Tune's ASHA stops the worst trials "
                                          "after 2, 6, 18... epochs)"),
    resume: str | None = typer.Option(None, help="finish an interrupted sweep: runs only the trials not stored"),
    as_json: bool = typer.Option(False, "--json", help="print JSON instead of tables"),
    db: Path | None = DbOption,
) -> None:
    """Train a grid of hyperparameters x frameworks x workloads x seeds to a target accuracy, N trials at once."""
    store = open_store(db)
    fingerprint = environment.fingerprint()
    if resume:
        sweep_id, request = resume, load_sweep(store, resume)
    else:
        accuracy_request = AccuracyRequest(workloads=split_list(workloads), frameworks=split_list(frameworks),
                                           modes={**DEFAULT_MODES, **parse_modes(modes)}, seeds=seeds,
                                           target=target, max_epochs=max_epochs)
        request = SweepRequest(accuracy_request, parse_grid(grid, ranges=search is not None), parallel, search,
                               samples if search else 0, early_stop)
    check_sweep(request)
    trials_executor: TrialExecutor | TrialSearch | None = None
    if cell_executor(executor, address) is not None:  # checks the address before anything starts
        if request.search is not None:
            from frameduel.cluster.tune import TuneSearch

            trials_executor = TuneSearch(address, cpus_per_trial)
        else:
            from frameduel.cluster.trials import RayTrials

            trials_executor = RayTrials(address, cpus_per_trial)
    elif request.search is not None:
        raise FrameduelError("--search draws its trials with Ray Tune; add --executor ray")
    if not resume:
        sweep_id = start_sweep(store, request, fingerprint)
    slots = len(core_slots(request.parallel))
    at_once = f"{slots} at a time" if trials_executor is None else f"on Ray, {cpus_per_trial} CPU(s) each"
    err_console.print(f"sweep [bold]{sweep_id}[/bold]: {planned_trial_count(request)} trials, {at_once}, "
                      f"db {store.path}", soft_wrap=True, highlight=False)
    target = request.accuracy.target
    try:
        results = run_sweep(store, sweep_id, request, fingerprint, on_trial=lambda r: err_console.print(
            f"{r.trial.key} (cores {','.join(map(str, r.cpus))}): {run_line(r.run, target)}", highlight=False,
            soft_wrap=True), executor=trials_executor)
    except KeyboardInterrupt:
        err_console.print(f"interrupted; finished trials are stored. Resume with: frameduel sweep --resume "
                          f"{sweep_id}", soft_wrap=True, highlight=False)
        raise typer.Exit(130) from None
    summaries = summarize_sweep(results, target)
    if as_json:
        print(json.dumps(sweep_json(sweep_id, results, summaries), indent=2))
    else:
        print_sweep(console, sweep_id, summaries, target, at_once)


@app.command()
@user_errors
def diff(
    run_a: str = typer.Argument(..., help="run A, the reference: a run id from `frameduel runs`"),
    run_b: str = typer.Argument(..., help="run B, compared against A"),
    as_json: bool = typer.Option(False, "--json", help="print JSON instead of tables"),
    db: Path | None = DbOption,
) -> None:
    """Compare two stored runs cell by cell (speedup A->B with its CI) and list their environment differences."""
    store = open_store(db)
    result = diff_runs(*(diff_side(store, run_id) for run_id in (run_a, run_b)))
    if as_json:
        print(json.dumps(result.to_dict(), indent=2))
    else:
        print_diff(console, result)


@app.command()
@user_errors
def advise(
    run_id: str = typer.Argument(..., help="a run id from `frameduel runs`"),
    scenario: str = typer.Option(..., help=f"one of: {', '.join(SCENARIO_WEIGHTS)}"),
    as_json: bool = typer.Option(False, "--json", help="print JSON"),
    db: Path | None = DbOption,
) -> None:
    """Recommend a framework for a scenario, with the evidence and weights behind it."""
    check_choice("scenario", scenario, tuple(SCENARIO_WEIGHTS))
    store = open_store(db)
    _, summary = summarize_stored_run(store, run_id)
    advice = advise_scenario(summary, scenario, load_evidence(store, summary.workloads))
    if as_json:
        print(json.dumps(advice.to_dict(), indent=2))
        return
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


@app.command()
@user_errors
def serve(
    repository: Path | None = typer.Option(None, "--repository", help="model repository: "
                                           "DIR/MODEL/VERSION/manifest.json (or --llm)"),
    host: str = typer.Option("127.0.0.1", help="interface to bind; loopback unless you mean to expose it"),
    port: int = typer.Option(8000, help="TCP port"),
    token: str | None = typer.Option(None, "--token", envvar="FRAMEDUEL_SERVE_TOKEN",
                                     help="require 'Authorization: Bearer TOKEN' (or set $FRAMEDUEL_SERVE_TOKEN)"),
    threads: int | None = typer.Option(None, help="runtime threads per model version (default: cores - 1)"),
    max_batch_size: int = typer.Option(32, help="samples per runtime call (dynamic batching; 1 turns it off)"),
    max_queue_delay_us: int = typer.Option(2000, help="longest the oldest request waits for a batch to fill"),
    max_queue_size: int = typer.Option(1024, help="samples allowed to wait per model version; more get 429"),
    timeout_s: float = typer.Option(30.0, help="a request still queued this long after arrival gets 503"),
    grpc_port: int | None = typer.Option(None, help="also serve the v2 gRPC API (inference.GRPCInferenceService) "
                                         "on this port, same host"),
    llm: str | None = typer.Option(None, "--llm", help="serve a language model instead: a Hugging Face checkpoint "
                                   "directory (with tokenizer.json) or gpt/llama; OpenAI-compatible API"),
    framework: str = typer.Option("torch", "--framework", help="--llm: torch or tf"),
    mode: str | None = typer.Option(None, "--mode", help="--llm: torch eager|compile, tf eager|function|xla "
                                    "(default: the framework's best serving mode)"),
    size: str = typer.Option("small", help="--llm gpt/llama: the preset"),
    kv_slots: int = typer.Option(32, help="--llm: KV-cache slots, the sequences decoding at once"),
    max_model_len: int | None = typer.Option(None, help="--llm: positions per slot, prompt and output"),
    prefill_chunk: int = typer.Option(256, help="--llm: prompt tokens prefilled per step beside the decoding ones"),
    max_waiting: int = typer.Option(256, help="--llm: requests waiting for a slot; more get 429"),
    max_running: int | None = typer.Option(None, help="--llm: sequences at once (default: every slot; 1: one "
                                           "request at a time, no batching)"),
    served_model_name: str | None = typer.Option(None, help="--llm: the model id clients name"),
) -> None:
    """Serve a model repository over the KServe v2 / Open Inference Protocol REST API (and gRPC with --grpc-port),
    or a language model (--llm) over an OpenAI-compatible API with continuous batching."""
    # Imported here: the server's packages (the [serve] extra) are only needed by this command.
    from frameduel.serve.app import ServerConfig, default_threads, run_server
    from frameduel.serve.batcher import BatchingConfig

    if llm is not None:
        from frameduel.llm.params import EngineConfig
        from frameduel.serve.llm_app import serve_llm

        engine = EngineConfig(kv_slots, max_model_len, prefill_chunk, max_waiting, max_running)
        serve_llm(llm, framework, mode, size, threads or default_threads(), served_model_name, engine, host, port,
                  token, say=lambda line: console.print(line, highlight=False))
        return
    if repository is None:
        raise FrameduelError("name what to serve: --repository DIR (exported models) or --llm CHECKPOINT|WORKLOAD")

    batching = BatchingConfig(max_batch_size, max_queue_delay_us, max_queue_size, timeout_s)
    config = ServerConfig(repository, host, port, token, threads or default_threads(), batching, grpc_port=grpc_port)
    also = f" and grpc://{host}:{grpc_port}" if grpc_port is not None else ""
    console.print(f"serving {repository} at http://{host}:{port}/v2{also} (Ctrl-C stops)", highlight=False)
    run_server(config)


@app.command()
@user_errors
def loadtest(
    url: str = typer.Argument(..., help="model URL: http://HOST:PORT/v2/models/NAME[/versions/V], or "
                              "grpc://HOST:PORT/NAME[/versions/V] for the gRPC API"),
    concurrency: int = typer.Option(8, help="closed loop: clients with one request in flight; open: connections"),
    duration: float = typer.Option(10.0, help="measured seconds, after the warm-up"),
    warmup: float = typer.Option(1.0, help="seconds of load before measuring"),
    mode: str = typer.Option("closed", help="closed (fixed concurrency) or open (Poisson arrivals at --rate)"),
    rate: float | None = typer.Option(None, help="open loop: mean requests per second"),
    batch: int = typer.Option(1, help="samples per request"),
    json_tensors: bool = typer.Option(False, "--json-tensors", help="JSON tensors instead of the binary extension "
                                      "(gRPC: typed contents instead of raw)"),
    token: str | None = typer.Option(None, "--token", envvar="FRAMEDUEL_SERVE_TOKEN", help="bearer token"),
    as_json: bool = typer.Option(False, "--json", help="print JSON"),
    db: Path | None = DbOption,
    llm: bool = typer.Option(False, "--llm", help="URL is an OpenAI-compatible LLM server (http://HOST:PORT): "
                             "streaming requests, vllm bench serve's TTFT/TPOT/ITL/E2EL"),
    model: str | None = typer.Option(None, help="--llm: the model id (default: the first /v1/models lists)"),
    endpoint: str = typer.Option("completions", help="--llm: completions or chat"),
    requests: int | None = typer.Option(None, help="--llm: measured requests (default: max(16, 4 x concurrency))"),
    warmup_requests: int | None = typer.Option(None, help="--llm: unmeasured requests first (default: concurrency)"),
    input_len: int = typer.Option(16, help="--llm: prompt words, drawn with the seed from a fixed word list"),
    output_len: int = typer.Option(64, help="--llm: max_tokens per request"),
    range_ratio: float = typer.Option(0.0, help="--llm: lengths uniform in [len x (1-r), len x (1+r)]"),
    temperature: float = typer.Option(0.0, help="--llm: sampling temperature (0: greedy)"),
    slo: str | None = typer.Option(None, help="--llm: goodput SLOs in ms, e.g. ttft=200,tpot=50 (also e2el)"),
    label: str | None = typer.Option(None, help="--llm: the server's name in results (default: its metadata)"),
    seed: int = typer.Option(0, help="--llm: prompts, lengths and open-loop arrivals"),
) -> None:
    """Load-test a served model: throughput, latency percentiles, stability over time; the result is stored."""
    if llm:
        from frameduel.loadgen.llm_load import LLMLoadConfig, parse_slo, run_llm_loadtest, save_llm_loadtest
        from frameduel.report.llm_serving import print_llm_loadtest

        result = run_llm_loadtest(LLMLoadConfig(
            url, model, endpoint, mode, concurrency, rate, requests, warmup_requests, input_len, output_len,
            range_ratio, temperature, parse_slo(slo), label, token, seed))
        save_llm_loadtest(open_store(db), result)
        if as_json:
            print(json.dumps(result, indent=2))
        else:
            print_llm_loadtest(console, result)
        return
    from frameduel.serve.loadtest import LoadTestConfig, run_loadtest, save_loadtest

    config = LoadTestConfig(url, concurrency, duration, warmup, mode, rate, batch, not json_tensors, token=token)
    result = run_loadtest(config)
    save_loadtest(open_store(db), result)
    if as_json:
        print(json.dumps(result, indent=2))
        return
    table = Table(header_style="bold")
    for column in ("model", "mode", "conc.", "batch", "req/s", "samples/s", "p50 ms", "p90 ms", "p99 ms", "errors",
                   "stable"):
        table.add_column(column)
    latency = result["latency_ms"]
    table.add_row(f"{result['model']}/{result['version']}", mode, str(concurrency), str(batch),
                  f"{result['throughput_rps']:.1f}", f"{result['throughput_sps']:.1f}",
                  *(f"{latency[p]:.2f}" for p in ("p50", "p90", "p99")),
                  ", ".join(f"{code}: {n}" for code, n in result["errors"].items()) or "0",
                  "yes" if result["stable"] else f"no (noise {result['window_noise']:.0%})")
    console.print(table)


@app.command(name="export")
@user_errors
def export_command(
    workload: str | None = typer.Argument(None, help="workload to export, e.g. mlp or cnn (default: the "
                                          "checkpoint's family)"),
    framework: str = typer.Option(..., "--framework", help="source framework: torch or tf"),
    formats: str = typer.Option(",".join(DEFAULT_FORMATS), help="comma-separated: " + ", ".join(FORMATS)
                                + f" (browser formats {', '.join(BROWSER_FORMATS)}: run `frameduel browser setup`)"),
    out: Path = typer.Option(Path("frameduel-models"), "--out", help="model repository: <out>/<model>/<version>/"),
    size: str | None = typer.Option(None, help=f"{DIGITS_SIZE} (trained on load_digits; the default where the "
                                    "workload has a digits model, else tiny), tiny, small, base (untrained)"),
    checkpoint: Path | None = CheckpointOption,
    epochs: int = typer.Option(5, help="digits training epochs (--size digits)"),
    max_batch: int = typer.Option(32, help="largest batch an artefact accepts; the gate and throughput use it"),
    threads: int | None = typer.Option(None, help="runtime intra-op threads (default: all cores)"),
    seed: int = typer.Option(0, help="seed for weights and data"),
    timeout: float = typer.Option(600.0, help="seconds before a converter or validation worker is killed"),
    bench_seconds: float = typer.Option(BenchBudget.max_seconds, help="time budget of each benchmark series"),
    as_json: bool = typer.Option(False, "--json", help="print JSON instead of a table"),
    db: Path | None = DbOption,
) -> None:
    """Export a workload to deployment formats; gate every artefact against its source model; benchmark it."""
    checkpoint_path = str(checkpoint.resolve()) if checkpoint else None
    if workload is None:
        if checkpoint_path is None:
            raise FrameduelError("name a workload to export (e.g. frameduel export mlp --framework torch), or pass "
                                 "--checkpoint DIR")
        workload = open_checkpoint(checkpoint_path).workload  # refuses a bad checkpoint now, in one line
    if size is None:  # a checkpoint's config sets the model; the preset is only RunSpec's placeholder
        size = DIGITS_SIZE if get_workload(workload).digits is not None and not checkpoint_path else "tiny"
    request = ExportRequest(
        workload=workload, framework=framework, formats=split_list(formats), out=out, size=size,
        checkpoint=checkpoint_path, epochs=epochs, max_batch=max_batch, seed=seed,
        threads=threads or environment.default_threads(), timeout_s=timeout,
        budget=BenchBudget(max_seconds=bench_seconds),
    )
    store = open_store(db)
    export_id, results = run_export(request, on_result=lambda r: err_console.print(
        f"{r.format}: {r.status}{' - ' + r.reason if r.reason else ''}", highlight=False, soft_wrap=True))
    save_results(store, export_id, request, results, environment.fingerprint())
    rows = [result.to_dict() for result in results]
    if as_json:
        print(json.dumps({"export_id": export_id, "results": rows}, indent=2))
    else:
        print_export(console, rows, title=f"{export_id}: {workload} {request.model_label} from {framework}, "
                     f"{request.threads} threads -> {out}")
    if any(result.status in ("invalid", "failed") for result in results):
        raise typer.Exit(1)


browser_app = typer.Typer(add_completion=False, no_args_is_help=True, rich_markup_mode=None,
                          help="The browser runner's runtimes (npm) and the tfjs converter's venv.")
app.add_typer(browser_app, name="browser")


@browser_app.command(name="setup")
@user_errors
def browser_setup_command(
    force: bool = typer.Option(False, help="reinstall even what is already installed"),
    converter: bool = typer.Option(True, help="also the tfjs converter's venv (1.9 GB; only `--formats tfjs` "
                                              "needs it)"),
) -> None:
    """Install the pinned JS runtimes (npm ci) and the tfjs converter's venv into the cache; a no-op once done."""
    for step in setup_browser(force, converter):
        done = f"installed in {step.seconds:.0f} s" if step.seconds else "already installed"
        console.print(f"{step.name}: {done}, {step.size_bytes / 2**20:,.0f} MiB in {step.path}", highlight=False)


def main() -> None:
    sys.exit(app())


if __name__ == "__main__":
    main()
