"""Metric definitions on hand-made tables (method §10 items 7, 8, 12, 13, 15)."""

import math

import numpy as np
import pandas as pd
import pytest

from gradiend_hf import GradiendConfig
from gradiend_hf.evaluation import (
    EvaluationError,
    LMSThresholdPolicy,
    balance_score,
    encoder_metrics,
    expected_encoding,
    feature_factor_for,
    lms_from_nll,
    pearson,
    strengthen_score,
    ternary,
    weaken_score,
)


def table(rows):
    return pd.DataFrame(rows, columns=["type", "expected", "encoding", "factual_class", "factual"])


# --------------------------------------------------------------------------- encoder metrics

ROWS = [
    ("training", 1, 0.9, "M", "he"),
    ("training", 1, 0.4, "M", "him"),
    ("training", -1, -0.8, "F", "she"),
    ("training", -1, 0.1, "F", "she"),
    ("training", 0, 0.6, "M", "he"),  # identity row: expected 0, counts for the correlation
    ("neutral_dataset", 0, 0.95, None, "sea"),
    ("neutral_training_masked", 0, -0.2, None, "came"),
]


def test_correlation_uses_the_non_neutral_rows_only_identity_rows_included():
    metrics = encoder_metrics(table(ROWS))
    # Hand computation: x = expected, y = encoding over the 5 non-neutral rows.
    x = np.array([1, 1, -1, -1, 0.0])
    y = np.array([0.9, 0.4, -0.8, 0.1, 0.6])
    dx, dy = x - x.mean(), y - y.mean()
    assert metrics["correlation"] == pytest.approx((dx * dy).sum() / math.sqrt((dx**2).sum() * (dy**2).sum()))
    # With the neutral rows the value changes, so they really are excluded above.
    assert metrics["correlation_all"] != pytest.approx(metrics["correlation"])


def test_ternary_and_binary_accuracy():
    metrics = encoder_metrics(table(ROWS))
    # ternary(encoding) = [1, 0, -1, 0, 1] vs ternary(expected) = [1, 1, -1, -1, 0] -> 2 of 5.
    assert metrics["accuracy"] == pytest.approx(2 / 5)
    # all rows: neutral 0.95 -> 1 (wrong), -0.2 -> 0 (right) -> 3 of 7.
    assert metrics["accuracy_all"] == pytest.approx(3 / 7)
    # binary on expected != 0: signs of [0.9, 0.4, -0.8, 0.1] vs [1, 1, -1, -1] -> 3 of 4.
    assert metrics["binary_accuracy"] == pytest.approx(3 / 4)
    assert list(ternary([-0.5, -0.49, 0.49, 0.5])) == [-1, 0, 0, 1]


def test_breakdowns_by_class_word_and_type():
    metrics = encoder_metrics(table(ROWS))
    assert metrics["mean_by_class"]["M"] == pytest.approx((0.9 + 0.4 + 0.6) / 3)
    assert metrics["encoding_by_class"]["F"]["count"] == 2
    assert metrics["encoding_by_class"]["F"]["std"] == pytest.approx(0.45)
    assert "expected" not in metrics["encoding_by_class"]["M"]  # mixes +1 and identity rows
    assert metrics["encoding_by_class"]["F"]["expected"] == -1
    assert metrics["encoding_by_word"]["M"]["he"]["mean"] == pytest.approx(0.75)
    assert metrics["neutral_mean"] == {"neutral_dataset": pytest.approx(0.95), "neutral_training_masked": -0.2}
    assert metrics["num_rows"] == {"neutral_dataset": 1, "neutral_training_masked": 1, "training": 5}


@pytest.mark.parametrize(
    "rows, message",
    [
        ([], "no encoded rows"),
        ([("neutral_dataset", 0, 0.1, None, "a"), ("neutral_dataset", 0, 0.2, None, "b")], "neutral"),
        ([("training", 1, 0.3, "M", "he"), ("neutral_dataset", 0, 0.2, None, "b")], "at least 2"),
        ([("training", 1, 0.3, "M", "he"), ("training", 1, 0.5, "M", "he")], "one class only"),
    ],
)
def test_errors_for_empty_all_neutral_single_row_and_single_class(rows, message):
    with pytest.raises(EvaluationError, match=message):
        encoder_metrics(table(rows))


def test_constant_encoding_gives_correlation_zero():
    rows = [("training", 1, 0.2, "M", "he"), ("training", -1, 0.2, "F", "she")]
    assert encoder_metrics(table(rows))["correlation"] == 0.0
    with pytest.raises(EvaluationError):
        pearson([1.0], [2.0])


# --------------------------------------------------------------------------- orientation


@pytest.mark.parametrize(
    "source, positive, factual, alternative, expected",
    [
        ("factual", "M", "M", "F", 1),
        ("factual", "M", "F", "M", -1),
        ("diff", "M", "M", "F", 1),
        ("alternative", "M", "M", "F", -1),  # reads the gradient of the F word
        ("alternative", "M", "F", "M", 1),
        ("alternative", "F", "F", "M", -1),
        ("factual", "M", "M", "M", 0),  # identity row
    ],
)
def test_expected_encoding(source, positive, factual, alternative, expected):
    config = GradiendConfig(feature_classes=["M", "F"], positive_class=positive, source=source)
    assert expected_encoding(factual, alternative, config) == expected


@pytest.mark.parametrize(
    "source, target, positive, target_class, strengthen, factor",
    [
        # method §10 item 7: (factual|diff, dir +1) -> -1; (alternative, +1) -> +1; symmetric for -1.
        ("factual", "diff", "M", "M", True, -1.0),
        ("diff", "diff", "M", "M", True, -1.0),
        ("alternative", "diff", "M", "M", True, 1.0),
        ("factual", "diff", "M", "F", True, 1.0),
        ("alternative", "diff", "M", "F", True, -1.0),
        ("alternative", "diff", "F", "F", True, 1.0),
        # weakening a class uses the other sign
        ("alternative", "diff", "M", "M", False, -1.0),
        ("factual", "diff", "M", "M", False, 1.0),
        # an alternative-gradient decoder target raises the alternative word's loss: the sign flips
        ("alternative", "alternative", "M", "M", True, -1.0),
        ("alternative", "factual", "M", "M", True, 1.0),
    ],
)
def test_feature_factor_table(source, target, positive, target_class, strengthen, factor):
    config = GradiendConfig(feature_classes=["M", "F"], positive_class=positive, source=source, target=target)
    assert feature_factor_for(config, target_class, strengthen) == factor


def test_feature_factor_needs_feature_classes():
    with pytest.raises(ValueError, match="feature_classes"):
        feature_factor_for(GradiendConfig(), "M")
    with pytest.raises(ValueError, match="not one of"):
        feature_factor_for(GradiendConfig(feature_classes=["M", "F"]), "X")


# --------------------------------------------------------------------------- decoder metrics


def test_strengthen_reads_the_other_class_rows_and_weaken_the_own_rows():
    probabilities = {"M": {"M": 0.7, "F": 0.1}, "F": {"M": 0.2, "F": 0.6}}  # [dataset class][class]
    assert strengthen_score(probabilities, "M", "F") == 0.2
    assert strengthen_score(probabilities, "F", "M") == 0.1
    assert weaken_score(probabilities, "M") == pytest.approx(0.3)
    assert weaken_score(probabilities, "F") == pytest.approx(0.4)


def test_balance_score_is_the_normalised_bpi():
    a, b = [0.3, 0.1, 0.0, 0.25], [0.1, 0.1, 0.4, 0.25]
    by_hand = np.mean([(1 - abs(x - y) / (x + y)) * (x + y) if x + y else 0.0 for x, y in zip(a, b)])
    assert balance_score(a, b) == pytest.approx(by_hand)
    assert balance_score([0.5], [0.5]) > balance_score([0.9], [0.1])
    assert balance_score([], []) == 0.0


@pytest.mark.parametrize("nll", [math.inf, math.nan, 701.0, 1e30])
def test_lms_is_zero_and_perplexity_infinite_for_absurd_nll(nll):
    assert lms_from_nll(nll) == (0.0, math.inf)


def test_lms_from_nll():
    lms, perplexity = lms_from_nll(2.0)
    assert lms == pytest.approx(1 / 3)
    assert perplexity == pytest.approx(math.exp(2.0))


# --------------------------------------------------------------------------- selection (method §10 item 12)


def grid(rows):
    return pd.DataFrame(rows, columns=["feature_factor", "learning_rate", "metric", "lms"])


def test_lms_threshold_picks_the_best_metric_among_rewrites_that_keep_the_lms():
    g = grid(
        [
            (1.0, 0.01, 0.20, 0.995),
            (1.0, 0.1, 0.30, 0.991),
            (1.0, 1.0, 0.90, 0.50),  # best metric but breaks the model
            (-1.0, 0.1, 0.95, 1.0),  # the other class's feature factor: never a candidate
        ]
    )
    assert LMSThresholdPolicy(feature_factor_sign=1)(g, {"lms": 1.0}) == 1


def test_lms_threshold_ties_prefer_the_smaller_learning_rate():
    g = grid([(1.0, 1.0, 0.5, 1.0), (1.0, 0.1, 0.5, 1.0)])
    assert LMSThresholdPolicy()(g, {"lms": 1.0}) == 1


def test_lms_threshold_falls_back_to_the_smallest_nonzero_learning_rate():
    g = grid([(1.0, 0.0, 0.9, 0.1), (1.0, 5.0, 0.9, 0.5), (1.0, 0.5, 0.1, 0.4), (-1.0, 0.01, 0.1, 0.4)])
    assert LMSThresholdPolicy(feature_factor_sign=1)(g, {"lms": 1.0}) == 2


def test_lms_threshold_without_candidates_of_the_sign_raises():
    with pytest.raises(EvaluationError, match="sign"):
        LMSThresholdPolicy(feature_factor_sign=1)(grid([(-1.0, 0.1, 0.1, 1.0)]), {"lms": 1.0})


def test_nan_metric_is_never_preferred():
    g = grid([(1.0, 0.1, float("nan"), 1.0), (1.0, 0.2, 0.01, 1.0)])
    assert LMSThresholdPolicy()(g, {"lms": 1.0}) == 1
