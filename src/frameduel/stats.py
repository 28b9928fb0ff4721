"""Robust summaries and bootstrap confidence intervals for per-step timings.

Step times are skewed (GC pauses, clock boosts, stragglers), so everything here is built on the
median and percentiles rather than the mean, and uncertainty comes from the bootstrap, which
needs no assumption about the distribution. All resampling is vectorised with numpy and seeded,
so the same samples always give the same interval. No framework imports: this runs in the
parent process, away from torch and tensorflow.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

NOISE_THRESHOLD = 0.10  # IQR/median at or above this -> noisy
DEFAULT_CONFIDENCE = 0.95
DEFAULT_RESAMPLES = 2000

# Upper bound on elements materialised per bootstrap chunk (indices + gathered values), so that
# memory stays around tens of MB even for 100k samples x 2000 resamples.
_MAX_CHUNK_ELEMENTS = 2_000_000


@dataclass(frozen=True)
class Interval:
    """A closed interval [low, high]; used for every confidence interval in frameduel."""

    low: float
    high: float

    def __post_init__(self) -> None:
        # A reversed interval is always an upstream bug (e.g. a forgotten bound swap): fail loudly.
        if self.low > self.high:
            raise ValueError(f"interval low {self.low} is above high {self.high}")

    def contains(self, value: float) -> bool:
        """True if value lies within the interval, bounds included."""
        return self.low <= value <= self.high

    def half_width_rel(self, centre: float) -> float:
        """Largest distance from centre to a bound, relative to |centre|.

        Asymmetric intervals are judged by their wider side, so a convergence test never
        passes just because one side happens to be tight.
        """
        spread = max(centre - self.low, self.high - centre)
        if centre == 0:
            return 0.0 if spread == 0 else math.inf
        return spread / abs(centre)


@dataclass(frozen=True)
class SampleSummary:
    """Everything a report needs about one set of step times, in plain floats."""

    n: int
    median: float
    iqr: float
    mean: float
    std: float
    min: float
    max: float
    p50: float
    p90: float
    p99: float
    median_ci: Interval

    @property
    def noise(self) -> float:
        """Relative spread IQR/median: a scale-free measure that outliers barely move."""
        return self.iqr / self.median if self.median != 0 else 0.0

    @property
    def noisy(self) -> bool:
        """True when the spread is large enough that a comparison deserves a warning."""
        return self.noise >= NOISE_THRESHOLD

    def to_dict(self) -> dict:
        """JSON-serialisable form; includes the derived noise figures for readers of the file."""
        out = dataclasses.asdict(self)
        out["noise"] = self.noise
        out["noisy"] = self.noisy
        return out


def t_quantile(confidence: float, df: float) -> float:
    """Student's t two-sided quantile. scipy.stats is imported here, not at the top: it costs ~0.6 s
    of every CLI call's and every measuring worker's start-up, and only interval code needs it."""
    from scipy import stats as scipy_stats

    return float(scipy_stats.t.ppf((1 + confidence) / 2, df))


def _as_samples(samples: Sequence[float], what: str = "samples") -> np.ndarray:
    """Validate and convert to a 1-D float64 array; bad timings must never reach a report."""
    arr = np.asarray(samples, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"{what} must be a flat sequence of numbers, got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{what} is empty; need at least one measurement")
    if not np.all(np.isfinite(arr)):
        bad = "NaN" if np.isnan(arr).any() else "infinite"
        raise ValueError(f"{what} contains {bad} values; every measurement must be finite")
    return arr


def _check_params(confidence: float, resamples: int) -> None:
    """Reject settings that would silently produce a meaningless interval."""
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be between 0 and 1 (exclusive), got {confidence}")
    if int(resamples) != resamples or resamples < 1:
        raise ValueError(f"resamples must be a positive integer, got {resamples}")


def _chunk_rows(row_width: int) -> int:
    """How many bootstrap replicates to draw at once so a chunk stays within the memory budget."""
    return max(1, _MAX_CHUNK_ELEMENTS // max(1, row_width))


def _row_medians(values: np.ndarray) -> np.ndarray:
    """Median of each row, same values as np.median(values, axis=1) but ~3x faster.

    np.median partitions around both middle elements; one partition plus a max over the lower
    half does the same work in one pass, and this is the hot loop of every bootstrap.
    """
    half = values.shape[1] // 2
    parted = np.partition(values, half, axis=1)
    upper = parted[:, half]
    if values.shape[1] % 2:
        return upper
    return (parted[:, :half].max(axis=1) + upper) / 2.0


def _bootstrap_medians(x: np.ndarray, resamples: int, rng: np.random.Generator) -> np.ndarray:
    """Medians of `resamples` with-replacement resamples of x, drawn chunk by chunk."""
    n = x.size
    step = _chunk_rows(n)
    out = np.empty(resamples, dtype=np.float64)
    for start in range(0, resamples, step):
        rows = min(step, resamples - start)
        idx = rng.integers(0, n, size=(rows, n))
        out[start : start + rows] = _row_medians(x[idx])
    return out


def _percentile_interval(estimates: np.ndarray, confidence: float) -> Interval:
    """Percentile-method interval: the central `confidence` mass of the bootstrap estimates."""
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(estimates, [tail, 1.0 - tail])
    return Interval(float(low), float(high))


def bootstrap_median_ci(
    samples: Sequence[float],
    confidence: float = DEFAULT_CONFIDENCE,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
) -> Interval:
    """Percentile-bootstrap confidence interval of the median.

    A single sample carries no information about spread, so it yields the degenerate [x, x]
    rather than an error: the adaptive loop may ask after its very first step.
    """
    x = _as_samples(samples)
    _check_params(confidence, resamples)
    if x.size == 1:
        return Interval(float(x[0]), float(x[0]))
    medians = _bootstrap_medians(x, resamples, np.random.default_rng(seed))
    return _percentile_interval(medians, confidence)


def percentile(samples: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) with linear interpolation, matching numpy's default."""
    if not 0 <= q <= 100:
        raise ValueError(f"percentile q must be within 0..100, got {q}")
    return float(np.percentile(_as_samples(samples), q))


def summarize(
    samples: Sequence[float],
    confidence: float = DEFAULT_CONFIDENCE,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
) -> SampleSummary:
    """Summarise step times: robust location/spread, tail percentiles and a median CI.

    std uses ddof=1 (sample standard deviation) because the steps are a sample of the process;
    it is 0 for a single measurement instead of NaN so the result stays JSON-clean.
    """
    x = _as_samples(samples)
    q25, p50, q75, p90, p99 = np.percentile(x, [25, 50, 75, 90, 99])
    return SampleSummary(
        n=int(x.size),
        median=float(p50),
        iqr=float(q75 - q25),
        mean=float(x.mean()),
        std=float(x.std(ddof=1)) if x.size > 1 else 0.0,
        min=float(x.min()),
        max=float(x.max()),
        p50=float(p50),
        p90=float(p90),
        p99=float(p99),
        median_ci=bootstrap_median_ci(x, confidence, resamples, seed),
    )


def ratio_of_medians(
    numerator_samples: Sequence[float],
    denominator_samples: Sequence[float],
    confidence: float = DEFAULT_CONFIDENCE,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
) -> tuple[float, Interval]:
    """median(a)/median(b) with a percentile-bootstrap CI, e.g. a speedup figure.

    The two samples come from separate runs, so they are resampled independently; the CI of a
    ratio is not derivable from the two medians' CIs, hence the joint bootstrap.
    """
    a = _as_samples(numerator_samples, "numerator samples")
    b = _as_samples(denominator_samples, "denominator samples")
    point_b = float(np.median(b))
    if point_b == 0:
        raise ValueError("denominator samples have a median of 0; the ratio is undefined")
    return float(np.median(a)) / point_b, hierarchical_ratio_ci([a], [b], confidence, resamples, seed)


def hierarchical_median_ci(
    groups: list[Sequence[float]],
    confidence: float = DEFAULT_CONFIDENCE,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
) -> Interval:
    """Two-level bootstrap CI of the pooled median for samples from several worker processes.

    Steps within one process share its state (allocator, clocks, compilation), so they are not
    independent across processes. Resampling whole groups first, then samples within each chosen
    group, lets between-process variation widen the interval as it should.
    """
    if len(groups) == 0:
        raise ValueError("groups is empty; need at least one group of measurements")
    arrays = [_as_samples(g, f"group {i}") for i, g in enumerate(groups)]
    _check_params(confidence, resamples)
    if len(arrays) == 1:
        # No between-group level exists, so this is exactly the simple bootstrap.
        return bootstrap_median_ci(arrays[0], confidence, resamples, seed)
    medians = _hierarchical_medians(arrays, resamples, np.random.default_rng(seed))
    return _percentile_interval(medians, confidence)


def _hierarchical_medians(arrays: list[np.ndarray], resamples: int, rng: np.random.Generator) -> np.ndarray:
    """Pooled medians of two-level resamples; unequal group sizes are padded with NaN."""
    k = len(arrays)
    sizes = np.array([a.size for a in arrays])
    offsets = np.concatenate(([0], np.cumsum(sizes)[:-1]))
    flat = np.concatenate(arrays)
    width = int(sizes.max())
    ragged = bool(np.any(sizes != width))
    step = _chunk_rows(k * width)
    out = np.empty(resamples, dtype=np.float64)
    for start in range(0, resamples, step):
        rows = min(step, resamples - start)
        chosen = rng.integers(0, k, size=(rows, k))
        chosen_sizes = sizes[chosen][..., None]
        within = rng.integers(0, chosen_sizes, size=(rows, k, width))
        values = flat[offsets[chosen][..., None] + within]
        if ragged:
            values = np.where(np.arange(width) < chosen_sizes, values, np.nan)
        values = values.reshape(rows, k * width)
        medians = np.nanmedian(values, axis=1) if ragged else _row_medians(values)
        out[start : start + rows] = medians
    return out


def ci_converged(
    samples: Sequence[float],
    target_rel: float,
    confidence: float = DEFAULT_CONFIDENCE,
    resamples: int = 500,
    seed: int = 0,
) -> bool:
    """True once the median's CI lies within +-target_rel of the median.

    Called repeatedly by the adaptive measurement loop, hence the smaller default resample count:
    it decides when to stop, not what to report.
    """
    if target_rel <= 0:
        raise ValueError(f"target_rel must be positive, got {target_rel}")
    x = _as_samples(samples)
    ci = bootstrap_median_ci(x, confidence, resamples, seed)
    return ci.half_width_rel(float(np.median(x))) <= target_rel


def throughput(batch_size: int, step_seconds_summary: SampleSummary) -> tuple[float, Interval]:
    """Samples per second from step times, with its CI.

    Throughput is batch/time, a decreasing map, so the slowest plausible step time gives the
    lower throughput bound: the interval's bounds swap.
    """
    if batch_size <= 0:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    s = step_seconds_summary
    if s.median <= 0 or s.median_ci.low <= 0:
        raise ValueError("step times must be positive to compute throughput")
    bounds = Interval(batch_size / s.median_ci.high, batch_size / s.median_ci.low)
    return batch_size / s.median, bounds


# Process medians further apart than this (max / min - 1) mark a cell "unstable across processes":
# within one process the median's CI is a few percent here, so a 10% gap is a process-level effect.
UNSTABLE_THRESHOLD = 0.10


def hull(*intervals: Interval | None) -> Interval:
    """The smallest interval containing every given one."""
    present = [interval for interval in intervals if interval is not None]
    return Interval(min(i.low for i in present), max(i.high for i in present))


@dataclass(frozen=True)
class Dispersion:
    """How far worker processes' medians scatter: the standard deviation of their logs, and its df."""

    log_sd: float
    df: int


def process_dispersion(cells_medians: list[Sequence[float]]) -> Dispersion | None:
    """The dispersion pooled over several cells' process medians (sum of squares over sum of k - 1).

    Cells of one framework and task share the machine and the thread pool's behaviour, so they share
    most of their between-process spread; a cell's own three processes may agree by chance and claim
    a precision the next run does not have. None when no cell has two processes.
    """
    squares, df = 0.0, 0
    for medians in cells_medians:
        logs = np.log(_as_samples(medians, "process medians"))
        if logs.size > 1:
            squares += float(np.sum((logs - logs.mean()) ** 2))
            df += logs.size - 1
    return Dispersion(math.sqrt(squares / df), df) if df else None


def own_dispersion(process_medians: Sequence[float]) -> Dispersion | None:
    logs = np.log(_as_samples(process_medians, "process medians"))
    return Dispersion(float(logs.std(ddof=1)), logs.size - 1) if logs.size > 1 else None


def log_t_interval(process_medians: Sequence[float], confidence: float = DEFAULT_CONFIDENCE,
                   dispersion: Dispersion | None = None) -> Interval | None:
    """Student-t interval of the geometric mean of k process medians, on the log scale.

    The processes are the independent units: steps within one process share its thread placement,
    memory layout and compiled kernels. With k of them the bootstrap cannot reach beyond their range
    (three processes: 1 resample in 27 draws the slowest three times), so it is too narrow for small
    k; the t quantile (4.3 for k = 3) is what a small sample of independent units costs. Times vary
    by factors, not offsets, hence the log scale (and bounds that stay positive). The dispersion is
    the cell's own (k - 1 df) unless a pooled one is given.
    """
    logs = np.log(_as_samples(process_medians, "process medians"))
    dispersion = dispersion or own_dispersion(process_medians)
    if dispersion is None:
        return None
    half = t_quantile(confidence, dispersion.df) * dispersion.log_sd / math.sqrt(logs.size)
    return Interval(float(np.exp(logs.mean() - half)), float(np.exp(logs.mean() + half)))


def log_ratio_t_interval(numerator_medians: Sequence[float], denominator_medians: Sequence[float],
                         confidence: float = DEFAULT_CONFIDENCE,
                         dispersions: tuple[Dispersion | None, Dispersion | None] = (None, None)) -> Interval | None:
    """t interval of geometric-mean(numerator) / geometric-mean(denominator) over process medians, with
    each side's own dispersion unless pooled ones are given.

    Welch's standard error with the conservative degrees of freedom min(df_a, df_b) rather than
    Welch-Satterthwaite's (about 4 for 3 + 3 processes): with so few processes the spread estimates are
    themselves rough, and calibration.py measured the difference across 5 separate runs, one run's
    speedup inside another run's CI 87% of the time with Satterthwaite's df against 93% with min(df)."""
    a = np.log(_as_samples(numerator_medians, "numerator process medians"))
    b = np.log(_as_samples(denominator_medians, "denominator process medians"))
    da = dispersions[0] or own_dispersion(numerator_medians)
    db = dispersions[1] or own_dispersion(denominator_medians)
    if da is None or db is None:
        return None
    va, vb = da.log_sd**2 / a.size, db.log_sd**2 / b.size
    centre = a.mean() - b.mean()
    if va + vb == 0:
        return Interval(float(np.exp(centre)), float(np.exp(centre)))
    half = t_quantile(confidence, min(da.df, db.df)) * math.sqrt(va + vb)
    return Interval(float(np.exp(centre - half)), float(np.exp(centre + half)))


def log_paired_t_interval(numerator_medians: Sequence[float], denominator_medians: Sequence[float],
                          confidence: float = DEFAULT_CONFIDENCE) -> Interval | None:
    """t interval of the geometric mean of paired ratios numerator_i / denominator_i, on the log scale.

    The pairs are two cells' processes run side by side (the same round: interleaved A B). What moves one
    process of a pair (the machine's drift, another process's load) moves the other too: measured here,
    the log process medians of a verdict's two cells correlated at +0.65 to +0.99 in 8 of 10 groups, and
    the paired standard error was 40-60% of the unpaired one. None with fewer than two pairs."""
    a = np.log(_as_samples(numerator_medians, "numerator process medians"))
    b = np.log(_as_samples(denominator_medians, "denominator process medians"))
    if a.size != b.size:
        raise ValueError(f"paired medians need equal counts, got {a.size} and {b.size}")
    if a.size < 2:
        return None
    differences = a - b
    half = t_quantile(confidence, a.size - 1) * float(differences.std(ddof=1)) / math.sqrt(a.size)
    return Interval(float(np.exp(differences.mean() - half)), float(np.exp(differences.mean() + half)))


def hierarchical_ratio_ci(
    numerator_groups: list[Sequence[float]],
    denominator_groups: list[Sequence[float]],
    confidence: float = DEFAULT_CONFIDENCE,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
) -> Interval:
    """Two-level bootstrap CI of pooled-median(numerator) / pooled-median(denominator): processes
    first, then steps within each, independently for the two cells."""
    a = [_as_samples(g, f"numerator group {i}") for i, g in enumerate(numerator_groups)]
    b = [_as_samples(g, f"denominator group {i}") for i, g in enumerate(denominator_groups)]
    _check_params(confidence, resamples)
    rng = np.random.default_rng(seed)
    medians_a = _hierarchical_medians(a, resamples, rng) if len(a) > 1 else _bootstrap_medians(a[0], resamples, rng)
    medians_b = _hierarchical_medians(b, resamples, rng) if len(b) > 1 else _bootstrap_medians(b[0], resamples, rng)
    if np.any(medians_b == 0):
        raise ValueError("denominator samples resample to a median of 0; the ratio is unstable")
    return _percentile_interval(medians_a / medians_b, confidence)


def process_spread(process_medians: Sequence[float]) -> float:
    """max / min - 1 of the process medians: 0 for one process."""
    x = _as_samples(process_medians, "process medians")
    return float(x.max() / x.min() - 1.0) if x.min() > 0 else math.inf


def max_rel_diff(reference: np.ndarray, other: np.ndarray) -> tuple[float, float]:
    """(max abs difference, that difference relative to the reference's largest magnitude)."""
    if reference.shape != other.shape:
        return float("inf"), float("inf")
    if not reference.size:
        return 0.0, 0.0
    max_abs = float(np.max(np.abs(reference.astype(np.float64) - other)))
    scale = float(np.max(np.abs(reference)))
    return max_abs, max_abs / scale if scale > 0 else max_abs
