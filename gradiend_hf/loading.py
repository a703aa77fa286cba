"""Checks of what is loaded: where a model comes from (a local folder or a Hub id), whether a folder holds a whole
GRADIEND, and what `from_pretrained` reported; the Hub's and safetensors' errors become one clear
[`GradiendLoadError`].

`from_pretrained` treats any string that is not an existing folder as a Hub id, so a mistyped local path ends,
after several network retries, in "We couldn't connect to 'https://huggingface.co'". [`resolve_location`] says "no
such folder" at once for what can only be a path, and [`hub_errors`] names the model and the likely cause when a
Hub id cannot be fetched (offline, no such repo, a gated or private repo, a missing revision).
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator

from huggingface_hub.errors import (
    GatedRepoError,
    HFValidationError,
    LocalEntryNotFoundError,
    OfflineModeIsEnabled,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from huggingface_hub.utils import validate_repo_id
from safetensors import SafetensorError, safe_open

from .artefacts import check_complete
from .errors import GradiendFileNotFoundError, GradiendLoadError


def is_hub_id(name: str) -> bool:
    """Whether `name` can be a Hub repo id (`"name"` or `"owner/name"`), as opposed to only a local path."""
    if not name or name.startswith((".", "/", "~")) or name.count("/") > 1 or os.sep != "/" and os.sep in name:
        return False
    try:
        validate_repo_id(name)
    except HFValidationError:
        return False
    return True


def resolve_location(name_or_path: str | os.PathLike, what: str = "model") -> str:
    """Returns the local folder (`~` expanded) or the Hub id to load `what` from.

    Raises:
        [`GradiendLoadError`]: when `name_or_path` is a file, or cannot be a Hub id and is no existing folder.
    """
    name = os.fspath(name_or_path)
    path = os.path.expanduser(name)
    if os.path.isdir(path):
        return path
    if os.path.exists(path):
        raise GradiendLoadError(f"The {what} {name!r} is a file; give the folder it was saved to (or a Hub id).")
    if not is_hub_id(name):
        raise GradiendFileNotFoundError(
            f"The {what} folder {name!r} does not exist (and it is not a Hub id). Check the path."
        )
    return name


@contextlib.contextmanager
def hub_errors(name: str, what: str = "model") -> Iterator[None]:
    """Turns the errors of fetching `name` from the Hub into a [`GradiendLoadError`] that names it and the cause.

    Errors about a local folder's contents pass through unchanged.
    """
    try:
        yield
    except GradiendLoadError:
        raise
    except OSError as error:
        if os.path.isdir(os.path.expanduser(name)):
            raise
        cause = _hub_cause(error)
        if cause is None:
            raise
        raise GradiendLoadError(_message(name, what, cause, error)) from error


def _hub_cause(error: BaseException) -> BaseException | None:
    seen = error
    while seen is not None:
        if isinstance(
            seen,
            (LocalEntryNotFoundError, OfflineModeIsEnabled, RepositoryNotFoundError, RevisionNotFoundError),
        ):
            return seen
        seen = seen.__cause__ or seen.__context__
    text = str(error)
    if "couldn't connect" in text or "is not a local folder and is not a valid model identifier" in text:
        return error
    return None


def _message(name: str, what: str, cause: BaseException, error: BaseException) -> str:
    if isinstance(cause, GatedRepoError):
        return f"The {what} {name!r} is a gated repo on the Hub; accept its terms and log in (`hf auth login`)."
    if isinstance(cause, RevisionNotFoundError):
        return f"The {what} {name!r} has no such revision on the Hub; check the branch, tag or commit."
    if isinstance(cause, RepositoryNotFoundError) or "not a valid model identifier" in str(error):
        return (
            f"The {what} {name!r} is neither a local folder nor a repo on the Hub (or it is private: log in with "
            "`hf auth login`). Check the name or the path."
        )
    return (
        f"The {what} {name!r} is not a local folder, and the Hub cannot be reached to download it (offline, or "
        "not cached yet). Give a local folder, or connect and try again."
    )


def check_model_type(model_type: str | None, name: str) -> None:
    """Raises a [`GradiendLoadError`] unless a config's `model_type` is a GRADIEND's."""
    if model_type != "gradiend":
        kind = f"a {model_type!r} model" if model_type else "no model type"
        raise GradiendLoadError(
            f"{name!r} holds {kind}, not a GRADIEND (its config.json says model_type={model_type!r}). Load a base "
            "model with transformers' Auto classes, and a GRADIEND from the folder its `save_pretrained` wrote."
        )


def check_gradiend_folder(folder: str | os.PathLike) -> None:
    """Raises a [`GradiendLoadError`] unless `folder` holds a complete GRADIEND save with safetensors weights."""
    check_saved_folder(folder, check_model_type)


def check_saved_folder(folder: str | os.PathLike, check_type, what: str = "GRADIEND") -> None:
    """Raises a [`GradiendLoadError`] unless `folder` holds a complete save of `what` with safetensors weights.

    Args:
        folder (`str` or `os.PathLike`): The folder.
        check_type (`Callable[[str | None, str], None]`): Raises for a config's `model_type` that is not `what`'s.
        what (`str`, *optional*, defaults to `"GRADIEND"`): How messages name the artefact.
    """
    folder = os.fspath(folder)
    check_complete(folder)
    config_path = os.path.join(folder, "config.json")
    if not os.path.isfile(config_path):
        raise GradiendLoadError(
            f"{folder!r} has no config.json, so it holds no saved {what} (or a save into it was interrupted). "
            "Give the folder that `save_pretrained` wrote."
        )
    try:
        with open(config_path, encoding="utf-8") as file:
            model_type = json.load(file).get("model_type")
    except (OSError, ValueError, AttributeError) as error:
        raise GradiendLoadError(f"{config_path!r} is not a readable JSON config ({error}).") from None
    check_type(model_type, folder)
    names = os.listdir(folder)
    if not any(n in ("model.safetensors", "model.safetensors.index.json") for n in names):
        pickles = [n for n in names if n.endswith((".bin", ".pt", ".pth", ".pkl"))]
        if pickles:
            raise GradiendLoadError(
                f"{folder!r} holds only pickled weights ({', '.join(sorted(pickles)[:3])}), which gradiend-hf does "
                "not load because unpickling can run arbitrary code. Load them yourself if you trust them and "
                f"re-save the {what} with `save_pretrained` (safetensors)."
            )
        raise GradiendLoadError(
            f"{folder!r} has a {what} config.json but no weights (model.safetensors); the save is incomplete. "
            f"Save the {what} again."
        )


def safetensors_only(kwargs: dict) -> dict:
    """`from_pretrained` keyword arguments that load safetensors only (pickles can run code when unpickled)."""
    if kwargs.get("use_safetensors") is False:
        raise GradiendLoadError("GRADIENDs load from safetensors only; `use_safetensors=False` is not supported.")
    return {**kwargs, "use_safetensors": True}


def check_gradiend_source(name: str, config_class, kwargs: dict) -> None:
    """Refuses, before any weight is read, a local folder that is no whole GRADIEND save, or a Hub repo whose
    config is another model's."""
    if os.path.isdir(name):
        check_gradiend_folder(name)
        return
    hub_kwargs = {k: kwargs[k] for k in ("revision", "token", "cache_dir", "local_files_only") if k in kwargs}
    with hub_errors(name, "GRADIEND"):
        config_dict, _ = config_class.get_config_dict(name, **hub_kwargs)
    check_model_type(config_dict.get("model_type"), name)


@contextlib.contextmanager
def gradiend_load_errors(name: str, expected_shapes) -> Iterator[None]:
    """Turns what `from_pretrained` raises for a broken GRADIEND checkpoint into a [`GradiendLoadError`].

    Args:
        name (`str`): The folder or Hub id.
        expected_shapes (`Callable[[], dict]`): Tensor name → shape the config asks for, to name mis-shaped tensors
            of a local folder.
    """
    with hub_errors(name, "GRADIEND"):
        try:
            yield
        except SafetensorError as error:
            raise GradiendLoadError(
                f"A weights file of the GRADIEND {name!r} is corrupt or truncated ({error}); an interrupted copy or "
                "download? Save or download it again."
            ) from None
        except RuntimeError as error:
            if "ignore_mismatched_sizes" not in str(error):
                raise
            shapes = _mismatched_shapes(name, expected_shapes()) if os.path.isdir(name) else []
            raise GradiendLoadError(
                f"The weights of the GRADIEND {name!r} do not match its config.json (tensors of other shapes"
                f"{': ' + '; '.join(shapes[:3]) if shapes else ''}): the checkpoint was edited, or its config and "
                "weights come from different saves. Re-save the GRADIEND from a model that loads."
            ) from None
        except OSError as error:
            if "safetensors" in str(error) and not os.path.isdir(name):
                raise GradiendLoadError(
                    f"The GRADIEND {name!r} has no safetensors weights (only pickled ones, which gradiend-hf does not "
                    "load because unpickling can run code). Re-save it with `save_pretrained`."
                ) from error
            raise


def check_loading_info(info: dict, name: str) -> None:
    """Raises a [`GradiendLoadError`] naming the tensors `from_pretrained` reports missing, unexpected or
    mis-shaped: a GRADIEND is never returned partly random."""
    missing_kept = sorted(k for k in info.get("missing_keys") or () if str(k).startswith("kept."))
    if missing_kept:
        raise GradiendLoadError(
            f"The kept positions of the pruned GRADIEND {name!r} are missing or corrupt (the checkpoint lacks "
            f"{missing_kept[0]!r}). Re-save the pruned GRADIEND, or prune the full GRADIEND again."
        )
    problems = []
    for kind in ("missing_keys", "unexpected_keys", "mismatched_keys"):
        keys = sorted(str(k[0] if isinstance(k, tuple) else k) for k in info.get(kind) or ())
        if keys:
            problems.append(f"{kind.replace('_keys', '')} tensors {keys[:3]}{' …' if len(keys) > 3 else ''}")
    if problems:
        raise GradiendLoadError(
            f"The weights of the GRADIEND {name!r} do not match its config.json ({'; '.join(problems)}): the "
            "checkpoint is incomplete, edited, or its config and weights come from different saves. Re-save the "
            "GRADIEND from a model that loads."
        )


def _mismatched_shapes(folder: str, expected: dict[str, tuple[int, ...]]) -> list[str]:
    """`"key: file (a, b), config (c, d)"` for every tensor of a local checkpoint whose shape the config does not give."""
    found = []
    for name in sorted(os.listdir(folder)):
        if name.startswith("model") and name.endswith(".safetensors"):
            with safe_open(os.path.join(folder, name), framework="pt") as file:
                for key in file.keys():
                    shape = tuple(file.get_slice(key).get_shape())
                    if key in expected and expected[key] != shape:
                        found.append(f"{key}: file {shape}, config {expected[key]}")
    return found
