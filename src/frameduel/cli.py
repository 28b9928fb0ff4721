"""Command-line entry: parse, call one function of the command's track, print through report/; user errors exit 2."""

from __future__ import annotations

import functools
import json
import sys
from pathlib import Path

import typer

from frameduel import cli_help, cli_serving, environment
from frameduel.accuracy.run import accuracy_request, run_accuracy
from frameduel.analysis.compare import RunInterrupted, run_compare, summarize_stored_run
from frameduel.analysis.evidence import load_evidence
from frameduel.browser.setup import setup_browser
from frameduel.cli_base import (
    AddressOption,
    CheckpointOption,
    DbOption,
    ExecutorOption,
    FrameworksOption,
    LoraAlphaOption,
    LoraRankOption,
    LoraTargetsOption,
    SpeedupsOption,
    WideOption,
    app,
    console,
    err_console,
    exit_unless,
    interrupted,
    output,
    to_stderr,
    user_errors,
)
from frameduel.cluster.executors import accuracy_runs, cell_executor, trial_executor
from frameduel.doctor import diagnose
from frameduel.export.bench import BenchBudget
from frameduel.export.manifest import DEFAULT_FORMATS
from frameduel.export.run import export_request, run_export, save_results
from frameduel.parity.data_parallel import DataParallelParity
from frameduel.parity.request import parity_requests, prove_data_parallel, prove_requests
from frameduel.report.accuracy import accuracy_json, print_accuracy, run_line
from frameduel.report.advise import SCENARIO_WEIGHTS, Advice, advise_stored_run
from frameduel.report.diff import RunDiff, diff_stored_runs, print_diff
from frameduel.report.doctor import print_doctor
from frameduel.report.export import artefact_line, export_json, print_export_run
from frameduel.report.finetune import finetune_json, print_finetune
from frameduel.report.generation import generation_json, print_generation
from frameduel.report.parity import parity_json, print_data_parallel, print_parity_reports
from frameduel.report.progress import TerminalView
from frameduel.report.runs import print_advice, print_environment, print_run, print_runs, run_json
from frameduel.report.sweep import print_sweep, print_sweep_start, sweep_json, trial_line, trials_at_once
from frameduel.report.write import write_stored_report
from frameduel.runner.finetune import finetune_request, run_finetune
from frameduel.runner.generate import generate_request, run_generate
from frameduel.runner.plan import PRESETS
from frameduel.runner.request import check_compare_options, compare_request
from frameduel.store import Store, open_store
from frameduel.sweep import check_sweep, load_sweep, run_sweep, start_sweep, summarize_sweep, sweep_request


@app.command()
@user_errors
def compare(
    workloads: str | None = typer.Option(None, help=cli_help.COMPARE_WORKLOADS),
    frameworks: str = FrameworksOption,
    modes: str | None = typer.Option(None, help=cli_help.COMPARE_MODES),
    tasks: str | None = typer.Option(None, help=cli_help.COMPARE_TASKS),
    precisions: str = typer.Option("fp32", help="fp32, bf16, fp16 (mixed precision; where supported)"),
    preset: str = typer.Option("quick", help=f"measurement effort: {', '.join(PRESETS)}"),
    size: str | None = typer.Option(None, help="model size: tiny, small (CPU default), base (GPU default)"),
    device: str | None = typer.Option(None, help="cpu or cuda (default: cuda when present)"),
    threads: int | None = typer.Option(None, help="intra-op threads per framework (default: all cores)"),
    repeats: int | None = typer.Option(None, help="worker processes per cell (default: from preset)"),
    timeout: float | None = typer.Option(None, help="seconds before a cell's worker is killed"),
    seed: int = typer.Option(0, help="seed for data and weights"),
    peak: bool | None = typer.Option(None, "--peak/--no-peak", help=cli_help.COMPARE_PEAK),
    launch: str = typer.Option("fork", help=cli_help.COMPARE_LAUNCH),
    parallel: int = typer.Option(1, help=cli_help.COMPARE_PARALLEL),
    workers: str = typer.Option("1", help=cli_help.COMPARE_WORKERS),
    scaling: str = typer.Option("strong", help=cli_help.COMPARE_SCALING),
    executor: str = ExecutorOption,
    address: str | None = AddressOption,
    checkpoint: Path | None = CheckpointOption,
    lora_rank: int = LoraRankOption,
    lora_alpha: float = LoraAlphaOption,
    lora_targets: str | None = LoraTargetsOption,
    budget: str | None = typer.Option(None, help=cli_help.COMPARE_BUDGET),
    no_parity: bool = typer.Option(False, "--no-parity", help=cli_help.COMPARE_NO_PARITY),
    recheck_parity: bool = typer.Option(False, "--recheck-parity", help=cli_help.COMPARE_RECHECK_PARITY),
    resume: str | None = typer.Option(None, help="finish an interrupted run; skips finished cells"),
    as_json: bool = typer.Option(False, "--json", help="print the summary as JSON instead of tables"),
    wide: bool = WideOption,
    speedups: bool = SpeedupsOption,
    db: Path | None = DbOption,
) -> None:
    """Run workloads in PyTorch and TensorFlow side by side and print the comparison."""
    check_compare_options(no_parity, recheck_parity, resume, budget)
    store, out = open_store(db), err_console if as_json else console
    cells, request, machine = cell_executor(executor, address), None, None
    if not resume:
        machine = diagnose().to_dict()
        request = compare_request(workloads, checkpoint, frameworks, modes, tasks, precisions, preset, size, device,
                                  threads, repeats, timeout, seed, peak, launch, lora_rank, lora_alpha, lora_targets,
                                  parallel, workers, scaling, cells is not None, budget, machine["busy_cores"])
    try:
        run_id = run_compare(store, request or resume, cells, TerminalView(out), machine, not no_parity, recheck_parity)
    except RunInterrupted as stop:
        raise interrupted("cells", f"compare --resume {stop.run_id}") from None
    show_run(store, run_id, as_json, wide, speedups)


def show_run(store: Store, run_id: str, as_json: bool, wide: bool = False, speedups: bool = False) -> None:
    run, summary = summarize_stored_run(store, run_id)
    evidence = load_evidence(store, summary.workloads)
    output(as_json, run_json, functools.partial(print_run, wide=wide, speedups=speedups), run, summary, evidence)


@app.command()
@user_errors
def report(
    run_id: str = typer.Argument(..., help="a run id from `frameduel runs`, or a sweep id"),
    out: Path = typer.Option(Path("frameduel-report"), "--out", help=cli_help.REPORT_OUT),
    tensorboard: Path | None = typer.Option(None, "--tensorboard", help="also write TensorBoard scalars here"),
    mlflow: str | None = typer.Option(None, "--mlflow", help="also log to this MLflow tracking URI or folder"),
    db: Path | None = DbOption,
) -> None:
    """Write a self-contained HTML report (plots embedded) plus Markdown and JSON versions."""
    write_stored_report(open_store(db), run_id, out, tensorboard, mlflow, console.print)


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
    print_runs(console, open_store(db).list_runs())


@app.command()
@user_errors
def env(as_json: bool = typer.Option(False, "--json", help="print JSON")) -> None:
    """Print this machine's environment fingerprint (what every run records)."""
    output(as_json, dict, print_environment, environment.fingerprint())


@app.command()
@user_errors
def doctor(
    as_json: bool = typer.Option(False, "--json", help="print JSON"),
    seconds: float = typer.Option(1.0, help="how long to sample other processes' CPU use"),
) -> None:
    """What makes this machine noisy for benchmarks, each problem with a one-line fix (as pyperf system show)."""
    output(as_json, dict, print_doctor, diagnose(seconds).to_dict())


@app.command()
@user_errors
def parity(
    workload: str | None = typer.Argument(None, help="workload to check, e.g. mlp (default: the checkpoint's)"),
    size: str = typer.Option("tiny", help="model size: tiny, small, base"),
    direction: str = typer.Option("both", help="torch-to-tf, tf-to-torch or both"),
    frameworks: str = typer.Option("torch,tf", help=cli_help.PARITY_FRAMEWORKS),
    steps: int = typer.Option(10, help="training steps compared, per optimizer (SGD and Adam)"),
    batch_size: int = typer.Option(8, help="batch size of the evaluation and training batches"),
    seed: int = typer.Option(0, help="seed for weights and data"),
    modes: bool = typer.Option(True, "--modes/--no-modes", help="also check every compiled mode against eager"),
    checkpoint: Path | None = CheckpointOption,
    tasks: str | None = typer.Option(None, help=cli_help.PARITY_TASKS),
    lora_rank: int = typer.Option(4, "--lora-rank", help="finetune: LoRA rank r"),
    lora_alpha: float = typer.Option(8.0, "--lora-alpha", help=cli_help.PARITY_LORA_ALPHA),
    lora_targets: str | None = typer.Option(None, "--lora-targets", help=cli_help.PARITY_LORA_TARGETS),
    workers: int = typer.Option(1, help=cli_help.PARITY_WORKERS),
    as_json: bool = typer.Option(False, "--json", help="print JSON instead of tables"),
    db: Path | None = DbOption,
) -> None:
    """Prove both implementations are the same model: float64 outputs, layers, loss curves and trained state
    (of full training and, for language models, of LoRA fine-tuning)."""
    if workers > 1:
        report = prove_data_parallel(open_store(db), workload, workers, steps, batch_size, size, seed)
        output(as_json, DataParallelParity.to_dict, print_data_parallel, report)
        exit_unless(report.passed)
        return
    requests = parity_requests(workload, checkpoint, size, frameworks, direction, steps, batch_size, seed,
                               modes, tasks, lora_rank, lora_alpha, lora_targets)
    reports, modes_reports = prove_requests(open_store(db), requests)
    output(as_json, parity_json, print_parity_reports, reports, modes_reports)
    exit_unless(all(report.passed for report in [*reports, *modes_reports]))


@app.command()
@user_errors
def generate(
    workload: str | None = typer.Argument(None, help="gpt or llama (default: the checkpoint's family, else llama)"),
    prompt: str = typer.Option(..., help="prompt token ids, comma-separated, e.g. 1,2,3"),
    new_tokens: int = typer.Option(32, help="tokens to generate greedily"),
    checkpoint: Path | None = CheckpointOption,
    adapter: Path | None = typer.Option(None, "--adapter", help=cli_help.GENERATE_ADAPTER),
    size: str = typer.Option("small", help="model size without a checkpoint: tiny, small, base"),
    frameworks: str = typer.Option("torch,tf", help="comma-separated: torch, tf"),
    modes: str | None = typer.Option(None, help=cli_help.GENERATE_MODES),
    precision: str = typer.Option("fp32", help="fp32, bf16, fp16 (mixed precision), fp64"),
    batch_size: int = typer.Option(1, help="copies of the prompt decoded together"),
    device: str | None = typer.Option(None, help="cpu or cuda (default: cuda when present)"),
    threads: int | None = typer.Option(None, help="intra-op threads (default: all cores)"),
    seed: int = typer.Option(0, help="seed for the weights when there is no checkpoint"),
    as_json: bool = typer.Option(False, "--json", help="print JSON instead of tables"),
) -> None:
    """Greedy generation from prompt token ids in each framework and mode: the ids, prefill and per-token times."""
    request = generate_request(workload, checkpoint, adapter, prompt, new_tokens, size, frameworks, modes,
                               precision, batch_size, device, threads, seed)
    results = run_generate(request)
    output(as_json, generation_json, print_generation, request, results)
    exit_unless(any(r.status == "ok" for r in results))


@app.command()
@user_errors
def finetune(
    workload: str | None = typer.Argument(None, help="gpt or llama (default: the checkpoint's family, else llama)"),
    checkpoint: Path | None = CheckpointOption,
    size: str = typer.Option("small", help="model size without a checkpoint: tiny, small, base"),
    frameworks: str = typer.Option("torch,tf", help="comma-separated: torch, tf"),
    modes: str | None = typer.Option(None, help=cli_help.FINETUNE_MODES),
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
    request = finetune_request(workload, checkpoint, size, frameworks, modes, steps, batch_size, learning_rate,
                               lora_rank, lora_alpha, lora_targets, out, threads, seed)
    results = run_finetune(request)
    output(as_json, finetune_json, print_finetune, request, results)
    exit_unless(all(r.status == "ok" for r in results))


@app.command()
@user_errors
def accuracy(
    workloads: str = typer.Option("mlp,cnn", help="comma-separated workloads that support the digits data"),
    frameworks: str = FrameworksOption,
    seeds: int = typer.Option(3, help="training runs per framework (seeds 0..N-1: weights and shuffling)"),
    target: float = typer.Option(0.95, help="test accuracy to reach, in (0, 1]"),
    max_epochs: int = typer.Option(40, help="epochs each run trains for"),
    batch_size: int = typer.Option(64, help="training batch size (the last partial batch is dropped)"),
    modes: str | None = typer.Option(None, help=cli_help.ACCURACY_MODES),
    device: str | None = typer.Option(None, help="cpu or cuda (default: cuda when present)"),
    threads: int | None = typer.Option(None, help="intra-op threads per framework (default: all cores)"),
    executor: str = ExecutorOption,
    address: str | None = AddressOption,
    as_json: bool = typer.Option(False, "--json", help="print JSON instead of tables"),
) -> None:
    """Time to accuracy on real data: train on scikit-learn's digits until the test accuracy reaches --target."""
    request = accuracy_request(workloads, frameworks, modes, seeds, target, max_epochs, batch_size, device, threads)
    runs, summaries = run_accuracy(request, to_stderr(run_line, target), accuracy_runs(executor, address))
    output(as_json, functools.partial(accuracy_json, runs), print_accuracy, summaries, request)


@app.command()
@user_errors
def sweep(
    workloads: str = typer.Option("mlp,cnn", help="comma-separated workloads that support the digits data"),
    frameworks: str = FrameworksOption,
    grid: list[str] = typer.Option([], "--grid", help="KEY=V1,V2,... (repeatable): lr, batch_size"),
    seeds: int = typer.Option(2, help="trials per configuration and framework (seeds 0..N-1)"),
    target: float = typer.Option(0.95, help="test accuracy each trial trains to, in (0, 1]"),
    max_epochs: int = typer.Option(40, help="a trial that has not reached the target by then stops"),
    parallel: int | None = typer.Option(None, help=cli_help.SWEEP_PARALLEL),
    modes: str | None = typer.Option(None, help=cli_help.SWEEP_MODES),
    executor: str = typer.Option("local", help=cli_help.SWEEP_EXECUTOR),
    address: str | None = AddressOption,
    cpus_per_trial: int = typer.Option(1, help="with --executor ray: CPUs each trial reserves (and threads)"),
    search: str | None = typer.Option(None, help=cli_help.SWEEP_SEARCH),
    samples: int = typer.Option(8, help="with --search: trials drawn per workload, framework and seed"),
    early_stop: str | None = typer.Option(None, help=cli_help.SWEEP_EARLY_STOP),
    resume: str | None = typer.Option(None, help="finish an interrupted sweep: runs only the trials not stored"),
    as_json: bool = typer.Option(False, "--json", help="print JSON instead of tables"),
    db: Path | None = DbOption,
) -> None:
    """Train a grid of hyperparameters x frameworks x workloads x seeds to a target accuracy, N trials at once."""
    store, fingerprint = open_store(db), environment.fingerprint()
    request = load_sweep(store, resume) if resume else sweep_request(
        accuracy_request(workloads, frameworks, modes, seeds, target, max_epochs), grid, parallel, search, samples,
        early_stop)
    check_sweep(request)
    trials_executor = trial_executor(executor, address, request.search, cpus_per_trial)
    sweep_id = resume or start_sweep(store, request, fingerprint)
    at_once = trials_at_once(request, None if trials_executor is None else cpus_per_trial)
    print_sweep_start(err_console, sweep_id, request, at_once, store.path)
    target = request.accuracy.target
    try:
        results = run_sweep(store, sweep_id, request, fingerprint, to_stderr(trial_line, target), trials_executor)
    except KeyboardInterrupt:
        raise interrupted("trials", f"sweep --resume {sweep_id}") from None
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
    output(as_json, RunDiff.to_dict, print_diff, diff_stored_runs(open_store(db), run_a, run_b))


@app.command()
@user_errors
def advise(
    run_id: str = typer.Argument(..., help="a run id from `frameduel runs`"),
    scenario: str = typer.Option(..., help=f"one of: {', '.join(SCENARIO_WEIGHTS)}"),
    as_json: bool = typer.Option(False, "--json", help="print JSON"),
    db: Path | None = DbOption,
) -> None:
    """Recommend a framework for a scenario, with the evidence and weights behind it."""
    advice = advise_stored_run(open_store(db), run_id, scenario)
    output(as_json, Advice.to_dict, functools.partial(print_advice, scenario=scenario), advice)


cli_serving.register(app)  # serve, loadtest: listed here, after advise


@app.command(name="export")
@user_errors
def export_command(
    workload: str | None = typer.Argument(None, help=cli_help.EXPORT_WORKLOAD),
    framework: str = typer.Option(..., "--framework", help="source framework: torch or tf"),
    formats: str = typer.Option(",".join(DEFAULT_FORMATS), help=cli_help.EXPORT_FORMATS),
    out: Path = typer.Option(Path("frameduel-models"), "--out", help="model repository: <out>/<model>/<version>/"),
    size: str | None = typer.Option(None, help=cli_help.EXPORT_SIZE),
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
    request = export_request(workload, checkpoint, framework, formats, out, size, epochs, max_batch, threads,
                             seed, timeout, bench_seconds)
    store = open_store(db)
    export_id, results = run_export(request, to_stderr(artefact_line))
    save_results(store, export_id, request, results, environment.fingerprint())
    output(as_json, export_json, functools.partial(print_export_run, request=request), export_id, results)
    exit_unless(all(result.status not in ("invalid", "failed") for result in results))


browser_app = typer.Typer(add_completion=False, no_args_is_help=True, rich_markup_mode=None,
                          help="The browser runner's runtimes (npm) and the tfjs converter's venv.")
app.add_typer(browser_app, name="browser")


@browser_app.command(name="setup")
@user_errors
def browser_setup_command(
    force: bool = typer.Option(False, help="reinstall even what is already installed"),
    converter: bool = typer.Option(True, help=cli_help.BROWSER_SETUP_CONVERTER),
) -> None:
    """Install the pinned JS runtimes (npm ci) and the tfjs converter's venv into the cache; a no-op once done."""
    for step in setup_browser(force, converter):
        done = f"installed in {step.seconds:.0f} s" if step.seconds else "already installed"
        console.print(f"{step.name}: {done}, {step.size_bytes / 2**20:,.0f} MiB in {step.path}", highlight=False)


def main() -> None:
    import signal

    signal.signal(signal.SIGTERM, signal.default_int_handler)  # `kill` stops a command the way Ctrl-C does
    sys.exit(app())


if __name__ == "__main__":
    main()
