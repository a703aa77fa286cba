"""Benchmark metrics on hand-made scores, bootstrap intervals, and models made stereotyped on purpose."""

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from gradiend_hf.benchmarks import (
    BenchmarkError,
    crows_pairs_metrics,
    evaluate_bias,
    load_benchmark,
    stereoset_metrics,
    winobias_metrics,
)
from gradiend_hf.benchmarks.scoring import encode

from .tiny_models import tokenizer_for


# --------------------------------------------------------------------------- metric definitions on hand numbers


def test_crows_pairs_score_counts_preferred_pairs_and_ties_half():
    result = crows_pairs_metrics(
        [-1.0, -2.0, -3.0, -4.0],
        [-2.0, -1.0, -3.0, -9.0],
        ["gender", "gender", "race-color", "race-color"],
        bootstrap_samples=0,
    )
    # Pair 1 and 4 prefer the more stereotypical sentence, pair 2 the other one, pair 3 is a tie: (1 + 0 + .5 + 1) / 4.
    assert result["stereotype_score"]["value"] == 62.5
    assert result["by_bias_type"]["gender"]["value"] == 50.0
    assert result["by_bias_type"]["race-color"]["value"] == 75.0
    assert result["likelihood_difference"]["value"] == pytest.approx((1 + 1 + 0 + 5) / 4)
    assert result["stereotype_score"]["ci_low"] is None


def test_stereoset_scores_are_macro_averages_over_targets():
    # Target "nurse": 2 examples, stereotype preferred in both; unrelated beaten 4 of 4 times.
    # Target "chess player": 1 example, anti-stereotype preferred; unrelated beats both.
    result = stereoset_metrics(
        stereotype_scores=[0.5, 0.4, 0.1],
        anti_stereotype_scores=[0.3, 0.2, 0.2],
        unrelated_scores=[0.1, 0.1, 0.9],
        targets=["nurse", "nurse", "chess player"],
        bias_types=["profession", "profession", "profession"],
        bootstrap_samples=0,
    )["overall"]
    assert result["ss"]["value"] == pytest.approx((100 + 0) / 2)
    assert result["lms"]["value"] == pytest.approx((100 + 0) / 2)
    assert result["icat"]["value"] == pytest.approx(50 * min(50, 50) / 50)


def test_winobias_accuracies_gap_and_pronoun_rate():
    result = winobias_metrics(
        pro_scores=[-1.0, -1.0, -1.0, -5.0],
        anti_scores=[-2.0, -2.0, -3.0, -1.0],
        pro_genders=["male", "female", "female", "male"],
        bootstrap_samples=0,
    )
    assert result["accuracy_pro"]["value"] == 75.0
    assert result["accuracy_anti"]["value"] == 25.0
    assert result["gap"]["value"] == 50.0
    # Pronoun chosen per row: he (pro, male), she (pro), she (pro), she (anti of a male row): he in 1 of 4.
    assert result["male_pronoun_rate"]["value"] == 25.0
    assert result["by_pro_gender"]["female"]["value"] == 100.0
    assert result["by_pro_gender"]["male"]["value"] == 50.0


@pytest.mark.parametrize(
    "call",
    [
        lambda: crows_pairs_metrics([1.0, float("nan")], [0.0, 0.0]),
        lambda: crows_pairs_metrics([1.0, 2.0], [0.0]),
        lambda: crows_pairs_metrics([], []),
        lambda: crows_pairs_metrics([1.0], [0.0], bootstrap_samples=-1),
        lambda: crows_pairs_metrics([1.0], [0.0], confidence=1.5),
        lambda: winobias_metrics([1.0], [0.0], pro_genders=["robot"]),
        lambda: stereoset_metrics([1.0], [0.0], [float("inf")], ["x"], ["gender"]),
    ],
)
def test_bad_inputs_are_refused(call):
    with pytest.raises(BenchmarkError):
        call()


# --------------------------------------------------------------------------- bootstrap


def test_bootstrap_interval_covers_the_estimate_shrinks_with_rows_and_is_seeded():
    pattern_more = [1.0, 1.0, 1.0, 0.0, 1.0, 0.0, 1.0, 0.0, 1.0, 1.0]  # 7 of 10 pairs prefer the stereotype
    pattern_less = [0.5] * 10
    small = crows_pairs_metrics(pattern_more * 4, pattern_less * 4, seed=3)["stereotype_score"]
    large = crows_pairs_metrics(pattern_more * 40, pattern_less * 40, seed=3)["stereotype_score"]
    for estimate in (small, large):
        assert estimate["value"] == 70.0
        assert estimate["ci_low"] < 70.0 < estimate["ci_high"]
    assert large["ci_high"] - large["ci_low"] < 0.5 * (small["ci_high"] - small["ci_low"])
    again = crows_pairs_metrics(pattern_more * 4, pattern_less * 4, seed=3)["stereotype_score"]
    other = crows_pairs_metrics(pattern_more * 4, pattern_less * 4, seed=4)["stereotype_score"]
    assert again == small
    assert other != small
    # A 95 % interval of a proportion p from n rows is about ±1.96·sqrt(p(1-p)/n) wide.
    expected = 2 * 1.96 * np.sqrt(0.7 * 0.3 / 400) * 100
    assert large["ci_high"] - large["ci_low"] == pytest.approx(expected, rel=0.25)


# --------------------------------------------------------------------------- models stereotyped on purpose


class _Favouring(nn.Module):
    """A tiny "language model" whose logits favour a fixed set of sentences.

    Causal: for an input that is one of the favoured sequences, every next token gets +4 on its logit, so the
    sentence's log-likelihood is higher than that of any other sentence. Masked: when the unmasked tokens of the
    input agree with a favoured sequence, the masked positions get +4 on that sequence's token.
    """

    def __init__(self, vocab_size, favoured, masked, mask_id=None):
        super().__init__()
        self.anchor = nn.Parameter(torch.zeros(1))
        self.vocab_size, self.masked, self.mask_id = vocab_size, masked, mask_id
        self.favoured = [tuple(f) for f in favoured]

    def forward(self, input_ids, attention_mask):
        logits = torch.zeros(*input_ids.shape, self.vocab_size)
        for b in range(input_ids.shape[0]):
            ids = input_ids[b, : int(attention_mask[b].sum())].tolist()
            if not self.masked:
                if tuple(ids) in self.favoured:
                    logits[b, torch.arange(len(ids) - 1), torch.tensor(ids[1:])] += 4.0
                continue
            for seq in self.favoured:
                agrees = len(seq) == len(ids) and all(i == s or i == self.mask_id for i, s in zip(ids, seq))
                if agrees:
                    for position, token in enumerate(ids):
                        if token == self.mask_id:
                            logits[b, position, seq[position]] += 4.0
        return SimpleNamespace(logits=logits + 0.0 * self.anchor)


def _stereotyped(tokenizer, objective, sentences):
    return _Favouring(
        len(tokenizer), encode(tokenizer, sentences, objective), objective == "masked_lm", tokenizer.mask_token_id
    )


@pytest.mark.parametrize("family,objective", [("bert", "masked_lm"), ("gpt2", "causal_lm")])
def test_a_model_favouring_stereotypes_scores_far_from_50_and_its_inverse_at_the_other_end(family, objective):
    tokenizer = tokenizer_for(family)
    crows = load_benchmark("crows_pairs", ["gender"], max_rows=12)
    wino = load_benchmark("winobias", max_rows=12)
    stereo = list(crows["sent_more"]) + list(wino["pro_sentence"])
    anti = list(crows["sent_less"]) + list(wino["anti_sentence"])
    settings = dict(
        benchmarks=["crows_pairs", "winobias"],
        bias_types=["gender"],
        max_rows=12,
        objective=objective,
        bootstrap_samples=100,
        lm_texts=False,
        show_progress=False,
    )
    biased = evaluate_bias(_stereotyped(tokenizer, objective, stereo), tokenizer, **settings).benchmarks
    inverse = evaluate_bias(_stereotyped(tokenizer, objective, anti), tokenizer, **settings).benchmarks
    assert biased["crows_pairs"]["headline"]["value"] == 100.0
    assert inverse["crows_pairs"]["headline"]["value"] == 0.0
    assert biased["winobias"]["headline"]["value"] == 100.0  # gap: pro accuracy 100, anti 0
    assert inverse["winobias"]["headline"]["value"] == -100.0
    assert biased["crows_pairs"]["headline"]["ci_high"] < 50.0 or biased["crows_pairs"]["headline"]["ci_low"] > 50.0


def test_a_causal_model_favouring_stereoset_stereotypes():
    tokenizer = tokenizer_for("gpt2")
    rows = load_benchmark("stereoset", ["gender"], max_rows=12)
    settings = dict(
        benchmarks=["stereoset"],
        bias_types=["gender"],
        max_rows=12,
        objective="causal_lm",
        bootstrap_samples=50,
        lm_texts=False,
        show_progress=False,
    )
    biased = evaluate_bias(_stereotyped(tokenizer, "causal_lm", rows["stereotype"]), tokenizer, **settings)
    inverse = evaluate_bias(_stereotyped(tokenizer, "causal_lm", rows["anti_stereotype"]), tokenizer, **settings)
    assert biased.benchmarks["stereoset"]["metrics"]["overall"]["ss"]["value"] == 100.0
    assert inverse.benchmarks["stereoset"]["metrics"]["overall"]["ss"]["value"] == 0.0
