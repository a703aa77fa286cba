"""Whether a masked LM predicts its masked tokens, chunk by chunk (`objectives/argmax.py`), against plain `argmax`."""

import math

import pytest
import torch
from torch import nn

from gradiend_hf.objectives import argmax, separable_head
from gradiend_hf.objectives.argmax import predicted_targets, split_projection

from .tiny_models import tiny_model


def _plain(features, weight, bias, targets):
    logits = features @ weight.T + bias
    return (logits.argmax(-1) == targets) & torch.isfinite(logits).all(-1)


@pytest.mark.parametrize("chunk_size", [1, 7, 16, 50, 4096])
def test_predicted_targets_equal_plain_argmax_with_ties_and_non_finite_logits(chunk_size):
    generator = torch.Generator().manual_seed(0)
    vocab, hidden, rows = 50, 6, 400
    # Small integers: every logit is exact in float32, so ties are real ties, decided by the smallest index.
    weight = torch.randint(-2, 3, (vocab, hidden), generator=generator).float()
    weight[10] = weight[30]  # equal rows: the smaller index wins a tie
    bias = torch.randint(-1, 2, (vocab,), generator=generator).float()
    features = torch.randint(-2, 3, (rows, hidden), generator=generator).float()
    targets = torch.randint(0, vocab, (rows,), generator=generator)
    logits = features @ weight.T + bias
    targets[::3] = logits.argmax(-1)[::3]  # a third of the rows predicted
    targets[1::9] = 30  # ties with row 10, which comes first
    targets[2::9] = 10
    features[5::17, 0] = math.inf  # +inf, -inf and NaN (inf - inf, inf · 0) logits
    features[6::19, 1] = math.nan
    features[7::23, 2] = -math.inf
    expected = _plain(features, weight, bias, targets)
    assert 0 < int(expected.sum()) < rows
    got = predicted_targets(features, weight, bias, targets, chunk_size=chunk_size)
    assert torch.equal(got, expected)
    assert torch.equal(
        predicted_targets(features, weight, None, targets, chunk_size), _plain(features, weight, 0, targets)
    )
    # One -inf logit (never the max) still makes a predicted row's logits non-finite.
    bias[45] = -math.inf
    assert not _plain(features, weight, bias, targets).any()
    assert not predicted_targets(features, weight, bias, targets, chunk_size=chunk_size).any()


@pytest.mark.parametrize("family", ["bert", "roberta"])
def test_the_projection_of_masked_lm_heads_and_the_lms_through_it(family):
    model, tokenizer = tiny_model(family)
    backbone, head = separable_head(model)
    inputs = tokenizer(["He said that she would come home.", "They know it."], return_tensors="pt", padding=True)
    with torch.no_grad():
        hidden = backbone(**inputs)[0].flatten(0, 1)
        projection = split_projection(model, head, hidden)
        assert projection is model.get_output_embeddings()
        features = argmax.projection_input(head, projection, hidden)
        torch.testing.assert_close(projection(features), head(hidden), rtol=1e-5, atol=1e-6)
        targets = head(hidden).argmax(-1)
        targets[::2] = 7
        expected = (head(hidden).argmax(-1) == targets) & torch.isfinite(head(hidden)).all(-1)
        got = predicted_targets(features, projection.weight, projection.bias, targets, chunk_size=64)
    assert torch.equal(got, expected)


def test_a_head_that_changes_the_projection_output_keeps_the_whole_head():
    model, _ = tiny_model("bert")
    predictions = model.cls.predictions

    class CappedHead(nn.Module):  # a soft cap after the projection: splitting the projection off would drop it
        def __init__(self):
            super().__init__()
            self.predictions = predictions

        def forward(self, hidden):
            return torch.tanh(self.predictions(hidden) / 2.0) * 2.0

    model.cls = CappedHead()
    hidden = torch.randn(3, model.config.hidden_size)
    with torch.no_grad():
        assert split_projection(model, model.cls, hidden) is None
