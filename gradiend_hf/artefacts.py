"""What a folder holds: the kinds of artefacts gradiend-hf writes, the manifest that names a folder's kind and the
files its writer wrote, and the checks that refuse writing one kind over another or loading an interrupted save.
[`gradiend_hf.io`] writes folders; this module only reads them.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from .errors import GradiendLoadError, GradiendSaveError


MANIFEST_NAME = ".gradiend-hf-manifest.json"
INCOMPLETE_NAME = ".gradiend-incomplete"
STAGING_MARKER = ".gradiend-staging"
TMP_TAG = ".gradiend-tmp-"

KIND_GRADIEND = "gradiend"
KIND_REWRITE = "rewritten-model"
KIND_ADAPTER = "peft-adapter"
KIND_STEERING = "steering"
KIND_MODEL = "model"  # a model folder gradiend-hf did not write (e.g. a base model); never written by us
KIND_DEFAULT_MODEL = "default-model"
KIND_SPACE = "space"
KIND_MLM_HEAD = "mlm-head"  # the auxiliary MLM head of a decoder-only model (gradiend_hf.mlm_head)
KIND_SUITE = "gradiend-suite"  # a folder of GRADIENDs with suite.json; each member folder is a GRADIEND
SUITE_REPORT_NAME = "suite.json"

_DESCRIPTIONS = {
    KIND_GRADIEND: "a GRADIEND",
    KIND_REWRITE: "a rewritten model",
    KIND_ADAPTER: "a PEFT adapter",
    KIND_STEERING: "steering adapters",
    KIND_MODEL: "a model that gradiend-hf did not write (e.g. a base model)",
    KIND_DEFAULT_MODEL: "the converted default model",
    KIND_SPACE: "a Gradio Space",
    KIND_SUITE: "a suite of GRADIENDs",
    KIND_MLM_HEAD: "an MLM head of a decoder-only model",
}

_WEIGHTS = r"(model|pytorch_model)(-\d{5}-of-\d{5})?\.(safetensors|bin)(\.index\.json)?"
# Files a writer of each kind owns in a folder written before manifests existed; only weights and configs, whose
# stale copies would be read together with new ones.
_LEGACY_OWNED = {
    KIND_GRADIEND: re.compile(rf"config\.json|README\.md|{_WEIGHTS}"),
    KIND_MODEL: re.compile(rf"config\.json|generation_config\.json|{_WEIGHTS}"),
    KIND_REWRITE: re.compile(rf"config\.json|generation_config\.json|{_WEIGHTS}"),
    KIND_ADAPTER: re.compile(r"adapter_config\.json|adapter_model\.(safetensors|bin)"),
    KIND_STEERING: re.compile(
        r"gradiend_steering\.json|steering_deltas\.safetensors|(feature(_\d+)?|bias)/adapter_(config\.json|model\.safetensors)"
    ),
}


def read_manifest(folder: str | os.PathLike, name: str = MANIFEST_NAME) -> dict | None:
    """The manifest gradiend-hf wrote into `folder` (a `{"kind", "files"}` JSON file), or `None`."""
    path = Path(folder) / name
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) and isinstance(value.get("files"), list) else None


def folder_kind(folder: str | os.PathLike) -> str | None:
    """What `folder` holds: one of the `KIND_*` names, or `None` when it is missing, empty or holds no model.

    Reads the manifest; for folders written without one, recognises GRADIENDs and other models by `config.json`,
    PEFT adapters by `adapter_config.json`, steering folders by `gradiend_steering.json` and suites by
    `suite.json`.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return None
    manifest = read_manifest(folder)
    if manifest and manifest.get("kind"):
        return str(manifest["kind"])
    if (folder / "gradiend_steering.json").is_file():
        return KIND_STEERING
    if (folder / SUITE_REPORT_NAME).is_file() and not (folder / "config.json").exists():
        return KIND_SUITE
    if (folder / "adapter_config.json").is_file():
        return KIND_ADAPTER
    config = folder / "config.json"
    if config.is_file():
        try:
            model_type = json.loads(config.read_text(encoding="utf-8")).get("model_type")
        except (OSError, ValueError, AttributeError):
            model_type = None
        return KIND_GRADIEND if model_type == "gradiend" else KIND_MODEL
    return None


def describe_kind(kind: str | None) -> str:
    return _DESCRIPTIONS.get(kind, f"a {kind!r} folder") if kind else "nothing"


def check_output_folder(
    target: str | os.PathLike, kind: str, overwrite: bool = False, what: str | None = None
) -> Path:
    """Checks, before any work is done, that [`atomic_folder`] may write `kind` into `target`.

    Args:
        target (`str` or `os.PathLike`): The folder to write.
        kind (`str`): What will be written (`KIND_*`).
        overwrite (`bool`, *optional*, defaults to `False`): Allow replacing another kind of artefact.
        what (`str`, *optional*): How the error names the target (e.g. `"--output_dir"`).

    Returns:
        `pathlib.Path`: the resolved target.

    Raises:
        [`GradiendSaveError`]: when the target is a file, cannot be created or written, or holds another kind.
    """
    label = what or "the folder"
    path = Path(os.path.realpath(os.fspath(target)))
    if path.exists() and not path.is_dir():
        raise GradiendSaveError(f"Cannot write {label} {os.fspath(target)!r}: it is a file, not a folder.")
    existing = path
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise GradiendSaveError(f"Cannot create {label} {os.fspath(target)!r}: {str(existing)!r} is a file.")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise GradiendSaveError(
            f"Cannot write {label} {os.fspath(target)!r}: {str(existing)!r} is not writable. Choose another folder."
        )
    current = folder_kind(path)
    if current is not None and current != kind and not overwrite:
        raise GradiendSaveError(
            f"{label.capitalize()} {os.fspath(target)!r} holds {describe_kind(current)}; writing "
            f"{describe_kind(kind)} there would mix or destroy it. Choose another folder, or pass overwrite=True "
            "(--overwrite on the command line) to replace it."
        )
    return path


def check_complete(folder: str | os.PathLike) -> None:
    """Raises [`GradiendLoadError`] when `folder` carries the marker of an interrupted in-place save."""
    if (Path(folder) / INCOMPLETE_NAME).exists():
        raise GradiendLoadError(
            f"{os.fspath(folder)!r} holds an interrupted save (it still carries {INCOMPLETE_NAME}); its files may "
            "come from two different saves. Save the model there again, or load an earlier copy."
        )


def owned_files(folder: Path) -> set[str]:
    """The files of `folder` that an earlier save of gradiend-hf wrote (from its manifest, else by name)."""
    # An in-place save that was interrupted moved in some of the files its marker lists: they are ours too.
    interrupted = read_manifest(folder, INCOMPLETE_NAME) or {"files": []}
    manifest = read_manifest(folder)
    if manifest is not None:
        return {str(name) for name in manifest["files"] + interrupted["files"]}
    pattern = _LEGACY_OWNED.get(folder_kind(folder) or "")
    legacy = {rel for rel in list_files(folder) if pattern.fullmatch(rel)} if pattern is not None else set()
    return legacy | {str(name) for name in interrupted["files"]}


def list_files(folder: Path, skip: tuple[str, ...] = ()) -> list[str]:
    """Relative paths (with `/`) of the files and symlinks under `folder`, without the top-level names in `skip`."""
    found = []
    for root, dirs, names in os.walk(folder):
        rel_root = os.path.relpath(root, folder)
        for name in names + [d for d in dirs if os.path.islink(os.path.join(root, d))]:
            rel = name if rel_root == "." else f"{rel_root}/{name}".replace(os.sep, "/")
            if rel not in skip:
                found.append(rel)
        dirs[:] = [d for d in dirs if not os.path.islink(os.path.join(root, d))]
    return found
