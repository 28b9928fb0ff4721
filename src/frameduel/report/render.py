"""Write a Report as self-contained HTML (figures embedded, no external requests), Markdown and JSON."""

from __future__ import annotations

import html
import json
from collections.abc import Callable
from pathlib import Path

from frameduel.export.pairs import fair_pairs
from frameduel.export.table import COLUMNS as EXPORT_COLUMNS
from frameduel.export.table import PAIR_COLUMNS, pair_rows
from frameduel.export.table import export_rows as artefact_rows
from frameduel.report.document import Report
from frameduel.report.llm_serving import LLM_COLUMNS, llm_rows, quirks
from frameduel.report.scaling import SCALING_COLUMNS, SCALING_NOTE, scaling_table_rows
from frameduel.report.tables import (
    BREAK_EVEN_COLUMNS,
    CELL_COLUMNS,
    FINETUNE_COLUMNS,
    LOADTEST_COLUMNS,
    RATIO_COLUMNS,
    break_even_rows,
    cell_rows,
    finetune_adapters,
    finetune_rows,
    loadtest_rows,
    ratio_rows,
)

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1200px; color: #222; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.85em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.5em; text-align: left; vertical-align: top; }
th { background: #f3f3f3; }
td.faster { color: #11772d; } td.slower { color: #b3261e; } td.warn { color: #a15c00; }
figure { display: inline-block; margin: 0.5em; } figcaption { font-size: 0.8em; color: #555; }
pre { background: #f7f7f7; padding: 1em; overflow-x: auto; font-size: 0.8em; }
"""


def title_of(report: Report) -> str:
    return f"frameduel run {report.run.id}"


def overview_lines(report: Report) -> list[str]:
    env, plan = report.run.environment, report.run.plan
    packages = ", ".join(f"{name} {version}" for name, version in env["packages"].items() if version)
    gpus = ", ".join(gpu["name"] for gpu in env.get("gpus", [])) or "none"
    return [
        f"Status: {report.run.status}; created {report.run.created_at}; preset {plan['preset']}, "
        f"{plan['repeats']} round(s) per cell.",
        f"Machine: {env['cpu']['model']}, {env['cpu']['logical_cores']} logical cores, {env['memory_gb']} GB; "
        f"GPUs: {gpus}.",
        f"Software: Python {env['python']}; {packages}.",
        "Verdicts name a winner only where the 95% CI of the speedup clears a ±2% band around 1.0.",
    ]


def scaling_lines(report: Report) -> list[str]:
    """What the scaling table means, and the hardware it ran on (the claims speak of GPUs)."""
    workers = "/".join(str(count) for count in sorted({row.workers for row in report.scaling}))
    devices = "/".join(sorted({row.device for row in report.scaling}))
    threads = sorted({cell.spec.threads for cell in report.summary.cells if cell.spec.workers > 1})
    gpus = ", ".join(gpu["name"] for gpu in report.run.environment.get("gpus", [])) or "none"
    return [SCALING_NOTE[0].upper() + SCALING_NOTE[1:] + ".",
            f"Hardware: {workers} worker processes on {devices}, {'/'.join(map(str, threads))} thread(s) each "
            f"({report.run.environment['cpu']['model']}; GPUs: {gpus}).",
            *(line for line, _ in report.data_parallel_parity())]


def export_rows(report: Report) -> list[list[str]]:
    return [[row[column] for column in EXPORT_COLUMNS]
            for result in report.evidence.exports for row in artefact_rows(result)]


NO_EXPORTS = "No exported artefacts of these workloads: `frameduel export WORKLOAD --framework torch|tf`."
PAIRS_NOTE = ("Each pair is one set of weights through both on-device toolchains: torch -> ExecuTorch, and the "
              "Keras twin -> LiteRT; batch-1 latency at the export's threads; peak RSS of the runtime process, and "
              "what the artefact added once the runtime was imported (ExecuTorch's Python binding imports torch).")
NO_LOADTESTS = "No load tests of these workloads' artefacts: `frameduel serve` + `frameduel loadtest URL`."
NO_LLM_LOADTESTS = ("No LLM serving load tests of these workloads: `frameduel serve --llm` + `frameduel loadtest "
                    "--llm URL` (benchmarks/llm_serving.py runs both frameworks and the peers).")


def llm_serving_block(report: Report, table: Callable[[tuple[str, ...], list[list[str]]], str],
                      paragraph: Callable[[str], str]) -> str:
    """Torch vs TF vs peers under the same load, and what each server did differently."""
    results = report.evidence.llm_loadtests
    if not results:
        return paragraph(NO_LLM_LOADTESTS)
    notes = {f"{r['label']}: {note}" for r in results for note in quirks(r)}
    return table(LLM_COLUMNS, llm_rows(results)) + "".join(paragraph(note) for note in sorted(notes))


def deployment_blocks(report: Report, table: Callable[[tuple[str, ...], list[list[str]]], str],
                      paragraph: Callable[[str], str]) -> list[tuple[str, str]]:
    """(heading, body) of the run's workloads' parity, exported artefacts and load tests, in one format."""
    evidence = report.evidence
    pairs = fair_pairs(evidence.exports)
    return [
        ("Parity", "".join(paragraph(line) for line in evidence.parity_notes(report.summary.workloads))),
        ("Exported artefacts", table(EXPORT_COLUMNS, export_rows(report)) if evidence.exports
         else paragraph(NO_EXPORTS)),
        *([("Fair edge pairs: ExecuTorch vs LiteRT, same weights", paragraph(PAIRS_NOTE)
            + "\n" + table(PAIR_COLUMNS, pair_rows(pairs)))] if pairs else []),
        ("Served load tests", table(LOADTEST_COLUMNS, loadtest_rows(evidence.loadtests)) if evidence.loadtests
         else paragraph(NO_LOADTESTS)),
        ("LLM serving", llm_serving_block(report, table, paragraph)),
    ]


# -- HTML ------------------------------------------------------------------------------------------


def html_table(columns: tuple[str, ...], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(html_cell(value) for value in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def html_cell(value: str) -> str:
    css = {"faster": "faster", "slower": "slower"}.get(value, "")
    if value.startswith(("noisy", "contended", "failed", "oom", "timeout")):
        css = "warn"
    return f'<td class="{css}">{html.escape(value)}</td>' if css else f"<td>{html.escape(value)}</td>"


def to_html(report: Report) -> str:
    sections = [
        f"<h1>{html.escape(title_of(report))}</h1>",
        "<section id='overview'><h2>Overview</h2>"
        + "".join(f"<p>{html.escape(line)}</p>" for line in overview_lines(report)) + "</section>",
        "<section id='verdict'><h2>Verdict: each framework at its best mode</h2><ul>"
        + "".join(f"<li>{html.escape(line)}</li>" for line in report.verdict_lines) + "</ul>"
        + html_table(RATIO_COLUMNS, ratio_rows(report.headline)) + "</section>",
        # The figures next to the verdict they picture, before the detail tables that grow with the run.
        "<section id='figures'><h2>Figures</h2>" + "".join(
            f"<figure><img alt='{html.escape(f.title)}' src='{f.data_uri}'>"
            f"<figcaption>{html.escape(f.title)}</figcaption></figure>" for f in report.figures) + "</section>",
        "<section id='cells'><h2>Every cell</h2>" + html_table(CELL_COLUMNS, cell_rows(report.summary)) + "</section>",
        "<section id='caveats'><h2>Caveats</h2><ul>"
        + "".join(f"<li>{html.escape(line)}</li>" for line in report.caveats or ["none"]) + "</ul></section>",
        "<section id='speedups'><h2>Speedups</h2>"
        + html_table(RATIO_COLUMNS, ratio_rows(report.summary.ratios)) + "</section>",
        "<section id='claims'><h2>Claim check on this hardware</h2>" + "".join(
            f"<h3>{html.escape(c.claim)}: {html.escape(c.status)}</h3><ul>"
            + "".join(f"<li>{html.escape(line)}</li>" for line in c.evidence) + "</ul>" for c in report.claims)
        + "</section>",
        "<section id='break-even'><h2>Compile time vs steady state</h2>"
        + html_table(BREAK_EVEN_COLUMNS, break_even_rows(report.break_even)) + "</section>",
        *(["<section id='finetuning'><h2>Full fine-tune vs LoRA</h2>"
           + f"<p>{html.escape(finetune_adapters(report.finetuning))}</p>"
           + html_table(FINETUNE_COLUMNS, finetune_rows(report.finetuning)) + "</section>"]
          if report.finetuning else []),
        *(["<section id='scaling'><h2>Data-parallel scaling</h2>"
           + "".join(f"<p>{html.escape(line)}</p>" for line in scaling_lines(report))
           + html_table(SCALING_COLUMNS, scaling_table_rows(report.scaling)) + "</section>"]
          if report.scaling else []),
        "<section id='deployment'><h2>Deployment</h2>" + "".join(
            f"<h3>{heading}</h3>{body}"
            for heading, body in deployment_blocks(report, html_table, lambda line: f"<p>{html.escape(line)}</p>"))
        + "</section>",
        "<section id='environment'><h2>Environment</h2><pre>"
        + html.escape(json.dumps(report.run.environment, indent=2)) + "</pre></section>",
    ]
    return (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title_of(report))}"
            f"</title><style>{STYLE}</style></head><body>{''.join(sections)}</body></html>\n")


# -- Markdown --------------------------------------------------------------------------------------


def markdown_table(columns: tuple[str, ...], rows: list[list[str]]) -> str:
    def line(values: list[str] | tuple[str, ...]) -> str:
        return "| " + " | ".join(value.replace("|", "\\|") for value in values) + " |"

    return "\n".join([line(columns), line(["---"] * len(columns)), *(line(row) for row in rows)])


def to_markdown(report: Report) -> str:
    parts = [
        f"# {title_of(report)}", "\n".join(f"- {line}" for line in overview_lines(report)),
        "## Verdict: each framework at its best mode", "\n".join(f"- {line}" for line in report.verdict_lines),
        markdown_table(RATIO_COLUMNS, ratio_rows(report.headline)),
        "## Every cell", markdown_table(CELL_COLUMNS, cell_rows(report.summary)),
        "## Caveats", "\n".join(f"- {line}" for line in report.caveats or ["none"]),
        "## Speedups", markdown_table(RATIO_COLUMNS, ratio_rows(report.summary.ratios)),
        "## Claim check on this hardware", "\n\n".join(
            f"**{c.claim}: {c.status}**\n\n" + "\n".join(f"- {line}" for line in c.evidence) for c in report.claims),
        "## Compile time vs steady state", markdown_table(BREAK_EVEN_COLUMNS, break_even_rows(report.break_even)),
        *(["## Full fine-tune vs LoRA", finetune_adapters(report.finetuning),
           markdown_table(FINETUNE_COLUMNS, finetune_rows(report.finetuning))] if report.finetuning else []),
        *(["## Data-parallel scaling", "\n".join(f"- {line}" for line in scaling_lines(report)),
           markdown_table(SCALING_COLUMNS, scaling_table_rows(report.scaling))] if report.scaling else []),
        "## Deployment", *(f"### {heading}\n\n{body}" for heading, body in
                           deployment_blocks(report, markdown_table, lambda line: f"- {line}\n")),
        "Figures are in report.html.",
    ]
    return "\n\n".join(parts) + "\n"


def write_report(report: Report, out_dir: Path) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    written = {
        out_dir / "report.html": to_html(report),
        out_dir / "report.md": to_markdown(report),
        out_dir / "report.json": json.dumps(report.to_dict(), indent=2) + "\n",
    }
    for path, text in written.items():
        path.write_text(text, encoding="utf-8")
    return list(written)
