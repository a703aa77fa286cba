"""Seeded bootstrap confidence intervals for benchmark scores.

Rows (pairs, examples) are resampled with replacement `samples` times with a seeded NumPy generator, the score is
recomputed on every resample, and the percentile interval is reported: for `confidence=0.95` the 2.5th and 97.5th
percentiles. The same rows, settings and seed always give the same interval.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import numpy as np

from .errors import BenchmarkError


@dataclass(frozen=True)
class Estimate:
    """A score with its bootstrap confidence interval.

    Args:
        value (`float`): The score on all rows.
        ci_low (`float`, *optional*), ci_high (`float`, *optional*): The interval (`None` without bootstrap).
        n (`int`): Number of rows the score is computed on.
    """

    value: float
    ci_low: float | None
    ci_high: float | None
    n: int

    @property
    def width(self) -> float | None:
        """`ci_high - ci_low`, or `None` without an interval."""
        return None if self.ci_low is None else self.ci_high - self.ci_low

    def to_dict(self) -> dict:
        return asdict(self)


MAX_SAMPLES = 100_000


def check_bootstrap_settings(samples: int, confidence: float) -> None:
    """Raises `BenchmarkError` unless `0 ≤ samples ≤ 100 000` is an integer and `0 < confidence < 1`."""
    if isinstance(samples, bool) or not isinstance(samples, (int, np.integer)) or not 0 <= samples <= MAX_SAMPLES:
        raise BenchmarkError(
            f"`bootstrap_samples` must be a whole number from 0 (no intervals) to {MAX_SAMPLES:,} (1000 is plenty "
            f"for 95 % intervals), got {samples!r}."
        )
    if isinstance(confidence, bool) or not isinstance(confidence, (int, float)) or not 0.0 < float(confidence) < 1.0:
        raise BenchmarkError(f"`confidence` must be between 0 and 1 (e.g. 0.95), got {confidence!r}.")


def estimates(
    statistic: Callable[[np.ndarray], Sequence[float]],
    names: Sequence[str],
    n: int,
    samples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> dict[str, Estimate]:
    """Scores and bootstrap intervals of several statistics computed together from the same resampled rows.

    Args:
        statistic (`Callable`): Maps an array of row indices (with repeats) to one value per name.
        names (`Sequence[str]`): Names of the values `statistic` returns, in order.
        n (`int`): Number of rows.
        samples (`int`, *optional*, defaults to 1000): Bootstrap resamples (0: no intervals).
        confidence (`float`, *optional*, defaults to 0.95): Coverage of the intervals.
        seed (`int`, *optional*, defaults to 0): Seed of the resampling.

    Returns:
        `dict[str, Estimate]`: one estimate per name.

    Raises:
        BenchmarkError: for no rows, bad settings, or a score that is not finite.
    """
    check_bootstrap_settings(samples, confidence)
    if n < 1:
        raise BenchmarkError("There are no rows to score; check the bias types and `max_rows`.")
    point = np.asarray(statistic(np.arange(n)), dtype=np.float64)
    if point.shape != (len(names),) or not np.isfinite(point).all():
        raise BenchmarkError(
            f"The scores {dict(zip(names, point.tolist()))} are not finite numbers; check the inputs."
        )
    low = high = [None] * len(names)
    if samples:
        rng = np.random.default_rng(seed)
        draws = np.empty((samples, len(names)))
        for s in range(samples):
            draws[s] = statistic(rng.integers(0, n, size=n))
        tail = (1.0 - float(confidence)) / 2.0
        low, high = (np.quantile(draws, q, axis=0).tolist() for q in (tail, 1.0 - tail))
    return {name: Estimate(float(point[k]), _clean(low[k]), _clean(high[k]), int(n)) for k, name in enumerate(names)}


def _clean(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)
