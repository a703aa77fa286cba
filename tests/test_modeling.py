import json
import math
import os

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoConfig, AutoModel

from gradiend_hf import GradiendConfig, GradiendModel
from gradiend_hf.params import GradiendParameterError, select_parameters

from .tiny_models import FAMILIES, tiny_model


def flat(tensors: dict, names) -> torch.Tensor:
    return torch.cat([tensors[n].reshape(-1) for n in names])


def random_gradients(gradiend, batch=None, seed=0):
    gen = torch.Generator().manual_seed(seed)
    lead = () if batch is None else (batch,)
    return {n: torch.randn(*lead, *s, generator=gen) for n, s in zip(gradiend.param_names, gradiend.param_shapes)}


@pytest.fixture(scope="module")
def bert():
    return tiny_model("bert")


@pytest.mark.parametrize("family", FAMILIES)
def test_parameter_count_is_3n_plus_1(family):
    model, _ = tiny_model(family)
    gradiend = GradiendModel.from_base_model(model)
    n = gradiend.config.num_base_parameters
    assert n == sum(p.numel() for name, p in model.named_parameters() if name in gradiend.param_names)
    assert gradiend.num_parameters() == 3 * n + 1


@pytest.mark.parametrize("latent_dim", [1, 3])
def test_parameter_count_general_latent_dim(bert, latent_dim):
    gradiend = GradiendModel.from_base_model(bert[0], params=["*.layer.0.*"], latent_dim=latent_dim)
    n = gradiend.config.num_base_parameters
    assert gradiend.num_parameters() == n * (2 * latent_dim + 1) + latent_dim


def test_default_selection_is_backbone_without_head():
    model, _ = tiny_model("bert")
    names = select_parameters(model)
    assert all(name.startswith("bert.") for name in names)
    assert "bert.embeddings.word_embeddings.weight" in names
    assert not any(name.startswith("cls.") for name in names)
    gpt, _ = tiny_model("gpt2")
    assert all(name.startswith("transformer.") for name in select_parameters(gpt))


def test_patterns_keep_every_match_in_model_order(bert):
    model = bert[0]
    names = select_parameters(model, ["*.attention.self.query.weight"])
    assert names == [f"bert.encoder.layer.{i}.attention.self.query.weight" for i in range(2)]
    both = select_parameters(model, ["bert.encoder.layer.1.output.dense.bias", "*.layer.0.output.dense.*"])
    assert both == [
        "bert.encoder.layer.0.output.dense.weight",
        "bert.encoder.layer.0.output.dense.bias",
        "bert.encoder.layer.1.output.dense.bias",
    ]
    with pytest.raises(GradiendParameterError, match="matches no parameter"):
        select_parameters(model, ["*.nonexistent.*"])


def test_initialisation_follows_the_reference(bert):
    torch.manual_seed(1)
    gradiend = GradiendModel.from_base_model(bert[0])
    n = gradiend.config.num_base_parameters
    enc = torch.cat([w.reshape(-1) for w in gradiend.encoder.weight.values()])
    bound = 1 / math.sqrt(n)
    assert enc.abs().max() <= bound
    # Uniform over ±1/sqrt(n): the spread must use most of the interval, not a tiny normal init.
    assert enc.abs().max() > 0.9 * bound and enc.std() > 0.5 * bound
    limit = enc.max()
    dec = torch.cat([w.reshape(-1) for w in gradiend.decoder.weight.values()])
    bias = torch.cat([b.reshape(-1) for b in gradiend.decoder.bias.values()])
    assert dec.abs().max() <= limit and bias.abs().max() <= limit
    assert dec.abs().max() > 0.9 * limit


def test_encode_decode_forward_match_flat_computation(bert):
    gradiend = GradiendModel.from_base_model(bert[0], params=["*.layer.1.*", "bert.embeddings.LayerNorm.weight"])
    names = gradiend.param_names
    w_e = flat({n: gradiend.encoder.weight[k][0] for n, k in zip(names, gradiend.param_keys)}, names)
    w_d = flat({n: gradiend.decoder.weight[k][:, 0] for n, k in zip(names, gradiend.param_keys)}, names)
    b_d = flat({n: gradiend.decoder.bias[k] for n, k in zip(names, gradiend.param_keys)}, names)
    grads = random_gradients(gradiend)
    g = flat(grads, names)
    expected_h = torch.tanh(w_e @ g + gradiend.encoder.bias[0])
    h = gradiend.encode(grads)
    assert h.shape == (1,)
    torch.testing.assert_close(h[0], expected_h, rtol=1e-5, atol=1e-6)
    decoded = gradiend.decode(h)
    torch.testing.assert_close(flat(decoded, names), w_d * h[0] + b_d)
    for name, shape in zip(names, gradiend.param_shapes):
        assert decoded[name].shape == shape
    targets = random_gradients(gradiend, seed=5)
    out = gradiend(source_gradients=grads, target_gradients=targets)
    expected_loss = ((w_d * expected_h + b_d - flat(targets, names)) ** 2).mean()
    torch.testing.assert_close(out.loss, expected_loss, rtol=1e-5, atol=1e-8)

    batched = random_gradients(gradiend, batch=4, seed=3)
    hb = gradiend.encode(batched)
    assert hb.shape == (4, 1)
    for i in range(4):
        single = {n: t[i] for n, t in batched.items()}
        torch.testing.assert_close(hb[i], gradiend.encode(single))
    assert gradiend.decode(hb)[names[0]].shape == (4, *gradiend.param_shapes[0])


def test_encode_rejects_wrong_shapes(bert):
    gradiend = GradiendModel.from_base_model(bert[0], params=["*.layer.1.output.dense.bias"])
    name = gradiend.param_names[0]
    with pytest.raises(ValueError, match="expected"):
        gradiend.encode({name: torch.zeros(3, 7)})
    with pytest.raises(KeyError, match="lack base parameter"):
        gradiend.encode({})


def test_update_formula_reference_example(bert):
    gradiend = GradiendModel.from_base_model(bert[0], params=["*.layer.0.output.*"])
    with torch.no_grad():
        for w in gradiend.decoder.weight.values():
            w.fill_(1.0)
        for b in gradiend.decoder.bias.values():
            b.fill_(0.5)
    update = gradiend.update(feature_factor=1.0, learning_rate=0.05)
    for name, value in update.items():
        assert value.shape == dict(bert[0].named_parameters())[name].shape
        torch.testing.assert_close(value, torch.full_like(value, 0.075))
    minus = gradiend.update(feature_factor=-1.0, learning_rate=0.05)
    assert all(torch.allclose(v, torch.full_like(v, -0.025)) for v in minus.values())
    assert all(
        torch.allclose(v, torch.full_like(v, 0.05)) for v in gradiend.update(7.0, 0.05, part="decoder-weight").values()
    )
    assert all(
        torch.allclose(v, torch.full_like(v, 0.075)) for v in gradiend.update(0, 0.05, part="decoder-sum").values()
    )
    with pytest.raises(ValueError, match="Unknown update part"):
        gradiend.update(1.0, 1.0, part="nope")


def test_importance_and_topk_match_flat_computation(bert):
    torch.manual_seed(3)
    gradiend = GradiendModel.from_base_model(bert[0], params=["*.layer.*.attention.output.*"])
    names = gradiend.param_names
    for part in ("decoder-weight", "encoder-weight", "decoder-bias", "decoder-sum"):
        importance = flat(gradiend.get_weight_importance(part), names)
        top = gradiend.topk(25, part=part)
        expected = torch.topk(importance, 25)
        assert [t["global_index"] for t in top] == expected.indices.tolist()
        for entry in top:
            value = gradiend.get_weight_importance(part)[entry["parameter"]][entry["position"]]
            assert float(value) == pytest.approx(entry["importance"])
            assert float(importance[entry["global_index"]]) == pytest.approx(entry["importance"])


def test_save_and_load_round_trip_is_bit_identical(bert, tmp_path):
    torch.manual_seed(0)
    gradiend = GradiendModel.from_base_model(bert[0], feature_classes=["M", "F"])
    gradiend.save_pretrained(tmp_path, max_shard_size="100KB")
    files = os.listdir(tmp_path)
    assert "model.safetensors.index.json" in files and sum(f.endswith(".safetensors") for f in files) > 2
    assert not any(f.startswith(".gradiend-save") for f in files)
    loaded = GradiendModel.from_pretrained(tmp_path)
    own, other = gradiend.state_dict(), loaded.state_dict()
    assert own.keys() == other.keys()
    for key in own:
        assert torch.equal(own[key], other[key]), key
    assert loaded.config.param_names == gradiend.config.param_names
    assert loaded.config.feature_classes == ["M", "F"] and loaded.config.positive_class == "M"
    auto = AutoModel.from_pretrained(tmp_path)
    assert isinstance(auto, GradiendModel)
    assert isinstance(AutoConfig.from_pretrained(tmp_path), GradiendConfig)
    for key in own:
        assert torch.equal(own[key], auto.state_dict()[key])
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["model_type"] == "gradiend" and "auto_map" not in config


def test_keys_are_readable_parameter_names(bert, tmp_path):
    gradiend = GradiendModel.from_base_model(bert[0], params=["bert.encoder.layer.0.output.dense.weight"])
    gradiend.save_pretrained(tmp_path)
    keys = set(load_file(tmp_path / "model.safetensors"))
    assert keys == {
        "encoder.weight.bert__encoder__layer__0__output__dense__weight",
        "encoder.bias",
        "decoder.weight.bert__encoder__layer__0__output__dense__weight",
        "decoder.bias.bert__encoder__layer__0__output__dense__weight",
    }


def test_failed_save_keeps_the_previous_model(bert, tmp_path, monkeypatch):
    gradiend = GradiendModel.from_base_model(bert[0], params=["*.layer.0.*"])
    gradiend.save_pretrained(tmp_path)
    before = GradiendModel.from_pretrained(tmp_path).state_dict()

    changed = GradiendModel.from_base_model(bert[0], params=["*.layer.0.*"])
    import transformers.modeling_utils as mu

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(mu, "save_file", broken, raising=False)
    monkeypatch.setattr(mu, "safe_save_file", broken, raising=False)
    with pytest.raises(OSError, match="disk full"):
        changed.save_pretrained(tmp_path)
    monkeypatch.undo()
    after = GradiendModel.from_pretrained(tmp_path).state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert not any(p.name.startswith(".gradiend-save") for p in tmp_path.iterdir())


def test_mismatching_base_model_raises_naming_the_parameter():
    bert, _ = tiny_model("bert")
    gradiend = GradiendModel.from_base_model(bert, params=["*.layer.1.*"])
    gpt, _ = tiny_model("gpt2")
    with pytest.raises(GradiendParameterError, match="bert.encoder.layer.1.attention.self.query.weight"):
        gradiend.check_base_model(gpt)
    wider, _ = tiny_model("bert", hidden=48)
    with pytest.raises(GradiendParameterError, match=r"has shape \[48, 48\] .* but \[32, 32\]"):
        gradiend.check_base_model(wider)
    gradiend.check_base_model(tiny_model("bert", seed=4)[0])


def test_config_validation():
    with pytest.raises(ValueError, match="Unknown source"):
        GradiendConfig(source="gradient")
    with pytest.raises(ValueError, match="two different classes"):
        GradiendConfig(feature_classes=["M"])
    with pytest.raises(ValueError, match="fingerprint"):
        GradiendConfig(param_names=["a"], param_shapes=[[2]], param_fingerprint="0" * 16)
    config = GradiendConfig(param_names=["a", "b"], param_shapes=[[2, 3], [4]], feature_classes=["3SG", "3PL"])
    assert config.num_base_parameters == 10
    assert config.encoding_directions == {"3SG": 1, "3PL": -1}


def test_invert_encoding_keeps_reconstruction(bert):
    gradiend = GradiendModel.from_base_model(bert[0], params=["*.layer.1.output.*"], feature_classes=["M", "F"])
    grads = random_gradients(gradiend)
    h = gradiend.encode(grads)
    rec = gradiend.decode(h)
    gradiend.invert_encoding()
    h2 = gradiend.encode(grads)
    torch.testing.assert_close(h2, -h)
    for name, value in gradiend.decode(h2).items():
        torch.testing.assert_close(value, rec[name])
    assert gradiend.config.positive_class == "F"


@pytest.mark.parametrize("latent_dim", [1, 2])
@pytest.mark.parametrize("batch", [None, 3])
def test_fused_reconstruction_loss_matches_autograd(bert, batch, latent_dim):
    """The hand-written backward of the reconstruction error equals plain autograd on the flat computation (a
    one-dimensional latent takes the elementwise outer product)."""
    torch.manual_seed(0)
    gradiend = GradiendModel.from_base_model(bert[0], params=["*.layer.1.*"], latent_dim=latent_dim)
    names = gradiend.param_names
    sources, targets = random_gradients(gradiend, batch, seed=1), random_gradients(gradiend, batch, seed=2)
    gradiend(source_gradients=sources, target_gradients=targets).loss.backward()
    fused = {k: p.grad.clone() for k, p in gradiend.named_parameters()}

    plain = {k: p.detach().clone().requires_grad_(True) for k, p in gradiend.named_parameters()}
    lead = 1 if batch is None else batch
    g = torch.cat([sources[n].reshape(lead, -1) for n in names], dim=1)
    t = torch.cat([targets[n].reshape(lead, -1) for n in names], dim=1)
    w_e = torch.cat([plain[f"encoder.weight.{k}"] for k in gradiend.param_keys], dim=1)
    w_d = torch.cat([plain[f"decoder.weight.{k}"] for k in gradiend.param_keys], dim=0)
    b_d = torch.cat([plain[f"decoder.bias.{k}"] for k in gradiend.param_keys])
    h = torch.tanh(g @ w_e.T + plain["encoder.bias"])
    ((h @ w_d.T + b_d - t) ** 2).mean().backward()
    for key, value in fused.items():
        torch.testing.assert_close(value, plain[key].grad, rtol=1e-4, atol=1e-9)
