"""Class probabilities at the blank against hand computations (one row at a time, no padding)."""

import pytest
import torch

from gradiend_hf.evaluation import ClassProbabilityScorer, EvaluationError, surface_variant_ids
from gradiend_hf.evaluation.probabilities import surface_variant_ids_of
from gradiend_hf.objectives import get_objective

from .test_evaluation_common import one_thread  # noqa: F401
from .tiny_models import tiny_model


pytestmark = pytest.mark.usefixtures("one_thread")

MASKED = [
    "The doctor said that [MASK] would come home.",
    "Our teacher knew that [MASK] was very tired.",
    "The pilot hoped that [MASK] had seen the sea and liked the red car very much.",
]
WORDS = {"M": ["he"], "F": ["she"]}


def test_surface_variants_are_case_and_space_marker_insensitive():
    _, tokenizer = tiny_model("roberta")
    vocab = tokenizer.get_vocab()
    variants = set(surface_variant_ids(tokenizer, "he"))
    for token in ("he", "Ġhe", "He", "ĠHe"):
        if token in vocab:
            assert vocab[token] in variants, token
    assert vocab["Ġhe"] in variants and vocab["He"] in variants
    assert vocab["Ġthe"] not in variants
    _, wordpiece = tiny_model("bert")
    pieces = [t for t in wordpiece.get_vocab() if t.startswith("##")]
    assert pieces and not set(surface_variant_ids(wordpiece, pieces[0][2:])) & {wordpiece.get_vocab()[pieces[0]]}


@pytest.mark.parametrize("family", ["bert", "roberta"])
def test_variants_of_many_words_in_one_pass_equal_the_plain_scan(family):
    _, tokenizer = tiny_model(family)
    words = ["he", "She", "HIS", "the", " her", "doctor", "zzzq"]
    vocab = tokenizer.get_vocab()
    for word, ids in surface_variant_ids_of(tokenizer, words).items():
        plain = sorted(
            i
            for token, i in vocab.items()
            if not token.startswith("##") and token.lstrip("Ġ▁ ").lower() == word.strip().lower()
        )
        assert ids == plain, word
    assert surface_variant_ids_of(tokenizer, ["he"])["he"] and not surface_variant_ids_of(tokenizer, ["zzzq"])["zzzq"]


@pytest.mark.parametrize("family", ["bert", "roberta"])
def test_masked_lm_class_probability_is_the_sum_over_surface_variants(family):
    model, tokenizer = tiny_model(family)
    objective = get_objective(model, tokenizer)
    scorer = ClassProbabilityScorer(objective, MASKED, ["he"] * 3, WORDS, batch_size=2)
    probs = scorer(model)
    variants = {name: surface_variant_ids(tokenizer, words[0]) for name, words in WORDS.items()}
    with torch.no_grad():
        for row, text in enumerate(MASKED):
            ids = tokenizer(text.replace("[MASK]", tokenizer.mask_token))["input_ids"]
            position = ids.index(tokenizer.mask_token_id)
            p = model(input_ids=torch.tensor([ids])).logits[0, position].double().softmax(-1)
            for name in WORDS:
                assert float(probs[name][row]) == pytest.approx(float(p[variants[name]].sum()), rel=1e-5)


@pytest.mark.parametrize("family", ["gpt2", "llama"])
def test_causal_lm_class_probability_is_the_next_token_with_its_leading_space(family):
    model, tokenizer = tiny_model(family)
    objective = get_objective(model, tokenizer)
    scorer = ClassProbabilityScorer(objective, MASKED, ["she"] * 3, WORDS, batch_size=2)
    probs = scorer(model)
    with torch.no_grad():
        for row, text in enumerate(MASKED):
            prefix = text.split(" [MASK]")[0]
            ids = tokenizer(prefix)["input_ids"]
            p = model(input_ids=torch.tensor([ids])).logits[0, -1].double().softmax(-1)
            for name, (word,) in WORDS.items():
                (token,) = tokenizer(" " + word, add_special_tokens=False)["input_ids"]
                assert float(probs[name][row]) == pytest.approx(float(p[token]), rel=1e-5)
    assert scorer.token_ids() == {tokenizer.convert_tokens_to_ids("Ġhe"), tokenizer.convert_tokens_to_ids("Ġshe")}


@pytest.mark.parametrize("family, other", [("bert", "He"), ("gpt2", "he")])
def test_classes_sharing_a_token_are_refused(family, other):
    # A masked LM counts "He" as a variant of "he"; a causal LM reads " he" and " He" as different tokens.
    model, tokenizer = tiny_model(family)
    with pytest.raises(EvaluationError, match="share"):
        ClassProbabilityScorer(get_objective(model, tokenizer), MASKED, ["he"] * 3, {"M": ["he"], "X": [other]})
