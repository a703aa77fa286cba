"""Pushing an MLM head to the (local) Hub and loading it, and a GRADIEND that records the head by its Hub id."""

import pytest
import torch

from gradiend_hf.errors import GradiendError, GradiendLoadError
from gradiend_hf.mlm_head import MLMHeadConfig, MLMHeadModel, mlm_head_objective

from .tiny_models import tiny_model


def test_push_and_load_a_head_through_the_hub(local_hub, tmp_path):
    model, tokenizer = tiny_model("gpt2")
    torch.manual_seed(0)
    head = MLMHeadModel(
        MLMHeadConfig(labels=["he", "she"], hidden_size=model.config.hidden_size, mask_token=tokenizer.eos_token)
    )
    head.save_pretrained(tmp_path / "head")
    repo_id = f"{local_hub.user}/mlm-head"
    head.push_to_hub(repo_id, commit_message="the head")
    assert head.config._name_or_path.endswith("head")  # pushing does not move the head
    files = set(local_hub.api.list_repo_files(repo_id))
    assert {"config.json", "model.safetensors", "README.md"} <= files and not files & {
        ".gradiend-hf-manifest.json",
        ".gradiend-card.json",
    }
    loaded = MLMHeadModel.from_pretrained(repo_id)
    assert all(torch.equal(loaded.state_dict()[k], v) for k, v in head.state_dict().items())
    with open(local_hub.api.hf_hub_download(repo_id, "README.md"), encoding="utf-8") as card:
        assert f'MLMHeadModel.from_pretrained("{repo_id}")' in card.read()
    assert mlm_head_objective(repo_id, tokenizer, model).config_fields()["mlm_head"]["name_or_path"] == repo_id
    with pytest.raises(GradiendError, match="commit arguments"):
        head.push_to_hub(repo_id, no_such_option=True)
    # A repo of another model is refused before any weight is read.
    local_hub.api.create_repo(f"{local_hub.user}/other")
    local_hub.api.upload_file(
        path_or_fileobj=b'{"model_type": "gpt2"}', path_in_repo="config.json", repo_id=f"{local_hub.user}/other"
    )
    with pytest.raises(GradiendLoadError, match="not an MLM head"):
        MLMHeadModel.from_pretrained(f"{local_hub.user}/other")
