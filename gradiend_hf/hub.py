"""Pushing GRADIENDs, rewritten models, adapters and a demo Space to the Hugging Face Hub, each with its card.

Every push writes the repo's files into a temporary folder first (the same files `save_pretrained`,
[`save_rewritten`] or the adapter export write locally) and uploads that folder in one commit, so the card and the
figures always travel with the weights. Weight files of an earlier push that the new one does not contain are
deleted in the same commit (a stale shard next to a new index would be confusing).

```python
from gradiend_hf import GradiendModel
from gradiend_hf.hub import push_space

gradiend.push_to_hub("me/gradiend-gender", decoder_report=report, figures=["convergence.png"])
GradiendModel.from_pretrained("me/gradiend-gender")
push_space("me/gradiend-gender-demo", "me/gradiend-gender")
```
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence

import jinja2
from huggingface_hub import HfApi, SpaceCard, SpaceCardData, hf_hub_download

from .errors import GradiendError, GradiendFileNotFoundError, GradiendLoadError
from .io import (
    KIND_ADAPTER,
    KIND_GRADIEND,
    KIND_SPACE,
    KIND_STEERING,
    atomic_folder,
    atomic_write_text,
    check_complete,
    folder_kind,
)
from .locations import check_gradiend_folder
from .model_card import build_gradiend_card, hub_id, py_str, write_gradiend_card


KINDS = ("gradiend", "rewrite", "adapter")
WEIGHT_PATTERNS = ["*.safetensors", "*.safetensors.index.json", "pytorch_model*.bin", "pytorch_model*.bin.index.json"]
HIDDEN_PATTERNS = [".*", "*/.*"]
# Never uploaded: unpickling runs code, and every artefact of gradiend-hf is safetensors and JSON.
PICKLE_PATTERNS = ["*.bin", "*.pt", "*.pth", "*.pkl", "*.pickle", "*.ckpt"]
SPACE_FILES = {
    "README.md": "space_README.md.j2",
    "app.py": "space_app.py.j2",
    "requirements.txt": "space_requirements.txt.j2",
}


def upload_folder(
    folder: str,
    repo_id: str,
    *,
    repo_type: str = "model",
    revision: str | None = None,
    private: bool | None = None,
    token: str | None = None,
    commit_message: str | None = None,
    commit_description: str | None = None,
    create_pr: bool = False,
    delete_patterns: Sequence[str] | None = None,
    space_sdk: str | None = None,
    space_hardware: str | None = None,
):
    """Creates the repo (if needed) and the branch `revision` (if needed) and uploads `folder` in one commit.

    Hidden files and folders (staging folders of an interrupted save, `.git`) and pickles (`*.bin`, `*.pt`, …) are
    never uploaded.

    Returns:
        `huggingface_hub.CommitInfo`: the commit (a `str` subclass holding its URL; `.oid` is its sha).
    """
    api = HfApi(token=token)
    repo_id = api.create_repo(
        repo_id,
        private=private,
        repo_type=repo_type,
        exist_ok=True,
        space_sdk=space_sdk,
        space_hardware=space_hardware,
    ).repo_id
    if revision and not create_pr and not revision.startswith("refs/"):
        # Like transformers' push_to_hub: pushing to a branch creates it (from main) when it does not exist yet.
        api.create_branch(repo_id, branch=revision, repo_type=repo_type, exist_ok=True)
    return api.upload_folder(
        repo_id=repo_id,
        folder_path=folder,
        repo_type=repo_type,
        revision=revision,
        commit_message=commit_message,
        commit_description=commit_description,
        create_pr=create_pr,
        ignore_patterns=HIDDEN_PATTERNS + PICKLE_PATTERNS,
        delete_patterns=list(delete_patterns) if delete_patterns else None,
    )


def retarget_card(folder: str, local_names: Sequence[str], repo_id: str) -> None:
    """Points the card's quick start at the Hub repo: quoted occurrences of the local folder name(s) the card was
    rendered with (`from_pretrained("out/my-gradiend")`) become the repo id."""
    path = os.path.join(folder, "README.md")
    if not os.path.isfile(path):
        return
    with open(path, encoding="utf-8") as file:
        text = file.read()
    updated = text
    for name in sorted({n for n in local_names if n}, key=len, reverse=True):
        updated = updated.replace(f'"{name}"', f'"{repo_id}"')
        updated = updated.replace(f"app {name}`", f"app {repo_id}`")
    if updated != text:
        atomic_write_text(path, updated)  # replaces a hard link to the user's file, never the user's file itself


def _local_names(path: str) -> list[str]:
    """The spellings of a local folder a card may have been rendered with."""
    names = {path, os.path.normpath(path), os.path.abspath(path), os.path.realpath(path)}
    return sorted(names | {name.rstrip("/") + "/" for name in names})


# --------------------------------------------------------------------------- the three kinds of model repo


def push_gradiend(
    gradiend,
    repo_id: str,
    *,
    revision: str | None = None,
    private: bool | None = None,
    token: str | None = None,
    commit_message: str | None = None,
    commit_description: str | None = None,
    create_pr: bool = False,
    max_shard_size: str | int = "5GB",
    encoder_report=None,
    decoder_report=None,
    figures: Sequence[str | os.PathLike] | None = None,
    dataset_name: str | None = None,
    dataset_sizes: Mapping | None = None,
    training_args=None,
):
    """Pushes a GRADIEND (config.json, safetensors shards, README.md card, figures) to the Hub.

    Load it back with `GradiendModel.from_pretrained(repo_id, revision=...)`.

    Args:
        gradiend ([`GradiendModel`]): The GRADIEND.
        repo_id (`str`): The model repo (`"user/name"`); created when missing.
        revision (`str`, *optional*): Branch to push to (created from `main` when missing).
        private (`bool`, *optional*): Visibility of a new repo.
        token (`str`, *optional*): Hub token; the logged-in user's by default.
        commit_message (`str`, *optional*), commit_description (`str`, *optional*), create_pr (`bool`): Commit
            details, as in `HfApi.upload_folder`.
        max_shard_size (`str` or `int`, *optional*, defaults to `"5GB"`): Largest weight file.
        encoder_report, decoder_report, figures, dataset_name, dataset_sizes, training_args: Facts for the full card,
            see [`write_gradiend_card`]; without them the card is the basic one `save_pretrained` writes.

    Returns:
        `huggingface_hub.CommitInfo`: the commit.
    """
    with tempfile.TemporaryDirectory(prefix="gradiend-push-") as folder:
        gradiend.save_pretrained(folder, max_shard_size=max_shard_size)
        facts = (encoder_report, decoder_report, figures, dataset_name, dataset_sizes, training_args)
        if any(value is not None for value in facts):
            write_gradiend_card(
                gradiend,
                folder,
                encoder_report=encoder_report,
                decoder_report=decoder_report,
                figures=figures,
                dataset_name=dataset_name,
                dataset_sizes=dataset_sizes,
                training_args=training_args,
            )
        retarget_card(folder, [folder], repo_id)
        return upload_folder(
            folder,
            repo_id,
            revision=revision,
            private=private,
            token=token,
            commit_message=commit_message or "Upload GRADIEND",
            commit_description=commit_description,
            create_pr=create_pr,
            delete_patterns=WEIGHT_PATTERNS,
        )


def push_rewrite(
    model,
    tokenizer,
    repo_id: str,
    gradiend=None,
    decoder_report=None,
    feature_factor: float | None = None,
    learning_rate: float | None = None,
    *,
    tags: list[str] | None = None,
    revision: str | None = None,
    private: bool | None = None,
    token: str | None = None,
    commit_message: str | None = None,
    commit_description: str | None = None,
    create_pr: bool = False,
):
    """Pushes a rewritten base model (weights, tokenizer, card) to the Hub; it loads with plain transformers
    (`AutoModelForMaskedLM.from_pretrained(repo_id)` / `AutoModelForCausalLM`).

    `model` must already be rewritten (e.g. `gradiend.rewrite(base, ff, lr)`); see [`save_rewritten`] for `gradiend`,
    `decoder_report`, `feature_factor`, `learning_rate` and `tags`, and [`push_gradiend`] for the Hub arguments.

    Returns:
        `huggingface_hub.CommitInfo`: the commit.
    """
    from .rewrite_io import save_rewritten

    with tempfile.TemporaryDirectory(prefix="gradiend-push-") as folder:
        save_rewritten(
            model,
            tokenizer,
            folder,
            gradiend=gradiend,
            decoder_report=decoder_report,
            feature_factor=feature_factor,
            learning_rate=learning_rate,
            model_id=repo_id,
            tags=tags,
        )
        return upload_folder(
            folder,
            repo_id,
            revision=revision,
            private=private,
            token=token,
            commit_message=commit_message or "Upload model rewritten with GRADIEND",
            commit_description=commit_description,
            create_pr=create_pr,
            delete_patterns=WEIGHT_PATTERNS,
        )


def push_adapter(
    adapter_dir: str | os.PathLike,
    repo_id: str,
    *,
    revision: str | None = None,
    private: bool | None = None,
    token: str | None = None,
    commit_message: str | None = None,
    commit_description: str | None = None,
    create_pr: bool = False,
):
    """Pushes an exported PEFT adapter folder (see [`GradiendModel.export_peft`]) to the Hub; it loads with
    `PeftModel.from_pretrained(base, repo_id)`. The card's quick start is pointed at `repo_id`.

    Returns:
        `huggingface_hub.CommitInfo`: the commit.
    """
    return push_folder(
        adapter_dir,
        repo_id,
        kind="adapter",
        revision=revision,
        private=private,
        token=token,
        commit_message=commit_message,
        commit_description=commit_description,
        create_pr=create_pr,
    )


def detect_kind(folder: str | os.PathLike) -> str:
    """`"adapter"` (adapter_config.json), `"gradiend"` (a config.json of `model_type` gradiend) or `"rewrite"` (any
    other config.json).

    Raises:
        [`GradiendLoadError`]: when the folder does not exist or holds none of these.
    """
    folder = os.fspath(folder)
    if not os.path.isdir(folder):
        raise GradiendFileNotFoundError(
            f"{folder!r} is not a folder; pass the folder a GRADIEND, model or adapter was saved to."
        )
    check_complete(folder)
    kind = folder_kind(folder)
    if kind in (KIND_ADAPTER, KIND_STEERING):
        return "adapter"
    if kind is None:
        raise GradiendLoadError(
            f"{folder!r} holds neither config.json (a GRADIEND or a rewritten model) nor adapter_config.json (a PEFT "
            "adapter)."
        )
    return "gradiend" if kind == KIND_GRADIEND else "rewrite"


def push_folder(
    folder: str | os.PathLike,
    repo_id: str,
    kind: str | None = None,
    *,
    revision: str | None = None,
    private: bool | None = None,
    token: str | None = None,
    commit_message: str | None = None,
    commit_description: str | None = None,
    create_pr: bool = False,
):
    """Pushes a saved GRADIEND, rewritten model or adapter folder as it is (with its card).

    The card's quick start, rendered with the local folder, is pointed at `repo_id`; a GRADIEND folder without a
    card gets the basic one. Only the top-level files of a GRADIEND or model folder are uploaded (trainer
    checkpoints in subfolders stay local); an adapter folder is uploaded whole (it may hold several adapters).

    Args:
        folder (`str` or `os.PathLike`): The saved folder.
        repo_id (`str`): The model repo.
        kind (`str`, *optional*): `"gradiend"`, `"rewrite"` or `"adapter"`; detected from the files when not given.
        others: see [`push_gradiend`].

    Returns:
        `huggingface_hub.CommitInfo`: the commit.
    """
    folder = os.fspath(folder)
    found = detect_kind(folder)
    if kind is not None and kind not in KINDS:
        raise GradiendError(f"Unknown kind {kind!r}; choose one of {', '.join(KINDS)}.")
    if kind is not None and kind != found:
        raise GradiendError(f"{folder!r} holds a {found}, not a {kind}; pass `--kind {found}` or another folder.")
    if found == "gradiend":
        check_gradiend_folder(folder)
    elif not any(name.endswith(".safetensors") for name in os.listdir(folder)):
        raise GradiendLoadError(
            f"{folder!r} has no safetensors weights; pickled weights (*.bin) are never uploaded. Save the model with "
            "`save_pretrained` (safetensors) first."
        )
    messages = {
        "gradiend": "Upload GRADIEND",
        "rewrite": "Upload model rewritten with GRADIEND",
        "adapter": "Upload adapter",
    }
    with tempfile.TemporaryDirectory(prefix="gradiend-push-") as staging:
        upload = os.path.join(staging, "repo")
        _link_tree(folder, upload, recursive=found == "adapter")
        if found == "gradiend" and not os.path.isfile(os.path.join(upload, "README.md")):
            from .configuration_gradiend import GradiendConfig

            build_gradiend_card(GradiendConfig.from_pretrained(folder), repo_id).save(
                os.path.join(upload, "README.md")
            )
        retarget_card(upload, _local_names(folder), repo_id)
        return upload_folder(
            upload,
            repo_id,
            revision=revision,
            private=private,
            token=token,
            commit_message=commit_message or messages[found],
            commit_description=commit_description,
            create_pr=create_pr,
            delete_patterns=WEIGHT_PATTERNS if found != "adapter" else None,
        )


def _link_tree(source: str, target: str, recursive: bool) -> None:
    """Mirrors the non-hidden files of `source` in `target` with hard links (copies across file systems)."""
    for root, dirs, files in os.walk(source):
        dirs[:] = [d for d in dirs if not d.startswith(".")] if recursive else []
        relative = os.path.relpath(root, source)
        os.makedirs(os.path.join(target, relative), exist_ok=True)
        for name in files:
            if name.startswith("."):
                continue
            src, dst = os.path.join(root, name), os.path.join(target, relative, name)
            try:
                os.link(src, dst)
            except OSError:
                shutil.copy2(src, dst)


# --------------------------------------------------------------------------- the demo Space


def render_space(
    folder: str | os.PathLike,
    gradiend_id: str,
    base_model_id: str | None = None,
    examples: Sequence[str] | None = None,
    title: str | None = None,
) -> dict[str, str]:
    """Writes the files of a Gradio Space for a GRADIEND into `folder`: README.md (front matter with `sdk: gradio`,
    the installed Gradio as `sdk_version`, `app_file: app.py`, `models:` = the GRADIEND and its base model),
    app.py (which only calls [`build_demo`]) and requirements.txt (pinning this gradiend-hf version).

    Args:
        folder (`str` or `os.PathLike`): Target folder (created if missing).
        gradiend_id (`str`): Hub id of the GRADIEND the Space shows.
        base_model_id (`str`, *optional*): Hub id of its base model, for `models:`.
        examples (`Sequence[str]`, *optional*): Example inputs; the app uses those recorded in the GRADIEND's
            config when not given.
        title (`str`, *optional*): Space title.

    Returns:
        `dict[str, str]`: file name → content, as written.
    """
    import gradio

    from . import __version__

    if not hub_id(gradiend_id):
        raise GradiendError(f"A Space loads its GRADIEND from the Hub; {gradiend_id!r} is not a Hub repo id.")
    title = title or f"GRADIEND demo: {gradiend_id.split('/')[-1]}"
    models = [gradiend_id] + ([base_model_id] if base_model_id and hub_id(base_model_id) else [])
    card_data = SpaceCardData(
        title=title,
        sdk="gradio",
        sdk_version=gradio.__version__,
        app_file="app.py",
        license="apache-2.0",
        models=models,
        tags=["gradiend"],
        emoji="🧭",
        colorFrom="indigo",
        colorTo="green",
        pinned=False,
        short_description="Encode and rewrite a feature of a language model"[:60],
    )
    values = {
        "title": title,
        "gradiend_id": gradiend_id,
        "base_model_id": models[1] if len(models) > 1 else None,
        "gradiend_id_literal": py_str(gradiend_id),
        "examples_literal": "[\n" + "".join(f"    {py_str(e)},\n" for e in examples) + "]" if examples else None,
        "gradiend_hf_version": __version__,
    }
    templates = _templates()
    files = {
        "README.md": str(
            SpaceCard(templates.get_template(SPACE_FILES["README.md"]).render(card_data=card_data.to_yaml(), **values))
        ),
        "app.py": templates.get_template(SPACE_FILES["app.py"]).render(**values),
        "requirements.txt": templates.get_template(SPACE_FILES["requirements.txt"]).render(**values),
    }
    for name, content in files.items():
        files[name] = content.rstrip("\n") + "\n"
    with atomic_folder(folder, KIND_SPACE, update=True) as staging:
        for name, content in files.items():
            atomic_write_text(os.path.join(staging, name), content)
    return files


def _templates() -> jinja2.Environment:
    import importlib.resources

    root = importlib.resources.files("gradiend_hf") / "templates"
    return jinja2.Environment(
        loader=jinja2.FunctionLoader(lambda name: (root / name).read_text(encoding="utf-8")),
        keep_trailing_newline=True,
        undefined=jinja2.StrictUndefined,
    )


def push_space(
    space_id: str,
    gradiend_id: str,
    base_model_id: str | None = None,
    *,
    examples: Sequence[str] | None = None,
    title: str | None = None,
    private: bool | None = None,
    token: str | None = None,
    hardware: str | None = None,
    commit_message: str | None = None,
):
    """Creates (or updates) a Gradio Space that shows a GRADIEND pushed to the Hub.

    Args:
        space_id (`str`): The Space repo (`"user/name"`).
        gradiend_id (`str`): Hub id of the GRADIEND.
        base_model_id (`str`, *optional*): Its base model; read from the GRADIEND's config on the Hub when not given.
        examples (`Sequence[str]`, *optional*): Example inputs of the app.
        title (`str`, *optional*): Space title.
        private (`bool`, *optional*), token (`str`, *optional*): As in [`push_gradiend`].
        hardware (`str`, *optional*): Space hardware of a new Space (e.g. `"cpu-basic"`).
        commit_message (`str`, *optional*): Commit message.

    Returns:
        `huggingface_hub.CommitInfo`: the commit.
    """
    if base_model_id is None:
        with open(hf_hub_download(gradiend_id, "config.json", token=token), encoding="utf-8") as file:
            base_model_id = json.load(file).get("base_model_name_or_path")
    with tempfile.TemporaryDirectory(prefix="gradiend-space-") as folder:
        render_space(folder, gradiend_id, base_model_id, examples=examples, title=title)
        return upload_folder(
            folder,
            space_id,
            repo_type="space",
            private=private,
            token=token,
            commit_message=commit_message or f"Demo of {gradiend_id}",
            space_sdk="gradio",
            space_hardware=hardware,
        )
