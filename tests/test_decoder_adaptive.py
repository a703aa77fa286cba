"""The decoder grid's early stop and adaptive search against the exhaustive grid, on trained tiny GRADIENDs whose base
models were first trained on their LM loss (so the LMS threshold means something and rewrites cross it)."""

import functools
import math

import pandas as pd
import pytest
import torch

from gradiend_hf.errors import GradiendError
from gradiend_hf.evaluation import PAPER_FEATURE_FACTORS, LanguageModelingScorer, evaluate_decoder
from gradiend_hf.evaluation.lms import lms_upper_bound
from gradiend_hf.objectives import get_objective
from gradiend_hf.plotting import plot_decoder_grid

from .test_evaluation_common import he_she_dataset, neutral_dataset, one_thread, train_gradiend  # noqa: F401


pytestmark = pytest.mark.usefixtures("one_thread")

SMALL = {"max_rows": 12, "lms_max_texts": 48, "batch_size": 8}
SELECTIONS = {
    "strengthen": {"target_class": "M"},
    "weaken": {"target_class": "F", "strengthen": False},
    "balance": {"policy": "balance", "learning_rates": [0.01, 0.05, 0.2, 0.5, 1.0, 2.0, 5.0, 20.0, 100.0]},
}
SOURCES = {"bert": "factual", "llama": "alternative"}


@functools.cache
def lm_trained(family: str):
    return train_gradiend(family, SOURCES[family], lm_steps=150)


@functools.cache
def grid(family: str, selection: str, search: str, **kwargs):
    gradiend, base, tokenizer = lm_trained(family)
    before = {name: value.clone() for name, value in base.state_dict().items()}
    options = SELECTIONS[selection] | kwargs
    report = evaluate_decoder(
        gradiend, base, tokenizer, he_she_dataset(), neutral_dataset(), search=search, **SMALL, **options
    )
    for name, value in base.state_dict().items():
        assert torch.equal(value, before[name]), name
    return report


def threshold(report) -> float:
    return 0.99 * report.base["lms"]


@pytest.mark.parametrize("family", ["bert", "llama"])
@pytest.mark.parametrize("selection", list(SELECTIONS))
def test_early_stop_selects_what_the_exhaustive_grid_selects(family, selection):
    exhaustive, early = grid(family, selection, "exhaustive"), grid(family, selection, "early_stop")
    assert early.selected == exhaustive.selected
    assert early.base == exhaustive.base
    full, stopped = exhaustive.grid.set_index(["feature_factor", "learning_rate"]), early.grid
    assert len(stopped) == len(full) and set(full["scored"]) == {"all"}
    # Not vacuous: some points keep the LMS, some are cut early.
    assert {"all", "lms_cut"} <= set(stopped["scored"]), stopped["scored"].value_counts()
    limit = threshold(exhaustive)
    for row in stopped.to_dict(orient="records"):
        truth = full.loc[(row["feature_factor"], row["learning_rate"])]
        point = (row["feature_factor"], row["learning_rate"], row["scored"])
        if row["scored"] == "all":
            # Scored whole: every number is the exhaustive grid's, bit for bit.
            for column in full.columns:
                assert row[column] == truth[column], (point, column)
        elif row["scored"] == "lms":
            assert row["lms"] == truth["lms"] < limit, point
            assert math.isnan(row["prob_M_on_F"]), point
        else:
            assert row["scored"] == "lms_cut" and math.isnan(row["lms"]), point
            assert truth["lms"] <= row["lms_bound"] < limit, point
    # Every point the exhaustive grid says keeps the LMS was scored whole.
    keeps = full[full["lms"] >= limit].index
    assert set(keeps) == set(stopped[stopped["scored"] == "all"].set_index(["feature_factor", "learning_rate"]).index)


@pytest.mark.parametrize("family", ["bert", "llama"])
def test_fallback_when_no_rewrite_keeps_the_lms_scores_the_gentlest_candidates(family):
    # A ratio above 1: no rewrite keeps the LMS; the policy takes the smallest non-zero |lr| with the best metric.
    exhaustive = grid(family, "balance", "exhaustive", lms_ratio=1.5)
    early = grid(family, "balance", "early_stop", lms_ratio=1.5)
    assert early.selected == exhaustive.selected
    assert early.selected.learning_rate == 0.01
    scored = early.grid[early.grid["scored"] == "all"]
    assert set(scored["learning_rate"]) == {0.01} and len(scored) == early.grid["feature_factor"].nunique()
    assert set(early.grid[early.grid["learning_rate"] > 0.01]["scored"]) <= {"lms", "lms_cut"}


@pytest.mark.parametrize("family", ["bert", "llama"])
@pytest.mark.parametrize("selection", list(SELECTIONS))
def test_adaptive_search_selects_the_same_and_skips_the_largest_rates(family, selection):
    exhaustive, adaptive = grid(family, selection, "exhaustive"), grid(family, selection, "adaptive")
    assert adaptive.selected == exhaustive.selected
    assert "none" in set(adaptive.grid["scored"])
    truth = exhaustive.grid.set_index(["feature_factor", "learning_rate"])
    for _, part in adaptive.grid.groupby("feature_factor"):
        states = list(part.sort_values("learning_rate")["scored"])
        # Once a rate is skipped every larger one is, and only after two rates below the threshold.
        first = states.index("none") if "none" in states else len(states)
        assert set(states[first:]) <= {"none"}
        assert first < 2 or set(states[first - 2 : first]) <= {"lms", "lms_cut"}, states
    for row in adaptive.grid[adaptive.grid["scored"] == "all"].to_dict(orient="records"):
        assert row["lms"] == truth.loc[(row["feature_factor"], row["learning_rate"]), "lms"]


def test_adaptive_refinement_scores_rates_between_the_last_kept_and_the_next():
    exhaustive = grid("llama", "strengthen", "exhaustive")
    refined = grid("llama", "strengthen", "adaptive", search_refine=2)
    extra = sorted(set(refined.grid["learning_rate"]) - set(exhaustive.grid["learning_rate"]))
    kept = exhaustive.grid[exhaustive.grid["lms"] >= threshold(exhaustive)]["learning_rate"].max()
    larger = min(lr for lr in exhaustive.grid["learning_rate"] if lr > kept)
    assert len(extra) == 2 and all(kept < lr < larger for lr in extra)
    assert extra == pytest.approx([kept * (larger / kept) ** (1 / 3), kept * (larger / kept) ** (2 / 3)])
    assert refined.selected.value >= exhaustive.selected.value


def test_lms_scorer_stops_exactly():
    gradiend, base, tokenizer = lm_trained("llama")
    texts = list(neutral_dataset()["text"])[:40]
    scorer = LanguageModelingScorer(tokenizer, texts, get_objective(base, tokenizer), batch_size=8)
    whole = scorer(base)
    assert whole["nll"] == get_objective(base, tokenizer).score_lms(base, scorer.batches)["nll"]
    assert scorer(base, stop_below=0.0) == whole | {"lms_cut": False, "lms_bound": whole["lms"]}
    assert scorer(base, stop_below=whole["lms"]) == whole | {"lms_cut": False, "lms_bound": whole["lms"]}
    cut = scorer(base, stop_below=1.0)  # no model reaches an LMS of 1 after a batch with a positive NLL
    assert cut["lms_cut"] and math.isnan(cut["lms"]) and whole["lms"] <= cut["lms_bound"] < 1.0


def test_upper_bounds_of_the_lms():
    # Accuracy: 3 of 5 correct so far, 5 of 10 tokens left: at most 8 / 10.
    assert lms_upper_bound("correct", 3, 5, 10) == 0.8
    assert lms_upper_bound("correct", 0, 10, 10) == 0.0
    # NLL: 10 so far over 20 tokens: the mean is at least 0.5, the LMS at most 1 / 1.5.
    assert lms_upper_bound("nll", 10.0, 5, 20) == 1 / 1.5
    # A non-finite NLL makes the final LMS 0 whatever follows.
    assert lms_upper_bound("nll", math.inf, 5, 20) == 0.0
    assert lms_upper_bound("nll", math.nan, 5, 20) == 0.0


def test_search_options_and_presets():
    gradiend, base, tokenizer = lm_trained("llama")
    data, neutral = he_she_dataset(), neutral_dataset()
    with pytest.raises(GradiendError, match="Unknown grid search"):
        evaluate_decoder(gradiend, base, tokenizer, data, neutral, "M", search="bisect", **SMALL)
    with pytest.raises(GradiendError, match="scored exhaustively"):
        evaluate_decoder(
            gradiend, base, tokenizer, data, neutral, "M", policy=lambda g, b: g.index[0], search="early_stop"
        )
    with pytest.raises(GradiendError, match="search_patience"):
        evaluate_decoder(gradiend, base, tokenizer, data, neutral, "M", search="adaptive", search_patience=0)
    with pytest.raises(GradiendError, match="Unknown feature-factor preset"):
        evaluate_decoder(gradiend, base, tokenizer, data, neutral, "M", feature_factors="wide")
    report = evaluate_decoder(
        gradiend, base, tokenizer, data, neutral, "M", policy=lambda g, b: g.index[0], learning_rates=[100.0], **SMALL
    )
    assert report.search == "exhaustive" and set(report.grid["scored"]) == {"all"}
    report = evaluate_decoder(
        gradiend, base, tokenizer, data, neutral, "M", feature_factors="paper", learning_rates=[1e-3], **SMALL
    )
    assert report.search == "early_stop"
    assert sorted(report.grid["feature_factor"]) == sorted(PAPER_FEATURE_FACTORS) and len(PAPER_FEATURE_FACTORS) == 15
    # Only feature factors of the strengthening sign are candidates.
    assert report.selected.feature_factor * grid("llama", "strengthen", "exhaustive").selected.feature_factor > 0
    balance = grid("llama", "balance", "early_stop")
    assert sorted(balance.grid["feature_factor"].unique()) == [-2.0, -1.0, 0.0, 1.0, 2.0]
    assert isinstance(balance.to_dict()["num_scored"], dict)
    assert pd.Series(balance.num_scored).sum() == len(balance.grid)


def test_the_grid_figure_draws_unmeasured_points(tmp_path):
    pytest.importorskip("matplotlib")
    report = grid("llama", "balance", "adaptive")
    assert report.grid["prob_M_on_F"].isna().any()
    plot_decoder_grid(report, tmp_path / "grid.png")
    assert (tmp_path / "grid.png").stat().st_size > 0
