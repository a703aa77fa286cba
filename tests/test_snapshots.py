"""The best-GRADIEND snapshot restored tensor by tensor: the weights `from_pretrained` reads, and refusals that leave
the model as it was."""

import json

import pytest
import torch

import gradiend_hf.snapshots as snapshots
from gradiend_hf import GradiendModel
from gradiend_hf.errors import GradiendTrainingError
from gradiend_hf.snapshots import SNAPSHOT_NAME, check_snapshot, restore_snapshot

from .tiny_models import tiny_model


def gradiend(seed, family="bert", **kwargs):
    model, _ = tiny_model(family)
    torch.manual_seed(seed)
    return GradiendModel.from_base_model(model, **kwargs)


def saved(tmp_path, model, step=3, **kwargs):
    folder = tmp_path / "best-gradiend"
    model.save_pretrained(folder, json_files={SNAPSHOT_NAME: {"global_step": step}}, **kwargs)
    return str(folder)


def copy_of(model):
    return {key: value.clone() for key, value in model.state_dict().items()}


@pytest.mark.parametrize("shards", [None, "200KB"], ids=["one-file", "sharded"])
def test_restore_gives_the_weights_from_pretrained_reads(tmp_path, monkeypatch, shards):
    best = gradiend(1)
    best.config.feature_classes, best.config.positive_class = ["M", "F"], "F"
    folder = saved(tmp_path, best, **({"max_shard_size": shards} if shards else {}))
    # Several openings per file: the reopening path runs too.
    monkeypatch.setattr(snapshots, "_BYTES_PER_OPENING", 50_000)
    trained = gradiend(2)  # other random weights, the same tensors
    assert not torch.equal(trained.encoder.bias, best.encoder.bias)
    config = restore_snapshot(trained, folder, step=3)
    loaded = GradiendModel.from_pretrained(folder).state_dict()
    restored = trained.state_dict()
    assert restored.keys() == loaded.keys()
    for key in loaded:
        assert torch.equal(restored[key], loaded[key]), key
    assert config.positive_class == "F" and trained.config.positive_class is None


def damage_step(folder):
    path = f"{folder}/{SNAPSHOT_NAME}"
    with open(path, encoding="utf-8") as file:
        record = json.load(file)
    with open(path, "w", encoding="utf-8") as file:
        json.dump({**record, "global_step": 9}, file)


def damage_weights(folder):
    with open(f"{folder}/model.safetensors", "r+b") as file:
        file.truncate(1000)


@pytest.mark.parametrize(
    "damage, message",
    [
        (damage_step, "taken at step 9"),
        (damage_weights, "missing or corrupt"),
        (None, "not this GRADIEND's"),
    ],
    ids=["another-step", "truncated", "other-tensors"],
)
def test_a_refused_snapshot_leaves_the_model_unchanged(tmp_path, damage, message):
    if damage is None:  # a GRADIEND over other parameters
        folder = saved(tmp_path, gradiend(1, params=["bert.encoder.layer.0.*"]))
    else:
        folder = saved(tmp_path, gradiend(1))
        damage(folder)
    trained = gradiend(2)
    before = copy_of(trained)
    with pytest.raises(GradiendTrainingError, match=message):
        restore_snapshot(trained, folder, step=3)
    after = trained.state_dict()
    assert all(torch.equal(before[key], after[key]) for key in before)


def test_check_reads_only_the_headers(tmp_path, monkeypatch):
    folder = saved(tmp_path, gradiend(1))

    def no_tensor_reads(*args, **kwargs):
        raise AssertionError("check_snapshot read a tensor")

    monkeypatch.setattr(GradiendModel, "from_pretrained", no_tensor_reads)
    files = check_snapshot(gradiend(2), folder, step=3)
    assert list(files) == ["model.safetensors"] and len(files["model.safetensors"]) == len(gradiend(2).state_dict())
