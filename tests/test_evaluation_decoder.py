"""evaluate_decoder on trained tiny GRADIENDs: sign convention, selection, exact restore, shared tokenization."""

import pytest
import torch

from gradiend_hf import GradiendModel
from gradiend_hf.evaluation import DEFAULT_LEARNING_RATES, evaluate_decoder, feature_factor_for
from gradiend_hf.objectives import Objective

from .test_evaluation_common import he_she_dataset, neutral_dataset, one_thread, trained  # noqa: F401
from .tiny_models import tiny_model


pytestmark = pytest.mark.usefixtures("one_thread")

OTHER = {"M": "F", "F": "M"}
SMALL = {"max_rows": 12, "lms_max_texts": 24}


def next_token_probability(model, tokenizer, masked, word):
    """P(word) after the text before the blank, computed row by row without padding."""
    values = []
    with torch.no_grad():
        for text in masked:
            ids = tokenizer(text.split(" [MASK]")[0])["input_ids"]
            (token,) = tokenizer(" " + word, add_special_tokens=False)["input_ids"]
            values.append(float(model(input_ids=torch.tensor([ids])).logits[0, -1].softmax(-1)[token]))
    return sum(values) / len(values)


@pytest.mark.parametrize("target", ["M", "F"])
def test_selected_rewrite_strengthens_the_target_class_and_keeps_the_lms(target):
    gradiend, base, tokenizer = trained("gpt2", "alternative")
    data = he_she_dataset()
    report = evaluate_decoder(
        gradiend, base, tokenizer, data, neutral_dataset(), target_class=target, max_rows=None, lms_max_texts=24
    )
    s = report.selected
    assert s.feature_factor == feature_factor_for(gradiend.config, target)
    assert s.probabilities[OTHER[target]][target] > 1.2 * s.base_probabilities[OTHER[target]][target]
    assert s.value == s.probabilities[OTHER[target]][target]
    assert s.lms >= 0.99 * s.base_lms > 0
    # The grid's numbers describe the real rewrite: recompute P(target) on a copy, row by row.
    rewritten = gradiend.rewrite(base, s.feature_factor, s.learning_rate)
    rows = data["test"].filter(lambda r: r["factual_class"] == OTHER[target])
    assert next_token_probability(rewritten, tokenizer, rows["masked"], "he" if target == "M" else "she") == (
        pytest.approx(s.value, rel=1e-4)
    )


@pytest.mark.parametrize("family, source", [("gpt2", "alternative"), ("bert", "factual")])
def test_feature_factor_sign_convention_holds_empirically(family, source):
    gradiend, base, tokenizer = trained(family, source)
    for target in ("M", "F"):
        ff = feature_factor_for(gradiend.config, target)
        report = evaluate_decoder(
            gradiend,
            base,
            tokenizer,
            he_she_dataset(),
            neutral_dataset(),
            target_class=target,
            learning_rates=[0.1, 1.0],
            feature_factors=[ff, -ff],
            **SMALL,
        )
        column = f"prob_{target}_on_{OTHER[target]}"
        base_value = report.base[column]
        for row in report.grid.itertuples():
            value = getattr(row, column)
            assert (value > base_value) == (row.feature_factor == ff), (target, row.feature_factor, row.learning_rate)


def test_weaken_lowers_the_class_probability_on_its_own_rows():
    gradiend, base, tokenizer = trained("gpt2", "alternative")
    report = evaluate_decoder(
        gradiend, base, tokenizer, he_she_dataset(), neutral_dataset(), target_class="F", strengthen=False, **SMALL
    )
    s = report.selected
    assert s.feature_factor == -feature_factor_for(gradiend.config, "F")
    assert s.metric == "weaken_F"
    assert s.probabilities["F"]["F"] < s.base_probabilities["F"]["F"]
    assert s.value == pytest.approx(1 - s.probabilities["F"]["F"])


def test_default_grid_and_exact_restore_of_the_base_model():
    gradiend, base, tokenizer = trained("gpt2", "alternative")
    before = {name: value.clone() for name, value in base.state_dict().items()}
    report = evaluate_decoder(gradiend, base, tokenizer, he_she_dataset(), None, target_class="M", **SMALL)
    assert list(report.grid["learning_rate"]) == sorted(DEFAULT_LEARNING_RATES)
    assert set(report.grid["feature_factor"]) == {feature_factor_for(gradiend.config, "M")}
    # lr 100 breaks the model; an in-place grid that did not restore would leave it broken.
    assert report.grid["lms"].iloc[-1] < 0.5 * report.base["lms"]
    for name, value in base.state_dict().items():
        assert torch.equal(value, before[name]), name


def test_evaluation_batches_are_tokenized_once_for_the_whole_grid(monkeypatch):
    gradiend, base, tokenizer = trained("gpt2", "alternative")
    calls = []
    original = Objective.prepare
    monkeypatch.setattr(Objective, "prepare", lambda self, *a, **k: calls.append(1) or original(self, *a, **k))
    tokenized = []
    original_call = type(tokenizer).__call__
    monkeypatch.setattr(
        type(tokenizer), "__call__", lambda self, *a, **k: tokenized.append(1) or original_call(self, *a, **k)
    )
    counts = []
    for lrs in ([0.1], [0.001, 0.01, 0.1, 1.0, 10.0]):
        calls.clear(), tokenized.clear()
        evaluate_decoder(
            gradiend, base, tokenizer, he_she_dataset(), neutral_dataset(), "M", learning_rates=lrs, **SMALL
        )
        counts.append((len(calls), len(tokenized)))
    assert counts[0] == counts[1]


def test_balance_policy_searches_both_signs_and_keeps_the_lms():
    gradiend, base, tokenizer = trained("gpt2", "alternative")
    report = evaluate_decoder(
        gradiend,
        base,
        tokenizer,
        he_she_dataset(),
        neutral_dataset(),
        policy="balance",
        learning_rates=[0.1, 1, 10],
        **SMALL,
    )
    assert set(report.grid["feature_factor"]) == {-2.0, -1.0, 0.0, 1.0, 2.0}
    s = report.selected
    keeps = report.grid[report.grid["lms"] >= 0.99 * report.base["lms"]]
    assert set(keeps["scored"]) == {"all"}
    assert s.metric == "balance" and s.value == keeps["balance"].max()
    assert s.lms >= 0.99 * s.base_lms


def test_callable_policy_and_user_grid():
    gradiend, base, tokenizer = trained("gpt2", "alternative")
    report = evaluate_decoder(
        gradiend,
        base,
        tokenizer,
        he_she_dataset(),
        neutral_dataset(),
        target_class="M",
        learning_rates=[0.5, 0.05],
        feature_factors=[2.0, -0.5],
        policy=lambda grid, base: grid["learning_rate"].idxmin(),
        **SMALL,
    )
    assert sorted(zip(report.grid["feature_factor"], report.grid["learning_rate"])) == [
        (-0.5, 0.05),
        (-0.5, 0.5),
        (2.0, 0.05),
        (2.0, 0.5),
    ]
    assert report.selected.learning_rate == 0.05
    assert report.policy == "<lambda>"


def test_clear_errors():
    base, tokenizer = tiny_model("gpt2")
    gradiend = GradiendModel.from_base_model(base, params=["transformer.h.1.mlp.*"], feature_classes=["M", "F"])
    data = he_she_dataset()
    with pytest.raises(ValueError, match="needs `target_class`"):
        evaluate_decoder(gradiend, base, tokenizer, data, None)
    with pytest.raises(ValueError, match="not one of"):
        evaluate_decoder(gradiend, base, tokenizer, data, None, target_class="X")
    with pytest.raises(ValueError, match="Unknown selection policy"):
        evaluate_decoder(
            gradiend, base, tokenizer, data, None, target_class="M", policy="best", learning_rates=[1.0], **SMALL
        )
    with pytest.raises(ValueError, match="`learning_rates` is empty"):
        evaluate_decoder(gradiend, base, tokenizer, data, None, target_class="M", learning_rates=[])
    one_class = {"test": data["test"].filter(lambda r: r["factual_class"] == "M")}
    with pytest.raises(ValueError, match="no rows of class"):
        evaluate_decoder(gradiend, base, tokenizer, one_class, None, target_class="M")
