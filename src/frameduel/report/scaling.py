"""Data-parallel scaling: each N-worker train cell against the same framework and mode on one worker.

Efficiency = throughput_N / (N x throughput_1), samples per second of the global batch. Strong scaling
holds the global batch (each worker does 1/N of it); weak scaling holds the batch per worker (the global
batch grows N-fold). Which one a cell is follows from its batch: an N-worker cell of global batch B is
strong against the one-worker cell of batch B, weak against the one of B / N. The CI is the step-time
ratio's (report/summary.speedup: across processes, as every speedup), scaled by B_N / (N B_1).
"""

from __future__ import annotations

from dataclasses import dataclass

from frameduel.analysis.summary import CellSummary, RunSummary, speedup
from frameduel.stats import Interval


@dataclass(frozen=True)
class Scaling:
    model: str  # 'mlp/tiny' (always the train task)
    device: str
    framework: str
    mode: str
    kind: str  # "strong" or "weak"
    workers: int
    batch: int  # global batch of the N-worker cell
    throughput: float  # samples/s, N workers
    baseline_throughput: float  # samples/s, one worker
    efficiency: float
    efficiency_ci: Interval
    allreduce_share: float | None  # the all-reduce alone / the step, medians (an upper bound: DDP overlaps it)
    unstable: bool

    @property
    def verdict(self) -> str:
        """'linear' where the whole CI is at 90% or more, 'sublinear' where it stays below, else 'unclear':
        a CI wide enough to reach both (few processes, a noisy machine) proves neither."""
        if self.efficiency_ci.low >= LINEAR_EFFICIENCY:
            return "linear"
        return "sublinear" if self.efficiency_ci.high < LINEAR_EFFICIENCY else "unclear"


# An efficiency this close to 1 counts as "linear scaling" (the claim's word): 10%, the noise band.
LINEAR_EFFICIENCY = 0.9


def scaling_rows(summary: RunSummary) -> list[Scaling]:
    """Every N-worker cell with a one-worker baseline of the same framework, mode, precision and device."""
    ok = [cell for cell in summary.cells if cell.step is not None and cell.throughput]
    single = {baseline_key(cell, cell.spec.batch_size): cell for cell in ok if cell.spec.workers == 1}
    rows = []
    for cell in (cell for cell in ok if cell.spec.workers > 1):
        workers, batch = cell.spec.workers, cell.spec.batch_size
        for kind, baseline_batch in (("strong", batch), ("weak", batch // workers)):
            baseline = single.get(baseline_key(cell, baseline_batch))
            if baseline is not None:
                rows.append(scaling(cell, baseline, kind))
    return rows


def baseline_key(cell: CellSummary, batch: int) -> tuple:
    spec = cell.spec
    return (spec.workload, spec.model_label, spec.task_label, spec.precision, spec.device, spec.threads,
            spec.framework, spec.mode, batch)


def scaling(cell: CellSummary, baseline: CellSummary, kind: str) -> Scaling:
    ratio = speedup(cell.spec.comparison_group, "scaling", cell, baseline)  # t_1 / t_N, with its CI
    factor = cell.spec.batch_size / (cell.spec.workers * baseline.spec.batch_size)
    allreduce = cell.phases.get("allreduce")
    return Scaling(model=f"{cell.spec.workload}/{cell.spec.model_label}", device=cell.spec.device,
                   framework=cell.spec.framework, mode=cell.spec.mode, kind=kind, workers=cell.spec.workers,
                   batch=cell.spec.batch_size, throughput=cell.throughput, baseline_throughput=baseline.throughput,
                   efficiency=ratio.value * factor,
                   efficiency_ci=Interval(ratio.ci.low * factor, ratio.ci.high * factor),
                   allreduce_share=allreduce.median / cell.step.median if allreduce else None,
                   unstable=ratio.unstable)


SCALING_NOTE = ("efficiency = samples/s of N workers / (N x one worker's), with its 95% CI across processes; "
                "all-reduce % = the gradient all-reduce timed alone / the step (an upper bound where DDP "
                "overlaps it with the backward)")

SCALING_COLUMNS = ("model", "fw", "mode", "scaling", "workers", "batch", "samples/s 1", "samples/s N",
                   "efficiency [95% CI]", "all-reduce %")


def scaling_table_rows(rows: list[Scaling]) -> list[list[str]]:
    return [[row.model, row.framework, row.mode, row.kind, str(row.workers), str(row.batch),
             f"{row.baseline_throughput:.3g}", f"{row.throughput:.3g}",
             f"{row.efficiency:.2f} [{row.efficiency_ci.low:.2f}, {row.efficiency_ci.high:.2f}]",
             "-" if row.allreduce_share is None else f"{100 * row.allreduce_share:.2g}"] for row in rows]
