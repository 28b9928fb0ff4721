"""The sweep report's figure: test accuracy vs wall-clock training time, one panel per workload."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from frameduel.report.plots import FRAMEWORK_COLOURS, to_data_uri
from frameduel.sweep import ConfigSummary, TrialResult

if TYPE_CHECKING:
    from matplotlib.axes import Axes

FAINT = {"linewidth": 0.8, "alpha": 0.3}
BOLD = {"linewidth": 2.2, "alpha": 0.95, "marker": "o", "markersize": 3}


def training_curve(result: TrialResult) -> tuple[np.ndarray, np.ndarray]:
    """(cumulative training seconds at the end of each epoch, test accuracy after it); empty if it never trained."""
    epochs = min(len(result.run.epoch_seconds), len(result.run.accuracy))
    return np.cumsum(result.run.epoch_seconds[:epochs]), np.asarray(result.run.accuracy[:epochs])


def is_best(result: TrialResult, best: list[ConfigSummary]) -> bool:
    trial = result.trial
    return any((s.workload, s.framework, s.config) == (trial.workload, trial.framework, trial.config_label)
               for s in best)


def draw_workload(axis: Axes, workload: str, results: list[TrialResult], best: list[ConfigSummary],
                  target: float) -> None:
    """Every trial of one workload faint, each framework's best configuration bold (one line per seed)."""
    from matplotlib.lines import Line2D  # matplotlib loads with the first figure (see plots.pyplot)

    handles = []
    for framework in dict.fromkeys(r.trial.framework for r in results):
        colour = FRAMEWORK_COLOURS[framework]
        own = [r for r in results if r.trial.framework == framework]
        for result in own:
            axis.plot(*training_curve(result), color=colour, **(BOLD if is_best(result, best) else FAINT))
        handles.append(Line2D([], [], color=colour, **FAINT, label=f"{framework}: every trial ({len(own)})"))
        for s in best:
            if (s.workload, s.framework) == (workload, framework):
                seeds = sum(is_best(r, [s]) for r in own)
                handles.append(Line2D([], [], color=colour, **BOLD, label=f"{framework} best: {s.config} "
                                      f"({seeds} seed{'s' if seeds != 1 else ''})"))
    axis.axhline(target, color="#555", linestyle="--", linewidth=1)
    handles.append(Line2D([], [], color="#555", linestyle="--", linewidth=1, label=f"target {target:g}"))
    axis.set_title(workload, fontsize=9)
    axis.set_xlabel("training time, s (cumulative epoch seconds)")
    axis.set_xlim(left=0)  # epoch 1 (tracing, compilation) shows as the offset of each curve
    axis.set_ylim(0, 1.02)
    axis.grid(alpha=0.3)
    axis.legend(handles=handles, fontsize=7, loc="lower right")


def accuracy_vs_time(results: list[TrialResult], best: list[ConfigSummary], target: float) -> str | None:
    """The figure as a PNG data URI; None when no trial finished an epoch (all failed, or none ran)."""
    trained = [r for r in results if len(training_curve(r)[0])]
    workloads = list(dict.fromkeys(r.trial.workload for r in trained))
    if not workloads:
        return None
    from matplotlib.figure import Figure

    # A Figure of its own, not pyplot's: nothing global, and the report never opens a window.
    figure = Figure(figsize=(5.5 * len(workloads), 3.8))
    axes = figure.subplots(1, len(workloads), sharey=True, squeeze=False)[0]
    for axis, workload in zip(axes, workloads, strict=True):
        draw_workload(axis, workload, [r for r in trained if r.trial.workload == workload], best, target)
    axes[0].set_ylabel("test accuracy (after each epoch)")
    figure.suptitle("Test accuracy vs wall-clock training time, per framework", fontsize=10)
    return to_data_uri(figure)
