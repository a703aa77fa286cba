"""The error every bias-benchmark function raises for input it cannot use."""

from __future__ import annotations

from ..errors import GradiendError


class BenchmarkError(GradiendError):
    """A benchmark cannot be run or scored: an unknown benchmark or bias type, a model family the benchmark cannot
    score, scores that are not finite, or settings (bootstrap samples, confidence, budgets) out of range.

    The message names the problem and how to fix it.
    """
