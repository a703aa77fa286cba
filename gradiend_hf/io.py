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
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from .artefacts import (
    INCOMPLETE_NAME,
    MANIFEST_NAME,
    STAGING_MARKER,
    TMP_TAG,
    check_output_folder,
    list_files,
    owned_files,
    read_manifest,
)
from .errors import GradiendSaveError


logger = logging.getLogger(__name__)

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
    for stale in path.parent.glob(f".{glob_escape(path.name)}{TMP_TAG}*"):
        if stale.is_file():  # what a write of this file killed halfway left behind
            with contextlib.suppress(OSError):
                os.remove(stale)
    temporary = path.parent / f".{path.name}{TMP_TAG}{secrets.token_hex(4)}{path.suffix}"
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
        written = sorted(list_files(staging, skip=(STAGING_MARKER, MANIFEST_NAME)))
        old = read_manifest(target) if target.is_dir() else None
        carried_owned = set(old["files"]) if (update and old) else set()
        files = sorted(set(written) | (carried_owned & set(list_files(target))))
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
        for rel in list_files(source, skip=(MANIFEST_NAME, INCOMPLETE_NAME, STAGING_MARKER)):
            _link(source / rel, staging / rel)
    return Path(target)


def clean_leftovers(target: str | os.PathLike) -> None:
    """Removes what interrupted saves of `target` left behind (never a file of the user's)."""
    target = Path(target)
    if target.parent.is_dir():
        for leftover in target.parent.glob(f".{glob_escape(target.name)}{TMP_TAG}*"):
            if not leftover.is_dir():
                continue
            if (leftover / STAGING_MARKER).exists():
                if not _in_use(leftover):
                    shutil.rmtree(leftover, ignore_errors=True)  # a staging folder that was never swapped in
            elif target.is_dir():
                _retire(leftover, target)  # the previous content, swapped out but not yet cleaned up
    if target.is_dir():
        for leftover in target.glob(f"*{TMP_TAG}*"):
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
    staging = parent / f"{'.' + name if name else ''}{TMP_TAG}{secrets.token_hex(6)}"
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
    owned = set() if update else owned_files(source)
    for rel in list_files(source, skip=(MANIFEST_NAME, INCOMPLETE_NAME, STAGING_MARKER)):
        if rel in owned or (staging / rel).exists() or (staging / rel).is_symlink():
            continue
        if TMP_TAG in rel.split("/")[0]:
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


def _retire(old: Path, target: Path) -> None:
    """Cleans up the previous content of `target` after a swap; files of the user's that the new folder lacks (one
    written in the moment before the swap) are moved into it, never deleted."""
    owned = owned_files(old)
    rewritten = set((read_manifest(target) or {"files": []})["files"])  # the new save replaced these on purpose
    kept = []
    for rel in list_files(old):
        path, new = old / rel, target / rel
        if rel in owned or rel in (MANIFEST_NAME, STAGING_MARKER, INCOMPLETE_NAME):
            os.remove(path)
        elif new.exists() or new.is_symlink():
            if rel in rewritten or _same_file(path, new):
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
    owned = set() if update else owned_files(target)
    written = list_files(staging, skip=(STAGING_MARKER,))
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

    try:
        library_version = version("gradiend-hf")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        library_version = None
    record = {"library": "gradiend-hf", "version": library_version, "kind": kind, "files": files}
    with open(_create(staging / MANIFEST_NAME), "w", encoding="utf-8") as file:
        json.dump(record, file, indent=2)
        file.write("\n")


def _fsync(path: Path) -> None:
    """Flushes a file's data, or a folder's entries, to disk (a crash must not leave empty files behind a rename)."""
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _fsync_tree(folder: Path) -> None:
    for rel in list_files(folder):
        if not (folder / rel).is_symlink():
            _fsync(folder / rel)
    _fsync(folder)
