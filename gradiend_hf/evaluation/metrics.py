"""Plain metric functions on tables of encodings and class probabilities.

Everything here is a pure function of numbers the evaluators measured, so each definition can be tested on a
hand-made table. The encoder metrics follow the GRADIEND papers: the Pearson correlation between each row's expected
encoding (+1 / -1, 0 for identity rows) and its encoding, on all non-neutral rows; ternary accuracy with boundaries at
±0.5; binary accuracy (sign) on the two target classes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import pandas as pd

from ..errors import GradiendError


NEUTRAL_TYPES = ("neutral_training_masked", "neutral_dataset")


class EvaluationError(GradiendError):
    """Raised when an evaluation cannot be computed from its input (no rows, one class only, …)."""


def pearson(x, y) -> float:
    """Pearson correlation of two equally long sequences; 0.0 when either is constant.

    Raises:
        EvaluationError: when fewer than two values are given.
    """
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1:
        raise EvaluationError(
            f"Pearson correlation needs two 1-D sequences of equal length, got {x.shape}, {y.shape}."
        )
    if x.size < 2:
        raise EvaluationError(f"Pearson correlation needs at least 2 values, got {x.size}.")
    dx, dy = x - x.mean(), y - y.mean()
    denominator = math.sqrt(float((dx * dx).sum()) * float((dy * dy).sum()))
    if denominator == 0.0 or not math.isfinite(denominator):
        return 0.0
    return float((dx * dy).sum() / denominator)


def ternary(values, boundary: float = 0.5) -> np.ndarray:
    """Maps values to -1 (≤ -boundary), +1 (≥ boundary) or 0 (in between)."""
    values = np.asarray(values, dtype=np.float64)
    return np.where(values >= boundary, 1, np.where(values <= -boundary, -1, 0))


def binary(values) -> np.ndarray:
    """Maps values to +1 (≥ 0) or -1 (< 0)."""
    return np.where(np.asarray(values, dtype=np.float64) >= 0, 1, -1)


def _stats(values: pd.Series) -> dict[str, float]:
    # Population std (ddof=0) so a group of one row has std 0 rather than NaN (JSON-friendly).
    values = values.astype(float)
    return {
        "mean": float(values.mean()),
        "std": float(values.std(ddof=0)),
        "abs_mean": float(values.abs().mean()),
        "count": int(values.size),
    }


def is_neutral(types: pd.Series) -> pd.Series:
    """Rows whose type names a neutral row (label 0, excluded from the correlation)."""
    return types.astype(str).str.contains("neutral")


def encoder_metrics(rows: pd.DataFrame) -> dict:
    """Encoder metrics of a table of encoded rows.

    Args:
        rows (`pd.DataFrame`):
            One row per encoded example with the columns `type` (`"training"` or a type containing `"neutral"`),
            `expected` (+1 / -1 for the two feature classes, 0 for identity and neutral rows), `encoding` (the first
            latent value) and, for the breakdowns, `factual_class` and `factual`.

    Returns:
        `dict` with
        - `correlation`: Pearson(expected, encoding) on the non-neutral rows (identity rows included);
        - `accuracy`: ternary accuracy (boundaries ±0.5 on both columns) on the non-neutral rows;
        - `correlation_all`, `accuracy_all`: the same on all rows, neutral rows included (expected 0);
        - `correlation_target_classes`, `binary_accuracy`: Pearson and sign accuracy on the rows with expected ≠ 0;
        - `mean_by_class` (factual class → mean), `encoding_by_class` (→ mean/std/abs_mean/count/expected),
          `encoding_by_word` (class → factual word → stats), `encoding_by_type` (row type → stats),
          `neutral_mean` (neutral type → mean), `num_rows` (row type → count).

    Raises:
        EvaluationError: for an empty table, a table without non-neutral rows, fewer than two non-neutral rows or
            non-neutral rows that all expect the same value.
    """
    missing = {"type", "expected", "encoding"} - set(rows.columns)
    if missing:
        raise EvaluationError(f"The encoded rows lack the column(s) {sorted(missing)}.")
    if len(rows) == 0:
        raise EvaluationError("There are no encoded rows; the evaluation split (and neutral data) is empty.")
    neutral = is_neutral(rows["type"])
    # The GRADIEND's own transitions: "training" rows (with any identity rows typed so). Rows of other transitions
    # ("identity", "transition") are reported per transition but never enter the pair correlation.
    training = rows[rows["type"] == "training"]
    other = rows[~neutral & (rows["type"] != "training")]
    if len(training) == 0:
        raise EvaluationError(
            "All encoded rows are neutral; the correlation needs rows of the two feature classes. Check the split "
            "name and that the dataset has `factual_class` values of the GRADIEND's classes."
        )
    if len(training) < 2:
        raise EvaluationError(
            f"Only {len(training)} non-neutral row was encoded; the correlation needs at least 2. Evaluate more rows."
        )
    if training["expected"].nunique() < 2:
        value = training["expected"].iloc[0]
        raise EvaluationError(
            f"Every non-neutral row expects the encoding {value}: the rows come from one class only, so no "
            "correlation can be computed. Evaluate rows of both feature classes."
        )

    expected, encoding = training["expected"].to_numpy(float), training["encoding"].to_numpy(float)
    targets = training[training["expected"] != 0]
    metrics: dict = {
        "correlation": pearson(expected, encoding),
        "accuracy": float((ternary(expected) == ternary(encoding)).mean()),
        "correlation_all": pearson(rows["expected"], rows["encoding"]),
        "accuracy_all": float((ternary(rows["expected"]) == ternary(rows["encoding"])).mean()),
    }
    if len(targets) >= 2 and targets["expected"].nunique() == 2:
        metrics["correlation_target_classes"] = pearson(targets["expected"], targets["encoding"])
    if len(targets):
        metrics["binary_accuracy"] = float((binary(targets["encoding"]) == targets["expected"].to_numpy()).mean())

    if "factual_class" in rows.columns:
        by_class = {}
        for name, group in training.groupby("factual_class", sort=True):
            stats = _stats(group["encoding"])
            expected_values = group["expected"].unique()
            if len(expected_values) == 1:
                stats["expected"] = int(expected_values[0])
            by_class[str(name)] = stats
        metrics["encoding_by_class"] = by_class
        metrics["mean_by_class"] = {name: stats["mean"] for name, stats in by_class.items()}
        if "factual" in rows.columns:
            metrics["encoding_by_word"] = {
                str(name): {str(word): _stats(g["encoding"]) for word, g in group.groupby("factual", sort=True)}
                for name, group in training.groupby("factual_class", sort=True)
            }
    if len(other) and {"factual_class", "alternative_class"} <= set(rows.columns):
        metrics["encoding_by_transition"] = transition_stats(pd.concat([training, other]))
        metrics["mean_by_transition"] = {t: s["mean"] for t, s in metrics["encoding_by_transition"].items()}
    metrics["encoding_by_type"] = {str(t): _stats(g["encoding"]) for t, g in rows.groupby("type", sort=True)}
    metrics["neutral_mean"] = {
        str(t): float(g["encoding"].mean()) for t, g in rows[neutral].groupby("type", sort=True)
    }
    metrics["num_rows"] = {str(t): int(len(g)) for t, g in rows.groupby("type", sort=True)}
    return metrics


def transition_stats(rows: pd.DataFrame) -> dict[str, dict]:
    """Encoding statistics per transition `"A→B"` (identity `"C→C"` too), with the expected value where it is one.

    Args:
        rows (`pd.DataFrame`): Encoded rows with `factual_class`, `alternative_class`, `expected` and `encoding`.

    Returns:
        `dict`: `"A→B"` → `mean`, `std`, `abs_mean`, `min`, `max`, `count` and `expected` (when all rows agree).
    """
    out = {}
    for (factual, alternative), group in rows.groupby(["factual_class", "alternative_class"], sort=True):
        stats = _stats(group["encoding"])
        expected = group["expected"].unique()
        if len(expected) == 1:
            stats["expected"] = int(expected[0])
        out[f"{factual}→{alternative}"] = stats
    return out


# --------------------------------------------------------------------------- decoder metrics


def strengthen_score(probabilities: Mapping[str, Mapping[str, float]], target_class: str, other_class: str) -> float:
    """Score of strengthening `target_class`: its mean probability on the rows of `other_class`.

    Args:
        probabilities: `probabilities[dataset_class][class]` = mean probability of `class`'s words on the rows
            whose factual class is `dataset_class`.
    """
    return float(probabilities[other_class][target_class])


def weaken_score(probabilities: Mapping[str, Mapping[str, float]], target_class: str) -> float:
    """Score of weakening `target_class`: 1 − its mean probability on its own rows."""
    return 1.0 - float(probabilities[target_class][target_class])


def balance_score(prob_a, prob_b) -> float:
    """How equally likely the two classes are, weighted by how likely the pair is at all.

    The mean over rows of `(1 − |a − b| / (a + b)) · (a + b)`, which equals the mean of `2 · min(a, b)`: it is 0
    when a row gives all its pair mass to one class, and is largest when both classes are equally likely and the
    pair keeps its probability mass. (The original paper's BPI uses the un-normalised `(1 − |a − b|) · (a + b)`,
    which barely moves when both probabilities are small.)

    Args:
        prob_a, prob_b: per-row probabilities of the two classes.

    Returns:
        `float`: the score (0 for no rows).
    """
    a, b = np.asarray(prob_a, dtype=np.float64), np.asarray(prob_b, dtype=np.float64)
    if a.size == 0:
        return 0.0
    return float((2.0 * np.minimum(a, b)).mean())


def lms_from_nll(mean_nll: float) -> tuple[float, float]:
    """Language-modelling score and perplexity of a causal LM from its mean next-token NLL.

    Returns:
        `(lms, perplexity)`: `lms = 1 / (1 + NLL)`, 0.0 when the NLL is not finite or above 700 (the model is
        broken); `perplexity = exp(NLL)`, `inf` on overflow or a non-finite NLL.
    """
    if not math.isfinite(mean_nll) or mean_nll > 700:
        return 0.0, math.inf
    try:
        perplexity = math.exp(mean_nll)
    except OverflowError:  # pragma: no cover - guarded by the 700 cut-off
        perplexity = math.inf
    return 1.0 / (1.0 + max(mean_nll, 0.0)), perplexity
