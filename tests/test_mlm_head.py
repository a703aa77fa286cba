"""The `causal_lm_mlm_head` objective against the plain computation: losses, group gradients and jvp encodings."""

import pytest
import torch
import torch.nn.functional as F

from gradiend_hf import GradiendModel
from gradiend_hf.gradients import encode_rows, encode_rows_loop, group_gradients
from gradiend_hf.mlm_head import MLMHeadConfig, MLMHeadModel, mlm_head_objective
from gradiend_hf.objectives import (
    CausalLMMLMHeadObjective,
    ObjectiveError,
    UnrepresentableWordError,
    default_mask_token,
    detect_objective,
    get_objective,
    gradiend_objective,
)

from .test_gradients import split_into_parts
from .tiny_models import tiny_model


LABELS = ["he", "she", "they", "grandmother"]
# k classes, a multi-token word, a capitalised word, a blank at the very end (fewer pooled positions), a long suffix.
ROWS = [
    ("The doctor said that [MASK] would come home.", "he", "she"),
    ("My sister thought that [MASK] was very tired.", "She", "he"),
    ("Our teacher knew that [MASK] had seen the sea and the hills.", "they", "grandmother"),
    ("The pilot hoped that [MASK]", "grandmother", "they"),
    ("[MASK] wrote that it could not sleep.", "he", "they"),
]


def make_head(model, tokenizer, pooling_length=3, seed=0):
    torch.manual_seed(seed)
    head = MLMHeadModel(
        MLMHeadConfig(
            labels=LABELS,
            hidden_size=model.config.hidden_size,
            pooling_length=pooling_length,
            mask_token=default_mask_token(tokenizer, model),
        )
    )
    # Bias too, so the plain computation checks all of the head.
    torch.nn.init.normal_(head.classifier.bias, std=0.1)
    return head.eval()


def plain_losses(model, tokenizer, head, rows):
    """Hand computation, row by row: the sentence with the mask token, one unpadded forward, mean by hand, linear,
    cross-entropy."""
    mask_id = tokenizer.convert_tokens_to_ids(head.config.mask_token)
    weight, bias = head.classifier.weight, head.classifier.bias
    factual, alternative = [], []
    for text, fact, alt in rows:
        prefix, suffix = text.split("[MASK]")
        ids = tokenizer(prefix.rstrip() + head.config.mask_token + suffix)["input_ids"]
        # Special tokens split the text first: the mask comes right after the prefix's own tokens.
        position = len(tokenizer(prefix.rstrip())["input_ids"])
        assert ids[position] == mask_id
        hidden = model(input_ids=torch.tensor([ids]), output_hidden_states=True).hidden_states[-1][0]
        window = [hidden[i] for i in range(position, min(position + head.config.pooling_length, len(ids)))]
        pooled = sum(window) / len(window)
        logits = pooled @ weight.T + bias
        for word, out in ((fact, factual), (alt, alternative)):
            target = torch.tensor([LABELS.index(word.lower())])
            out.append(F.cross_entropy(logits[None], target))
    return torch.stack(factual), torch.stack(alternative)


@pytest.fixture(params=["gpt2", "llama"])
def setup(request):
    model, tokenizer = tiny_model(request.param)
    head = make_head(model, tokenizer)
    return model, tokenizer, head, mlm_head_objective(head, tokenizer, model)


def prepare(objective, rows):
    return objective.prepare([r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows])


@pytest.mark.parametrize("padding_side", ["left", "right"])
def test_losses_equal_the_plain_computation(setup, padding_side):
    model, tokenizer, head, objective = setup
    batch = objective.prepare(*zip(*ROWS), padding_side=padding_side)
    assert len(batch.input_ids) == len(ROWS)  # one sequence per row: both words read the same pooled states
    with torch.no_grad():
        factual, alternative = objective.losses(model, batch)
        want_factual, want_alternative = plain_losses(model, tokenizer, head, ROWS)
    torch.testing.assert_close(factual, want_factual, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(alternative, want_alternative, rtol=1e-5, atol=1e-6)


def test_pooling_length_one_reads_the_mask_alone():
    model, tokenizer = tiny_model("gpt2")
    head = make_head(model, tokenizer, pooling_length=1)
    objective = mlm_head_objective(head, tokenizer, model)
    with torch.no_grad():
        got = objective.losses(model, prepare(objective, ROWS))
        want = plain_losses(model, tokenizer, head, ROWS)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("split", [False, True], ids=["one_pass", "parts_by_length"])
def test_group_gradients_equal_separate_plain_backward_passes(setup, split, monkeypatch):
    model, tokenizer, head, objective = setup
    names = [n for n, _ in model.named_parameters()][-6:] + [next(iter(dict(model.named_parameters())))]
    kinds = ("factual", "alternative", "diff")
    batch = prepare(objective, ROWS)
    widths = split_into_parts(monkeypatch, objective) if split else None
    got = group_gradients(model, objective, batch, names, kinds)
    if split:
        assert len(widths) > 1 and min(widths) < batch.input_ids.shape[1]
    # The frozen head only carries the gradients through; nothing is written to any `.grad`.
    assert all(p.grad is None for p in [*head.parameters(), *model.parameters()])
    params = dict(model.named_parameters())
    for kind in kinds:
        for p in model.parameters():
            p.requires_grad_(p is not None)
            p.grad = None
        factual, alternative = plain_losses(model, tokenizer, head, ROWS)
        loss = {"factual": factual, "alternative": alternative, "diff": factual - alternative}[kind].mean()
        loss.backward()
        for name in names:
            want = params[name].grad
            assert want is not None and want.abs().sum() > 0, (kind, name)
            torch.testing.assert_close(got[kind][name], want, rtol=1e-4, atol=1e-7)
        for p in model.parameters():
            p.grad = None
            p.requires_grad_(False)


@pytest.mark.parametrize("latent_dim", [1, 2])
def test_jvp_encodings_equal_the_per_example_loop(setup, latent_dim):
    model, tokenizer, head, objective = setup
    torch.manual_seed(1)
    gradiend = GradiendModel.from_base_model(model, latent_dim=latent_dim, objective=objective.name)
    batch = prepare(objective, ROWS)
    fast = encode_rows(gradiend, model, objective, batch)
    slow = encode_rows_loop(gradiend, model, objective, batch)
    assert fast.shape == (len(ROWS), latent_dim)
    assert float((fast - slow).norm() / slow.norm()) <= 1e-4


def test_the_objective_is_chosen_never_detected_and_needs_its_head():
    model, tokenizer = tiny_model("llama")
    assert detect_objective(model) == "causal_lm"
    bare = get_objective("causal_lm_mlm_head", tokenizer)
    assert isinstance(bare, CausalLMMLMHeadObjective) and bare.config_fields() == {}
    with pytest.raises(ObjectiveError, match="needs its MLM head"):
        prepare(bare, ROWS)
    objective = mlm_head_objective(make_head(model, tokenizer), tokenizer, model)
    with pytest.raises(UnrepresentableWordError, match="not a label") as error:
        objective.prepare(["He said [MASK] came."], ["it"])
    assert error.value.word == "it"
    with pytest.raises(ObjectiveError, match="exactly one"):
        objective.prepare(["no blank here"], ["he"])
    # The head is recorded only once it lives somewhere.
    with pytest.raises(Exception, match="never saved"):
        objective.config_fields()


def test_the_mask_token_is_never_the_padding_token():
    model, tokenizer = tiny_model("llama")  # eos is its padding token (nn.Embedding.padding_idx)
    assert tokenizer.eos_token_id == model.get_input_embeddings().padding_idx
    assert default_mask_token(tokenizer, model) == tokenizer.bos_token
    head = make_head(model, tokenizer)
    head.config.mask_token = tokenizer.eos_token
    with pytest.raises(ObjectiveError, match="padding token"):
        mlm_head_objective(head, tokenizer, model)


def test_a_mask_token_the_tokenizer_splits_is_refused():
    model, tokenizer = tiny_model("gpt2")
    head = make_head(model, tokenizer)
    head.config.mask_token = "[NOT A TOKEN]"
    with pytest.raises(ObjectiveError, match="not one token"):
        mlm_head_objective(head, tokenizer, model)


def test_rewrites_of_a_head_gradiend_are_scored_with_the_model_own_head():
    base, tokenizer = tiny_model("llama")
    gradiend = GradiendModel.from_base_model(base, params=["model.layers.1.mlp.*"], feature_classes=["M", "F"])
    gradiend.config.objective = "causal_lm_mlm_head"
    assert gradiend_objective(gradiend.config, base, tokenizer).name == "causal_lm_mlm_head"
    assert gradiend_objective(gradiend.config, base, tokenizer, scoring=True).name == "causal_lm"
