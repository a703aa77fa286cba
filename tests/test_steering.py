"""Runtime steering with exported adapters (`gradiend_hf/export/steering.py`)."""

import json
import warnings

import pytest
import torch
from peft import PeftModel

from gradiend_hf import GradiendModel
from gradiend_hf.export import ExportError, export_steering, load_steerable
from gradiend_hf.rewrite import add_update_

from .tiny_models import tiny_model, tokenizer_for


FAMILIES = ("bert", "gpt2", "llama")
LR = 1e-2


def random_gradiend(model, params=None, seed=1, **kwargs):
    """A GRADIEND whose decoder is random normal, so every delta is a dense, full-rank matrix."""
    gradiend = GradiendModel.from_base_model(model, params=params, **kwargs)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in gradiend.decoder.parameters():
            param.copy_(torch.randn(param.shape, generator=generator))
    return gradiend


def logits(model, family):
    tokenizer = tokenizer_for(family)
    inputs = tokenizer(
        ["He said she would come.", "The doctor knew that [MASK] was tired."], return_tensors="pt", padding=True
    )
    with torch.no_grad():
        return model(**inputs).logits


@pytest.mark.parametrize("family", FAMILIES)
def test_strength_equals_rewrite_and_disable_restores_base_exactly(family, tmp_path):
    model, _ = tiny_model(family)
    gradiend = random_gradiend(model)
    export_steering(gradiend, model, LR, tmp_path)
    base = logits(model, family)
    expected = {s: logits(gradiend.rewrite(model, s, LR), family) for s in (1.0, -2.5, 0.3)}

    steer = load_steerable(model, tmp_path)
    assert torch.equal(logits(steer, family), base)  # starts switched off
    for strength, reference in expected.items():
        steer.set_strength(strength)
        torch.testing.assert_close(logits(steer, family), reference, atol=2e-5, rtol=1e-5)
        with steer.disable():
            assert torch.equal(logits(steer, family), base)
        torch.testing.assert_close(logits(steer, family), reference, atol=2e-5, rtol=1e-5)
    with steer.steer(0.0, bias=False):
        assert torch.equal(logits(steer, family), base)
    assert steer.feature_factor == 0.3 and steer.bias

    restored = steer.unload()
    assert restored is model and not isinstance(restored, PeftModel)
    assert torch.equal(logits(restored, family), base)
    assert restored.get_output_embeddings().weight is restored.get_input_embeddings().weight


def test_bias_part_can_be_switched_off(tmp_path):
    model, _ = tiny_model("llama")
    gradiend = random_gradiend(model)
    export_steering(gradiend, model, LR, tmp_path)
    reference, _ = tiny_model("llama")
    add_update_(reference, gradiend.update(0.0, LR, part="decoder-weight"), alpha=1.5)  # 1.5 · lr · W_d only

    steer = load_steerable(model, tmp_path, feature_factor=1.5, bias=False)
    torch.testing.assert_close(logits(steer, "llama"), logits(reference, "llama"), atol=2e-5, rtol=1e-5)


def test_tied_embedding_delta_reaches_the_lm_head(tmp_path):
    model, _ = tiny_model("llama")
    gradiend = random_gradiend(model, params=["model.embed_tokens.weight"])
    report = export_steering(gradiend, model, LR, tmp_path)
    assert report.adapters == {}  # nothing for LoRA: the tied embedding is a dense delta
    expected = model.model.embed_tokens.weight + gradiend.update(2.0, LR)["model.embed_tokens.weight"]
    expected_logits = logits(gradiend.rewrite(model, 2.0, LR), "llama")

    steer = load_steerable(model, tmp_path, feature_factor=2.0)
    torch.testing.assert_close(model.lm_head.weight, expected)
    torch.testing.assert_close(model.model.embed_tokens.weight, expected)
    torch.testing.assert_close(logits(steer, "llama"), expected_logits)


def test_latent_dim_two_gets_one_feature_adapter_per_dimension(tmp_path):
    model, _ = tiny_model("gpt2")
    gradiend = random_gradiend(model, params=["transformer.h.0.*"], latent_dim=2)
    report = export_steering(gradiend, model, LR, tmp_path, rank=3)
    assert set(report.adapters) == {"feature_0", "feature_1", "bias"}
    manifest = json.loads((tmp_path / "gradiend_steering.json").read_text())
    assert manifest["feature_adapters"] == ["feature_0", "feature_1"] and manifest["latent_dim"] == 2
    for module in report.modules:
        if module.kind == "lora":
            assert module.rank == 3 and 0 < module.relative_error < 1

    export_steering(gradiend, model, LR, tmp_path / "full")
    expected = logits(gradiend.rewrite(model, [0.5, -1.0], LR), "gpt2")
    steer = load_steerable(model, tmp_path / "full", feature_factor=[0.5, -1.0])
    torch.testing.assert_close(logits(steer, "gpt2"), expected, atol=2e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="2 feature value"):
        steer.set_strength(1.0)


def test_steering_adapters_load_with_plain_peft(tmp_path):
    model, _ = tiny_model("bert")
    gradiend = random_gradiend(model)
    export_steering(gradiend, model, LR, tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        peft_model = PeftModel.from_pretrained(tiny_model("bert")[0], tmp_path / "feature", adapter_name="feature")
        peft_model.load_adapter(tmp_path / "bias", adapter_name="bias")
    config = json.loads((tmp_path / "feature" / "adapter_config.json").read_text())
    assert config["lora_alpha"] == config["r"] and config["lora_bias"] is False
    assert "steering" in (tmp_path / "README.md").read_text().split("---")[1]


def test_steering_needs_the_identity_decoder_activation(tmp_path):
    model, _ = tiny_model("llama")
    gradiend = random_gradiend(model, params=["*.layers.0.mlp.*"], activation_decoder="tanh")
    with pytest.raises(ExportError, match="identity decoder activation"):
        export_steering(gradiend, model, LR, tmp_path)
    with pytest.raises(FileNotFoundError, match="not a steering export"):
        load_steerable(model, tmp_path)
