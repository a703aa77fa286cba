"""Exporting a GRADIEND rewrite as a PEFT LoRA adapter (`gradiend_hf/export/peft_export.py`)."""

import json
import os
import warnings

import pytest
import torch
from peft import PeftModel
from transformers import LlamaConfig, LlamaForCausalLM

from gradiend_hf import GradiendModel
from gradiend_hf.cli.export_peft import main as cli_main
from gradiend_hf.export import ExportError, export_peft, load_exported

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


def fresh(family):
    return tiny_model(family)[0]


def assert_same_parameters(actual, expected, rel=1e-5):
    """Every parameter (tied ones under each name) agrees to `rel` × the weight's scale."""
    for name, param in expected.named_parameters(remove_duplicate=False):
        value = actual.get_parameter(name)
        scale = max(param.abs().max().item(), 1.0)
        assert (value - param).abs().max().item() <= rel * scale, name


def logits(model, family):
    tokenizer = tokenizer_for(family)
    inputs = tokenizer(
        ["He said she would come.", "The doctor knew that [MASK] was tired."], return_tensors="pt", padding=True
    )
    with torch.no_grad():
        return model(**inputs).logits


# ---------------------------------------------------------------------------------------------------------------------
# exactness
# ---------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("family", FAMILIES)
def test_full_rank_merge_equals_dense_rewrite(family, tmp_path):
    model = fresh(family)
    gradiend = random_gradiend(model)
    report = gradiend.export_peft(model, 1.0, LR, tmp_path, rank="full")
    expected = gradiend.rewrite(model, 1.0, LR)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        merged = PeftModel.from_pretrained(fresh(family), tmp_path).merge_and_unload()
    assert_same_parameters(merged, expected)
    # The tied LM head got the embedding's delta, as the gradient did.
    head, embedding = merged.get_output_embeddings().weight, expected.get_input_embeddings().weight
    assert (head - embedding).abs().max() <= 1e-5 * embedding.abs().max()
    assert report.relative_error < 1e-6
    assert all(m.rank == m.max_rank for m in report.modules if m.kind == "lora")


@pytest.mark.parametrize("family", FAMILIES)
def test_unmerged_adapter_behaves_like_the_rewrite_and_merge_keeps_the_tie(family, tmp_path):
    model = fresh(family)
    gradiend = random_gradiend(model)
    export_peft(gradiend, model, -1.0, LR, tmp_path)
    expected = logits(gradiend.rewrite(model, -1.0, LR), family)

    unmerged = load_exported(fresh(family), tmp_path)
    torch.testing.assert_close(logits(unmerged, family), expected, atol=1e-5, rtol=1e-5)
    merged = load_exported(fresh(family), tmp_path, merge=True)
    assert merged.get_output_embeddings().weight is merged.get_input_embeddings().weight
    torch.testing.assert_close(logits(merged, family), expected, atol=1e-5, rtol=1e-5)


def test_tied_llama_embedding_is_copied_for_input_and_head(tmp_path):
    model = fresh("llama")
    assert model.lm_head.weight is model.model.embed_tokens.weight
    gradiend = random_gradiend(model, params=["model.embed_tokens.weight", "model.layers.0.mlp.up_proj.weight"])
    export_peft(gradiend, model, 1.0, LR, tmp_path)
    config = json.loads((tmp_path / "adapter_config.json").read_text())
    assert sorted(config["modules_to_save"]) == ["lm_head", "model.embed_tokens"]

    peft_model = load_exported(fresh("llama"), tmp_path)
    new = model.model.embed_tokens.weight + gradiend.update(1.0, LR)["model.embed_tokens.weight"]
    lm_head = peft_model.base_model.model.lm_head
    torch.testing.assert_close(lm_head.modules_to_save["default"].weight, new, atol=0, rtol=0)
    torch.testing.assert_close(logits(peft_model, "llama"), logits(gradiend.rewrite(model, 1.0, LR), "llama"))


@pytest.mark.parametrize("family,rank", [("gpt2", 2), ("llama", 3), ("bert", 0.6)])
def test_low_rank_error_is_the_svd_truncation_error(family, rank, tmp_path):
    model = fresh(family)
    gradiend = random_gradiend(model)
    report = export_peft(gradiend, model, 1.0, LR, tmp_path, rank=rank)
    update = gradiend.update(1.0, LR)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        merged = PeftModel.from_pretrained(fresh(family), tmp_path).merge_and_unload()

    lora_modules = [m for m in report.modules if m.kind == "lora"]
    assert lora_modules
    for entry in lora_modules:
        weight_name = f"{entry.module}.weight"
        delta = update[weight_name].double()
        merged_delta = merged.get_parameter(weight_name).double() - model.get_parameter(weight_name).double()
        s = torch.linalg.svdvals(delta)
        tail = (s[entry.rank :].pow(2).sum() / s.pow(2).sum()).sqrt().item()
        actual = ((delta - merged_delta).norm() / delta.norm()).item()
        assert entry.relative_error == pytest.approx(tail, rel=1e-5, abs=1e-7)
        assert actual == pytest.approx(tail, rel=1e-3, abs=1e-5)
        if isinstance(rank, float):
            energy = s.pow(2).cumsum(0) / s.pow(2).sum()
            assert energy[entry.rank - 1] >= rank and (entry.rank == 1 or energy[entry.rank - 2] < rank)
        # Biases are exact whatever the rank.
        if f"{entry.module}.bias" in update:
            bias_name = f"{entry.module}.bias"
            torch.testing.assert_close(
                merged.get_parameter(bias_name), model.get_parameter(bias_name) + update[bias_name], atol=0, rtol=0
            )

    config = json.loads((tmp_path / "adapter_config.json").read_text())
    ranks = {m.module: m.rank for m in lora_modules}
    assert {name: ranks[name] for name in config["rank_pattern"]} == config["rank_pattern"]
    assert config["alpha_pattern"] == config["rank_pattern"] and config["lora_alpha"] == config["r"]
    assert all(ranks[name] == config["r"] for name in ranks if name not in config["rank_pattern"])


def test_partly_covered_modules_and_uncovered_parameters(tmp_path):
    model = fresh("bert")
    params = [
        "bert.encoder.layer.0.attention.self.query.weight",  # weight only
        "bert.encoder.layer.0.attention.self.key.bias",  # bias only
        "bert.encoder.layer.1.output.LayerNorm.weight",  # norm weight, not its bias
    ]
    gradiend = random_gradiend(model, params=params)
    export_peft(gradiend, model, 1.0, LR, tmp_path, rank=2)
    update = gradiend.update(1.0, LR)
    merged = load_exported(fresh("bert"), tmp_path, merge=True)

    key_bias = "bert.encoder.layer.0.attention.self.key.bias"
    torch.testing.assert_close(merged.get_parameter(key_bias), model.get_parameter(key_bias) + update[key_bias])
    norm_weight = "bert.encoder.layer.1.output.LayerNorm.weight"
    torch.testing.assert_close(
        merged.get_parameter(norm_weight), model.get_parameter(norm_weight) + update[norm_weight]
    )
    for name, param in model.named_parameters():
        if name not in update and name != "bert.encoder.layer.0.attention.self.query.weight":
            assert torch.equal(merged.get_parameter(name), param), name


def test_layers_with_and_without_bias_go_to_two_adapters(tmp_path):
    def make():
        torch.manual_seed(0)
        tokenizer = tokenizer_for("llama")
        config = LlamaConfig(
            vocab_size=len(tokenizer),
            hidden_size=32,
            num_hidden_layers=1,
            num_attention_heads=2,
            num_key_value_heads=1,
            intermediate_size=64,
            attention_bias=True,  # q/k/v/o have biases, the MLP has none
            tie_word_embeddings=True,
        )
        return LlamaForCausalLM(config).eval()

    model = make()
    gradiend = random_gradiend(model)
    report = export_peft(gradiend, model, 1.0, LR, tmp_path)
    assert set(report.adapters) == {"default", "no_bias"}
    assert json.loads((tmp_path / "adapter_config.json").read_text())["lora_bias"] is True
    assert json.loads((tmp_path / "no_bias" / "adapter_config.json").read_text())["lora_bias"] is False

    # Plain PEFT, as in the card.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        peft_model = PeftModel.from_pretrained(make(), tmp_path)
        peft_model.load_adapter(tmp_path, subfolder="no_bias", adapter_name="no_bias")
        peft_model.base_model.set_adapter(["default", "no_bias"], inference_mode=True)
        merged = peft_model.merge_and_unload(adapter_names=["default", "no_bias"])
    assert_same_parameters(merged, gradiend.rewrite(model, 1.0, LR))


# ---------------------------------------------------------------------------------------------------------------------
# files, card, report
# ---------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("family,task_type,fan_in_fan_out", [("bert", None, False), ("gpt2", "CAUSAL_LM", True)])
def test_adapter_config_fields(family, task_type, fan_in_fan_out, tmp_path):
    model = fresh(family)
    gradiend = random_gradiend(model, base_model_name_or_path="org/tiny-" + family)
    export_peft(gradiend, model, 1.0, LR, tmp_path, rank=4)
    config = json.loads((tmp_path / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == "org/tiny-" + family
    assert config["task_type"] == task_type
    assert config["fan_in_fan_out"] is fan_in_fan_out
    assert config["lora_bias"] is True and config["r"] == config["lora_alpha"] == 4
    module_names = {name for name, _ in model.named_modules()}
    assert set(config["target_modules"]) <= module_names and set(config["modules_to_save"]) <= module_names
    assert os.path.isfile(tmp_path / "adapter_model.safetensors")


def test_card_names_hub_base_models_only(tmp_path):
    model = fresh("llama")
    gradiend = random_gradiend(model, params=["*.layers.0.mlp.*"], base_model_name_or_path="org/tiny-llama")
    report = export_peft(gradiend, model, 1.0, LR, tmp_path / "hub", rank=2)
    card = (tmp_path / "hub" / "README.md").read_text()
    front = card.split("---")[1]
    assert "library_name: peft" in front and "base_model: org/tiny-llama" in front
    assert "base_model_relation: adapter" in front and "base_model:adapter:org/tiny-llama" in front
    assert "- gradiend" in front and "- lora" in front
    for module in report.modules:
        assert f"| `{module.module}` | default | lora | 2 / " in card
    assert f"**{report.relative_error:.3e}**" in card

    local = tmp_path / "local-base"
    local.mkdir()
    gradiend.config.base_model_name_or_path = str(local)
    export_peft(gradiend, model, 1.0, LR, tmp_path / "local", rank=2)
    front = (tmp_path / "local" / "README.md").read_text().split("---")[1]
    assert "base_model:" not in front and "base_model_relation" not in front


def test_evaluate_fn_reports_kept_effect_and_leaves_the_base_model(tmp_path):
    model = fresh("llama")
    model.requires_grad_(True)
    before = {name: value.clone() for name, value in model.state_dict().items()}
    gradiend = random_gradiend(model)

    def evaluate(m):
        return {"logit_mean": logits(m, "llama").mean().item()}

    report = export_peft(gradiend, model, 1.0, LR, tmp_path, rank="full", evaluate_fn=evaluate)
    assert set(report.metrics) == {"base", "rewrite", "adapter"}
    assert report.metrics["adapter"]["logit_mean"] == pytest.approx(report.metrics["rewrite"]["logit_mean"], abs=1e-5)
    assert report.metrics["base"]["logit_mean"] != pytest.approx(report.metrics["rewrite"]["logit_mean"], abs=1e-5)
    assert type(model.model.layers[0].mlp.up_proj).__name__ == "Linear"
    assert all(p.requires_grad for p in model.parameters())
    for name, value in model.state_dict().items():
        assert torch.equal(value, before[name]), name
    assert model.lm_head.weight is model.model.embed_tokens.weight
    assert "## Kept effect" in (tmp_path / "README.md").read_text()
    assert report.size_bytes == os.path.getsize(tmp_path / "adapter_model.safetensors")


def test_clear_errors(tmp_path):
    model = fresh("llama")
    only_norms = random_gradiend(model, params=["*layernorm*"])
    with pytest.raises(ExportError, match="no Linear/Conv1D"):
        export_peft(only_norms, model, 1.0, LR, tmp_path)
    gradiend = random_gradiend(model, params=["*.layers.0.mlp.*"])
    with pytest.raises(ValueError, match="rank"):
        export_peft(gradiend, model, 1.0, LR, tmp_path, rank=0)
    bert = fresh("bert")
    with pytest.raises(ExportError, match="has submodules"):  # BERT's MLM bias lives on the head module itself
        export_peft(random_gradiend(bert, params=["cls.predictions.bias"]), bert, 1.0, LR, tmp_path)
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="not a folder"):
        export_peft(gradiend, model, 1.0, LR, tmp_path / "file")


def test_cli_exports_from_saved_models(tmp_path):
    model = fresh("gpt2")
    model.save_pretrained(tmp_path / "base")
    gradiend = random_gradiend(model, params=["transformer.h.1.*"], base_model_name_or_path=str(tmp_path / "base"))
    gradiend.save_pretrained(tmp_path / "gradiend")
    argv = ["--gradiend", str(tmp_path / "gradiend"), "--feature-factor", "-1", "--learning-rate", "0.01"]
    assert cli_main([*argv, "--rank", "0.9", "--output-dir", str(tmp_path / "adapter")]) == 0
    manifest = json.loads((tmp_path / "adapter" / "gradiend_export.json").read_text())
    assert manifest["rank"] == 0.9 and manifest["feature_factor"] == -1.0
    assert cli_main([*argv, "--steering", "--output-dir", str(tmp_path / "steer")]) == 0
    assert (tmp_path / "steer" / "feature" / "adapter_config.json").is_file()


def test_exporting_again_replaces_the_previous_adapter(tmp_path):
    model = fresh("llama")
    gradiend = random_gradiend(model, params=["*.layers.0.mlp.*"])
    export_peft(gradiend, model, 1.0, LR, tmp_path, rank=2)
    (tmp_path / "notes.txt").write_text("kept")
    report = export_peft(gradiend, model, -1.0, LR, tmp_path, rank=5)
    config = json.loads((tmp_path / "adapter_config.json").read_text())
    assert config["r"] == 5 and report.feature_factor == -1.0
    assert (tmp_path / "notes.txt").read_text() == "kept"
    assert not [name for name in os.listdir(tmp_path) if name.startswith(".gradiend-export-")]
