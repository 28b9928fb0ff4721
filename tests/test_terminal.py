"""The terminal view: the verdict comes first, the default table fits 100 columns, the rest on demand."""

from __future__ import annotations

import numpy as np
import pytest
from rich.console import Console

from frameduel.analysis.summary import summarize_run
from frameduel.report.terminal import print_summary
from frameduel.spec import MODES, Measurement, RunSpec

# (workload, task, batch) -> step seconds per (framework, mode): a quick-preset-shaped run
GROUPS = {
    ("transformer", "infer", 1): {"torch": 0.000271, "tf": 0.00068},  # torch clearly faster
    ("mlp", "train", 32): {"torch": 0.00807, "tf": 0.00673},  # tf clearly faster
    ("cnn", "train", 32): {"torch": 0.0754, "tf": 0.0755},  # a tie
}


def quick_like_run():
    measurements, specs = [], []
    for (workload, task, batch), base in GROUPS.items():
        for framework in base:
            for index, mode in enumerate(MODES[framework]):
                spec = RunSpec(workload=workload, framework=framework, mode=mode, task=task, batch_size=batch,
                               size="small", threads=2)
                specs.append(spec)
                level = base[framework] * (1 + 0.3 * index)  # eager is each framework's best here
                for round_index in range(3):
                    rng = np.random.default_rng(hash((spec.key, round_index)) % 2**32)
                    steps = level * (1 + 0.002 * round_index + 0.01 * rng.standard_normal(100))
                    measurements.append((round_index, Measurement(spec=spec, status="ok", step_seconds=steps.tolist(),
                                                                  peak_rss_mb=612.3456, compile_s=1.0)))
    return summarize_run(measurements, specs)


def render(width: int, **options) -> str:
    console = Console(width=width, record=True, color_system=None)
    print_summary(console, quick_like_run(), "run 20261202-000000-abcd (complete): Intel Xeon, 2 threads, "
                  "3 processes per cell", **options)
    return console.export_text()


def table_lines(text: str) -> list[str]:
    """The cell table's header and rows: from its header line to the line before the flags legend."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.lstrip().startswith("group"))
    end = next((i for i, line in enumerate(lines) if line.startswith(("flags:", "("))), len(lines))
    return lines[start:end]


@pytest.mark.parametrize("width", [100, 180])
def test_no_table_row_wraps_at_100_columns_or_more(width):
    rows = table_lines(render(width))
    cells = sum(len(MODES[fw]) for base in GROUPS.values() for fw in base)
    assert len(rows) == 1 + cells  # the header, then exactly one line per cell
    assert all(len(line.rstrip()) <= 100 for line in rows)


def test_at_80_columns_rows_may_wrap_but_nothing_is_cut():
    text = render(80)
    assert "Verdict" in text.splitlines()[0]
    assert text.count("compile") >= len(GROUPS) and text.count("function") >= len(GROUPS)


def test_the_verdict_comes_first_and_names_a_winner_only_where_the_ci_clears_the_band():
    lines = render(100).splitlines()
    assert lines[0].startswith("Verdict")
    verdict = "\n".join(lines[1:4])
    assert "transformer/small infer b1: torch eager is 2.5" in verdict and "faster than tf eager" in verdict
    assert "mlp/small train b32: tf eager is 1.2" in verdict
    assert "cnn/small train b32: no meaningful difference: torch eager vs tf eager" in verdict
    assert verdict.index("transformer") < verdict.index("mlp") < verdict.index("cnn")  # the run's order


def test_speedups_and_every_column_come_on_demand():
    default = render(100)
    assert "Speedups" not in default and "pairwise speedups: --speedups" in default
    assert "GFLOP/s" not in default and "612" in default  # peak MB, 3 significant figures
    assert "Speedups" in render(180, speedups=True)
    assert "GFLOP/s (% of GEMM)" in render(250, wide=True)
