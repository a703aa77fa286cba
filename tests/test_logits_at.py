"""Logits only where they are read (`objectives/logits.py`) against the model's own forward at every position."""

import pytest
import torch

from gradiend_hf.evaluation import LanguageModelingScorer
from gradiend_hf.objectives import get_objective, logits, logits_at, separable_head
from gradiend_hf.testing_utils import masked_rows

from .tiny_models import tiny_model


FAMILIES = ["bert", "roberta", "distilbert", "gpt2", "llama"]


def _padded_batch(tokenizer, padding_side="right"):
    tokenizer.padding_side = padding_side
    texts = ["He said that she would come home after the long day.", "They know.", "It is late now, she said."]
    return dict(tokenizer(texts, return_tensors="pt", padding=True))


def test_which_models_have_a_separable_head():
    assert separable_head(tiny_model("bert")[0]) is not None
    assert separable_head(tiny_model("roberta")[0]) is not None
    # DistilBERT's head is four modules in a row; causal LMs keep their forward (`logits_to_keep`).
    for family in ("distilbert", "gpt2", "llama"):
        assert separable_head(tiny_model(family)[0]) is None, family


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("padding_side", ["right", "left"])
def test_logits_at_equal_the_full_forward(family, padding_side):
    model, tokenizer = tiny_model(family)
    inputs = _padded_batch(tokenizer, padding_side)
    real = inputs["attention_mask"].bool()
    sequences, positions = real.nonzero(as_tuple=True)
    keep = torch.arange(len(sequences)) % 3 != 1  # some positions of every row, not all
    sequences, positions = sequences[keep], positions[keep]
    with torch.no_grad():
        full = model(**inputs).logits[sequences, positions]
        fast = logits_at(model, inputs, sequences, positions)
    assert fast.shape == full.shape
    torch.testing.assert_close(fast, full, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("family", ["bert", "roberta"])
def test_gradients_through_the_separable_head_equal_the_full_forward(family):
    model, tokenizer = tiny_model(family)
    inputs = _padded_batch(tokenizer)
    sequences = torch.tensor([0, 1, 2, 2])
    positions = torch.tensor([3, 1, 2, 4])
    targets = torch.tensor([5, 7, 9, 11])

    def gradients(logits):
        model.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(logits, targets).backward()
        return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    plain = gradients(model(**inputs).logits[sequences, positions])
    fast = gradients(logits_at(model, inputs, sequences, positions))
    assert plain.keys() == fast.keys()
    for name in plain:
        torch.testing.assert_close(fast[name], plain[name], rtol=1e-5, atol=1e-6, msg=name)


@pytest.mark.parametrize("family", ["bert", "roberta", "distilbert"])
def test_masked_lm_scores_equal_the_full_forward(family):
    """The word log-probabilities and the LMS, scored through the fast route, against plain full-forward picks."""
    model, tokenizer = tiny_model(family)
    objective = get_objective(model, tokenizer)
    masked, factual, alternative = masked_rows(6)
    batch = objective.prepare(masked, factual, alternative)
    with torch.no_grad():
        logits = model(**batch.model_inputs()).logits
        plain = logits[batch.read_sequences, batch.read_positions].float().log_softmax(-1)
        torch.testing.assert_close(objective.target_log_probs(model, batch), plain, rtol=1e-5, atol=1e-5)
    texts = [m.replace("[MASK]", f) for m, f in zip(masked, factual)]
    scorer = LanguageModelingScorer(tokenizer, texts, objective, batch_size=4)
    correct = total = 0
    with torch.no_grad():
        for ids, mask, target in scorer.batches:
            scored = target != -100
            predicted = model(input_ids=ids, attention_mask=mask).logits.argmax(-1)
            correct += int((predicted[scored] == target[scored]).sum())
            total += int(scored.sum())
    assert scorer(model)["lms"] == correct / total


def _right_padded_reads_against_the_full_forward(model, tokenizer) -> bool:
    """Reads at every real position of right-padded rows (the LMS's case) against the full forward; returns the
    verdict of the causal-head check."""
    inputs = _padded_batch(tokenizer, "right")
    sequences, positions = inputs["attention_mask"].bool().nonzero(as_tuple=True)
    assert int(positions.min()) == 0  # `logits_to_keep` would keep every position
    with torch.no_grad():
        full = model(**inputs).logits[sequences, positions]
        fast = logits_at(model, inputs, sequences, positions)
    torch.testing.assert_close(fast, full, rtol=1e-5, atol=1e-5)
    return logits._CAUSAL_HEAD_CHECKED[model]


@pytest.mark.parametrize("family", ["gpt2", "llama"])
def test_causal_lms_read_the_head_only_at_right_padded_reads(family):
    model, tokenizer = tiny_model(family)
    assert logits.causal_head(model) is not None
    assert _right_padded_reads_against_the_full_forward(model, tokenizer) is True


def test_a_causal_lm_that_changes_its_logits_after_the_head_keeps_its_own_forward():
    model, tokenizer = tiny_model("llama")

    class ScaledLlamaForCausalLM(type(model)):
        def forward(self, *args, **kwargs):  # as Cohere's logit scale or Gemma 2's soft cap: after the head
            output = super().forward(*args, **kwargs)
            output.logits = torch.tanh(output.logits / 3.0) * 3.0
            return output

    model.__class__ = ScaledLlamaForCausalLM
    assert logits.causal_head(model) is not None  # the structure alone would allow it
    assert _right_padded_reads_against_the_full_forward(model, tokenizer) is False


def test_causal_lms_in_training_mode_keep_their_own_forward():
    model, _ = tiny_model("gpt2")
    model.train()
    assert logits._checked_causal_head(model, {}) is None  # dropout would make the check's two passes differ
    assert model not in logits._CAUSAL_HEAD_CHECKED
