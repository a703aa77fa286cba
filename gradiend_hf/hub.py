"""Pushing GRADIENDs, rewritten models and adapters to the Hugging Face Hub, each with its card.

Every push writes the repo's files into a temporary folder first (the files `save_pretrained`, [`save_rewritten`]
or the adapter export write locally), renders the card for the repo id from the start, and uploads that folder in
one commit, so the card and the figures always travel with the weights. Weight files of an earlier push that the new
one does not contain are deleted in the same commit (a stale shard next to a new index would be confusing). Hidden
files and pickles are never uploaded. The demo Space is pushed by [`gradiend_hf.space`].

```python
from gradiend_hf import GradiendModel

gradiend.push_to_hub("me/gradiend-gender", decoder_report=report, figures=["convergence.png"])
GradiendModel.from_pretrained("me/gradiend-gender")
```
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass, fields
from typing import Any

from huggingface_hub import HfApi

from .artefacts import (
    KIND_ADAPTER,
    KIND_GRADIEND,
    KIND_STEERING,
    KIND_SUITE,
    SUITE_REPORT_NAME,
    check_complete,
    folder_kind,
)
from .card_utils import render_saved_card
from .configuration_gradiend import GradiendConfig
from .data import ClassView
from .errors import GradiendError, GradiendFileNotFoundError, GradiendLoadError
from .loading import check_gradiend_folder
from .model_card import GradiendCardFacts, GradiendModelCardData, build_gradiend_card, write_gradiend_card
from .model_card_sections import suite_values
from .rewrite_io import save_rewritten
from .suite_report import suite_facts


logger = logging.getLogger(__name__)

KINDS = ("gradiend", "rewrite", "adapter", "suite")
WEIGHT_PATTERNS = ["*.safetensors", "*.safetensors.index.json", "pytorch_model*.bin", "pytorch_model*.bin.index.json"]
HIDDEN_PATTERNS = [".*", "*/.*"]
# Never uploaded: unpickling runs code, and every artefact of gradiend-hf is safetensors and JSON.
PICKLE_PATTERNS = ["*.bin", "*.pt", "*.pth", "*.pkl", "*.pickle", "*.ckpt"]
FACT_FIELDS = tuple(field.name for field in fields(GradiendCardFacts))


@dataclass
class HubCommit:
    """Where and how a push commits; every `push_*` function takes these as keyword arguments.

    Args:
        revision (`str`, *optional*): Branch to push to (created from `main` when missing).
        private (`bool`, *optional*): Visibility of a new repo.
        token (`str`, *optional*): Hub token; the logged-in user's by default.
        commit_message (`str`, *optional*): The commit message (each push has a default).
        commit_description (`str`, *optional*): The commit description.
        create_pr (`bool`, *optional*, defaults to `False`): Open a pull request instead of committing to the branch.
    """

    revision: str | None = None
    private: bool | None = None
    token: str | None = None
    commit_message: str | None = None
    commit_description: str | None = None
    create_pr: bool = False


def upload_folder(
    folder: str,
    repo_id: str,
    commit: HubCommit | None = None,
    *,
    default_message: str = "Upload with gradiend-hf",
    repo_type: str = "model",
    delete_patterns: list[str] | None = None,
    space_sdk: str | None = None,
    space_hardware: str | None = None,
):
    """Creates the repo (if needed) and the branch `commit.revision` (if needed) and uploads `folder` in one commit.

    Hidden files and folders (staging folders of an interrupted save, `.git`) and pickles (`*.bin`, `*.pt`, …) are
    never uploaded.

    Returns:
        `huggingface_hub.CommitInfo`: the commit (a `str` subclass holding its URL; `.oid` is its sha).
    """
    commit = commit or HubCommit()
    api = HfApi(token=commit.token)
    repo_id = api.create_repo(
        repo_id,
        private=commit.private,
        repo_type=repo_type,
        exist_ok=True,
        space_sdk=space_sdk,
        space_hardware=space_hardware,
    ).repo_id
    if commit.revision and not commit.create_pr and not commit.revision.startswith("refs/"):
        # Like transformers' push_to_hub: pushing to a branch creates it (from main) when it does not exist yet.
        api.create_branch(repo_id, branch=commit.revision, repo_type=repo_type, exist_ok=True)
    return api.upload_folder(
        repo_id=repo_id,
        folder_path=folder,
        repo_type=repo_type,
        revision=commit.revision,
        commit_message=commit.commit_message or default_message,
        commit_description=commit.commit_description,
        create_pr=commit.create_pr,
        ignore_patterns=HIDDEN_PATTERNS + PICKLE_PATTERNS,
        delete_patterns=delete_patterns,
    )


def _commit(options: dict[str, Any]) -> HubCommit:
    try:
        return HubCommit(**options)
    except TypeError as error:  # an unknown keyword argument
        raise GradiendError(f"{error}; the commit arguments are {', '.join(asdict(HubCommit()))}.") from None


# --------------------------------------------------------------------------- the three kinds of model repo


def push_gradiend(gradiend, repo_id: str, *, max_shard_size: str | int = "5GB", **kwargs: Any):
    """Pushes a GRADIEND (config.json, safetensors shards, README.md card, figures) to the Hub.

    Load it back with `GradiendModel.from_pretrained(repo_id, revision=...)`.

    Args:
        gradiend ([`GradiendModel`]): The GRADIEND.
        repo_id (`str`): The model repo (`"user/name"`); created when missing.
        max_shard_size (`str` or `int`, *optional*, defaults to `"5GB"`): Largest weight file.
        kwargs: [`GradiendCardFacts`] fields for the full card (`encoder_report`, `decoder_report`, `figures`,
            `dataset_name`, `dataset_sizes`, `training_args`; without them the card is the basic one from the
            config) and [`HubCommit`] fields (`revision`, `private`, `token`, `commit_message`, …).

    Returns:
        `huggingface_hub.CommitInfo`: the commit.
    """
    facts = {name: kwargs.pop(name) for name in FACT_FIELDS if name in kwargs}
    options = _commit(kwargs)
    with tempfile.TemporaryDirectory(prefix="gradiend-push-") as folder:
        gradiend.save_pretrained(folder, max_shard_size=max_shard_size)
        write_gradiend_card(gradiend, folder, model_id=repo_id, **facts)
        return upload_folder(
            folder, repo_id, options, default_message="Upload GRADIEND", delete_patterns=WEIGHT_PATTERNS
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
    **commit: Any,
):
    """Pushes a rewritten base model (weights, tokenizer, card) to the Hub; it loads with plain transformers
    (`AutoModelForMaskedLM.from_pretrained(repo_id)` / `AutoModelForCausalLM`).

    `model` must already be rewritten (e.g. `gradiend.rewrite(base, ff, lr)`); see [`save_rewritten`] for `gradiend`,
    `decoder_report`, `feature_factor`, `learning_rate` and `tags`, and [`HubCommit`] for `commit`.

    Returns:
        `huggingface_hub.CommitInfo`: the commit.
    """
    options = _commit(commit)
    with tempfile.TemporaryDirectory(prefix="gradiend-push-") as folder:
        save_rewritten(
            model, tokenizer, folder, gradiend, decoder_report, feature_factor, learning_rate, repo_id, tags
        )
        return upload_folder(
            folder,
            repo_id,
            options,
            default_message="Upload model rewritten with GRADIEND",
            delete_patterns=WEIGHT_PATTERNS,
        )


def push_adapter(adapter_dir: str | os.PathLike, repo_id: str, **commit: Any):
    """Pushes an exported PEFT adapter folder (see [`GradiendModel.export_peft`]) to the Hub; it loads with
    `PeftModel.from_pretrained(base, repo_id)`. The card's quick start names `repo_id`; see [`HubCommit`] for
    `commit`.

    Returns:
        `huggingface_hub.CommitInfo`: the commit.
    """
    return push_folder(adapter_dir, repo_id, kind="adapter", **commit)


def detect_kind(folder: str | os.PathLike) -> str:
    """`"adapter"` (PEFT or steering adapters), `"gradiend"` (a config.json of `model_type` gradiend), `"suite"` (a
    `suite.json` of [`train_suite`]) or `"rewrite"` (any other model).

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
    if kind == KIND_SUITE:
        return "suite"
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
    card_updates: dict | None = None,
    **commit: Any,
):
    """Pushes a saved GRADIEND, rewritten model, adapter or suite folder as it is, with its card rendered for
    `repo_id`.

    Only the top-level files of a GRADIEND or model folder are uploaded (trainer checkpoints in subfolders stay
    local); an adapter folder is uploaded whole (it may hold several adapters); a suite goes to one repo per member
    and a collection ([`push_suite`], `repo_id` is then the prefix of the members' repos).

    Args:
        folder (`str` or `os.PathLike`): The saved folder.
        repo_id (`str`): The model repo.
        kind (`str`, *optional*): `"gradiend"`, `"rewrite"`, `"adapter"` or `"suite"`; detected from the files when
            not given.
        card_updates (`dict`, *optional*): Card fields to render differently from the saved card (e.g. the links of
            a suite's members).
        commit: [`HubCommit`] fields.

    Returns:
        `huggingface_hub.CommitInfo`: the commit ([`SuitePush`] for a suite).
    """
    folder = os.fspath(folder)
    found = detect_kind(folder)
    if kind is not None and kind not in KINDS:
        raise GradiendError(f"Unknown kind {kind!r}; choose one of {', '.join(KINDS)}.")
    if kind is not None and kind != found:
        raise GradiendError(f"{folder!r} holds a {found}, not a {kind}; pass `--kind {found}` or another folder.")
    if found == "suite":
        return push_suite(folder, repo_id, **commit)
    options = _commit(commit)
    if found == "gradiend":
        check_gradiend_folder(folder)
    elif not any(name.endswith(".safetensors") for _, _, names in os.walk(folder) for name in names):
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
        card = render_saved_card(folder, repo_id, (GradiendModelCardData,), card_updates)
        if card is None and found == "gradiend":
            card = build_gradiend_card(GradiendConfig.from_pretrained(folder), repo_id)
        readme = os.path.join(upload, "README.md")
        if card is not None:
            if os.path.exists(readme):
                os.remove(readme)  # only the hard link in the upload folder: the saved card stays as it is
            card.save(readme)
        elif os.path.isfile(readme):
            logger.warning(
                "%s/README.md was not written by gradiend-hf (or an old version); it is uploaded as is.", folder
            )
        return upload_folder(
            upload,
            repo_id,
            options,
            default_message=messages[found],
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


# --------------------------------------------------------------------------- suites


@dataclass
class SuitePush:
    """Result of [`push_suite`].

    Args:
        collection (`huggingface_hub.Collection`): The Hub collection grouping the members.
        repos (`dict[str, str]`): member name → its model repo id.
        commits (`dict[str, CommitInfo]`): member name → the commit of its push.
    """

    collection: Any
    repos: dict[str, str]
    commits: dict[str, Any]


def push_suite(
    suite,
    repo_prefix: str,
    *,
    collection_title: str | None = None,
    collection_description: str | None = None,
    **commit: Any,
) -> SuitePush:
    """Pushes every member of a suite to its own model repo and groups them in a Hub collection.

    Member `<name>` goes to `<repo_prefix>-<name>` (e.g. `me/gradiend-pronouns-1SG-vs-3SG`) with its saved card,
    whose suite section then links the siblings' repos and the collection. Pushing again updates the repos and
    reuses the collection (same title in the same namespace).

    Args:
        suite ([`SuiteResult`] or `str`): A trained suite or its folder.
        repo_prefix (`str`): `"namespace/name"`; the namespace also owns the collection.
        collection_title (`str`, *optional*): Title of the collection; defaults to the name part of `repo_prefix`.
        collection_description (`str`, *optional*): At most 150 characters; by default the base model and classes.
        commit: [`HubCommit`] fields (`private` also makes the collection private).

    Returns:
        [`SuitePush`].

    Raises:
        [`GradiendLoadError`]: the folder holds no suite, or a member was never trained.
    """
    folder = os.fspath(getattr(suite, "output_dir", suite))
    report = _read_suite(folder)
    options = _commit(commit)
    namespace, _, name = repo_prefix.rpartition("/")
    if not name:
        raise GradiendError(f"`repo_prefix` must be 'namespace/name' (or 'name'), got {repo_prefix!r}.")
    members = {entry["name"]: entry for entry in report["members"]}
    for entry in members.values():
        if entry.get("status") == "pending" or not os.path.isdir(os.path.join(folder, entry["folder"])):
            raise GradiendLoadError(
                f"The suite member {entry['name']!r} in {folder!r} was never trained; run train_suite again to finish "
                "the suite before pushing it."
            )
    repos = {member: f"{repo_prefix}-{os.path.basename(entry['folder'])}" for member, entry in members.items()}
    api = HfApi(token=options.token)
    title = collection_title or name
    classes = ", ".join(report.get("classes", []))
    description = collection_description or f"GRADIENDs of {report.get('base_model') or 'one model'} for {classes}"
    collection = api.create_collection(
        title,
        namespace=namespace or None,
        description=description[:150],
        private=bool(options.private),
        exists_ok=True,
    )
    views = {member: _MemberView(entry) for member, entry in members.items()}
    commits = {}
    for member, entry in members.items():
        facts = suite_facts(views, member, title, locations=repos, link=collection.url)
        commits[member] = push_folder(
            os.path.join(folder, entry["folder"]),
            repos[member],
            "gradiend",
            card_updates=suite_values(facts),
            **commit,
        )
        note = views[member].summary
        api.add_collection_item(collection.slug, repos[member], "model", note=note, exists_ok=True)
    return SuitePush(collection=api.get_collection(collection.slug), repos=repos, commits=commits)


@dataclass
class _MemberView:
    """A member entry of `suite.json` with the fields [`suite_facts`] reads."""

    entry: dict

    @property
    def view(self) -> dict:
        return self.entry["view"]

    @property
    def folder(self) -> str:
        return self.entry["folder"]

    @property
    def summary(self) -> str:
        return ClassView.from_dict(self.view).summary


def _read_suite(folder: str) -> dict:
    path = os.path.join(folder, SUITE_REPORT_NAME)
    try:
        with open(path, encoding="utf-8") as file:
            report = json.load(file)
    except FileNotFoundError:
        raise GradiendLoadError(f"{folder!r} holds no suite ({SUITE_REPORT_NAME} is missing).") from None
    except (OSError, ValueError) as error:
        raise GradiendLoadError(f"{path!r} is not a readable suite report ({error}).") from None
    if not isinstance(report, dict) or not isinstance(report.get("members"), list):
        raise GradiendLoadError(f"{path!r} is not a gradiend-hf suite report.")
    return report
