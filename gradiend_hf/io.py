"""Atomic writes: the one helper every file and folder gradiend-hf writes goes through.

**Files** ([`atomic_write_text`], [`atomic_write_json`], [`atomic_write_bytes`], [`atomic_path`]): written to a
temporary file beside the target, flushed to disk and renamed over it, so a reader sees the old file or the new one.

**Folders** ([`atomic_folder`]): a GRADIEND, a rewritten model, an adapter or a converted model is several files
that only make sense together (a config and its weights). The writer fills a fresh staging folder beside the target;
on success the files of the user's that the target holds are hard-linked into it, and the two folders are swapped by
one `renameat2(RENAME_EXCHANGE)` system call. A crash or `kill -9` at any moment therefore leaves the complete old
folder or the complete new one. Leftovers of an interrupted save are cleaned up by the next save of that folder.

Every folder gets a manifest (`.gradiend-hf-manifest.json`, never uploaded) naming its kind and the files its writer
wrote. A later save removes only those files (e.g. a shard an earlier save needed); any other file, such as a user's
`model-backup.safetensors`, is kept. Writing one kind of artefact into a folder that holds another (a rewritten model
over a GRADIEND, a GRADIEND over a base model) is refused unless `overwrite=True`.

Where the swap cannot be used (not Linux, a file system without it, the target is a mount point or holds the current
working directory, or its parent is not writable) the files are moved in one by one behind an `.gradiend-incomplete`
marker, and gradiend-hf's loaders refuse a folder that still carries it.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import json
import logging
import os
import re
import secrets
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .errors import GradiendLoadError, GradiendSaveError


logger = logging.getLogger(__name__)

MANIFEST_NAME = ".gradiend-hf-manifest.json"
INCOMPLETE_NAME = ".gradiend-incomplete"
STAGING_MARKER = ".gradiend-staging"
_TMP_TAG = ".gradiend-tmp-"

KIND_GRADIEND = "gradiend"
KIND_REWRITE = "rewritten-model"
KIND_ADAPTER = "peft-adapter"
KIND_STEERING = "steering"
KIND_MODEL = "model"  # a model folder gradiend-hf did not write (e.g. a base model); never written by us
KIND_DEFAULT_MODEL = "default-model"
KIND_SPACE = "space"

_DESCRIPTIONS = {
    KIND_GRADIEND: "a GRADIEND",
    KIND_REWRITE: "a rewritten model",
    KIND_ADAPTER: "a PEFT adapter",
    KIND_STEERING: "steering adapters",
    KIND_MODEL: "a model that gradiend-hf did not write (e.g. a base model)",
    KIND_DEFAULT_MODEL: "the converted default model",
    KIND_SPACE: "a Gradio Space",
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


# ---------------------------------------------------------------------------------------------------------------------
# single files
# ---------------------------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yields a temporary path beside `path` (same suffix) to write to; moves it over `path` when the block succeeds.

    For writers that want a file name rather than a file object (e.g. `matplotlib.figure.Figure.savefig`).
    """
    path = Path(path)
    if path.is_dir():
        raise GradiendSaveError(f"Cannot write the file {str(path)!r}: it is a folder.")
    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in path.parent.glob(f".{glob_escape(path.name)}{_TMP_TAG}*"):
        if stale.is_file():  # what a write of this file killed halfway left behind
            with contextlib.suppress(OSError):
                os.remove(stale)
    temporary = path.parent / f".{path.name}{_TMP_TAG}{secrets.token_hex(4)}{path.suffix}"
    try:
        yield temporary
        _fsync(temporary)
        if path.exists():
            os.chmod(temporary, path.stat().st_mode & 0o7777)
        os.replace(temporary, path)
        _fsync(path.parent)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.remove(temporary)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Writes `data` to `path` atomically; returns `path`."""
    with atomic_path(path) as temporary:
        with open(_create(temporary), "wb") as file:
            file.write(data)
    return Path(path)


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Writes `text` (UTF-8) to `path` atomically; returns `path`."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, value: Any, **dumps_kwargs: Any) -> Path:
    """Writes `value` as JSON (indented, `default=float` unless given) to `path` atomically; returns `path`."""
    dumps_kwargs.setdefault("indent", 2)
    dumps_kwargs.setdefault("default", float)
    return atomic_write_text(path, json.dumps(value, **dumps_kwargs) + "\n")


def _create(path: Path) -> int:
    """Opens a new file honouring the umask (`mkstemp` would make it private)."""
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)


# ---------------------------------------------------------------------------------------------------------------------
# kinds of folders
# ---------------------------------------------------------------------------------------------------------------------


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
    PEFT adapters by `adapter_config.json` and steering folders by `gradiend_steering.json`.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return None
    manifest = read_manifest(folder)
    if manifest and manifest.get("kind"):
        return str(manifest["kind"])
    if (folder / "gradiend_steering.json").is_file():
        return KIND_STEERING
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


# ---------------------------------------------------------------------------------------------------------------------
# folders
# ---------------------------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def atomic_folder(
    target: str | os.PathLike, kind: str, overwrite: bool = False, update: bool = False
) -> Iterator[Path]:
    """Yields an empty staging folder; when the block succeeds its files become `target`, all at once.

    Files the user keeps in `target` (anything not written by an earlier save of gradiend-hf) stay; files an earlier
    save wrote and this one does not are removed, unless `update=True`, which keeps every earlier file that is not
    written again (for adding a card or figures to a saved model). See the module docstring.

    Args:
        target (`str` or `os.PathLike`): The folder to write (created with its parents when missing).
        kind (`str`): What is written (`KIND_GRADIEND`, `KIND_REWRITE`, `KIND_ADAPTER`, `KIND_STEERING`, …).
        overwrite (`bool`, *optional*, defaults to `False`): Allow replacing another kind of artefact.
        update (`bool`, *optional*, defaults to `False`): Keep the earlier save's files that are not written again.

    Raises:
        [`GradiendSaveError`]: see [`check_output_folder`].
    """
    target = check_output_folder(target, kind, overwrite)
    target.parent.mkdir(parents=True, exist_ok=True)
    clean_leftovers(target)
    in_place = not _can_swap(target)
    staging, lock = _make_staging(target if in_place else target.parent, target.name if not in_place else "")
    try:
        yield staging
        written = sorted(_files(staging, skip=(STAGING_MARKER, MANIFEST_NAME)))
        old = read_manifest(target) if target.is_dir() else None
        carried_owned = set(old["files"]) if (update and old) else set()
        files = sorted(set(written) | (carried_owned & set(_files(target))))
        _write_manifest(staging, kind, files)
        _fsync_tree(staging)
        if in_place:
            _commit_in_place(staging, target, update)
        else:
            _commit_swap(staging, target, update)
    finally:
        if staging.exists() and (staging / STAGING_MARKER).exists():
            shutil.rmtree(staging, ignore_errors=True)
        os.close(lock)


def copy_folder(source: str | os.PathLike, target: str | os.PathLike, kind: str) -> Path:
    """Copies the folder `source` to `target` atomically (files are hard-linked where the file system allows: every
    writer replaces files, never edits them in place, so the copies stay independent)."""
    source = Path(source)
    with atomic_folder(target, kind, overwrite=True) as staging:
        for rel in _files(source, skip=(MANIFEST_NAME, INCOMPLETE_NAME, STAGING_MARKER)):
            _link(source / rel, staging / rel)
    return Path(target)


def clean_leftovers(target: str | os.PathLike) -> None:
    """Removes what interrupted saves of `target` left behind (never a file of the user's)."""
    target = Path(target)
    if target.parent.is_dir():
        for leftover in target.parent.glob(f".{glob_escape(target.name)}{_TMP_TAG}*"):
            if not leftover.is_dir():
                continue
            if (leftover / STAGING_MARKER).exists():
                if not _in_use(leftover):
                    shutil.rmtree(leftover, ignore_errors=True)  # a staging folder that was never swapped in
            elif target.is_dir():
                _retire(leftover, target)  # the previous content, swapped out but not yet cleaned up
    if target.is_dir():
        for leftover in target.glob(f"*{_TMP_TAG}*"):
            if leftover.is_dir() and (leftover / STAGING_MARKER).exists() and not _in_use(leftover):
                shutil.rmtree(leftover, ignore_errors=True)
            elif leftover.is_file():  # a single-file write inside the folder that was killed halfway
                with contextlib.suppress(OSError):
                    os.remove(leftover)
        with contextlib.suppress(FileNotFoundError):
            os.remove(target / STAGING_MARKER)


def glob_escape(name: str) -> str:
    return re.sub(r"([*?\[])", r"[\1]", name)


def _make_staging(parent: Path, name: str) -> tuple[Path, int]:
    """A new staging folder and the open, locked descriptor of its marker.

    The marker tells a later cleanup that the folder was never swapped in, so it may be deleted whole; the lock
    (released by the kernel when the writing process dies) tells it whether a living save still owns the folder.
    """
    staging = parent / f"{'.' + name if name else ''}{_TMP_TAG}{secrets.token_hex(6)}"
    os.mkdir(staging, 0o777)
    lock = _create(staging / STAGING_MARKER)
    fcntl.flock(lock, fcntl.LOCK_EX)
    return staging, lock


def _in_use(staging: Path) -> bool:
    try:
        fd = os.open(staging / STAGING_MARKER, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(fd)
    return False


def _can_swap(target: Path) -> bool:
    if not sys.platform.startswith("linux") or _renameat2() is None:
        return False
    if not os.access(target.parent, os.W_OK | os.X_OK):
        return False
    if target.exists():
        if os.path.ismount(target):
            return False
        cwd = os.path.realpath(os.getcwd())
        if cwd == str(target) or cwd.startswith(str(target) + os.sep):
            return False
    return True


def _renameat2():
    try:
        function = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    return function


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swaps two paths; `False` when the file system cannot."""
    at_fdcwd, rename_exchange = -100, 2
    result = _renameat2()(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange)
    if result == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.EPERM, errno.EXDEV, errno.ENOTSUP, errno.EBUSY):
        return False
    raise OSError(code, os.strerror(code), os.fspath(b))


def _commit_swap(staging: Path, target: Path, update: bool) -> None:
    if target.is_dir():
        os.chmod(staging, target.stat().st_mode & 0o7777)
        _carry(target, staging, update)
        os.remove(staging / STAGING_MARKER)
        if not _exchange(staging, target):
            _commit_in_place(staging, target, update)
            return
        _fsync(target.parent)
        _retire(staging, target)  # `staging` now holds the previous content
    else:
        os.remove(staging / STAGING_MARKER)
        os.rename(staging, target)
        _fsync(target.parent)


def _carry(source: Path, staging: Path, update: bool) -> None:
    """Links the files of `source` that the new save keeps into `staging` (those it did not write itself)."""
    owned = set() if update else _owned(source)
    for rel in _files(source, skip=(MANIFEST_NAME, INCOMPLETE_NAME, STAGING_MARKER)):
        if rel in owned or (staging / rel).exists() or (staging / rel).is_symlink():
            continue
        if _TMP_TAG in rel.split("/")[0]:
            continue
        _link(source / rel, staging / rel)


def _link(source: Path, destination: Path) -> None:
    destination.parent.mkdir(parents=True, exist_ok=True)
    if source.is_symlink():
        os.symlink(os.readlink(source), destination)
        return
    try:
        os.link(source, destination)
    except OSError:
        shutil.copy2(source, destination)


def _owned(folder: Path) -> set[str]:
    """The files of `folder` that an earlier save of gradiend-hf wrote (from its manifest, else by name)."""
    # An in-place save that was interrupted moved in some of the files its marker lists: they are ours too.
    interrupted = read_manifest(folder, INCOMPLETE_NAME) or {"files": []}
    manifest = read_manifest(folder)
    if manifest is not None:
        return {str(name) for name in manifest["files"] + interrupted["files"]}
    pattern = _LEGACY_OWNED.get(folder_kind(folder) or "")
    legacy = {rel for rel in _files(folder) if pattern.fullmatch(rel)} if pattern is not None else set()
    return legacy | {str(name) for name in interrupted["files"]}


def _retire(old: Path, target: Path) -> None:
    """Cleans up the previous content of `target` after a swap; files of the user's that the new folder lacks (one
    written in the moment before the swap) are moved into it, never deleted."""
    owned = _owned(old)
    kept = []
    for rel in _files(old):
        path, new = old / rel, target / rel
        if rel in owned or rel in (MANIFEST_NAME, STAGING_MARKER, INCOMPLETE_NAME):
            os.remove(path)
        elif new.exists() or new.is_symlink():
            if _same_file(path, new):
                os.remove(path)
            else:
                kept.append(rel)
        else:
            new.parent.mkdir(parents=True, exist_ok=True)
            os.replace(path, new)
    for root, dirs, _ in os.walk(old, topdown=False):
        for name in dirs:
            with contextlib.suppress(OSError):
                os.rmdir(os.path.join(root, name))
    with contextlib.suppress(OSError):
        os.rmdir(old)
    if kept:
        logger.warning(
            "Kept %d file(s) of the previous content of %s that differ from the new ones in %s: %s",
            len(kept),
            target,
            old,
            ", ".join(kept[:5]),
        )


def _same_file(a: Path, b: Path) -> bool:
    try:
        if os.path.samefile(a, b):
            return True
        if a.is_symlink() and b.is_symlink():
            return os.readlink(a) == os.readlink(b)
        return a.is_file() and b.is_file() and a.stat().st_size == b.stat().st_size and _equal_bytes(a, b)
    except OSError:
        return False


def _equal_bytes(a: Path, b: Path) -> bool:
    with open(a, "rb") as file_a, open(b, "rb") as file_b:
        while True:
            chunk_a, chunk_b = file_a.read(1 << 20), file_b.read(1 << 20)
            if chunk_a != chunk_b:
                return False
            if not chunk_a:
                return True


def _commit_in_place(staging: Path, target: Path, update: bool) -> None:
    """Moves the staged files into `target` one by one behind the incomplete-marker (see the module docstring)."""
    target.mkdir(parents=True, exist_ok=True)
    owned = set() if update else _owned(target)
    written = _files(staging, skip=(STAGING_MARKER,))
    atomic_write_text(target / INCOMPLETE_NAME, json.dumps({"staging": staging.name, "files": written}))
    last = ("config.json", "adapter_config.json", "gradiend_steering.json", MANIFEST_NAME)
    for rel in sorted(written, key=lambda name: (name in last, last.index(name) if name in last else 0, name)):
        (target / rel).parent.mkdir(parents=True, exist_ok=True)
        os.replace(staging / rel, target / rel)
    for rel in sorted(owned - set(written)):
        with contextlib.suppress(FileNotFoundError):
            os.remove(target / rel)
    _fsync(target)
    os.remove(target / INCOMPLETE_NAME)
    shutil.rmtree(staging, ignore_errors=True)


def _write_manifest(staging: Path, kind: str, files: list[str]) -> None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        library_version = version("gradiend-hf")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        library_version = None
    record = {"library": "gradiend-hf", "version": library_version, "kind": kind, "files": files}
    with open(_create(staging / MANIFEST_NAME), "w", encoding="utf-8") as file:
        json.dump(record, file, indent=2)
        file.write("\n")


def _files(folder: Path, skip: tuple[str, ...] = ()) -> list[str]:
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


def _fsync(path: Path) -> None:
    """Flushes a file's data, or a folder's entries, to disk (a crash must not leave empty files behind a rename)."""
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _fsync_tree(folder: Path) -> None:
    for rel in _files(folder):
        if not (folder / rel).is_symlink():
            _fsync(folder / rel)
    _fsync(folder)
