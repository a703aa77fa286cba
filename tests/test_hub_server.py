# Copyright 2026 The gradiend-hf contributors.
#
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at
#
#     http://www.apache.org/licenses/LICENSE-2.0
#
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS,
# WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
# See the License for the specific language governing permissions and
# limitations under the License.
"""End-to-end tests of `LocalHub` with the real `huggingface_hub`, `transformers` and `peft` clients.

Every test uploads through the client's public API and compares what comes back (bytes, weights, metadata) with the
originals, so a server that answers wrongly makes the client fail or return different data.
"""

import copy
import hashlib
import os
from pathlib import Path

import datasets
import pytest
import torch
from huggingface_hub import (
    HfApi,
    ModelCard,
    ModelCardData,
    constants,
    file_exists,
    get_hf_file_metadata,
    hf_hub_download,
    hf_hub_url,
    snapshot_download,
)
from huggingface_hub.errors import (
    EntryNotFoundError,
    HfHubHTTPError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from transformers import AutoModel, AutoModelForMaskedLM, BertConfig, BertForMaskedLM


# `huggingface_hub`'s LFS upload passes a file object as `data=`, which httpx deprecates; not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore:Use 'content=<...>' to upload raw bytes:DeprecationWarning")

BIG_FILE_SIZE = 12 * 1024 * 1024  # above the Hub's 10 MB limit for regular git files => LFS


def _tiny_bert_config() -> BertConfig:
    return BertConfig(
        vocab_size=100,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
    )


def _lfs_uploads(hub) -> list[str]:
    """Paths of the blob uploads the storage server received (basic PUTs and multipart parts)."""
    return [path for method, path, status in hub.request_log if method == "PUT" and path.startswith("/upload/")]


def test_fixture_points_clients_at_local_hub(local_hub):
    assert local_hub.url.startswith("http://127.0.0.1:")
    assert constants.ENDPOINT == local_hub.url
    assert os.environ["HF_ENDPOINT"] == local_hub.url
    assert hf_hub_url("user/repo", "config.json").startswith(local_hub.url)
    assert Path(constants.HF_HUB_CACHE) == local_hub.cache_dir
    assert local_hub.api.whoami()["name"] == local_hub.user
    # Module-level helpers (used by peft) go through a shared `HfApi` created at import time.
    repo_id = f"{local_hub.user}/module-level"
    local_hub.api.create_repo(repo_id)
    assert file_exists(repo_id, ".gitattributes")
    assert not file_exists(repo_id, "missing.json")


def test_upload_file_list_info_download(local_hub):
    api = local_hub.api
    repo_id = f"{local_hub.user}/files"
    repo_url = api.create_repo(repo_id)
    assert repo_url.repo_id == repo_id
    # Like on the Hub, a new repo starts with a commit holding the default `.gitattributes`.
    assert api.list_repo_files(repo_id) == [".gitattributes"]

    content = b'{"hello": "world"}\n'
    commit = api.upload_file(path_or_fileobj=content, path_in_repo="data/config.json", repo_id=repo_id)
    assert len(commit.oid) == 40 and int(commit.oid, 16) >= 0

    assert sorted(api.list_repo_files(repo_id)) == [".gitattributes", "data/config.json"]
    info = api.model_info(repo_id, files_metadata=True)
    assert info.sha == commit.oid
    sibling = {s.rfilename: s for s in info.siblings}["data/config.json"]
    assert sibling.size == len(content)
    assert sibling.lfs is None
    assert sibling.blob_id == hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()  # git blob id

    metadata = get_hf_file_metadata(hf_hub_url(repo_id, "data/config.json"))
    assert metadata.commit_hash == commit.oid
    assert metadata.etag == sibling.blob_id
    assert metadata.size == len(content)

    path = hf_hub_download(repo_id, "data/config.json")
    assert Path(path).read_bytes() == content
    assert Path(path).is_relative_to(local_hub.cache_dir)

    # Same content again: the client sees the unchanged oid in the preupload answer and makes no commit.
    again = api.upload_file(path_or_fileobj=content, path_in_repo="data/config.json", repo_id=repo_id)
    assert again.oid == commit.oid
    assert len(api.list_repo_commits(repo_id)) == 2

    # Tree listing: pagination, folders, expanded last commits.
    local_hub.hub.tree_page_size = 1
    entries = list(api.list_repo_tree(repo_id, recursive=True, expand=True))
    assert [e.path for e in entries] == [".gitattributes", "data", "data/config.json"]
    assert entries[2].last_commit.oid == commit.oid

    api.delete_file("data/config.json", repo_id=repo_id)
    assert api.list_repo_files(repo_id) == [".gitattributes"]
    with pytest.raises(EntryNotFoundError):
        hf_hub_download(repo_id, "data/config.json", force_download=True)


def test_upload_folder_with_large_file_uses_lfs(local_hub, tmp_path):
    api = local_hub.api
    repo_id = f"{local_hub.user}/large"
    api.create_repo(repo_id)
    local_hub.hub.multipart_chunk_size = 5 * 1024 * 1024  # the 12 MiB file goes up in 3 parts

    folder = tmp_path / "upload"
    (folder / "nested").mkdir(parents=True)
    files = {
        "big.dat": os.urandom(BIG_FILE_SIZE),  # LFS because of its size
        "small.safetensors": os.urandom(2048),  # LFS because `.gitattributes` says `*.safetensors`
        "nested/notes.txt": b"plain text stays a regular git file\n",
    }
    for name, content in files.items():
        (folder / name).write_bytes(content)

    commit = api.upload_folder(folder_path=folder, repo_id=repo_id, commit_message="add folder")
    assert any("/part/" in p for p in _lfs_uploads(local_hub.hub)), "multipart LFS upload expected"
    assert len(_lfs_uploads(local_hub.hub)) == 3 + 1  # 3 parts + 1 basic PUT

    info = api.model_info(repo_id, files_metadata=True)
    siblings = {s.rfilename: s for s in info.siblings}
    for name in ("big.dat", "small.safetensors"):
        assert siblings[name].lfs is not None
        assert siblings[name].lfs.sha256 == hashlib.sha256(files[name]).hexdigest()
    assert siblings["nested/notes.txt"].lfs is None

    # LFS downloads go through a redirect to the storage server, which refuses requests carrying the token.
    metadata = get_hf_file_metadata(hf_hub_url(repo_id, "big.dat"))
    assert metadata.location.startswith(local_hub.hub.storage_url)
    assert metadata.etag == hashlib.sha256(files["big.dat"]).hexdigest()
    assert metadata.size == BIG_FILE_SIZE
    assert metadata.commit_hash == commit.oid

    snapshot = Path(snapshot_download(repo_id))
    for name, content in files.items():
        assert (snapshot / name).read_bytes() == content
    assert snapshot.name == commit.oid
    local_dir = Path(snapshot_download(repo_id, local_dir=tmp_path / "local_dir"))
    for name, content in files.items():
        assert (local_dir / name).read_bytes() == content

    # Re-uploading the same LFS content skips the blob upload (the batch API reports it as present).
    n_uploads = len(_lfs_uploads(local_hub.hub))
    api.upload_file(path_or_fileobj=files["big.dat"], path_in_repo="copy-of-big.dat", repo_id=repo_id)
    assert len(_lfs_uploads(local_hub.hub)) == n_uploads
    assert Path(hf_hub_download(repo_id, "copy-of-big.dat")).read_bytes() == files["big.dat"]


def test_branches_tags_and_commit_shas(local_hub):
    api = local_hub.api
    repo_id = f"{local_hub.user}/revisions"
    api.create_repo(repo_id)
    v1 = api.upload_file(path_or_fileobj=b"v1", path_in_repo="weights.txt", repo_id=repo_id).oid

    api.create_branch(repo_id, branch="dev")
    api.create_branch(repo_id, branch="dev", exist_ok=True)
    v2 = api.upload_file(path_or_fileobj=b"v2", path_in_repo="weights.txt", repo_id=repo_id, revision="dev").oid
    api.upload_file(path_or_fileobj=b"only on dev", path_in_repo="dev.txt", repo_id=repo_id, revision="dev")
    api.create_tag(repo_id, tag="v1.0", revision=v1)

    refs = api.list_repo_refs(repo_id)
    assert {b.name for b in refs.branches} == {"main", "dev"}
    assert [(t.name, t.target_commit) for t in refs.tags] == [("v1.0", v1)]

    def read(revision: str) -> bytes:
        return Path(hf_hub_download(repo_id, "weights.txt", revision=revision)).read_bytes()

    assert read("main") == b"v1"
    assert read("dev") == b"v2"
    assert read(v2) == b"v2"  # by full commit sha
    assert read("v1.0") == b"v1"  # by tag
    assert api.model_info(repo_id, revision=v2[:12]).sha == v2  # by short sha
    assert "dev.txt" not in api.list_repo_files(repo_id)
    assert "dev.txt" in api.list_repo_files(repo_id, revision="dev")
    assert [c.commit_id for c in api.list_repo_commits(repo_id, revision="dev")][1] == v2

    snapshot = Path(snapshot_download(repo_id, revision="dev"))
    assert (snapshot / "dev.txt").read_bytes() == b"only on dev"

    with pytest.raises(RevisionNotFoundError):
        hf_hub_download(repo_id, "weights.txt", revision="no-such-branch")
    with pytest.raises(EntryNotFoundError):
        hf_hub_download(repo_id, "dev.txt", revision="main")

    # `parent_commit` guards against concurrent writes.
    with pytest.raises(HfHubHTTPError):
        api.upload_file(path_or_fileobj=b"x", path_in_repo="x.txt", repo_id=repo_id, parent_commit=v2)

    # A pull request is a `refs/pr/N` ref, readable like a branch.
    pr = api.upload_file(path_or_fileobj=b"proposal", path_in_repo="pr.txt", repo_id=repo_id, create_pr=True)
    assert pr.pr_revision == "refs/pr/1"
    assert Path(hf_hub_download(repo_id, "pr.txt", revision=pr.pr_revision)).read_bytes() == b"proposal"

    api.delete_branch(repo_id, branch="dev")
    with pytest.raises(RevisionNotFoundError):
        api.model_info(repo_id, revision="dev")


def test_auth_missing_and_deleted_repos(local_hub):
    api = local_hub.api
    repo_id = f"{local_hub.user}/to-delete"
    api.create_repo(repo_id, private=True)
    api.create_repo(repo_id, exist_ok=True)
    with pytest.raises(HfHubHTTPError) as conflict:
        api.create_repo(repo_id)
    assert conflict.value.response.status_code == 409

    # Private repo: invisible without the token; writes need a valid token.
    anonymous = HfApi(endpoint=local_hub.url, token=False)
    with pytest.raises(RepositoryNotFoundError):
        anonymous.model_info(repo_id)
    with pytest.raises(HfHubHTTPError) as unauthorized:
        HfApi(endpoint=local_hub.url, token="hf_wrong").upload_file(
            path_or_fileobj=b"x", path_in_repo="x.txt", repo_id=repo_id
        )
    assert unauthorized.value.response.status_code in (401, 404)
    assert api.model_info(repo_id).private is True

    assert api.repo_exists(repo_id)
    api.delete_repo(repo_id)
    assert not api.repo_exists(repo_id)
    with pytest.raises(RepositoryNotFoundError):
        hf_hub_download(repo_id, ".gitattributes")
    api.delete_repo(repo_id, missing_ok=True)


def test_dataset_and_space_repos(local_hub):
    api = local_hub.api
    dataset_id = f"{local_hub.user}/sentences"
    rows = b'{"text": "The doctor said she would come."}\n{"text": "He is a nurse."}\n'
    api.create_repo(dataset_id, repo_type="dataset")
    api.upload_file(path_or_fileobj=rows, path_in_repo="data/train.jsonl", repo_id=dataset_id, repo_type="dataset")
    assert api.dataset_info(dataset_id).id == dataset_id
    assert "data/train.jsonl" in api.list_repo_files(dataset_id, repo_type="dataset")
    path = hf_hub_download(dataset_id, "data/train.jsonl", repo_type="dataset")
    assert Path(path).read_bytes() == rows
    # Repo types are separate namespaces.
    assert not api.repo_exists(dataset_id, repo_type="model")
    # `datasets` was imported before the fixture ran (module level): its own copy of the endpoint is patched too.
    loaded = datasets.load_dataset(dataset_id, split="train")
    assert loaded["text"] == ["The doctor said she would come.", "He is a nurse."]

    space_id = f"{local_hub.user}/demo"
    app = b"import gradio as gr\n\ngr.Interface(lambda x: x, 'text', 'text').launch()\n"
    url = api.create_repo(space_id, repo_type="space", space_sdk="gradio")
    assert url.repo_type == "space"
    api.upload_file(path_or_fileobj=app, path_in_repo="app.py", repo_id=space_id, repo_type="space")
    info = api.space_info(space_id)
    assert info.sdk == "gradio"
    assert sorted(api.list_repo_files(space_id, repo_type="space")) == [".gitattributes", "app.py"]
    assert Path(hf_hub_download(space_id, "app.py", repo_type="space")).read_bytes() == app


def test_model_card_push_and_load(local_hub):
    repo_id = f"{local_hub.user}/carded"
    local_hub.api.create_repo(repo_id)
    card_data = ModelCardData(license="apache-2.0", library_name="gradiend-hf", tags=["gradiend", "gender"])
    card = ModelCard.from_template(card_data, model_id="carded", model_summary="A GRADIEND model for tests.")
    card.push_to_hub(repo_id)

    loaded = ModelCard.load(repo_id)
    assert loaded.data.to_dict() == card.data.to_dict()
    assert loaded.text == card.text
    info = local_hub.api.model_info(repo_id)
    assert info.card_data.license == "apache-2.0"
    assert info.library_name == "gradiend-hf"
    assert {"gradiend", "gender"} <= set(info.tags)

    # The Hub validates the metadata block before accepting a README.
    with pytest.raises(ValueError, match="Invalid metadata"):
        local_hub.api.upload_file(
            path_or_fileobj=b"---\ntags: [unclosed\n---\n", path_in_repo="README.md", repo_id=repo_id
        )


def test_transformers_sharded_push_to_hub_and_from_pretrained(local_hub):
    repo_id = f"{local_hub.user}/tiny-bert"
    torch.manual_seed(0)
    model = BertForMaskedLM(_tiny_bert_config()).eval()
    model.push_to_hub(repo_id, max_shard_size="20KB")

    files = local_hub.api.list_repo_files(repo_id)
    shards = [f for f in files if f.startswith("model-") and f.endswith(".safetensors")]
    assert "model.safetensors.index.json" in files and "config.json" in files
    assert len(shards) >= 2, files
    assert _lfs_uploads(local_hub.hub), "safetensors shards are LFS files on the Hub"

    reloaded = AutoModelForMaskedLM.from_pretrained(repo_id).eval()
    expected = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    for name, tensor in reloaded.state_dict().items():
        torch.testing.assert_close(tensor, expected[name], rtol=0, atol=0, msg=name)

    encoder = AutoModel.from_pretrained(repo_id)
    for name, tensor in model.bert.state_dict().items():
        torch.testing.assert_close(encoder.state_dict()[name], tensor, rtol=0, atol=0, msg=name)

    # Push a change to a branch and read both versions back.
    with torch.no_grad():
        model.bert.embeddings.word_embeddings.weight.add_(1.0)
    model.push_to_hub(repo_id, revision="v2", max_shard_size="20KB")
    on_branch = AutoModelForMaskedLM.from_pretrained(repo_id, revision="v2")
    torch.testing.assert_close(
        on_branch.bert.embeddings.word_embeddings.weight, model.bert.embeddings.word_embeddings.weight
    )
    on_main = AutoModelForMaskedLM.from_pretrained(repo_id)
    torch.testing.assert_close(
        on_main.bert.embeddings.word_embeddings.weight, expected["bert.embeddings.word_embeddings.weight"]
    )


def test_peft_adapter_push_to_hub_and_from_pretrained(local_hub):
    peft = pytest.importorskip("peft")
    repo_id = f"{local_hub.user}/tiny-lora"
    torch.manual_seed(0)
    base = BertForMaskedLM(_tiny_bert_config()).eval()
    base_state = copy.deepcopy(base.state_dict())

    model = peft.get_peft_model(base, peft.LoraConfig(r=4, lora_alpha=8, target_modules=["query", "value"]))
    with torch.no_grad():  # LoRA's B starts at zero: make the adapter do something
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.normal_()
    model.push_to_hub(repo_id)
    assert "adapter_model.safetensors" in local_hub.api.list_repo_files(repo_id)

    fresh_base = BertForMaskedLM(_tiny_bert_config()).eval()
    fresh_base.load_state_dict(base_state)
    loaded = peft.PeftModel.from_pretrained(fresh_base, repo_id).eval()

    expected = peft.get_peft_model_state_dict(model)
    actual = peft.get_peft_model_state_dict(loaded)
    assert expected.keys() == actual.keys()
    for name in expected:
        torch.testing.assert_close(actual[name], expected[name], rtol=0, atol=0, msg=name)
    input_ids = torch.tensor([[1, 5, 7, 9, 2]])
    with torch.no_grad():
        torch.testing.assert_close(loaded(input_ids=input_ids).logits, model(input_ids=input_ids).logits)
