"""Saving never loses work: user files survive, a failed or refused save leaves the previous model bit-identical,
and leftovers of interrupted saves are cleaned up by the next save."""

import json
import os
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM

from gradiend_hf import GradiendModel
from gradiend_hf.artefacts import INCOMPLETE_NAME, MANIFEST_NAME, STAGING_MARKER, read_manifest
from gradiend_hf.errors import GradiendLoadError, GradiendSaveError, NonFiniteError
from gradiend_hf.export import export_peft, export_steering
from gradiend_hf.io import atomic_folder, atomic_write_text, clean_leftovers
from gradiend_hf.model_card import write_gradiend_card
from gradiend_hf.rewrite_io import save_rewritten

from .tiny_models import tiny_model


USER_FILES = {"model-backup.safetensors": b"user weights", "model_eval.json": b"{}", "model_v1.bin": b"pickle?"}


@pytest.fixture
def llama():
    torch.manual_seed(0)
    return tiny_model("llama")


def gradiend_of(model, params=("model.layers.1.*",), seed=0):
    torch.manual_seed(seed)
    return GradiendModel.from_base_model(model, params=list(params))


def state(folder) -> dict[str, torch.Tensor]:
    tensors = {}
    for name in sorted(os.listdir(folder)):
        if name.endswith(".safetensors") and name.startswith("model") and "backup" not in name:
            tensors.update(load_file(os.path.join(folder, name)))
    return tensors


def assert_loads_as(folder, gradiend):
    loaded = GradiendModel.from_pretrained(folder)
    assert loaded.param_names == gradiend.param_names
    for key, value in gradiend.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key


def put_user_files(folder) -> None:
    for name, data in USER_FILES.items():
        (Path(folder) / name).write_bytes(data)


def assert_user_files(folder) -> None:
    for name, data in USER_FILES.items():
        assert (Path(folder) / name).read_bytes() == data, f"{name} was removed or changed"


def leftovers(parent) -> list[str]:
    found = []
    for root, dirs, files in os.walk(parent):
        found += [os.path.join(root, n) for n in dirs + files if "gradiend-tmp" in n or n == STAGING_MARKER]
    return found


# --------------------------------------------------------------------------- user files and stale files


def test_resave_keeps_user_files_and_drops_only_its_own_stale_shards(llama, tmp_path):
    model, _ = llama
    big, small = gradiend_of(model, ("model.layers.*",)), gradiend_of(model, ("model.layers.1.mlp.*",))
    folder = tmp_path / "g"
    big.save_pretrained(folder, max_shard_size="100KB")
    assert len([n for n in os.listdir(folder) if n.startswith("model-000")]) > 1
    put_user_files(folder)
    small.save_pretrained(folder)
    assert sorted(n for n in os.listdir(folder) if n.startswith("model")) == sorted(
        ["model.safetensors", *[n for n in USER_FILES if n.startswith("model")]]
    )
    assert_user_files(folder)
    assert_loads_as(folder, small)
    assert read_manifest(folder)["files"] == sorted(["README.md", "config.json", "model.safetensors"])


def test_save_rewritten_over_a_sharded_model_is_never_without_weights(llama, tmp_path):
    model, tokenizer = llama
    folder = tmp_path / "rewritten"
    gradiend = gradiend_of(model)
    rewritten = gradiend.rewrite(model, 1.0, 1e-3)
    rewritten.save_pretrained(folder, max_shard_size="50KB")  # an earlier, sharded save by transformers itself
    put_user_files(folder)
    save_rewritten(rewritten, tokenizer, folder, gradiend=gradiend, feature_factor=1.0, overwrite=True)
    reloaded = AutoModelForCausalLM.from_pretrained(folder)
    for name, value in rewritten.state_dict().items():
        assert torch.equal(reloaded.state_dict()[name], value), name
    assert not [n for n in os.listdir(folder) if n.startswith("model-000")], "stale shards next to the new weights"
    assert_user_files(folder)


def test_a_failing_save_leaves_the_previous_save_and_no_staging(llama, tmp_path, monkeypatch):
    model, _ = llama
    old, new = gradiend_of(model, seed=0), gradiend_of(model, seed=1)
    folder = tmp_path / "g"
    old.save_pretrained(folder)
    put_user_files(folder)

    def broken_card(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(GradiendModel, "create_model_card", broken_card)
    with pytest.raises(OSError, match="disk full"):
        new.save_pretrained(folder)
    assert_loads_as(folder, old)
    assert_user_files(folder)
    assert leftovers(tmp_path) == []


def test_a_nan_gradiend_is_never_saved(llama, tmp_path):
    model, _ = llama
    old, broken = gradiend_of(model), gradiend_of(model, seed=2)
    folder = tmp_path / "g"
    old.save_pretrained(folder)
    with torch.no_grad():
        next(iter(broken.decoder.weight.values()))[0, 0] = float("nan")
    with pytest.raises(NonFiniteError, match="decoder.weight.*nan or infinite"):
        broken.save_pretrained(folder)
    assert_loads_as(folder, old)


# --------------------------------------------------------------------------- kinds


def test_rewritten_model_into_a_gradiend_folder_is_refused(llama, tmp_path):
    model, tokenizer = llama
    gradiend = gradiend_of(model)
    folder = tmp_path / "g"
    gradiend.save_pretrained(folder)
    with pytest.raises(GradiendSaveError, match="holds a GRADIEND; writing a rewritten model"):
        save_rewritten(gradiend.rewrite(model, 1.0, 1e-3), tokenizer, folder, gradiend=gradiend)
    assert_loads_as(folder, gradiend)


def test_gradiend_into_a_base_model_folder_is_refused(llama, tmp_path):
    model, _ = llama
    folder = tmp_path / "base"
    model.save_pretrained(folder)
    before = state(folder)
    with pytest.raises(GradiendSaveError, match="model that gradiend-hf did not write"):
        gradiend_of(model).save_pretrained(folder)
    after = state(folder)
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)
    assert json.loads((folder / "config.json").read_text())["model_type"] == "llama"


@pytest.mark.parametrize("exporter", ["peft", "steering"])
def test_adapter_exports_into_a_gradiend_folder_are_refused(exporter, llama, tmp_path):
    model, _ = llama
    gradiend = gradiend_of(model, ("model.layers.1.mlp.*",))
    folder = tmp_path / "g"
    gradiend.save_pretrained(folder)
    with pytest.raises(GradiendSaveError, match="holds a GRADIEND"):
        if exporter == "peft":
            export_peft(gradiend, model, 1.0, 1e-3, folder)
        else:
            export_steering(gradiend, model, 1e-3, folder)
    assert_loads_as(folder, gradiend)


def test_overwrite_replaces_another_kind_but_keeps_user_files(llama, tmp_path):
    model, tokenizer = llama
    gradiend = gradiend_of(model)
    folder = tmp_path / "g"
    gradiend.save_pretrained(folder)
    put_user_files(folder)
    save_rewritten(gradiend.rewrite(model, 1.0, 1e-3), tokenizer, folder, gradiend=gradiend, overwrite=True)
    assert json.loads((folder / "config.json").read_text())["model_type"] == "llama"
    assert read_manifest(folder)["kind"] == "rewritten-model"
    assert_user_files(folder)
    with pytest.raises(GradiendLoadError, match="not a GRADIEND"):
        GradiendModel.from_pretrained(folder)


def test_saving_to_a_file_is_refused(llama, tmp_path):
    model, _ = llama
    (tmp_path / "file").write_text("mine")
    with pytest.raises(GradiendSaveError, match="it is a file"):
        gradiend_of(model).save_pretrained(tmp_path / "file")
    assert (tmp_path / "file").read_text() == "mine"


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root may write into read-only folders")
def test_saving_into_a_read_only_folder_is_refused(llama, tmp_path):
    model, _ = llama
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        with pytest.raises(GradiendSaveError, match="not writable"):
            gradiend_of(model).save_pretrained(locked / "g")
    finally:
        locked.chmod(0o755)


def test_card_update_keeps_the_weights_bit_identical_and_adds_the_figure(llama, tmp_path):
    model, _ = llama
    gradiend = gradiend_of(model)
    folder = tmp_path / "g"
    gradiend.save_pretrained(folder)
    before = state(folder)
    figure = tmp_path / "figure.png"
    figure.write_bytes(b"\x89PNG fake")
    write_gradiend_card(gradiend, folder, figures=[figure])
    after = state(folder)
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert (folder / "figure.png").read_bytes() == b"\x89PNG fake"
    assert "figure.png" in read_manifest(folder)["files"]
    assert_loads_as(folder, gradiend)


# --------------------------------------------------------------------------- leftovers of interrupted saves


def test_leftovers_of_a_kill_before_the_swap_are_removed_by_the_next_save(llama, tmp_path):
    model, _ = llama
    gradiend = gradiend_of(model)
    folder = tmp_path / "g"
    gradiend.save_pretrained(folder)
    staging = tmp_path / ".g.gradiend-tmp-0123456789ab"  # what a save killed while writing leaves
    staging.mkdir()
    (staging / STAGING_MARKER).touch()
    (staging / "model.safetensors").write_bytes(b"half a file")
    gradiend.save_pretrained(folder)
    assert leftovers(tmp_path) == []
    assert_loads_as(folder, gradiend)


def test_leftovers_of_a_kill_after_the_swap_keep_a_late_user_file(tmp_path):
    folder = tmp_path / "g"
    with atomic_folder(folder, "gradiend") as staging:
        (staging / "config.json").write_text('{"model_type": "gradiend", "v": 1}')
    # The previous content, swapped out by a save that was killed before cleaning it up, holding a file of the
    # user's written in the moment before the swap.
    retired = tmp_path / ".g.gradiend-tmp-ba9876543210"
    retired.mkdir()
    (retired / "config.json").write_text('{"model_type": "gradiend", "v": 0}')
    (retired / MANIFEST_NAME).write_text(json.dumps({"kind": "gradiend", "files": ["config.json"]}))
    (retired / "notes.txt").write_text("late user file")
    clean_leftovers(folder)
    assert not retired.exists()
    assert (folder / "notes.txt").read_text() == "late user file"
    assert json.loads((folder / "config.json").read_text())["v"] == 1


def test_a_staging_folder_of_a_living_save_is_not_removed(tmp_path):
    folder = tmp_path / "g"
    with atomic_folder(folder, "gradiend") as outer:
        (outer / "config.json").write_text('{"model_type": "gradiend"}')
        clean_leftovers(folder)  # e.g. another process saving the same folder meanwhile
        assert outer.exists() and (outer / "config.json").exists()
    assert (folder / "config.json").exists()


def test_an_interrupted_in_place_save_is_refused_on_load(llama, tmp_path):
    model, _ = llama
    gradiend = gradiend_of(model)
    folder = tmp_path / "g"
    gradiend.save_pretrained(folder)
    atomic_write_text(folder / INCOMPLETE_NAME, "{}")
    with pytest.raises(GradiendLoadError, match="interrupted save"):
        GradiendModel.from_pretrained(folder)
    gradiend.save_pretrained(folder)  # saving again repairs it
    assert not (folder / INCOMPLETE_NAME).exists()
    assert_loads_as(folder, gradiend)


def test_in_place_saves_when_the_folder_is_the_working_directory(llama, tmp_path, monkeypatch):
    model, _ = llama
    old, new = gradiend_of(model, seed=0), gradiend_of(model, ("model.layers.0.*",), seed=1)
    folder = tmp_path / "g"
    old.save_pretrained(folder, max_shard_size="50KB")
    put_user_files(folder)
    monkeypatch.chdir(folder)
    new.save_pretrained(".")
    assert os.getcwd() == str(folder)  # the working directory was not swapped away
    assert_loads_as(folder, new)
    assert_user_files(folder)
    assert not [n for n in os.listdir(folder) if n.startswith("model-000")]
    assert not (folder / INCOMPLETE_NAME).exists() and leftovers(tmp_path) == []
