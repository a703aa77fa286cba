import pytest
import torch

from gradiend_hf import GradiendModel, gradients
from gradiend_hf.gradients import encode_rows, encode_rows_loop, group_gradients
from gradiend_hf.objectives import get_objective

from .tiny_models import FAMILIES, MASKED_FAMILIES, masked_rows, tiny_model


def plain_gradients(model, tokenizer, objective_name, masked, words):
    """The plain computation: Hugging Face's own LM loss on the filled-in text, `.backward()`, read `.grad`."""
    model.zero_grad(set_to_none=True)
    for p in model.parameters():
        p.requires_grad_(True)
    total = 0.0
    for text, word in zip(masked, words):
        prefix, suffix = text.split("[MASK]")
        if objective_name == "masked_lm":
            filled = tokenizer(text.replace("[MASK]", tokenizer.mask_token), return_tensors="pt")
            ids = filled["input_ids"]
            position = (ids[0] == tokenizer.mask_token_id).nonzero().item()
            labels = torch.full_like(ids, -100)
            labels[0, position] = objective_ids(tokenizer, objective_name, text, word)
            loss = model(input_ids=ids, labels=labels).loss
        else:
            ids = tokenizer(prefix + word, return_tensors="pt")["input_ids"]
            labels = torch.full_like(ids, -100)
            labels[0, -1] = ids[0, -1]  # the model shifts labels: the last token is predicted from the prefix
            loss = model(input_ids=ids, labels=labels).loss
        total = total + loss
    (total / len(masked)).backward()
    grads = {name: p.grad.detach().clone() for name, p in model.named_parameters() if p.grad is not None}
    model.zero_grad(set_to_none=True)
    return grads


def objective_ids(tokenizer, objective_name, text, word):
    filled = text.replace("[MASK]", word)
    ids = tokenizer(filled)["input_ids"]
    masked_ids = tokenizer(text.replace("[MASK]", tokenizer.mask_token))["input_ids"]
    position = masked_ids.index(tokenizer.mask_token_id)
    return ids[position]


def split_into_parts(monkeypatch, objective) -> list[int]:
    """Makes `group_gradients` split every group by length (passes cost nothing extra); records each part's width."""
    monkeypatch.setattr(gradients, "_PASS_OVERHEAD_POSITIONS", 0)
    widths = []
    losses = objective.losses

    def recording(model, batch):
        widths.append(batch.input_ids.shape[1])
        return losses(model, batch)

    monkeypatch.setattr(objective, "losses", recording)
    return widths


@pytest.mark.parametrize("split", [False, True], ids=["one_pass", "parts_by_length"])
@pytest.mark.parametrize("family", FAMILIES)
def test_one_forward_gradients_equal_two_plain_computations(family, split, monkeypatch):
    model, tok = tiny_model(family)
    objective_name = "masked_lm" if family in MASKED_FAMILIES else "causal_lm"
    objective = get_objective(objective_name, tok)
    masked, factual, alternative = masked_rows(4)
    masked[1] = masked[1].replace("said that", "thought")  # uneven lengths: padding must not matter
    masked[2] = "Before the long and tiring meeting of the whole school board, the teacher said that [MASK] left."
    gradiend = GradiendModel.from_base_model(model)
    names = gradiend.param_names
    flags = {name: p.requires_grad for name, p in model.named_parameters()}
    batch = objective.prepare(masked, factual, alternative)
    widths = split_into_parts(monkeypatch, objective) if split else None
    ours = group_gradients(model, objective, batch, names, kinds=("factual", "alternative", "diff"))
    if split:
        # The long row goes alone; the short ones share a part trimmed to their own length.
        assert len(widths) > 1 and min(widths) < batch.input_ids.shape[1] == max(widths)
    assert all(p.grad is None for p in model.parameters()), "the base model's .grad must stay untouched"
    assert flags == {name: p.requires_grad for name, p in model.named_parameters()}
    assert not model.training

    plain_f = plain_gradients(model, tok, objective_name, masked, factual)
    plain_a = plain_gradients(model, tok, objective_name, masked, alternative)
    # One scale for the whole model: some gradients are exactly zero in theory (attention key biases) and only
    # float noise in practice, so a per-parameter relative error would compare noise with noise.
    scale = max(plain_f[name].abs().max() for name in names)
    for name in names:
        torch.testing.assert_close(ours["factual"][name] / scale, plain_f[name] / scale, atol=2e-5, rtol=1e-4)
        torch.testing.assert_close(ours["alternative"][name] / scale, plain_a[name] / scale, atol=2e-5, rtol=1e-4)
        torch.testing.assert_close(ours["diff"][name], ours["factual"][name] - ours["alternative"][name])
    assert any(ours["diff"][name].abs().sum() > 0 for name in names)


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("source", ["alternative", "diff", "factual"])
def test_batched_encodings_equal_per_example_loop(family, source):
    model, tok = tiny_model(family)
    objective = get_objective(model, tok)
    masked, factual, alternative = masked_rows(6)
    masked[0] = "Yes, the tall doctor said that [MASK] came."
    torch.manual_seed(0)
    gradiend = GradiendModel.from_base_model(model, latent_dim=2 if source == "diff" else 1, source=source)
    # A trained encoder has larger weights than the init; scale so that tanh is not linear.
    with torch.no_grad():
        for w in gradiend.encoder.weight.values():
            w.mul_(200)
    batch = objective.prepare(masked, factual, alternative)
    fast = encode_rows(gradiend, model, objective, batch)
    slow = encode_rows_loop(gradiend, model, objective, batch)
    assert fast.shape == (6, gradiend.config.latent_dim)
    assert slow.abs().max() > 0.05, "the check needs non-trivial encodings"
    rel = (fast - slow).abs().max() / slow.abs().max()
    assert rel <= 1e-4, rel


def test_batched_encodings_work_with_sdpa_attention():
    model, tok = tiny_model("llama", attn="sdpa")
    objective = get_objective(model, tok)
    masked, factual, alternative = masked_rows(4)
    gradiend = GradiendModel.from_base_model(model)
    batch = objective.prepare(masked, factual, alternative, padding_side="left")
    fast = encode_rows(gradiend, model, objective, batch)
    slow = encode_rows_loop(gradiend, model, objective, batch)
    assert ((fast - slow).abs().max() / slow.abs().max()) <= 1e-4


def test_selected_subset_only():
    model, tok = tiny_model("bert")
    objective = get_objective(model, tok)
    masked, factual, alternative = masked_rows(2)
    names = ["bert.encoder.layer.1.output.dense.weight"]
    grads = group_gradients(model, objective, objective.prepare(masked, factual, alternative), names, kinds=("diff",))
    assert list(grads["diff"]) == names
    assert grads["diff"][names[0]].shape == model.get_parameter(names[0]).shape


@pytest.mark.parametrize("family", ["llama", "gpt2", "bert"])
def test_forward_mode_runs_the_lm_head_on_the_read_positions_alone(family):
    # Through the model's own forward, forward-mode AD would run the vocabulary-sized head on every position (or
    # expand its weight once per row): the encoder evaluation's cost on SmolLM2 was mostly that.
    from gradiend_hf.objectives.logits import in_check_pass

    model, tok = tiny_model(family)
    objective = get_objective(model, tok)
    masked, factual, alternative = masked_rows(5)
    gradiend = GradiendModel.from_base_model(model)
    head = model.cls if family == "bert" else model.lm_head
    shapes = []
    handle = head.register_forward_pre_hook(
        lambda module, args: None if in_check_pass() else shapes.append(args[0].shape)
    )
    try:
        fast = encode_rows(gradiend, model, objective, objective.prepare(masked, factual, alternative))
    finally:
        handle.remove()
    assert shapes and all(len(shape) == 2 and shape[0] <= 2 * len(masked) for shape in shapes), shapes
    slow = encode_rows_loop(gradiend, model, objective, objective.prepare(masked, factual, alternative))
    assert ((fast - slow).abs().max() / slow.abs().max()) <= 1e-4


@pytest.mark.parametrize("family", FAMILIES)
def test_a_trimmed_row_keeps_its_real_tokens_and_its_losses(family):
    model, tok = tiny_model(family)
    objective = get_objective(model, tok)
    masked, factual, alternative = masked_rows(3)
    masked[0] = "Before the long and tiring meeting of the whole school board, the teacher said that [MASK] left."
    batch = objective.prepare(masked, factual, alternative)
    with torch.no_grad():
        whole = torch.stack(objective.losses(model, batch))
        for row, length in enumerate(batch.row_lengths()):
            alone = batch.select([row])
            trimmed = alone.trimmed()
            assert trimmed.input_ids.shape[1] == length == int(alone.attention_mask.sum())
            assert (
                trimmed.input_ids[trimmed.attention_mask.bool()].tolist()
                == alone.input_ids[alone.attention_mask.bool()].tolist()
            )
            torch.testing.assert_close(torch.stack(objective.losses(model, trimmed))[:, 0], whole[:, row])
