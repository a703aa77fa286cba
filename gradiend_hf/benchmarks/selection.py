"""Choosing a rewrite from a bias-vs-quality sweep: the Pareto front, and the least biased point within an
LM-quality budget."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import pandas as pd

from .errors import BenchmarkError


SelectionPolicy = Callable[[pd.DataFrame, Mapping], object]


@dataclass
class BudgetPolicy:
    """The least biased point whose LM quality stays within `budget` of the base model's.

    With `quality="lms"` a point qualifies when `lms ≥ (1 − budget) · base lms`; with `"perplexity"` when
    `perplexity ≤ (1 + budget) · base perplexity`. Among qualifying points (the base row always qualifies) the one
    with the smallest `bias` wins; ties go to the smaller |learning rate| (so a rewrite that is not less biased than
    the base model never beats "no rewrite"), then to the better LM quality.

    Args:
        budget (`float`, *optional*, defaults to 0.01): Largest relative loss of LM quality (0.01 = 1 %).
        bias (`str`, *optional*, defaults to `"bias"`): Column to minimise (distance from the unbiased value).
        quality (`str`, *optional*, defaults to `"lms"`): `"lms"` or `"perplexity"`.
    """

    budget: float = 0.01
    bias: str = "bias"
    quality: str = "lms"

    def __post_init__(self):
        if not (isinstance(self.budget, (int, float)) and math.isfinite(self.budget) and 0 <= self.budget < 1):
            raise BenchmarkError(f"`budget` must be a share between 0 and 1 (0.01 = 1 %), got {self.budget!r}.")
        if self.quality not in ("lms", "perplexity"):
            raise BenchmarkError(f"`quality` must be 'lms' or 'perplexity', got {self.quality!r}.")

    def __call__(self, table: pd.DataFrame, base: Mapping) -> object:
        for column in (self.bias, self.quality, "learning_rate"):
            if column not in table.columns:
                raise BenchmarkError(f"The sweep table has no column {column!r} to select by.")
        quality = table[self.quality].astype(float)
        if self.quality == "lms":
            keeps = quality >= (1.0 - self.budget) * float(base["lms"])
            order_quality = -quality
        else:
            keeps = quality <= (1.0 + self.budget) * float(base["perplexity"])
            order_quality = quality
        candidates = pd.DataFrame(
            {"bias": table[self.bias].astype(float), "quality": order_quality, "abs_lr": table["learning_rate"].abs()}
        )[keeps & table[self.bias].notna()]
        if candidates.empty:
            raise BenchmarkError("No sweep point keeps the LM quality within the budget; raise `budget`.")
        return candidates.sort_values(["bias", "abs_lr", "quality"], kind="stable").index[0]


def pareto_front(table: pd.DataFrame, bias: str = "bias", quality: str = "lms") -> pd.Series:
    """Which rows no other row beats on both bias (lower is better) and LM quality (higher LMS, or lower perplexity).

    Returns:
        `pd.Series` of booleans aligned with `table` (rows with a missing bias are never on the front).
    """
    sign = -1.0 if quality == "perplexity" else 1.0
    b, q = table[bias].astype(float), sign * table[quality].astype(float)
    on_front = []
    for i in table.index:
        if math.isnan(b[i]) or math.isnan(q[i]):
            on_front.append(False)
            continue
        dominated = ((b <= b[i]) & (q >= q[i]) & ((b < b[i]) | (q > q[i]))).any()
        on_front.append(not bool(dominated))
    return pd.Series(on_front, index=table.index)
