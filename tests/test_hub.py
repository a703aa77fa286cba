"""Pushing GRADIENDs, rewritten models, adapters and the demo Space to a (local) Hub, and loading them back.

Everything goes through the real `huggingface_hub`, `transformers` and `peft` clients against `tests/hub_server.py`.
"""

from __future__ import annotations

import contextlib
import copy
import io
import re
from pathlib import Path

import gradio
import pytest
import torch
from huggingface_hub import ModelCard, RepoCard, hf_hub_download
from peft import PeftModel
from transformers import AutoModelForMaskedLM

from gradiend_hf import GradiendModel, load_base_model
from gradiend_hf.cli.push import main as push_main
from gradiend_hf.evaluation import evaluate_encoder
from gradiend_hf.hub import push_adapter, push_gradiend, push_rewrite
from gradiend_hf.space import push_space, render_space

from .test_evaluation_common import he_she_dataset, one_thread, train_gradiend  # noqa: F401
from .test_model_card import decoder_report


pytestmark = pytest.mark.usefixtures("one_thread")

SPACE_DIR = Path(__file__).resolve().parents[1] / "spaces" / "gradiend-demo"


@pytest.fixture(scope="module")
def trained_bert():
    gradiend, base, tokenizer = train_gradiend("bert", steps=30)
    return gradiend, base, tokenizer


@pytest.fixture
def gradiend(trained_bert):
    """A private copy: pushes record facts in the config."""
    return copy.deepcopy(trained_bert[0])


def push_base(local_hub, base, tokenizer, tmp_path, name="tiny-bert") -> str:
    repo_id = f"{local_hub.user}/{name}"
    base.save_pretrained(tmp_path / name)
    tokenizer.save_pretrained(tmp_path / name)
    local_hub.api.create_repo(repo_id)
    local_hub.api.upload_folder(repo_id=repo_id, folder_path=tmp_path / name)
    return repo_id


def assert_same_weights(a, b) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for key in sa:
        assert torch.equal(sa[key], sb[key]), key


# --------------------------------------------------------------------------- GRADIENDs


def test_sharded_push_loads_back_bit_identical_with_card_and_figures(local_hub, gradiend, tmp_path):
    repo_id = f"{local_hub.user}/gradiend-he-she"
    gradiend.config.base_model_name_or_path = "google-bert/bert-base-cased"
    figure = tmp_path / "encoder.png"
    figure.write_bytes(b"\x89PNG\r\n\x1a\n" + b"0" * 64)
    commit = gradiend.push_to_hub(repo_id, max_shard_size="300KB", decoder_report=decoder_report(), figures=[figure])

    files = local_hub.api.list_repo_files(repo_id)
    shards = [f for f in files if re.fullmatch(r"model-\d{5}-of-\d{5}\.safetensors", f)]
    assert len(shards) >= 3 and "model.safetensors.index.json" in files
    assert {"config.json", "README.md", "encoder.png"} <= set(files)

    loaded = GradiendModel.from_pretrained(repo_id)
    assert_same_weights(loaded, gradiend)
    assert loaded.config.param_fingerprint == gradiend.config.param_fingerprint
    assert loaded.config.selected_rewrite["learning_rate"] == 0.5  # recorded by the card, pushed in config.json

    info = local_hub.api.model_info(repo_id)
    assert info.sha == commit.oid
    assert info.card_data.library_name == "gradiend-hf"
    assert info.card_data.base_model == "google-bert/bert-base-cased"
    assert {"gradiend", "gradient-encoder", "m", "f"} <= set(info.card_data.tags)
    card = ModelCard.load(repo_id)
    assert f'GradiendModel.from_pretrained("{repo_id}")' in card.text
    assert "![Encoder](encoder.png)" in card.text
    assert "/tmp" not in card.text  # no local path of the temporary push folder

    # A second push with fewer shards leaves no stale shard behind.
    gradiend.push_to_hub(repo_id)
    files = local_hub.api.list_repo_files(repo_id)
    assert [f for f in files if f.endswith(".safetensors")] == ["model.safetensors"]
    assert_same_weights(GradiendModel.from_pretrained(repo_id, force_download=True), gradiend)


def test_push_to_a_branch_and_load_by_branch_and_commit(local_hub, gradiend):
    repo_id = f"{local_hub.user}/gradiend-revisions"
    first = push_gradiend(gradiend, repo_id)
    changed = copy.deepcopy(gradiend)
    with torch.no_grad():
        changed.encoder.bias.add_(1.0)
    second = changed.push_to_hub(repo_id, revision="v2", commit_message="Shifted encoder bias")

    assert_same_weights(GradiendModel.from_pretrained(repo_id), gradiend)
    assert_same_weights(GradiendModel.from_pretrained(repo_id, revision="v2"), changed)
    assert_same_weights(GradiendModel.from_pretrained(repo_id, revision=second.oid), changed)
    assert_same_weights(GradiendModel.from_pretrained(repo_id, revision=first.oid), gradiend)
    assert [c.title for c in local_hub.api.list_repo_commits(repo_id, revision="v2")][0] == "Shifted encoder bias"


def test_quick_start_of_the_pushed_card_runs_as_pasted(local_hub, trained_bert, gradiend, tmp_path):
    _, base, tokenizer = trained_bert
    gradiend.config.base_model_name_or_path = push_base(local_hub, base, tokenizer, tmp_path)
    encoder = evaluate_encoder(gradiend, base, tokenizer, he_she_dataset(), max_rows=4, max_neutral_rows=2)
    repo_id = f"{local_hub.user}/gradiend-quick-start"
    gradiend.push_to_hub(repo_id, encoder_report=encoder, decoder_report=decoder_report())

    text = ModelCard.load(repo_id).text
    (code,) = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert "encode_rows" in code and "gradiend.rewrite(" in code
    output = io.StringIO()
    with contextlib.redirect_stdout(output):
        namespace: dict = {}
        exec(code, namespace)  # the snippet exactly as a user would paste it
    # The comment promises about +1 for the positive class's word; the trained tiny GRADIEND delivers it.
    assert "about +1" in code
    value = float(re.search(r"tensor\(\[\[([-\d.e]+)\]\]", output.getvalue()).group(1))
    assert value > 0.5
    assert_same_weights(namespace["gradiend"], gradiend)
    loaded_base, _ = load_base_model(namespace["gradiend"])
    assert_same_weights(loaded_base, base)


# --------------------------------------------------------------------------- rewritten models and adapters


def test_pushed_rewrite_loads_with_plain_transformers(local_hub, trained_bert, gradiend, tmp_path):
    _, base, tokenizer = trained_bert
    gradiend.config.base_model_name_or_path = push_base(local_hub, base, tokenizer, tmp_path)
    rewritten = gradiend.rewrite(base, feature_factor=-1.0, learning_rate=2.0)
    repo_id = f"{local_hub.user}/tiny-bert-she"
    push_rewrite(rewritten, tokenizer, repo_id, gradiend=gradiend, feature_factor=-1.0, learning_rate=2.0)

    loaded = AutoModelForMaskedLM.from_pretrained(repo_id)
    assert_same_weights(loaded, rewritten)
    card = local_hub.api.model_info(repo_id).card_data
    assert card.library_name == "transformers"
    assert card.base_model == gradiend.config.base_model_name_or_path
    assert card.base_model_relation == "finetune"
    assert f'AutoModelForMaskedLM.from_pretrained("{repo_id}")' in ModelCard.load(repo_id).text


def test_pushed_adapter_loads_with_peft(local_hub, trained_bert, gradiend, tmp_path):
    _, base, tokenizer = trained_bert
    adapter_dir = tmp_path / "adapter"
    gradiend.export_peft(base, -1.0, 2.0, adapter_dir, rank="full")
    repo_id = f"{local_hub.user}/tiny-bert-she-lora"
    push_adapter(adapter_dir, repo_id)

    fresh = copy.deepcopy(base)
    merged = PeftModel.from_pretrained(fresh, repo_id).merge_and_unload()
    rewritten = gradiend.rewrite(base, feature_factor=-1.0, learning_rate=2.0)
    inputs = tokenizer(["The doctor said that [MASK] would come home."], return_tensors="pt")
    with torch.no_grad():
        torch.testing.assert_close(merged(**inputs).logits, rewritten(**inputs).logits, rtol=1e-4, atol=1e-4)
    assert local_hub.api.model_info(repo_id).card_data.library_name == "peft"
    text = ModelCard.load(repo_id).text
    assert f'"{repo_id}"' in text and str(adapter_dir) not in text  # the quick start points at the Hub repo


# --------------------------------------------------------------------------- the command line


def test_cli_push_of_a_saved_folder(local_hub, gradiend, tmp_path, capsys):
    folder = tmp_path / "saved"
    gradiend.save_pretrained(folder)
    (folder / "checkpoint-10").mkdir()  # trainer leftovers in subfolders stay local
    (folder / "checkpoint-10" / "model.safetensors").write_bytes(b"x")
    repo_id = f"{local_hub.user}/from-cli"
    push_main([str(folder), repo_id, "--revision", "dev", "--private"])
    assert f"Pushed {folder} to {repo_id}" in capsys.readouterr().out

    assert_same_weights(GradiendModel.from_pretrained(repo_id, revision="dev"), gradiend)
    files = local_hub.api.list_repo_files(repo_id, revision="dev")
    assert sorted(files) == [".gitattributes", "README.md", "config.json", "model.safetensors"]
    assert local_hub.api.model_info(repo_id).private
    card = ModelCard.load(hf_hub_download(repo_id, "README.md", revision="dev"))
    assert f'from_pretrained("{repo_id}")' in card.text and str(folder) not in card.text


@pytest.mark.parametrize(
    "argv, message",
    [
        (["missing-folder", "u/x"], "is not a folder"),
        (["{folder}", "u/x", "--kind", "adapter"], "holds a gradiend, not a adapter"),
    ],
)
def test_cli_push_errors_are_one_line(local_hub, gradiend, tmp_path, capsys, argv, message):
    gradiend.save_pretrained(tmp_path / "saved")
    capsys.readouterr()
    argv = [arg.replace("{folder}", str(tmp_path / "saved")) for arg in argv]
    with pytest.raises(SystemExit) as exit_info:
        push_main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("gradiend-hf push: error:") and message in err and err.count("\n") == 1


# --------------------------------------------------------------------------- the Space


def test_push_space_renders_front_matter_and_app(local_hub, gradiend, tmp_path):
    gradiend_id = f"{local_hub.user}/gradiend-for-space"
    gradiend.config.base_model_name_or_path = "google-bert/bert-base-cased"
    gradiend.push_to_hub(gradiend_id)
    space_id = f"{local_hub.user}/gradiend-demo"
    push_space(space_id, gradiend_id, examples=["My friend said that [MASK] would come."])

    assert sorted(local_hub.api.list_repo_files(space_id, repo_type="space")) == [
        ".gitattributes",
        "README.md",
        "app.py",
        "requirements.txt",
    ]
    info = local_hub.api.space_info(space_id)
    assert info.sdk == "gradio"
    card = RepoCard.load(space_id, repo_type="space")
    assert card.data.sdk == "gradio" and card.data.sdk_version == gradio.__version__
    assert card.data.app_file == "app.py"
    assert card.data.models == [gradiend_id, "google-bert/bert-base-cased"]  # base model read from the Hub config
    app = Path(hf_hub_download(space_id, "app.py", repo_type="space")).read_text()
    assert f'"{gradiend_id}"' in app and "build_demo(GRADIEND_ID, examples=EXAMPLES)" in app
    assert '"My friend said that [MASK] would come."' in app
    compile(app, "app.py", "exec")
    requirements = Path(hf_hub_download(space_id, "requirements.txt", repo_type="space")).read_text()
    assert "gradiend-hf[app]==0.1.0" in requirements


def test_space_folder_in_the_repo_is_the_rendered_one(tmp_path):
    card = RepoCard.load(SPACE_DIR / "README.md")
    gradiend_id, base_model_id = card.data.models
    files = render_space(tmp_path, gradiend_id, base_model_id)
    for name, content in files.items():
        assert (SPACE_DIR / name).read_text() == content, (
            f"spaces/gradiend-demo/{name} is out of date; re-render it with "
            f"gradiend_hf.hub.render_space('spaces/gradiend-demo', {gradiend_id!r}, {base_model_id!r})"
        )


def test_a_space_needs_a_hub_id(tmp_path):
    with pytest.raises(ValueError, match="not a Hub repo id"):
        render_space(tmp_path, str(tmp_path), None)


def test_cli_push_hub_errors_are_one_line(local_hub, gradiend, tmp_path, capsys, monkeypatch):
    gradiend.save_pretrained(tmp_path / "saved")
    capsys.readouterr()
    monkeypatch.setenv("HF_TOKEN", "hf_not_a_valid_token")
    with pytest.raises(SystemExit) as exit_info:
        push_main([str(tmp_path / "saved"), f"{local_hub.user}/denied"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("gradiend-hf push: error:") and err.count("\n") == 1
    assert "401" in err and "hf auth login" in err
