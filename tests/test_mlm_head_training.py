"""The MLM head as an artefact (save/load, refusals, card), its training, and a GRADIEND trained through it."""

import json
import os

import pytest
import torch
from datasets import Dataset
from safetensors.torch import save_file

from gradiend_hf import GradiendModel, GradiendTrainer, GradiendTrainingArguments
from gradiend_hf.cli.arguments import ModelArguments
from gradiend_hf.data import load_builtin
from gradiend_hf.errors import GradiendError, GradiendLoadError, GradiendSaveError
from gradiend_hf.gradients import encode_texts
from gradiend_hf.mlm_head import (
    MLMHeadConfig,
    MLMHeadModel,
    MLMHeadTrainingArguments,
    mlm_head_objective,
    objective_for_gradiend,
    train_mlm_head,
)
from gradiend_hf.objectives import default_mask_token

from .tiny_models import _SUBJECTS, _VERBS, tiny_model


@pytest.fixture(scope="module")
def gender():
    return load_builtin("gender-en")


def make_head(model, tokenizer):
    torch.manual_seed(0)
    config = MLMHeadConfig(
        labels=["he", "she"],
        hidden_size=model.config.hidden_size,
        mask_token=default_mask_token(tokenizer, model),
        label_classes={"he": "M", "she": "F"},
        base_model_name_or_path="tiny/llama",
    )
    return MLMHeadModel(config)


def test_head_save_load_round_trips_bit_identically(tmp_path):
    model, tokenizer = tiny_model("llama")
    head = make_head(model, tokenizer)
    assert abs(float(head.classifier.weight.std()) - 0.02) < 0.01 and not head.classifier.bias.any()
    head.save_pretrained(tmp_path / "head")
    assert head.config._name_or_path == os.path.realpath(tmp_path / "head")
    loaded = MLMHeadModel.from_pretrained(tmp_path / "head")
    assert loaded.state_dict().keys() == head.state_dict().keys()
    for key, value in head.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    assert loaded.config.labels == ["he", "she"] and loaded.config.mask_token == head.config.mask_token
    loaded.save_pretrained(tmp_path / "again")
    for name in ("model.safetensors", "config.json"):
        assert (tmp_path / "head" / name).read_bytes() == (tmp_path / "again" / name).read_bytes(), name
    card = (tmp_path / "head" / "README.md").read_text()
    assert "library_name: gradiend-hf" in card and "| `she` | F |" in card and "MLMHeadModel.from_pretrained" in card


def test_head_loading_refuses_what_is_no_whole_head(tmp_path):
    model, tokenizer = tiny_model("llama")
    head = make_head(model, tokenizer)
    folder = tmp_path / "head"
    head.save_pretrained(folder)
    (folder / "model.safetensors").rename(tmp_path / "weights")
    with pytest.raises(GradiendLoadError, match="no weights"):
        MLMHeadModel.from_pretrained(folder)
    (tmp_path / "pickle.bin").write_bytes(b"x")
    (tmp_path / "pickle.bin").rename(folder / "pytorch_model.bin")
    with pytest.raises(GradiendLoadError, match="pickled"):
        MLMHeadModel.from_pretrained(folder)
    (folder / "pytorch_model.bin").unlink()
    (tmp_path / "weights").rename(folder / "model.safetensors")
    (folder / "config.json").unlink()
    with pytest.raises(GradiendLoadError, match="no config.json"):
        MLMHeadModel.from_pretrained(folder)
    # Another model's folder, and a head whose weights do not match its config.
    GradiendModel.from_base_model(model, params=["model.norm.weight"]).save_pretrained(tmp_path / "gradiend")
    with pytest.raises(GradiendLoadError, match="not an MLM head"):
        MLMHeadModel.from_pretrained(tmp_path / "gradiend")
    head.save_pretrained(tmp_path / "edited")
    save_file({"classifier.weight": torch.zeros(2, 8), "classifier.bias": torch.zeros(2)}, tmp_path / "w.st")
    os.replace(tmp_path / "w.st", tmp_path / "edited" / "model.safetensors")
    with pytest.raises(GradiendLoadError, match="do not match"):
        MLMHeadModel.from_pretrained(tmp_path / "edited")
    with pytest.raises(GradiendSaveError):  # a head never lands on another kind of artefact
        head.save_pretrained(tmp_path / "gradiend")


def cue_rows(n, offset=0):
    """Rows whose class shows right after the blank ("… [MASK] washed herself"): inside the pooled window."""
    rows = []
    for i in range(offset, offset + n):
        word = ("he", "she")[i % 2]
        cue = {"he": "himself", "she": "herself"}[word]
        subject, verb = _SUBJECTS[i % len(_SUBJECTS)], _VERBS[(i // 2) % len(_VERBS)]
        rows.append(
            {
                "masked": f"{subject.capitalize()} {verb} [MASK] {cue} was ready.",
                "factual": word,
                "alternative": ("she", "he")[i % 2],
                "factual_class": {"he": "M", "she": "F"}[word],
                "alternative_class": {"he": "F", "she": "M"}[word],
            }
        )
    return Dataset.from_list(rows)


def test_train_mlm_head_learns_what_the_pooled_window_shows(tmp_path):
    model, tokenizer = tiny_model("llama")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    args = MLMHeadTrainingArguments(str(tmp_path / "head"), learning_rate=1e-2, num_train_epochs=20, disable_tqdm=True)
    result = train_mlm_head(model, tokenizer, cue_rows(40), args, eval_dataset=cue_rows(30, offset=40))
    assert result.chance == pytest.approx(0.5, abs=0.05)
    assert result.accuracy >= 0.9, result
    assert result.head.labels == ["he", "she"] and result.head.config.label_classes == {"he": "M", "she": "F"}
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())  # the decoder stays frozen
    summary = json.loads((tmp_path / "head" / "config.json").read_text())["training_summary"]
    assert summary["eval_accuracy"] == result.accuracy and summary["learning_rate"] == 1e-2
    assert MLMHeadTrainingArguments("x").learning_rate == 1e-4  # the reference's recipe by default
    defaults = MLMHeadTrainingArguments("x")
    assert (defaults.num_train_epochs, defaults.per_device_train_batch_size, defaults.pooling_length) == (5, 4, 3)


def test_a_gradiend_trained_through_the_head_learns_gender_and_finds_its_head(gender, tmp_path):
    model, tokenizer = tiny_model("llama")
    small = gender["train"].select(range(200))
    head_args = MLMHeadTrainingArguments(str(tmp_path / "head"), num_train_epochs=1, disable_tqdm=True)
    head = train_mlm_head(model, tokenizer, small, head_args, eval_dataset=gender["validation"].select(range(50))).head
    objective = mlm_head_objective(head, tokenizer, model)
    torch.manual_seed(0)
    gradiend = GradiendModel.from_base_model(model, params=["model.layers.1.*"])
    trainer = GradiendTrainer(
        model=gradiend,
        base_model=model,
        processing_class=tokenizer,
        args=GradiendTrainingArguments(
            str(tmp_path / "gradiend"),
            max_steps=40,
            learning_rate=1e-3,
            sentences_per_gradient=4,
            eval_steps=10,
            eval_max_rows=64,
            report_to="none",
            disable_tqdm=True,
            seed=0,
        ),
        train_dataset=gender,
        objective=objective,
    )
    trainer.train()
    metrics = trainer.evaluate()
    print("correlation through the MLM head:", metrics["eval_correlation"])
    assert metrics["eval_correlation"] >= 0.9, metrics
    assert gradiend.config.objective == "causal_lm_mlm_head"
    record = gradiend.config.mlm_head
    assert record["name_or_path"] == os.path.realpath(tmp_path / "head") and sorted(record["labels"]) == ["he", "she"]

    trainer.save_model(str(tmp_path / "final"))
    loaded = GradiendModel.from_pretrained(tmp_path / "final")
    assert loaded.config.mlm_head == record
    found = objective_for_gradiend(loaded, tokenizer, model)
    assert found.name == "causal_lm_mlm_head"
    assert all(torch.equal(found.head.state_dict()[k], v) for k, v in head.state_dict().items())
    rows = gender["validation"].select(range(8))
    texts = (rows["masked"], rows["factual"], rows["alternative"])
    torch.testing.assert_close(
        encode_texts(loaded, model, found, *texts), encode_texts(gradiend, model, objective, *texts)
    )
    # The rewrite is one of the original model (the mask is an existing token): a PEFT adapter and cards work.
    assert "MLM head" in (tmp_path / "final" / "README.md").read_text()
    report = loaded.export_peft(model, 1.0, 1e-3, tmp_path / "adapter")
    adapter = json.loads((tmp_path / "adapter" / "adapter_config.json").read_text())
    assert adapter["task_type"] == "CAUSAL_LM" and report.relative_error < 1e-4
    # A plain GRADIEND's objective is its family, as before.
    plain = GradiendModel.from_base_model(model, params=["model.norm.weight"])
    assert objective_for_gradiend(plain, tokenizer, model).name == "causal_lm"


def test_the_command_line_selects_the_objective_by_its_head():
    assert ModelArguments(mlm_head="out/head").objective == "causal_lm_mlm_head"
    with pytest.raises(GradiendError, match="needs its head"):
        ModelArguments(objective="causal_lm_mlm_head")
    with pytest.raises(GradiendError, match="drop one"):
        ModelArguments(objective="masked_lm", mlm_head="out/head")
