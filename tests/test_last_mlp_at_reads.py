"""The last layer's MLP run at the read positions alone (`objectives/logits.py`): the same logits and encodings as
the full forward, only the reads through the MLP, and the full forward for a model that mixes positions after it."""

import pytest
import torch
from torch import nn

from gradiend_hf import GradiendModel
from gradiend_hf.gradients import encode_rows
from gradiend_hf.model_layers import last_layer_mlp
from gradiend_hf.objectives import get_objective, logits, logits_at
from gradiend_hf.testing_utils import masked_rows

from .tiny_models import tiny_model


def _batch(tokenizer):
    tokenizer.padding_side = "right"
    texts = ["He said that she would come home after the long day.", "They know.", "It is late now, she said."]
    return dict(tokenizer(texts, return_tensors="pt", padding=True))


class RowCounter:
    """Counts the positions that enter the first layer inside an MLP (the MLP module itself is handed all of them)."""

    def __init__(self, mlp):
        self.positions = []
        first = next(iter(mlp.children()))
        first.register_forward_pre_hook(lambda _, args: self.positions.append(args[0].shape[:-1].numel()))


@pytest.mark.parametrize("family", ["gpt2", "llama"])
@pytest.mark.parametrize("attn", ["eager", "sdpa"])
def test_logits_at_reads_equal_the_full_forward_with_the_last_mlp_at_the_reads_only(family, attn):
    model, tokenizer = tiny_model(family, attn=attn)
    inputs = _batch(tokenizer)
    sequences, positions = torch.tensor([0, 0, 1, 2]), torch.tensor([2, 9, 1, 4])
    with torch.no_grad():
        full = model(**inputs).logits[sequences, positions]
        logits_at(model, inputs, sequences, positions)  # the one-time checks
        assert logits._LAST_MLP_CHECKED[model] is True
        counter = RowCounter(last_layer_mlp(model))
        fast = logits_at(model, inputs, sequences, positions)
    assert counter.positions == [4]  # the four reads, not the 3 × length positions of the batch
    torch.testing.assert_close(fast, full, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("family", ["gpt2", "llama"])
def test_batched_encodings_equal_those_with_the_whole_last_mlp(family):
    model, tokenizer = tiny_model(family, seed=2)
    torch.manual_seed(0)
    gradiend = GradiendModel.from_base_model(model)
    with torch.no_grad():
        for parameter in gradiend.parameters():
            parameter.normal_(0, 0.05)
    objective = get_objective(model, tokenizer)
    batch = objective.prepare(*masked_rows(6, causal=True))
    restricted = encode_rows(gradiend, model, objective, batch)
    assert logits._LAST_MLP_CHECKED[model] is True
    logits._LAST_MLP_CHECKED[model] = False  # as for a model that failed the check: the whole MLP
    counter = RowCounter(last_layer_mlp(model))
    whole = encode_rows(gradiend, model, objective, batch)
    assert counter.positions == [batch.input_ids.numel()]
    torch.testing.assert_close(restricted, whole, rtol=1e-6, atol=1e-7)


class MixPositions(nn.Module):
    """A final norm that also adds the mean over all positions: the last layer's output everywhere is then read."""

    def __init__(self, norm):
        super().__init__()
        self.norm = norm

    def forward(self, hidden):
        return self.norm(hidden + hidden.mean(dim=1, keepdim=True))


def test_a_model_that_mixes_positions_after_the_last_layer_keeps_the_whole_mlp():
    model, tokenizer = tiny_model("llama", seed=3)
    model.model.norm = MixPositions(model.model.norm)
    inputs = _batch(tokenizer)
    sequences, positions = torch.tensor([0, 1, 2]), torch.tensor([3, 1, 2])
    with torch.no_grad():
        full = model(**inputs).logits[sequences, positions]
        fast = logits_at(model, inputs, sequences, positions)
    assert logits._LAST_MLP_CHECKED[model] is False
    torch.testing.assert_close(fast, full, rtol=1e-5, atol=1e-5)


def test_models_without_an_mlp_in_their_layers_have_none():
    assert last_layer_mlp(tiny_model("bert")[0]) is None
    model = tiny_model("llama")[0]
    assert last_layer_mlp(model) is model.model.layers[-1].mlp
