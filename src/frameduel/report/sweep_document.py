"""`frameduel report SWEEP_ID`: a stored sweep as self-contained HTML (figure embedded), Markdown and JSON.

The same rows and lines as the terminal output of `frameduel sweep` (report/sweep.py), plus the sweep's
request, its progress, the machine it started on, every failed trial and the accuracy-vs-time figure.
"""

from __future__ import annotations

import html
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from frameduel.errors import FrameduelError
from frameduel.report.render import STYLE, html_table, markdown_table
from frameduel.report.sweep import best_line, config_columns, config_row, sensitivity_lines, sweep_json
from frameduel.report.sweep_plots import accuracy_vs_time
from frameduel.store import Store, StoredResult
from frameduel.sweep import (
    FINISHED,
    ConfigSummary,
    LogRange,
    SweepRequest,
    TrialResult,
    Values,
    best_configs,
    load_sweep,
    plan_trials,
    planned_trial_count,
    stored_sweep,
    stored_trials,
    summarize_sweep,
)

FILES = ("sweep.html", "sweep.md", "sweep.json")
FAILED_COLUMNS = ("trial", "status", "error")
FIGURE_CAPTION = ("Every trial faint, each framework's best configuration bold (one line per seed); dashed: the "
                  "target. Training time sums epoch seconds (training steps only, evaluation excluded; epoch 1 "
                  "includes tracing/compilation).")


@dataclass(frozen=True)
class SweepDocument:
    sweep_id: str
    stored: StoredResult  # the request as stored by `frameduel sweep`, with the environment it started in
    request: SweepRequest
    results: list[TrialResult]  # in plan order
    summaries: list[ConfigSummary]
    figure: str | None  # PNG data URI; None when no trial finished an epoch

    @property
    def target(self) -> float:
        return self.request.accuracy.target


def build_sweep_document(store: Store, sweep_id: str) -> SweepDocument:
    request = load_sweep(store, sweep_id)  # its one-line error names the recent sweeps
    stored = stored_sweep(store, sweep_id)
    assert stored is not None  # load_sweep found it
    order = {trial.key: i for i, trial in enumerate(plan_trials(request))}
    # Stored in finishing order; the plan's order groups a configuration's frameworks and seeds.
    results = sorted(stored_trials(store, sweep_id), key=lambda r: order.get(r.trial.key, len(order)))
    summaries = summarize_sweep(results, request.accuracy.target)
    figure = accuracy_vs_time(results, best_configs(summaries), request.accuracy.target)
    return SweepDocument(sweep_id, stored, request, results, summaries, figure)


def values_text(values: Values) -> str:
    if isinstance(values, LogRange):
        return f"log-uniform {values.low:g}..{values.high:g}"
    return ", ".join(f"{v:g}" for v in values)


def overview_lines(doc: SweepDocument) -> list[str]:
    a, env = doc.request.accuracy, doc.stored.environment
    grid = "; ".join(f"{key}={values_text(values)}" for key, values in doc.request.grid.items())
    modes = ", ".join(f"{fw} {a.modes.get(fw, '?')}" for fw in a.frameworks)
    planned, failed = planned_trial_count(doc.request), sum(r.run.status not in FINISHED for r in doc.results)
    resume = f"; finish it with: frameduel sweep --resume {doc.sweep_id}" if len(doc.results) < planned else ""
    at_once = f"{doc.request.parallel} trial(s)" if doc.request.parallel else "one trial per core"
    core_sets = len({tuple(r.cpus) for r in doc.results if r.cpus})
    packages = ", ".join(f"{name} {version}" for name, version in env["packages"].items() if version)
    return [
        f"Started {doc.stored.created_at}: each trial trains to test accuracy {a.target:g} on load_digits, "
        f"at most {a.max_epochs} epochs.",
        f"Grid: {grid}; workloads {', '.join(a.workloads)}; frameworks {modes}; {a.seeds} seed(s) per "
        f"configuration (batch size {a.batch_size} where the grid sets none).",
        f"Trials: {len(doc.results)} of {planned} done, {failed} failed{resume}.",
        f"At a time: {at_once}, each pinned to its own cores ({core_sets} distinct core sets used); trials that "
        "ran at once share memory bandwidth and caches, so their times compare with each other, not with a "
        "quiet machine's.",
        f"Machine: {env['cpu']['model']}, {env['cpu']['logical_cores']} logical cores, {env['memory_gb']} GB; "
        f"Python {env['python']}; {packages}.",
    ]


def seed_text(result: TrialResult, target: float) -> str:
    run = result.run
    if run.status != "ok":
        return f"seed {result.trial.seed}: {run.status}"
    seconds = run.seconds_to(target)
    if seconds is None:
        best = f" (best {max(run.accuracy):.3f})" if run.accuracy else ""
        return f"seed {result.trial.seed}: not reached{best}"
    return f"seed {result.trial.seed}: {seconds:.3g} s"


def best_lines(doc: SweepDocument) -> list[str]:
    """Each framework's best configuration with every seed's time: the spread behind the median."""
    lines = []
    for s in best_configs(doc.summaries):
        seeds = [r for r in doc.results
                 if (r.trial.workload, r.trial.framework, r.trial.config_label) == (s.workload, s.framework, s.config)]
        lines.append(f"{best_line(s)} ({'; '.join(seed_text(r, doc.target) for r in seeds)})")
    return lines


def failed_rows(doc: SweepDocument) -> list[list[str]]:
    return [[r.trial.key, r.run.status, r.run.error or "-"] for r in doc.results if r.run.status != "ok"]


Table = Callable[[tuple[str, ...], list[list[str]]], str]
Items = Callable[[list[str]], str]


def sections(doc: SweepDocument, table: Table, items: Items, figure: str) -> list[tuple[str, str]]:
    """(heading, body) of every section, in one format: `table` and `items` render, `figure` is its place."""
    failed = failed_rows(doc)
    return [
        ("Overview", items(overview_lines(doc))),
        ("Best configuration per framework", items(
            ["Lowest median time to the target; range and each seed's time in brackets.", *best_lines(doc)])),
        ("Test accuracy vs wall-clock training time, per framework", figure),
        ("Sensitivity to the hyperparameters", items(sensitivity_lines(doc.summaries))),
        ("Every configuration", table(config_columns(doc.target), [config_row(s) for s in doc.summaries])),
        ("Failed trials", table(FAILED_COLUMNS, failed) if failed else items(["none"])),
    ]


def title_of(doc: SweepDocument) -> str:
    return f"frameduel sweep {doc.sweep_id}"


def to_html(doc: SweepDocument) -> str:
    def items(lines: list[str]) -> str:
        return "<ul>" + "".join(f"<li>{html.escape(line)}</li>" for line in lines) + "</ul>"

    figure = (f"<figure><img alt='test accuracy vs training time' src='{doc.figure}'>"
              f"<figcaption>{html.escape(FIGURE_CAPTION)}</figcaption></figure>" if doc.figure
              else "<p>No trial finished an epoch.</p>")
    body = "".join(f"<section><h2>{html.escape(heading)}</h2>{content}</section>"
                   for heading, content in sections(doc, html_table, items, figure))
    return (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title_of(doc))}"
            f"</title><style>{STYLE}</style></head><body><h1>{html.escape(title_of(doc))}</h1>{body}</body></html>\n")


def to_markdown(doc: SweepDocument) -> str:
    figure = "The figure is in sweep.html." if doc.figure else "No trial finished an epoch."
    parts = [f"# {title_of(doc)}", *(f"## {heading}\n\n{content}" for heading, content in
                                    sections(doc, markdown_table, lambda lines: "\n".join(f"- {x}" for x in lines),
                                             figure))]
    return "\n\n".join(parts) + "\n"


def to_json(doc: SweepDocument) -> dict[str, Any]:
    return {**sweep_json(doc.sweep_id, doc.results, doc.summaries), "created_at": doc.stored.created_at,
            "request": doc.request.to_dict(), "planned_trials": planned_trial_count(doc.request),
            "environment": doc.stored.environment}


def write_sweep_report(store: Store, sweep_id: str, out_dir: Path) -> list[Path]:
    doc = build_sweep_document(store, sweep_id)
    texts = (to_html(doc), to_markdown(doc), json.dumps(to_json(doc), indent=2) + "\n")
    written = [out_dir / name for name in FILES]
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        for path, text in zip(written, texts, strict=True):
            path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise FrameduelError(f"cannot write the sweep report to {out_dir}: {exc.strerror}; pass --out DIR") from None
    return written
