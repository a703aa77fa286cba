"""Hidden states below the first covered layer reused over rewrites (`evaluation/prefix_cache.py`) against the
model's own forward passes."""

import pandas as pd
import pytest
import torch

from gradiend_hf import GradiendModel
from gradiend_hf.data import load_builtin
from gradiend_hf.evaluation import LanguageModelingScorer, evaluate_decoder
from gradiend_hf.evaluation.prefix_cache import FrozenPrefix, layer_stack
from gradiend_hf.gradients import encode_rows
from gradiend_hf.objectives import get_objective
from gradiend_hf.testing_utils import masked_rows

from .tiny_models import tiny_model


FAMILIES = ["bert", "roberta", "distilbert", "gpt2", "llama"]


def _upper_layer_names(model, first=2):
    stack = layer_stack(model)
    ids = {id(p) for layer in stack[first:] for p in layer.parameters()}
    return [name for name, p in model.named_parameters() if id(p) in ids]


def _perturb(model, names, seed):
    generator = torch.Generator().manual_seed(seed)
    parameters = dict(model.named_parameters())
    with torch.no_grad():
        for name in names:
            p = parameters[name]
            p.add_(0.05 * torch.randn(p.shape, generator=generator))


@pytest.mark.parametrize("family", FAMILIES)
def test_reused_states_give_the_plain_scores_after_a_rewrite(family):
    model, tokenizer = tiny_model(family, layers=4)
    objective = get_objective(model, tokenizer)
    names = _upper_layer_names(model)
    masked, factual, alternative = masked_rows(6)
    batch = objective.prepare(masked, factual, alternative)
    texts = [m.replace("[MASK]", f) for m, f in zip(masked, factual)]
    lms = LanguageModelingScorer(tokenizer, texts, objective, batch_size=4)
    with torch.no_grad(), FrozenPrefix(model, names) as prefix:
        assert prefix.enabled and prefix.first == 2
        objective.target_log_probs(model, batch), lms(model)  # recorded at the base state
        for seed in range(3):  # the first rewrite checks the recorded states, the others reuse them
            _perturb(model, names, seed)
            fast_probs, fast_lms = objective.target_log_probs(model, batch), lms(model)
        assert prefix.enabled and prefix.reused_passes > 0
    with torch.no_grad():
        plain_probs, plain_lms = objective.target_log_probs(model, batch), lms(model)
    torch.testing.assert_close(fast_probs, plain_probs, rtol=0, atol=0)
    assert fast_lms == plain_lms


def test_off_when_a_covered_parameter_runs_before_the_first_covered_layer():
    # GPT-2 ties its LM head to the token embeddings: covering them changes the input of every layer.
    model, tokenizer = tiny_model("gpt2", layers=4)
    objective = get_objective(model, tokenizer)
    names = ["transformer.wte.weight", *_upper_layer_names(model)]
    batch = objective.prepare(*masked_rows(4))
    with torch.no_grad(), FrozenPrefix(model, names) as prefix:
        objective.target_log_probs(model, batch)
        assert not prefix.enabled
        _perturb(model, names, 0)
        fast = objective.target_log_probs(model, batch)
        assert prefix.reused_passes == 0
    with torch.no_grad():
        torch.testing.assert_close(fast, objective.target_log_probs(model, batch), rtol=0, atol=0)


def test_no_new_batch_is_recorded_after_stop_recording():
    model, tokenizer = tiny_model("llama", layers=4)
    objective = get_objective(model, tokenizer)
    names = _upper_layer_names(model)
    with torch.no_grad(), FrozenPrefix(model, names) as prefix:
        objective.target_log_probs(model, objective.prepare(*masked_rows(4)))
        prefix.stop_recording()
        for n in (2, 3, 5):  # batches built anew each time, as the bias benchmarks do
            objective.target_log_probs(model, objective.prepare(*masked_rows(n)))
        assert prefix.num_records == 1 and prefix.reused_passes == 0


def test_off_when_the_lowest_layer_is_covered():
    model, _ = tiny_model("llama", layers=4)
    with FrozenPrefix(model, _upper_layer_names(model, first=0)) as prefix:
        assert not prefix.enabled


def test_the_model_is_unchanged_after_the_context():
    model, tokenizer = tiny_model("llama", layers=4)
    objective = get_objective(model, tokenizer)
    batch = objective.prepare(*masked_rows(4))
    names = _upper_layer_names(model)
    with torch.no_grad(), FrozenPrefix(model, names):
        objective.target_log_probs(model, batch)
        objective.target_log_probs(model, batch)
    assert all("forward" not in layer.__dict__ for layer in layer_stack(model))
    assert not any(m._forward_pre_hooks for m in model.modules())


@pytest.mark.parametrize("family", ["bert", "llama"])
def test_a_decoder_grid_is_the_same_with_and_without_reuse(family):
    model, tokenizer = tiny_model(family, layers=4)
    data = load_builtin("gender-en")
    torch.manual_seed(0)
    gradiend = GradiendModel.from_base_model(model, params=_upper_layer_names(model), feature_classes=["M", "F"])
    with torch.no_grad():
        for p in gradiend.parameters():
            p.normal_(0, 0.02)
    kwargs = dict(target_class="F", max_rows=8, lms_max_texts=8, learning_rates=[1.0, 0.1, 0.01])
    before = [p.detach().clone() for p in model.parameters()]
    reused = evaluate_decoder(gradiend, model, tokenizer, data, **kwargs)
    plain = evaluate_decoder(gradiend, model, tokenizer, data, reuse_lower_layers=False, **kwargs)
    pd.testing.assert_frame_equal(reused.grid, plain.grid, check_exact=True)
    assert reused.selected == plain.selected
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))


@pytest.mark.parametrize("family", ["t5", "bart"])
def test_off_for_encoder_decoder_models(family):
    model, _ = tiny_model(family, layers=4)
    with FrozenPrefix(model, _upper_layer_names(model)) as prefix:
        assert not prefix.enabled


def _count_lowest_layer_runs(model):
    """Counts the runs of the lowest layer's own forward (FrozenPrefix wraps, and later restores, this one)."""
    lowest = layer_stack(model)[0]
    own = lowest.forward
    runs = []

    def counted(*args, **kwargs):
        runs.append(1)
        return own(*args, **kwargs)

    lowest.forward = counted
    return runs


def test_batches_built_anew_are_recognised_by_what_enters_the_lowest_layer():
    model, tokenizer = tiny_model("llama", layers=4)
    names = _upper_layer_names(model)
    ids = torch.tensor([[5, 6, 7, 8, 9], [10, 11, 12, 13, 14]])
    full = torch.ones_like(ids)
    padded = full.clone()
    padded[1, :2] = 0  # the same token ids with another attention mask compute other states
    runs = _count_lowest_layer_runs(model)
    with torch.no_grad(), FrozenPrefix(model, names) as prefix:
        model(input_ids=ids.clone(), attention_mask=full.clone())
        prefix.stop_recording()
        _perturb(model, names, 0)
        model(input_ids=ids.clone(), attention_mask=full.clone())  # recomputed once: the check
        runs.clear()
        same = model(input_ids=ids.clone(), attention_mask=full.clone()).logits
        assert prefix.reused_passes == 1 and not runs  # new tensors, same content: reused
        other_mask = model(input_ids=ids.clone(), attention_mask=padded).logits
        assert prefix.reused_passes == 1 and len(runs) == 1  # same ids, other mask: run as always
    with torch.no_grad():
        torch.testing.assert_close(same, model(input_ids=ids, attention_mask=full).logits, rtol=0, atol=0)
        torch.testing.assert_close(other_mask, model(input_ids=ids, attention_mask=padded).logits, rtol=0, atol=0)


def _encoding_setup(family="llama"):
    model, tokenizer = tiny_model(family, layers=4)
    objective = get_objective(model, tokenizer)
    torch.manual_seed(0)
    gradiend = GradiendModel.from_base_model(model, params=_upper_layer_names(model), latent_dim=2)
    with torch.no_grad():
        for p in gradiend.parameters():
            p.normal_(0, 0.05)
    return model, objective, gradiend, objective.prepare(*masked_rows(6))


@pytest.mark.parametrize("family", ["bert", "llama"])
def test_encodings_by_forward_mode_reuse_the_states_and_equal_the_plain_ones(family):
    # Inside `torch.func.jvp` every tensor is wrapped: the states are kept as the values they wrap.
    model, objective, gradiend, batch = _encoding_setup(family)
    plain = encode_rows(gradiend, model, objective, batch)
    with FrozenPrefix(model, gradiend.param_names) as prefix:
        runs = [encode_rows(gradiend, model, objective, batch) for _ in range(3)]
        assert prefix.enabled and prefix.num_records == 1
        assert prefix.reused_passes == 2 * 3 - 2  # two latent dimensions: one recording pass, one check pass
    for fast in runs:
        torch.testing.assert_close(fast, plain, rtol=0, atol=0)


def test_kept_records_are_reused_in_the_next_context():
    model, objective, gradiend, batch = _encoding_setup()
    plain = encode_rows(gradiend, model, objective, batch)
    prefix = FrozenPrefix(model, gradiend.param_names, keep_records=True)
    lowest_runs = _count_lowest_layer_runs(model)
    for _ in range(3):
        with prefix:
            fast = encode_rows(gradiend, model, objective, batch)
        torch.testing.assert_close(fast, plain, rtol=0, atol=0)
    assert prefix.num_records == 1 and prefix.reused_passes == 4
    assert len(lowest_runs) == 2  # the recording pass and the check pass; outside the contexts none
    assert not any(m._forward_pre_hooks for m in model.modules())


@pytest.mark.parametrize("change", ["in_place", "replaced"])
def test_kept_records_are_dropped_when_a_lower_layer_changes(change):
    model, objective, gradiend, batch = _encoding_setup()
    prefix = FrozenPrefix(model, gradiend.param_names, keep_records=True)
    with prefix:
        encode_rows(gradiend, model, objective, batch)
        encode_rows(gradiend, model, objective, batch)
    lowest = layer_stack(model)[0]
    weight = lowest.mlp.down_proj
    with torch.no_grad():
        if change == "in_place":
            weight.weight.mul_(1.5)
        else:
            weight.weight = torch.nn.Parameter(weight.weight * 1.5, requires_grad=False)
    with prefix:
        assert prefix.num_records == 0
        fast = encode_rows(gradiend, model, objective, batch)
        assert prefix.num_records == 1  # recorded afresh, from the changed layer
    torch.testing.assert_close(fast, encode_rows(gradiend, model, objective, batch), rtol=0, atol=0)


def test_no_more_states_are_recorded_than_max_record_bytes():
    model, tokenizer = tiny_model("llama", layers=4)
    objective = get_objective(model, tokenizer)
    batches = [objective.prepare(*masked_rows(n)) for n in (2, 3, 4)]
    with torch.no_grad(), FrozenPrefix(model, _upper_layer_names(model)) as unlimited:
        for batch in batches:
            objective.target_log_probs(model, batch)
        first = unlimited._records[next(iter(unlimited._records))][0].states
        budget = first.numel() * first.element_size()
    with torch.no_grad(), FrozenPrefix(model, _upper_layer_names(model), max_record_bytes=budget) as limited:
        for batch in batches:
            objective.target_log_probs(model, batch)
        assert limited.num_records == 1 and limited.record_bytes == budget
        fast = [objective.target_log_probs(model, batch) for batch in batches]
        assert limited.reused_passes == 0  # the one recorded pass was checked, not replayed
    with torch.no_grad():
        for batch, values in zip(batches, fast):
            torch.testing.assert_close(values, objective.target_log_probs(model, batch), rtol=0, atol=0)
