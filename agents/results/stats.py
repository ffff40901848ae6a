"""Statistics of sweep reports and claims: ranks, the memory-scaling summary, and aggregates
over seeds with rliable (interquartile mean, stratified-bootstrap intervals, probability of
improvement)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np


#: Metrics where lower is better (losses and bits per character); every other metric is maximised.
LOWER_IS_BETTER = frozenset({"ce", "bpc", "mse"})


def finite(value: object) -> float | None:
    """``value`` as a float, or None if it is missing, not a number, NaN or infinite."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def evaluation_of(summary: Mapping[str, object], which: str) -> Mapping[str, object]:
    """A supervised run's evaluation that a report ranks by: ``final``, ``best``, or ``test``
    (the best-validation checkpoint on the test split, where the task has one; else ``final``,
    so one spec can mix synthetic tasks and datasets)."""
    if which == "test" and not summary.get("test"):
        which = "final"
    return summary.get(which) or {}


def metric_key(metric: str, metrics: Mapping[str, object]) -> str:
    """The key of a report's ``metric`` in a run's evaluation ``metrics``: ``"loss"`` is the
    run's own loss, cross-entropy (``"ce"``) or MSE."""
    if metric == "loss":
        return "ce" if "ce" in metrics else "mse"
    return metric


def competition_ranks(values: Mapping[str, float | None], higher_is_better: bool = True) -> dict[str, int | None]:
    """Rank 1 = best; equal values share the better rank ("1, 2, 2, 4"); None stays unranked."""
    known = {k: v for k, v in values.items() if v is not None and math.isfinite(v)}
    ranks: dict[str, int | None] = {}
    for key, value in values.items():
        if key not in known:
            ranks[key] = None
            continue
        better = sum(1 for other in known.values() if (other > value if higher_is_better else other < value))
        ranks[key] = 1 + better
    return ranks


def largest_solved(points: Mapping[float, float | None], threshold: float) -> float | None:
    """The largest memory length whose (mean) normalised score is at least ``threshold``.

    ``points`` maps knob value -> score (None = no result). Returns None if no length is solved.
    This is bsuite's memory-length summary in its simplest form: one number per cell saying how far
    its memory reaches; a cell that fails a short length but solves a longer one is credited
    with the longer one (the curve shows the gap).
    """
    solved = [x for x, y in points.items() if y is not None and y >= threshold]
    return max(solved) if solved else None


# --------------------------------------------------------------------------------------------
# Aggregates over seeds with rliable (Agarwal et al., 2021): interquartile mean, stratified
# bootstrap confidence intervals, probability of improvement. rliable is imported on first use.
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Estimate:
    """A point estimate over seeds and its bootstrap confidence interval (equal to the point when
    there is a single seed: no spread to estimate)."""

    point: float
    low: float
    high: float
    n: int

    def text(self, digits: int = 3) -> str:
        """``"0.912 [0.88, 0.95]"``; ``"0.912"`` for one seed."""
        if self.n < 2:
            return f"{self.point:.{digits}g}"
        return f"{self.point:.{digits}g} [{self.low:.{digits}g}, {self.high:.{digits}g}]"


def _finite_array(values: Sequence[float | None]) -> np.ndarray:
    return np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=np.float64)


def iqm(values: Sequence[float | None]) -> float | None:
    """Interquartile mean over seeds (the mean of the middle 50%, rliable's ``aggregate_iqm``;
    with fewer than 4 values nothing is trimmed, so it is the mean). None without values."""
    from rliable import metrics

    xs = _finite_array(values)
    return None if len(xs) == 0 else float(metrics.aggregate_iqm(xs[:, None]))


def iqm_estimate(values: Sequence[float | None], confidence: float = 0.95, reps: int = 2000,
                 seed: int = 0) -> Estimate | None:
    """IQM with rliable's stratified bootstrap confidence interval (percentile, ``reps``
    resamples, a fixed seed so reports are reproducible). None without values."""
    from rliable import library, metrics

    xs = _finite_array(values)
    if len(xs) == 0:
        return None
    point = float(metrics.aggregate_iqm(xs[:, None]))
    if len(xs) < 2:
        return Estimate(point, point, point, 1)
    state = np.random.get_state()
    np.random.seed(seed)  # rliable's bootstrap draws from numpy's global generator
    try:
        _, intervals = library.get_interval_estimates(
            {"x": xs[:, None]}, lambda s: np.array([metrics.aggregate_iqm(s)]), reps=reps,
            confidence_interval_size=confidence)
    finally:
        np.random.set_state(state)
    low, high = intervals["x"][:, 0]
    return Estimate(point, float(low), float(high), len(xs))


def probability_of_improvement(a: Sequence[float | None], b: Sequence[float | None]) -> float | None:
    """P(A > B): the fraction of (seed of A, seed of B) pairs where A scores higher, ties counting
    one half (rliable's ``probability_of_improvement``, the Mann-Whitney U statistic over
    ``len(a) * len(b)``). None if either has no values."""
    from rliable import metrics

    xa, xb = _finite_array(a), _finite_array(b)
    if len(xa) == 0 or len(xb) == 0:
        return None
    return float(metrics.probability_of_improvement(xa[:, None], xb[:, None]))
