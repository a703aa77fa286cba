"""Choosing one rewrite from a decoder grid.

A policy is any callable `policy(grid, base) -> index` that returns the index label of the chosen row of `grid` (a
`pd.DataFrame` with one row per (feature factor, learning rate) and the columns described in
[`evaluate_decoder`]); `base` holds the same measurements for the unchanged model.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import pandas as pd

from ..errors import GradiendError
from .metrics import EvaluationError


SelectionPolicy = Callable[[pd.DataFrame, Mapping], object]


@dataclass
class LMSThresholdPolicy:
    """The best `metric` among the rewrites that keep the language-modelling score, else the gentlest rewrite.

    Candidates are the grid rows (only those whose feature factor has the sign `feature_factor_sign`, when given:
    a "strengthen X" selection never uses the other class's feature factor). Among candidates with
    `lms ≥ ratio · base lms` the one with the largest `metric` wins (ties: the smaller |learning rate|). When none
    keeps the LMS, the candidate with the smallest non-zero |learning rate| is returned (ties: larger `metric`).

    Args:
        metric (`str`, *optional*, defaults to `"metric"`): Grid column to maximise.
        ratio (`float`, *optional*, defaults to 0.99): Share of the base model's LMS a rewrite must keep.
        feature_factor_sign (`int`, *optional*): Only consider feature factors of this sign (+1 or -1).
    """

    metric: str = "metric"
    ratio: float = 0.99
    feature_factor_sign: int | None = None

    def __call__(self, grid: pd.DataFrame, base: Mapping) -> object:
        for column in (self.metric, "lms", "feature_factor", "learning_rate"):
            if column not in grid.columns:
                raise EvaluationError(f"The decoder grid has no column {column!r}; it cannot be selected from.")
        candidates = grid
        if self.feature_factor_sign is not None:
            candidates = grid[grid["feature_factor"].map(lambda f: _sign(f) == self.feature_factor_sign)]
        if len(candidates) == 0:
            raise EvaluationError(
                f"No grid point has a feature factor of sign {self.feature_factor_sign:+d}; add one to "
                "`feature_factors` (see `gradiend_hf.evaluation.feature_factor_for`)."
            )
        metric = candidates[self.metric].astype(float).where(lambda v: v.notna(), -math.inf)
        abs_lr = candidates["learning_rate"].astype(float).abs()
        threshold = self.ratio * float(base["lms"])
        keeps = candidates["lms"].astype(float) >= threshold
        if keeps.any():
            ranked = pd.DataFrame({"metric": metric[keeps], "abs_lr": abs_lr[keeps]})
            return ranked.sort_values(["metric", "abs_lr"], ascending=[False, True], kind="stable").index[0]
        moving = abs_lr > 0
        if not moving.any():
            raise EvaluationError("Every candidate has learning rate 0; give at least one non-zero learning rate.")
        ranked = pd.DataFrame({"abs_lr": abs_lr[moving], "metric": metric[moving]})
        return ranked.sort_values(["abs_lr", "metric"], ascending=[True, False], kind="stable").index[0]


def _sign(value: float) -> int:
    return (value > 0) - (value < 0)


def resolve_policy(policy, metric: str, feature_factor_sign: int | None, ratio: float = 0.99) -> SelectionPolicy:
    """Turns `"lms_threshold"`, `"balance"` or a callable into a selection callable."""
    if callable(policy):
        return policy
    if policy == "lms_threshold":
        return LMSThresholdPolicy(metric=metric, ratio=ratio, feature_factor_sign=feature_factor_sign)
    if policy == "balance":
        return LMSThresholdPolicy(metric="balance", ratio=ratio)
    raise GradiendError(
        f"Unknown selection policy {policy!r}; use 'lms_threshold', 'balance' or a callable (grid, base) -> index."
    )
