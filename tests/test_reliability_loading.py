"""Loading refuses what is incomplete, foreign or pickled, with an error that names the problem."""

import json
import os

import pytest
import torch
from safetensors.torch import load_file, save_file

from gradiend_hf import GradiendModel, load_base_model
from gradiend_hf.errors import GradiendError, GradiendFileNotFoundError, GradiendLoadError
from gradiend_hf.hub import push_folder

from .tiny_models import tiny_model


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    torch.manual_seed(0)
    model, tokenizer = tiny_model("bert")
    gradiend = GradiendModel.from_base_model(model, params=["bert.encoder.layer.1.output.*"])
    folder = tmp_path_factory.mktemp("saved") / "g"
    gradiend.save_pretrained(folder)
    base = tmp_path_factory.mktemp("base") / "bert"
    model.save_pretrained(base)
    tokenizer.save_pretrained(base)
    return gradiend, folder, base


def copy_of(folder, tmp_path):
    target = tmp_path / "copy"
    target.mkdir()
    for name in os.listdir(folder):
        if not os.path.isdir(os.path.join(folder, name)):
            (target / name).write_bytes((folder / name).read_bytes())
    return target


def edit_weights(folder, edit):
    tensors = load_file(folder / "model.safetensors")
    edit(tensors)
    save_file(tensors, folder / "model.safetensors", metadata={"format": "pt"})


def test_a_folder_without_config_is_refused(saved, tmp_path):
    folder = copy_of(saved[1], tmp_path)
    os.remove(folder / "config.json")
    with pytest.raises(GradiendLoadError, match="no config.json"):
        GradiendModel.from_pretrained(folder)


def test_a_base_model_folder_is_not_a_gradiend(saved):
    with pytest.raises(GradiendLoadError, match="holds a 'bert' model, not a GRADIEND"):
        GradiendModel.from_pretrained(saved[2])


def test_a_config_that_is_not_json_is_refused(saved, tmp_path):
    folder = copy_of(saved[1], tmp_path)
    (folder / "config.json").write_text("{not json")
    with pytest.raises(GradiendLoadError, match="not a readable JSON config"):
        GradiendModel.from_pretrained(folder)


def test_a_missing_tensor_is_named(saved, tmp_path):
    folder = copy_of(saved[1], tmp_path)
    edit_weights(folder, lambda t: t.pop(next(k for k in t if k.startswith("decoder.bias"))))
    with pytest.raises(GradiendLoadError, match=r"missing tensors \['decoder\.bias\.bert__encoder"):
        GradiendModel.from_pretrained(folder)


def test_an_extra_tensor_is_named(saved, tmp_path):
    folder = copy_of(saved[1], tmp_path)
    edit_weights(folder, lambda t: t.update({"encoder.weight.someone_else": torch.zeros(1, 3)}))
    with pytest.raises(GradiendLoadError, match="unexpected tensors.*someone_else"):
        GradiendModel.from_pretrained(folder)


def test_a_tensor_of_another_shape_is_refused(saved, tmp_path):
    folder = copy_of(saved[1], tmp_path)
    key = "encoder.bias"
    edit_weights(folder, lambda t: t.update({key: torch.zeros(3)}))
    with pytest.raises(GradiendLoadError, match=r"other shapes: encoder.bias: file \(3,\), config \(1,\)"):
        GradiendModel.from_pretrained(folder)


def test_weights_of_another_save_are_refused(saved, tmp_path):
    folder = copy_of(saved[1], tmp_path)
    config = json.loads((folder / "config.json").read_text())
    config["param_names"] = config["param_names"][:1]
    config["param_shapes"] = config["param_shapes"][:1]
    config.pop("param_fingerprint")
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(GradiendLoadError, match="do not match its config.json.*unexpected"):
        GradiendModel.from_pretrained(folder)


def test_a_folder_with_only_pickled_weights_is_refused(saved, tmp_path):
    folder = copy_of(saved[1], tmp_path)
    tensors = load_file(folder / "model.safetensors")
    torch.save(tensors, folder / "pytorch_model.bin")
    os.remove(folder / "model.safetensors")
    with pytest.raises(GradiendLoadError, match="only pickled weights.*pytorch_model.bin.*arbitrary code"):
        GradiendModel.from_pretrained(folder)
    with pytest.raises(GradiendLoadError, match="pickled weights.*never uploaded|only pickled"):
        push_folder(folder, "me/pickled")


def test_use_safetensors_false_is_refused(saved):
    with pytest.raises(GradiendLoadError, match="safetensors only"):
        GradiendModel.from_pretrained(saved[1], use_safetensors=False)


def test_a_folder_with_a_config_but_no_weights_is_incomplete(saved, tmp_path):
    folder = copy_of(saved[1], tmp_path)
    os.remove(folder / "model.safetensors")
    with pytest.raises(GradiendLoadError, match="no weights.*incomplete"):
        GradiendModel.from_pretrained(folder)


@pytest.mark.parametrize("path", ["./no/such/gradiend", "/no/such/gradiend", "a/b/c"])
def test_a_path_that_does_not_exist_is_named_at_once(path):
    with pytest.raises(GradiendFileNotFoundError, match="does not exist"):
        GradiendModel.from_pretrained(path)


def test_a_file_is_not_a_gradiend_folder(saved):
    with pytest.raises(GradiendLoadError, match="is a file"):
        GradiendModel.from_pretrained(saved[1] / "config.json")


def test_a_hub_id_while_offline_says_so(monkeypatch):
    # conftest sets HF_HUB_OFFLINE=1: nothing is fetched, and the message says why.
    with pytest.raises(GradiendLoadError, match="cannot be reached|neither a local folder nor a repo"):
        GradiendModel.from_pretrained("someone/not-cached-gradiend")
    with pytest.raises(GradiendLoadError, match="base model 'someone/not-cached-model'"):
        load_base_model("someone/not-cached-model")


def test_base_model_loading_errors(saved, tmp_path):
    with pytest.raises(GradiendFileNotFoundError, match="base model folder './missing' does not exist"):
        load_base_model("./missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(GradiendLoadError, match="has no config.json"):
        load_base_model(str(tmp_path / "empty"))
    with pytest.raises(GradiendError, match="Unknown objective 'masked'"):
        load_base_model(str(saved[2]), objective="masked")
    model, _ = load_base_model(str(saved[2]))  # the good case still works
    assert type(model).__name__ == "BertForMaskedLM"


def test_push_never_uploads_a_pickle(local_hub, saved, tmp_path):
    folder = copy_of(saved[1], tmp_path)
    torch.save({"args": 1}, folder / "training_args.bin")
    (folder / "optimizer.pt").write_bytes(b"pickled state")
    repo_id = f"{local_hub.user}/no-pickles"
    push_folder(folder, repo_id)
    files = local_hub.api.list_repo_files(repo_id)
    assert "config.json" in files and "model.safetensors" in files
    assert not [name for name in files if name.endswith((".bin", ".pt", ".pkl"))], files
