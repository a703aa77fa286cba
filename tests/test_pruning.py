"""Pruning a GRADIEND (`gradiend_hf/pruning.py` and the pruned-model support in `GradiendModel`)."""

import json

import pytest
import torch
from safetensors.torch import load_file, save_file
from transformers import AutoModel

from gradiend_hf import GradiendModel, GradiendTrainer, GradiendTrainingArguments
from gradiend_hf.data import load_builtin
from gradiend_hf.gradients import encode_rows, encode_rows_loop, group_gradients
from gradiend_hf.objectives import get_objective
from gradiend_hf.pruning import post_prune, pre_prune
from gradiend_hf.topk import PruningError, resolve_k, select_topk
from gradiend_hf.training_data import GroupedFeatureDataset

from .tiny_models import masked_rows, tiny_model


PARAMS = ["*.layer.1.*", "bert.embeddings.LayerNorm.weight"]


@pytest.fixture(scope="module")
def bert():
    return tiny_model("bert")


@pytest.fixture(scope="module")
def gender():
    return load_builtin("gender-en")


def random_gradiend(model, params=PARAMS, seed=0, latent_dim=1):
    torch.manual_seed(seed)
    gradiend = GradiendModel.from_base_model(model, params=params, latent_dim=latent_dim)
    with torch.no_grad():  # normal weights: importances without ties
        for param in gradiend.parameters():
            param.normal_()
    return gradiend


def flat(tensors: dict, names) -> torch.Tensor:
    return torch.cat([tensors[n].reshape(-1) for n in names])


def kept_global(gradiend) -> set[int]:
    """Global indices (in the unpruned selection) of every entry a GRADIEND covers."""
    out = set()
    for name, offset, shape in zip(gradiend.param_names, gradiend.config.global_offsets, gradiend.param_shapes):
        kept = gradiend.kept_positions(name)
        local = torch.arange(torch.Size(shape).numel()) if kept is None else kept
        out.update((local + offset).tolist())
    return out


def random_gradients(names, shapes, batch=None, seed=0):
    gen = torch.Generator().manual_seed(seed)
    lead = () if batch is None else (batch,)
    return {n: torch.randn(*lead, *s, generator=gen) for n, s in zip(names, shapes)}


# --------------------------------------------------------------------------- selection


def test_select_topk_equals_flat_sort_with_ties():
    gen = torch.Generator().manual_seed(0)
    scores = {
        "a": torch.randn(5, 7, generator=gen).abs(),
        "b": torch.randn(11, generator=gen).abs(),
        "c": torch.ones(3),
    }
    scores["a"][0, :3] = 1.0  # ties across tensors at a value that straddles the cut
    scores["b"][4] = 1.0
    values = torch.cat([v.reshape(-1) for v in scores.values()])
    # Flat reference: value descending, then global position ascending.
    order = sorted(range(len(values)), key=lambda i: (-float(values[i]), i))
    offsets = {"a": 0, "b": 35, "c": 46}
    for k in (1, 4, 9, 16, 17, 18, 20, 21, 22, 49, 100):  # 16 values exceed the 7 ties at 1.0
        chosen = select_topk(scores, k)
        got = sorted(int(i) + offsets[name] for name, idx in chosen.items() for i in idx)
        assert got == sorted(order[:k]), k
        assert all(torch.equal(idx, idx.sort().values) for idx in chosen.values())


def test_resolve_k():
    assert resolve_k(10, 100) == 10 and resolve_k(1000, 100) == 100
    assert resolve_k(0.011, 1000) == 11 and resolve_k(1.0, 7) == 7 and resolve_k(1e-9, 50) == 1
    for bad in (0, -3, 0.0, 1.5, True, "10"):
        with pytest.raises(PruningError):
            resolve_k(bad, 100)


# --------------------------------------------------------------------------- post-pruning


@pytest.mark.parametrize("part", ["decoder-weight", "encoder-weight", "decoder-sum"])
@pytest.mark.parametrize("k", [37, 0.05])
def test_post_prune_keeps_exactly_the_k_most_important(bert, part, k):
    gradiend = random_gradiend(bert[0], latent_dim=2 if part == "encoder-weight" else 1)
    importance = flat(gradiend.get_weight_importance(part), gradiend.param_names)
    expected_k = k if isinstance(k, int) else int(torch.tensor(k * importance.numel()).ceil())
    pruned = post_prune(gradiend, k, part=part)
    assert kept_global(pruned) == set(torch.topk(importance, expected_k).indices.tolist())
    assert pruned.config.num_base_parameters == expected_k
    assert pruned.num_parameters() == expected_k * (2 * gradiend.config.latent_dim + 1) + gradiend.config.latent_dim
    assert pruned.config.pruned and pruned.config.pruning["part"] == part
    assert pruned.config.selection_fingerprint == gradiend.config.param_fingerprint
    # Parameters without a kept entry are dropped; the others keep their base order.
    assert pruned.param_names == [n for n in gradiend.param_names if n in pruned.param_names]
    if k == 37:  # 37 entries cannot reach all 17 parameters
        assert len(pruned.param_names) < len(gradiend.param_names)


def test_pruned_model_computes_the_restricted_full_model(bert):
    gradiend = random_gradiend(bert[0])
    pruned = gradiend.prune(0.1)
    restricted = random_gradiend(bert[0])  # the full model with every non-kept weight set to zero
    with torch.no_grad():
        for name, key, shape in zip(gradiend.param_names, gradiend.param_keys, gradiend.param_shapes):
            mask = torch.zeros(torch.Size(shape).numel(), dtype=torch.bool)
            if name in pruned.param_names:
                kept = pruned.kept_positions(name)
                mask[kept if kept is not None else slice(None)] = True
            restricted.encoder.weight[key].mul_(mask)
            restricted.decoder.weight[key].mul_(mask[:, None])
            restricted.decoder.bias[key].mul_(mask)
    names, shapes = gradiend.param_names, gradiend.param_shapes
    sources = random_gradients(names, shapes, batch=3, seed=1)
    torch.testing.assert_close(pruned.encode(sources), restricted.encode(sources), rtol=1e-5, atol=1e-6)
    h = torch.tensor([[0.7], [-0.3], [0.0]])
    decoded, expected = pruned.decode(h), restricted.decode(h)
    assert set(decoded) == set(pruned.param_names)
    for name in names:
        if name in decoded:
            assert decoded[name].shape == expected[name].shape
            torch.testing.assert_close(decoded[name], expected[name])
        else:
            assert torch.count_nonzero(expected[name]) == 0
    # Updates stay in full base shapes; untouched entries are exactly 0.
    for name, value in pruned.iter_update(0.5, 0.1):
        torch.testing.assert_close(value, 0.1 * restricted.decode(torch.tensor([0.5]))[name])
    # The loss is the mean over the kept entries only.
    targets = random_gradients(names, shapes, batch=3, seed=2)
    enc = pruned.encode(sources)
    squared = sum(
        ((pruned.decode(enc)[n] - targets[n]) ** 2 * (restricted.decode(enc)[n] != 0)).sum()
        for n in pruned.param_names
    )
    loss = pruned(source_gradients=sources, target_gradients=targets).loss
    torch.testing.assert_close(loss, squared / (3 * pruned.config.num_base_parameters), rtol=1e-5, atol=1e-9)


def test_topk_global_indices_survive_pruning(bert):
    gradiend = random_gradiend(bert[0])
    pruned = gradiend.prune(200)
    twice = pruned.prune(50)
    for model in (pruned, twice):
        top = model.topk(30)
        full = gradiend.topk(30)
        assert [(t["parameter"], t["position"], t["global_index"]) for t in top] == [
            (t["parameter"], t["position"], t["global_index"]) for t in full
        ]
        for t in top:
            assert t["importance"] == pytest.approx(gradiend.get_weight_importance()[t["parameter"]][t["position"]])
    assert kept_global(twice) <= kept_global(pruned)
    assert twice.config.unpruned_param_names == gradiend.param_names
    importance = twice.get_weight_importance()
    assert sum(int(torch.count_nonzero(v)) for v in importance.values()) == 50


def test_pruned_save_load_round_trip_is_bit_identical(bert, tmp_path):
    pruned = random_gradiend(bert[0]).prune(0.02)
    pruned.save_pretrained(tmp_path)
    for loaded in (GradiendModel.from_pretrained(tmp_path), AutoModel.from_pretrained(tmp_path)):
        assert isinstance(loaded, GradiendModel)
        own, other = pruned.state_dict(), loaded.state_dict()
        assert own.keys() == other.keys() and any(k.startswith("kept.") for k in own)
        for key in own:
            assert own[key].dtype == other[key].dtype and torch.equal(own[key], other[key]), key
        assert loaded.config.kept_counts == pruned.config.kept_counts
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["pruned"] is True and config["pruning"]["method"] == "post"
    # A checkpoint without its kept positions is rejected instead of read as garbage.
    weights = load_file(tmp_path / "model.safetensors")
    weights.pop(next(k for k in weights if k.startswith("kept.")))
    save_file(weights, tmp_path / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(ValueError, match="kept positions .* missing or corrupt"):
        GradiendModel.from_pretrained(tmp_path)


def test_pruned_jvp_encodings_equal_the_per_example_loop():
    model, tokenizer = tiny_model("gpt2")
    pruned = random_gradiend(model, params=["transformer.h.1.*", "transformer.wte.weight"]).prune(0.03)
    with torch.no_grad():  # small weights keep tanh away from saturation, so the comparison is sensitive
        for weight in pruned.encoder.weight.values():
            weight.mul_(0.05)
    objective = get_objective("causal_lm", tokenizer)
    batch = objective.prepare(*masked_rows(6, causal=True))
    fast = encode_rows(pruned, model, objective, batch)
    slow = encode_rows_loop(pruned, model, objective, batch)
    assert fast.abs().max() < 0.99
    torch.testing.assert_close(fast, slow, rtol=1e-4, atol=1e-5)


# --------------------------------------------------------------------------- pre-pruning and training


def test_pre_prune_keeps_the_largest_mean_gradients(bert, gender):
    model, tokenizer = bert
    torch.manual_seed(0)
    gradiend = pre_prune(model, tokenizer, gender, k=60, params=PARAMS, n_samples=4, sentences_per_gradient=4)
    # Independent computation: the same groups, all gradients flat, one sort.
    objective = get_objective(model, tokenizer)
    groups = GroupedFeatureDataset(gender["train"], 4, seed=0)
    names = [n for n, _ in model.named_parameters() if n in GradiendModel.from_base_model(model, PARAMS).param_names]
    total = 0
    for i in range(4):
        item = groups[i]
        batch = objective.prepare(item["masked"], item["factual"], item["alternative"])
        total = total + flat(
            group_gradients(model, objective, batch, names, kinds=("alternative",))["alternative"], names
        )
    assert kept_global(gradiend) == set(torch.topk((total / 4).abs(), 60).indices.tolist())
    assert gradiend.config.num_base_parameters == 60 and gradiend.config.pruning["method"] == "pre"
    # A fresh initialisation of the reduced size: nn.Linear(60, 1)'s bound.
    encoder = torch.cat([w.reshape(-1) for w in gradiend.encoder.weight.values()])
    assert encoder.abs().max() <= 60**-0.5 and encoder.abs().max() > 0.5 * 60**-0.5


def test_pruned_gradiend_trains_and_rewrites_only_kept_entries(gender, tmp_path):
    model, tokenizer = tiny_model("bert")
    torch.manual_seed(0)
    gradiend = pre_prune(model, tokenizer, gender, k=0.2, n_samples=4, sentences_per_gradient=4)
    before = {k: v.clone() for k, v in gradiend.state_dict().items()}
    args = GradiendTrainingArguments(
        str(tmp_path / "run"),
        max_steps=20,
        learning_rate=1e-3,
        sentences_per_gradient=4,
        eval_steps=10,
        eval_max_rows=48,
        report_to="none",
        disable_tqdm=True,
    )
    trainer = GradiendTrainer(
        model=gradiend, base_model=model, processing_class=tokenizer, args=args, train_dataset=gender
    )
    trainer.train()
    assert trainer.evaluate()["eval_correlation"] > 0.5
    for key, value in gradiend.state_dict().items():
        changed = not torch.equal(value, before[key])
        assert changed != key.startswith("kept."), key  # weights learn, kept positions never move
    trainer.save_model(str(tmp_path / "final"))
    loaded = GradiendModel.from_pretrained(tmp_path / "final")
    assert loaded.config.training_summary["best_step"] > 0 and loaded.config.pruned

    original = {n: p.detach().clone() for n, p in model.named_parameters()}
    rewritten = loaded.rewrite(model, 1.0, 0.5)
    for name, param in rewritten.named_parameters():
        changed = (param != original[name]).reshape(-1)
        if name not in loaded.param_names:
            assert not changed.any(), name
            continue
        kept = loaded.kept_positions(name)
        allowed = torch.zeros_like(changed)
        allowed[kept if kept is not None else slice(None)] = True
        assert not (changed & ~allowed).any(), name
        assert changed.any(), name
