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
"""A small, local server that speaks the Hugging Face Hub's HTTP API, for tests.

No Hub is reachable from our CI, yet `push_to_hub`/`from_pretrained` round trips are exactly what users do with
gradiend-hf. [`LocalHub`] implements the part of the Hub's HTTP API that the *real* `huggingface_hub`,
`transformers` and `peft` clients use, so that their own code runs end to end against `127.0.0.1` (nothing in the
clients is mocked; only `HF_ENDPOINT` and a few configuration constants point at this server, see
`tests/hub_fixtures.py`).

What is implemented (the paths are the ones `huggingface_hub` 2.x builds, `{type}` is `models`, `datasets` or
`spaces` and `{prefix}` is empty, `datasets/` or `spaces/`):

* repositories: `POST /api/repos/create`, `DELETE /api/repos/delete`, `PUT /api/{type}/{repo}/settings`,
  `GET /api/{type}/{repo}` and `GET /api/{type}/{repo}/revision/{rev}` (model/dataset/space info, with siblings and
  the model card's metadata as `cardData`);
* uploads: `POST /api/{type}/{repo}/preupload/{rev}` (answers "regular" or "lfs" like the Hub: LFS for files matching
  the repo's `.gitattributes`, for binary files and for files of `lfs_threshold` bytes or more),
  `POST /{prefix}{repo}.git/info/lfs/objects/batch` (git-LFS batch API, "basic" and HF "multipart" transfers), the
  blob uploads themselves (on a second port that plays the storage bucket), the LFS `verify` action,
  multipart completion, and `POST /api/{type}/{repo}/commit/{rev}` (the ndjson commit API: regular and LFS
  files, deletions of files and folders, `parentCommit`, `create_pr`);
* downloads: `GET`/`HEAD /{prefix}{repo}/resolve/{rev}/{path}` with the headers `hf_hub_download` relies on
  (`X-Repo-Commit`, `ETag`, and for LFS files a `302` to the storage port with `Location`, `X-Linked-Etag` and
  `X-Linked-Size`), `Range` requests, `GET /api/{type}/{repo}/tree/{rev}[/{path}]` (paginated with a `Link`
  header), `POST /api/{type}/{repo}/paths-info/{rev}`;
* revisions: every commit gets a 40-hex id, revisions resolve by branch, tag, `refs/pr/N` or (abbreviated) commit id;
  `POST`/`DELETE /api/{type}/{repo}/branch/{branch}`, `POST`/`DELETE /api/{type}/{repo}/tag/{rev|tag}`,
  `GET /api/{type}/{repo}/refs`, `GET /api/{type}/{repo}/commits/{rev}`;
* collections: create, list, get and add an item (`tests/hub_collections.py`);
* misc: `GET /api/whoami-v2`, `POST /api/validate-yaml`, `GET /api/agent-harnesses`, `/api/telemetry/*`.

Xet storage is *not* implemented: `huggingface_hub` uploads through Xet whenever the `hf_xet` package is installed,
without asking the server first, so clients must run with `HF_HUB_DISABLE_XET=1` (the fixture does this). The Xet
token routes answer a 400 that says so. Downloads never use Xet here because the server sends no Xet headers.

Storage: file contents are content-addressed blobs (named by their sha256) in a folder on disk; repositories,
commits and refs live in memory. Everything is lost when the server stops.

Example:

```python
>>> from huggingface_hub import HfApi
>>> with LocalHub() as hub:  # HF_HUB_DISABLE_XET=1 must be set before uploading
...     api = HfApi(endpoint=hub.url, token="hf_local")
...     api.create_repo("user/tiny")
...     api.upload_file(path_or_fileobj=b"hello", path_in_repo="a.txt", repo_id="user/tiny")
```
"""

from __future__ import annotations

import base64
import fnmatch
import hashlib
import itertools
import json
import logging
import os
import re
import shutil
import socket
import tempfile
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit


try:  # imported as `tests.hub_server` or, with tests/ on the path, as `hub_server`
    from .hub_collections import CollectionRoutes
except ImportError:
    from hub_collections import CollectionRoutes


logger = logging.getLogger(__name__)

REPO_TYPES = {"models": "model", "datasets": "dataset", "spaces": "space"}
URL_PREFIXES = {"model": "", "dataset": "datasets/", "space": "spaces/"}

# Actions that may follow a repo id in `/api/{type}s/{repo_id}/{action}/...`. Used to tell a single-segment repo id
# ("gpt2") from a namespaced one ("user/gpt2") when parsing paths.
_API_ACTIONS = {
    "revision",
    "preupload",
    "commit",
    "tree",
    "paths-info",
    "refs",
    "commits",
    "branch",
    "tag",
    "settings",
    "xet-read-token",
    "xet-write-token",
}

# The `.gitattributes` that the Hub puts in the first commit of every new repository. Files matching a `filter=lfs`
# pattern are stored with git-LFS whatever their size, which is why even tiny `*.safetensors` shards take the LFS path.
DEFAULT_GITATTRIBUTES = """\
*.7z filter=lfs diff=lfs merge=lfs -text
*.arrow filter=lfs diff=lfs merge=lfs -text
*.bin filter=lfs diff=lfs merge=lfs -text
*.bz2 filter=lfs diff=lfs merge=lfs -text
*.ckpt filter=lfs diff=lfs merge=lfs -text
*.ftz filter=lfs diff=lfs merge=lfs -text
*.gz filter=lfs diff=lfs merge=lfs -text
*.h5 filter=lfs diff=lfs merge=lfs -text
*.joblib filter=lfs diff=lfs merge=lfs -text
*.lfs.* filter=lfs diff=lfs merge=lfs -text
*.mlmodel filter=lfs diff=lfs merge=lfs -text
*.model filter=lfs diff=lfs merge=lfs -text
*.msgpack filter=lfs diff=lfs merge=lfs -text
*.npy filter=lfs diff=lfs merge=lfs -text
*.npz filter=lfs diff=lfs merge=lfs -text
*.onnx filter=lfs diff=lfs merge=lfs -text
*.ot filter=lfs diff=lfs merge=lfs -text
*.parquet filter=lfs diff=lfs merge=lfs -text
*.pb filter=lfs diff=lfs merge=lfs -text
*.pickle filter=lfs diff=lfs merge=lfs -text
*.pkl filter=lfs diff=lfs merge=lfs -text
*.pt filter=lfs diff=lfs merge=lfs -text
*.pth filter=lfs diff=lfs merge=lfs -text
*.rar filter=lfs diff=lfs merge=lfs -text
*.safetensors filter=lfs diff=lfs merge=lfs -text
saved_model/**/* filter=lfs diff=lfs merge=lfs -text
*.tar.* filter=lfs diff=lfs merge=lfs -text
*.tar filter=lfs diff=lfs merge=lfs -text
*.tflite filter=lfs diff=lfs merge=lfs -text
*.tgz filter=lfs diff=lfs merge=lfs -text
*.wasm filter=lfs diff=lfs merge=lfs -text
*.xz filter=lfs diff=lfs merge=lfs -text
*.zip filter=lfs diff=lfs merge=lfs -text
*.zst filter=lfs diff=lfs merge=lfs -text
*tfevents* filter=lfs diff=lfs merge=lfs -text
"""

_LFS_POINTER = "version https://git-lfs.github.com/spec/v1\noid sha256:{oid}\nsize {size}\n"
_COPY_BUFFER = 1024 * 1024
_HEX64 = re.compile(r"[0-9a-f]{64}")


class HubError(Exception):
    """An error answered to the client, with the `X-Error-Code` header `huggingface_hub` maps to its exceptions.

    `hf_raise_for_status` turns `RepoNotFound`, `RevisionNotFound` and `EntryNotFound` into `RepositoryNotFoundError`,
    `RevisionNotFoundError` and `RemoteEntryNotFoundError`; other statuses become `HfHubHTTPError`/`BadRequestError`.
    """

    def __init__(
        self,
        status: int,
        message: str,
        code: str | None = None,
        headers: dict[str, str] | None = None,
        body: dict[str, Any] | None = None,
    ):
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.headers = headers or {}
        self.body = body or {}


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _iso(dt: datetime) -> str:
    """Format a date like the Hub does (`2026-01-31T12:00:00.000Z`), which `huggingface_hub.parse_datetime` reads."""
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def git_blob_oid(content: bytes) -> str:
    """Git's object id of a blob, the `oid`/`blobId` the Hub reports for regular files."""
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


def lfs_pointer(sha256: str, size: int) -> bytes:
    """The git-LFS pointer file that git stores in place of an LFS file."""
    return _LFS_POINTER.format(oid=sha256, size=size).encode()


@dataclass(frozen=True)
class FileEntry:
    """One file in a commit's tree.

    Attributes:
        sha256: sha256 of the content; also the name of the blob on disk and the LFS object id.
        size: size of the content in bytes.
        oid: git blob id: of the content for regular files, of the LFS pointer for LFS files (as on the Hub).
        lfs: whether the file is stored with git-LFS.
    """

    sha256: str
    size: int
    oid: str
    lfs: bool

    @property
    def pointer_size(self) -> int:
        return len(lfs_pointer(self.sha256, self.size))

    @property
    def etag(self) -> str:
        """What the client compares with its local hash to skip unchanged files (see `_fetch_upload_modes`)."""
        return self.sha256 if self.lfs else self.oid


@dataclass
class Commit:
    oid: str
    parents: tuple[str, ...]
    tree: dict[str, FileEntry]
    title: str
    message: str
    author: str
    date: datetime


@dataclass
class Repo:
    repo_type: str
    repo_id: str
    private: bool = False
    sdk: str | None = None
    gated: Any = False
    created_at: datetime = field(default_factory=_now)
    branches: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    pull_requests: dict[int, str] = field(default_factory=dict)
    commits: dict[str, Commit] = field(default_factory=dict)
    # LFS objects uploaded to (or committed in) this repo: like on the Hub, LFS storage is per repository.
    lfs_objects: set[str] = field(default_factory=set)

    @property
    def key(self) -> tuple[str, str]:
        return (self.repo_type, self.repo_id)


@dataclass
class _PendingUpload:
    repo_key: tuple[str, str]
    sha256: str
    size: int
    chunk_size: int | None = None  # set for multipart uploads


class _HubServer(ThreadingHTTPServer):
    """A threading HTTP server that remembers its open connections so that `stop()` can close idle keep-alives.

    `huggingface_hub` keeps a pooled `httpx` client: without this, handler threads would wait on idle client
    connections until their timeout after the server was asked to stop.
    """

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address, handler, hub: LocalHub, role: str):
        self.hub = hub
        self.role = role  # "api" (the Hub itself) or "storage" (plays the LFS bucket / CDN)
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, handler)

    def process_request(self, request, client_address):
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request):
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class LocalHub:
    """A Hugging Face Hub for tests, served on `127.0.0.1`.

    Args:
        root (`str` or `Path`, *optional*):
            Folder for the blobs. A temporary folder (removed by `stop()`) when not given.
        token (`str`, *optional*):
            The only token accepted for writes (and for reading private repos). When `None`, any bearer token is
            accepted, but writes still need one, as on the Hub.
        user (`str`, defaults to `"local-user"`):
            Name returned by `whoami` and namespace of repos created without one.
        lfs_threshold (`int`, defaults to 10 MiB):
            Files of this size or more are uploaded with git-LFS, like on the Hub.
        multipart_chunk_size (`int`, *optional*):
            When set, LFS files larger than this are uploaded with the Hub's multipart transfer, in parts of this size.
        tree_page_size (`int`, defaults to 1000):
            Entries per page of the tree listing (the Hub uses 1000); smaller values exercise the client's pagination.

    Attributes:
        url: base URL of the Hub (`http://127.0.0.1:<port>`), to use as `HF_ENDPOINT`.
        storage_url: base URL of the storage server that LFS uploads and downloads are redirected to.
        request_log: `(method, path, status)` of every request, in order; lets tests check which protocol was used.
        unhandled: requests that matched no route, a sign that a client uses an endpoint this server lacks.
    """

    def __init__(
        self,
        root: str | Path | None = None,
        *,
        token: str | None = None,
        user: str = "local-user",
        lfs_threshold: int = 10 * 1024 * 1024,
        multipart_chunk_size: int | None = None,
        tree_page_size: int = 1000,
    ):
        self._own_root = root is None
        self.root = Path(root) if root is not None else None
        self.token = token
        self.user = user
        self.lfs_threshold = lfs_threshold
        self.multipart_chunk_size = multipart_chunk_size
        self.tree_page_size = tree_page_size

        self.repos: dict[tuple[str, str], Repo] = {}
        self.collections: dict[str, dict[str, Any]] = {}  # by slug, see tests/hub_collections.py
        self.request_log: list[tuple[str, str, int]] = []
        self.unhandled: list[tuple[str, str]] = []
        self._lock = threading.RLock()
        self._uploads: dict[str, _PendingUpload] = {}
        self._commit_counter = itertools.count()
        self._servers: list[_HubServer] = []
        self._threads: list[threading.Thread] = []
        self.url: str | None = None
        self.storage_url: str | None = None

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> str:
        """Start the API and storage servers on free ports of 127.0.0.1 and return the API's base URL."""
        if self.url is not None:
            return self.url
        if self.root is None:
            self.root = Path(tempfile.mkdtemp(prefix="local-hub-"))
        (self.root / "blobs").mkdir(parents=True, exist_ok=True)
        (self.root / "incoming").mkdir(parents=True, exist_ok=True)

        urls = []
        for role in ("api", "storage"):
            # Port 0: the OS picks a free port, so parallel test sessions never collide. Only the loopback
            # interface is bound: the server must not be reachable from outside the machine.
            server = _HubServer(("127.0.0.1", 0), _HubRequestHandler, hub=self, role=role)
            thread = threading.Thread(
                target=server.serve_forever, kwargs={"poll_interval": 0.05}, name=f"local-hub-{role}", daemon=True
            )
            thread.start()
            self._servers.append(server)
            self._threads.append(thread)
            urls.append(f"http://127.0.0.1:{server.server_address[1]}")
        self.url, self.storage_url = urls
        return self.url

    def stop(self) -> None:
        """Stop both servers, close open connections and remove the temporary storage folder."""
        for server in self._servers:
            server.shutdown()
            server.close_connections()
            server.server_close()
        for thread in self._threads:
            thread.join(timeout=5)
        self._servers.clear()
        self._threads.clear()
        self.url = self.storage_url = None
        if self._own_root and self.root is not None:
            shutil.rmtree(self.root, ignore_errors=True)
            self.root = None

    def __enter__(self) -> LocalHub:
        self.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()

    # ------------------------------------------------------------------ blobs

    def _blob_path(self, sha256: str) -> Path:
        return self.root / "blobs" / sha256

    def _store_bytes(self, content: bytes) -> str:
        sha256 = hashlib.sha256(content).hexdigest()
        path = self._blob_path(sha256)
        if not path.exists():
            tmp = self.root / "incoming" / uuid.uuid4().hex
            tmp.write_bytes(content)
            os.replace(tmp, path)
        return sha256

    def read_blob(self, sha256: str) -> bytes:
        return self._blob_path(sha256).read_bytes()

    # ------------------------------------------------------------------ repos and revisions

    def repo_url(self, repo: Repo) -> str:
        return f"{self.url}/{URL_PREFIXES[repo.repo_type]}{repo.repo_id}"

    def get_repo(self, repo_type: str, repo_id: str, *, authorized: bool) -> Repo:
        repo = self.repos.get((repo_type, repo_id))
        if repo is None or (repo.private and not authorized):
            # The Hub answers 401 for private repos without a valid token and 404 for missing ones; both map to
            # `RepositoryNotFoundError` in the client.
            raise HubError(401 if repo is not None else 404, "Repository not found", "RepoNotFound")
        return repo

    def create_repo(self, repo_type: str, repo_id: str, *, private: bool = False, sdk: str | None = None) -> Repo:
        with self._lock:
            if (repo_type, repo_id) in self.repos:
                repo = self.repos[(repo_type, repo_id)]
                # The Hub sends the URL along: `create_repo(exist_ok=True)` reads it from this 409.
                url = self.repo_url(repo)
                raise HubError(409, f"You already created this {repo_type} repo", body={"url": url})
            repo = Repo(repo_type=repo_type, repo_id=repo_id, private=private, sdk=sdk)
            # Like the Hub, a new repo has one commit with the default `.gitattributes`.
            content = DEFAULT_GITATTRIBUTES.encode()
            entry = FileEntry(self._store_bytes(content), len(content), git_blob_oid(content), lfs=False)
            commit = self._new_commit(repo, (), {".gitattributes": entry}, "initial commit", "")
            repo.branches["main"] = commit.oid
            self.repos[repo.key] = repo
            return repo

    def _new_commit(
        self, repo: Repo, parents: tuple[str, ...], tree: dict[str, FileEntry], title: str, message: str
    ) -> Commit:
        date = _now()
        # A commit id only needs to be unique and 40-hex like git's; hashing the content plus a counter gives that.
        payload = json.dumps(
            [
                next(self._commit_counter),
                parents,
                sorted((p, e.oid) for p, e in tree.items()),
                title,
                message,
                _iso(date),
            ]
        )
        commit = Commit(
            oid=hashlib.sha1(payload.encode()).hexdigest(),
            parents=parents,
            tree=tree,
            title=title,
            message=message,
            author=self.user,
            date=date,
        )
        repo.commits[commit.oid] = commit
        return commit

    def resolve_revision(self, repo: Repo, revision: str) -> Commit:
        """Resolve a branch, a tag, `refs/pr/N`, `refs/heads/x`, `refs/tags/x` or a (possibly short) commit id."""
        with self._lock:
            name = revision
            for prefix in ("refs/heads/", "refs/tags/"):
                if name.startswith(prefix):
                    name = name[len(prefix) :]
            if name in repo.branches:
                return repo.commits[repo.branches[name]]
            if name in repo.tags:
                return repo.commits[repo.tags[name]]
            match = re.fullmatch(r"refs/pr/(\d+)", revision)
            if match and int(match.group(1)) in repo.pull_requests:
                return repo.commits[repo.pull_requests[int(match.group(1))]]
            if re.fullmatch(r"[0-9a-f]{7,40}", revision):
                candidates = [oid for oid in repo.commits if oid.startswith(revision)]
                if len(candidates) == 1:
                    return repo.commits[candidates[0]]
        raise HubError(404, f"Invalid rev id: {revision}", "RevisionNotFound")

    def _update_ref(self, repo: Repo, revision: str, oid: str) -> None:
        match = re.fullmatch(r"refs/pr/(\d+)", revision)
        if match:
            repo.pull_requests[int(match.group(1))] = oid
        else:
            repo.branches[revision.removeprefix("refs/heads/")] = oid

    def _is_writable_ref(self, repo: Repo, revision: str) -> bool:
        match = re.fullmatch(r"refs/pr/(\d+)", revision)
        if match:
            return int(match.group(1)) in repo.pull_requests
        return revision.removeprefix("refs/heads/") in repo.branches

    # ------------------------------------------------------------------ uploads

    def lfs_patterns(self, tree: dict[str, FileEntry]) -> list[str]:
        entry = tree.get(".gitattributes")
        if entry is None:
            return []
        patterns = []
        for line in self.read_blob(entry.sha256).decode(errors="replace").splitlines():
            parts = line.split()
            if len(parts) >= 2 and not parts[0].startswith("#") and "filter=lfs" in parts[1:]:
                patterns.append(parts[0])
        return patterns

    @staticmethod
    def _matches(path: str, pattern: str) -> bool:
        # gitattributes semantics, simplified: a pattern without "/" matches the file name at any depth, a pattern
        # with "/" matches the whole path ("**" behaves like "*", which fnmatch lets cross "/").
        if "/" not in pattern:
            return fnmatch.fnmatchcase(path.rsplit("/", 1)[-1], pattern)
        return fnmatch.fnmatchcase(path, pattern.lstrip("/").replace("**", "*"))

    def upload_mode(self, path: str, size: int, sample: bytes, lfs_patterns: list[str]) -> str:
        """The Hub's choice between a regular git blob and git-LFS for one file."""
        if size == 0:
            return "regular"
        if size >= self.lfs_threshold or b"\0" in sample:
            return "lfs"
        if any(self._matches(path, pattern) for pattern in lfs_patterns):
            return "lfs"
        return "regular"

    def commit(
        self,
        repo: Repo,
        revision: str,
        header: dict[str, Any],
        operations: list[dict[str, Any]],
        *,
        create_pr: bool,
    ) -> tuple[Commit, int | None]:
        """Apply the operations of one `/commit` call and move the ref; return the commit and the PR number."""
        with self._lock:
            base = self.resolve_revision(repo, revision)
            pr_number = None
            if create_pr:
                pr_number = max(repo.pull_requests, default=0) + 1
                target = f"refs/pr/{pr_number}"
            elif self._is_writable_ref(repo, revision):
                target = revision
            else:
                raise HubError(400, f"Can only commit to a branch or a pull request, not to '{revision}'")

            parent_commit = header.get("parentCommit")
            if parent_commit is not None and parent_commit != base.oid:
                raise HubError(
                    412, f"A commit has happened since. Please refresh and try again (parent commit {parent_commit})."
                )

            tree = dict(base.tree)
            for operation in operations:
                key, value = operation.get("key"), operation.get("value") or {}
                path = value.get("path", "")
                if key == "file":
                    if value.get("encoding", "base64") != "base64":
                        raise HubError(400, f"Unsupported encoding for '{path}'")
                    content = base64.b64decode(value.get("content", ""))
                    if len(content) >= self.lfs_threshold:
                        raise HubError(400, f"'{path}' is {len(content)} bytes: files this large must use LFS")
                    tree[path] = FileEntry(self._store_bytes(content), len(content), git_blob_oid(content), lfs=False)
                elif key == "lfsFile":
                    sha256 = value.get("oid", "")
                    if sha256 not in repo.lfs_objects or not self._blob_path(sha256).exists():
                        raise HubError(400, f"LFS file '{path}' ({sha256}) was not uploaded before the commit")
                    size = self._blob_path(sha256).stat().st_size
                    if value.get("size") is not None and int(value["size"]) != size:
                        raise HubError(400, f"LFS file '{path}' has size {size}, not {value['size']}")
                    tree[path] = FileEntry(sha256, size, git_blob_oid(lfs_pointer(sha256, size)), lfs=True)
                elif key == "deletedFile":
                    if tree.pop(path, None) is None:
                        raise HubError(404, f"File not found: '{path}'", "EntryNotFound")
                elif key == "deletedFolder":
                    prefix = path.rstrip("/") + "/"
                    doomed = [p for p in tree if p.startswith(prefix)]
                    if not doomed:
                        raise HubError(404, f"Folder not found: '{path}'", "EntryNotFound")
                    for p in doomed:
                        del tree[p]
                else:
                    raise HubError(400, f"Unknown commit operation '{key}'")

            commit = self._new_commit(
                repo, (base.oid,), tree, header.get("summary") or "Upload files", header.get("description") or ""
            )
            if create_pr:
                repo.pull_requests[pr_number] = commit.oid
            else:
                self._update_ref(repo, target, commit.oid)
            return commit, pr_number

    # ------------------------------------------------------------------ trees

    @staticmethod
    def folders(tree: dict[str, FileEntry]) -> set[str]:
        folders = set()
        for path in tree:
            parts = path.split("/")[:-1]
            folders.update("/".join(parts[: i + 1]) for i in range(len(parts)))
        return folders

    @staticmethod
    def folder_oid(tree: dict[str, FileEntry], folder: str) -> str:
        prefix = folder + "/"
        listing = "\n".join(f"{p} {e.oid}" for p, e in sorted(tree.items()) if p.startswith(prefix))
        return hashlib.sha1(listing.encode()).hexdigest()

    def last_commit(self, repo: Repo, head: Commit, path: str, is_folder: bool) -> Commit:
        """The most recent commit (along first parents) that changed `path`, for `expand=True` listings."""

        def state(commit: Commit):
            if is_folder:
                return self.folder_oid(commit.tree, path)
            entry = commit.tree.get(path)
            return entry.oid if entry is not None else None

        current, value = head, state(head)
        while current.parents:
            parent = repo.commits[current.parents[0]]
            if state(parent) != value:
                break
            current = parent
        return current

    def path_info(self, repo: Repo, commit: Commit, path: str, *, expand: bool) -> dict[str, Any]:
        entry = commit.tree.get(path)
        if entry is not None:
            info: dict[str, Any] = {"type": "file", "oid": entry.oid, "size": entry.size, "path": path}
            if entry.lfs:
                info["lfs"] = {"oid": entry.sha256, "size": entry.size, "pointerSize": entry.pointer_size}
        else:
            info = {"type": "directory", "oid": self.folder_oid(commit.tree, path), "size": 0, "path": path}
        if expand:
            last = self.last_commit(repo, commit, path, is_folder=entry is None)
            info["lastCommit"] = {"id": last.oid, "title": last.title, "date": _iso(last.date)}
        return info


_FRONT_MATTER = re.compile(r"^---[ \t]*\r?\n(.*?)^---[ \t]*$", flags=re.DOTALL | re.MULTILINE)


def _parse_front_matter(content: bytes, *, strict: bool = False) -> dict[str, Any] | None:
    """The YAML metadata block of a README (model card) as a dict, `None` if there is none.

    With `strict=True`, invalid YAML raises `ValueError` (for `validate-yaml`); otherwise it gives `None`.
    """
    match = _FRONT_MATTER.match(content.decode(errors="replace"))
    if match is None:
        return None
    try:
        import yaml
    except ImportError:  # pragma: no cover - pyyaml ships with transformers and datasets
        return None
    try:
        data = yaml.safe_load(match.group(1))
    except yaml.YAMLError as error:
        if strict:
            raise ValueError(str(error)) from error
        return None
    if data is not None and not isinstance(data, dict):
        if strict:
            raise ValueError("The metadata block must be a YAML mapping")
        return None
    return data or {}


class _HubRequestHandler(CollectionRoutes, BaseHTTPRequestHandler):
    """Routes one HTTP request to the right `LocalHub` operation.

    HTTP/1.1 keep-alive matters: `huggingface_hub` reuses pooled connections, so every response carries a
    `Content-Length` and every request body is read completely, even when answering an error.
    """

    protocol_version = "HTTP/1.1"
    server_version = "LocalHub/1.0"
    timeout = 120  # seconds an idle keep-alive connection may stay open

    server: _HubServer

    # ------------------------------------------------------------------ plumbing

    @property
    def hub(self) -> LocalHub:
        return self.server.hub

    def log_message(self, format: str, *args) -> None:
        logger.debug("%s - %s", self.address_string(), format % args)

    def do_GET(self):
        self._dispatch("GET")

    def do_HEAD(self):
        self._dispatch("HEAD")

    def do_POST(self):
        self._dispatch("POST")

    def do_PUT(self):
        self._dispatch("PUT")

    def do_DELETE(self):
        self._dispatch("DELETE")

    def _dispatch(self, method: str) -> None:
        split = urlsplit(self.path)
        self.query = {k: v[-1] for k, v in parse_qs(split.query, keep_blank_values=True).items()}
        # Split before unquoting: revisions are sent quoted with `safe=""`, so "refs/pr/1" is one segment.
        self.segments = [unquote(s) for s in split.path.split("/")[1:]]
        self._status = 500
        self._body_consumed = False
        try:
            try:
                if self.server.role == "storage":
                    self._route_storage(method)
                else:
                    self._route_api(method)
            except HubError as error:
                self._send_error(error)
            except Exception as error:
                # A bug in the server. Answer 400 rather than 500: the client retries 5xx with backoff, which would
                # only make the failing test slow. The traceback goes to the log.
                logger.exception("LocalHub failed on %s %s", method, self.path)
                self.close_connection = True  # the request body may be half read
                self._send_error(HubError(400, f"LocalHub internal error: {error!r}"))
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client went away: nobody to answer
        finally:
            if not self._body_consumed:
                # Never leave an unread body on a keep-alive connection: the next request would be parsed from it.
                try:
                    for _ in self._iter_body():
                        pass
                except Exception:
                    self.close_connection = True
            self.hub.request_log.append((method, split.path, self._status))

    def _iter_body(self) -> Iterator[bytes]:
        """Yield the request body, de-chunking `Transfer-Encoding: chunked` uploads."""
        self._body_consumed = True
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return
                remaining = size
                while remaining:
                    data = self.rfile.read(min(remaining, _COPY_BUFFER))
                    if not data:
                        raise ConnectionError("client closed the connection in the middle of a chunk")
                    remaining -= len(data)
                    yield data
                self.rfile.readline()  # CRLF after each chunk
        else:
            remaining = int(self.headers.get("Content-Length") or 0)
            while remaining:
                data = self.rfile.read(min(remaining, _COPY_BUFFER))
                if not data:
                    raise ConnectionError("client closed the connection before sending the whole body")
                remaining -= len(data)
                yield data

    def _read_body(self) -> bytes:
        return b"".join(self._iter_body())

    def _read_json(self) -> Any:
        body = self._read_body()
        try:
            return json.loads(body or b"{}")
        except json.JSONDecodeError as error:
            raise HubError(400, f"Invalid JSON body: {error}") from error

    def _send(
        self,
        status: int,
        body: bytes | dict | list | None = None,
        headers: dict[str, str] | None = None,
        content_type: str = "application/json",
    ) -> None:
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
        body = body or b""
        self._status = status
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _send_error(self, error: HubError) -> None:
        headers = {"X-Error-Message": error.message.encode("ascii", "replace").decode(), **error.headers}
        if error.code is not None:
            headers["X-Error-Code"] = error.code
        self._send(error.status, {"error": error.message, **error.body}, headers)

    def _send_file(self, path: Path, headers: dict[str, str], content_type: str = "application/octet-stream") -> None:
        """Send a blob, honouring `Range: bytes=a-b` so interrupted downloads can resume."""
        size = path.stat().st_size
        start, end, status = 0, size - 1, 200
        range_header = self.headers.get("Range")
        match = re.fullmatch(r"bytes=(\d*)-(\d*)", range_header.strip()) if range_header else None
        if match and (match.group(1) or match.group(2)) and size > 0:
            if match.group(1):
                start = int(match.group(1))
                end = min(int(match.group(2)), size - 1) if match.group(2) else size - 1
            else:  # suffix range: the last N bytes
                start = max(size - int(match.group(2)), 0)
            if start >= size:
                raise HubError(416, "Requested range not satisfiable", headers={"Content-Range": f"bytes */{size}"})
            status = 206
            headers = {**headers, "Content-Range": f"bytes {start}-{end}/{size}"}
        length = max(end - start + 1, 0)
        self._status = status
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(length))
        self.send_header("Accept-Ranges", "bytes")
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        if self.command == "HEAD":
            return
        with path.open("rb") as file:
            file.seek(start)
            remaining = length
            while remaining:
                data = file.read(min(remaining, _COPY_BUFFER))
                if not data:
                    break
                self.wfile.write(data)
                remaining -= len(data)

    def _is_authorized(self) -> bool:
        authorization = self.headers.get("Authorization", "")
        if not authorization.lower().startswith("bearer "):
            return False
        token = authorization[len("bearer ") :].strip()
        return bool(token) and (self.hub.token is None or token == self.hub.token)

    def _require_write(self) -> None:
        if not self.headers.get("Authorization"):
            raise HubError(401, "You must be authenticated to do this (no token sent)")
        if not self._is_authorized():
            raise HubError(401, "Invalid credentials in Authorization header")

    def _repo(self, repo_type: str, repo_id: str) -> Repo:
        return self.hub.get_repo(repo_type, repo_id, authorized=self._is_authorized())

    @staticmethod
    def _http_error(status: int, message: str, **body) -> HubError:
        return HubError(status, message, body=body)

    def _unhandled(self, method: str) -> None:
        self.hub.unhandled.append((method, self.path))
        logger.warning("LocalHub: no route for %s %s", method, self.path)
        raise HubError(404, f"LocalHub has no route for {method} {urlsplit(self.path).path}")

    @staticmethod
    def _split_repo_id(segments: list[str], is_action) -> tuple[str, list[str]]:
        """Split `[ns, name, *rest]` or `[name, *rest]` into a repo id and the rest."""
        if len(segments) >= 2 and not is_action(segments[1]):
            return f"{segments[0]}/{segments[1]}", segments[2:]
        if not segments or not segments[0]:
            raise HubError(404, "Missing repo id", "RepoNotFound")
        return segments[0], segments[1:]

    # ------------------------------------------------------------------ API server

    def _route_api(self, method: str) -> None:
        seg = self.segments
        if seg[:1] == ["api"]:
            rest = seg[1:]
            if rest == ["whoami-v2"] and method == "GET":
                return self._whoami()
            if rest == ["repos", "create"] and method == "POST":
                return self._create_repo()
            if rest == ["repos", "delete"] and method == "DELETE":
                return self._delete_repo()
            if rest == ["validate-yaml"] and method == "POST":
                return self._validate_yaml()
            if rest == ["agent-harnesses"] and method == "GET":
                return self._send(200, {"standardEnvVars": [], "harnesses": {}})
            if rest[:1] == ["telemetry"]:
                return self._send(200, {})
            if rest == ["complete_multipart"] and method == "POST":
                return self._complete_multipart()
            if rest[:1] == ["collections"]:
                return self._route_collections(method, rest[1:])
            if rest and rest[0] in REPO_TYPES:
                repo_id, action = self._split_repo_id(rest[1:], lambda s: s in _API_ACTIONS)
                return self._route_repo_api(method, REPO_TYPES[rest[0]], repo_id, action)
            return self._unhandled(method)

        # Non-API routes: `/{prefix}{repo}/resolve/...` and `/{prefix}{repo}.git/info/lfs/...`.
        repo_type = "model"
        if seg and seg[0] in ("datasets", "spaces"):
            repo_type, seg = REPO_TYPES[seg[0]], seg[1:]
        if "resolve" in seg[1:3] and method in ("GET", "HEAD"):
            repo_id, rest = self._split_repo_id(seg, lambda s: s == "resolve")
            if len(rest) >= 3:
                return self._resolve(repo_type, repo_id, rest[1], "/".join(rest[2:]))
        for i in (0, 1):
            if i < len(seg) and seg[i].endswith(".git") and seg[i + 1 : i + 4] == ["info", "lfs", "objects"]:
                repo_id = "/".join(seg[: i + 1])[: -len(".git")]
                action = seg[i + 4 : i + 5]
                if action == ["batch"] and method == "POST":
                    return self._lfs_batch(repo_type, repo_id)
                if action == ["verify"] and method == "POST":
                    return self._lfs_verify(repo_type, repo_id)
        return self._unhandled(method)

    def _route_repo_api(self, method: str, repo_type: str, repo_id: str, rest: list[str]) -> None:
        action, args = (rest[0], rest[1:]) if rest else ("", [])
        if action == "" and method == "GET":
            return self._repo_info(repo_type, repo_id, "main")
        if action == "revision" and method == "GET" and args:
            return self._repo_info(repo_type, repo_id, args[0])
        if action == "preupload" and method == "POST" and args:
            return self._preupload(repo_type, repo_id, args[0])
        if action == "commit" and method == "POST" and args:
            return self._commit(repo_type, repo_id, args[0])
        if action == "tree" and method == "GET" and args:
            return self._tree(repo_type, repo_id, args[0], "/".join(args[1:]))
        if action == "paths-info" and method == "POST" and args:
            return self._paths_info(repo_type, repo_id, args[0])
        if action == "refs" and method == "GET":
            return self._refs(repo_type, repo_id)
        if action == "commits" and method == "GET" and args:
            return self._commits(repo_type, repo_id, args[0])
        if action == "branch" and args and method in ("POST", "DELETE"):
            return self._branch(method, repo_type, repo_id, "/".join(args))
        if action == "tag" and args and method in ("POST", "DELETE"):
            return self._tag(method, repo_type, repo_id, "/".join(args))
        if action == "settings" and method == "PUT":
            return self._settings(repo_type, repo_id)
        if action in ("xet-read-token", "xet-write-token"):
            # `huggingface_hub` goes the Xet way on its own whenever `hf_xet` is installed; answer clearly instead
            # of letting the upload fail somewhere inside the Rust client.
            raise HubError(400, "LocalHub does not implement Xet storage: set HF_HUB_DISABLE_XET=1 in the client")
        return self._unhandled(method)

    # -- user and misc

    def _whoami(self) -> None:
        if not self._is_authorized():
            raise HubError(401, "Invalid credentials in Authorization header")
        self._send(
            200,
            {
                "type": "user",
                "id": "0" * 24,
                "name": self.hub.user,
                "fullname": "Local Test User",
                "email": f"{self.hub.user}@localhost",
                "emailVerified": True,
                "isPro": False,
                "canPay": False,
                "orgs": [],
                "auth": {"type": "access_token", "accessToken": {"displayName": "local-hub", "role": "write"}},
            },
        )

    def _validate_yaml(self) -> None:
        payload = self._read_json()
        try:
            _parse_front_matter(str(payload.get("content", "")).encode(), strict=True)
        except ValueError as error:
            # `HfApi._validate_yaml` reads `errors` from the JSON body of the 400 and raises a `ValueError`.
            self._send(400, {"errors": [{"message": f"Invalid metadata in README.md: {error}"}], "warnings": []})
            return
        self._send(200, {"errors": [], "warnings": []})

    # -- repos

    def _create_repo(self) -> None:
        self._require_write()
        payload = self._read_json()
        repo_type = payload.get("type") or "model"
        if repo_type not in URL_PREFIXES:
            raise HubError(400, f"Invalid repo type '{repo_type}'")
        name = payload.get("name")
        if not name:
            raise HubError(400, "Missing repo name")
        namespace = payload.get("organization") or self.hub.user
        repo_id = f"{namespace}/{name}"
        sdk = payload.get("sdk")
        if repo_type == "space" and sdk is None:
            raise HubError(400, "A space needs an sdk")
        private = payload.get("visibility") == "private" or bool(payload.get("private"))
        repo = self.hub.create_repo(repo_type, repo_id, private=private, sdk=sdk)
        url = self.hub.repo_url(repo)
        self._send(200, {"url": url, "name": repo_id, "id": uuid.uuid5(uuid.NAMESPACE_URL, url).hex[:24]})

    def _delete_repo(self) -> None:
        self._require_write()
        payload = self._read_json()
        repo_type = payload.get("type") or "model"
        repo_id = f"{payload.get('organization') or self.hub.user}/{payload.get('name')}"
        with self.hub._lock:
            self._repo(repo_type, repo_id)
            del self.hub.repos[(repo_type, repo_id)]
        self._send(200, {})

    def _settings(self, repo_type: str, repo_id: str) -> None:
        self._require_write()
        payload = self._read_json()
        repo = self._repo(repo_type, repo_id)
        if "visibility" in payload:
            repo.private = payload["visibility"] == "private"
        if "private" in payload:
            repo.private = bool(payload["private"])
        if "gated" in payload:
            repo.gated = payload["gated"]
        self._send(200, {})

    def _repo_info(self, repo_type: str, repo_id: str, revision: str) -> None:
        repo = self._repo(repo_type, repo_id)
        commit = self.hub.resolve_revision(repo, revision)
        with_blobs = self.query.get("blobs", "").lower() in ("1", "true")
        siblings = []
        for path, entry in sorted(commit.tree.items()):
            sibling: dict[str, Any] = {"rfilename": path}
            if with_blobs:
                sibling.update(size=entry.size, blobId=entry.oid)
                if entry.lfs:
                    sibling["lfs"] = {"size": entry.size, "sha256": entry.sha256, "pointerSize": entry.pointer_size}
            siblings.append(sibling)

        card = None
        if "README.md" in commit.tree:
            card = _parse_front_matter(self.hub.read_blob(commit.tree["README.md"].sha256))
        tags = list((card or {}).get("tags") or [])
        info: dict[str, Any] = {
            "_id": uuid.uuid5(uuid.NAMESPACE_URL, self.hub.repo_url(repo)).hex[:24],
            "id": repo.repo_id,
            "author": repo.repo_id.split("/")[0] if "/" in repo.repo_id else None,
            "sha": commit.oid,
            "lastModified": _iso(commit.date),
            "createdAt": _iso(repo.created_at),
            "private": repo.private,
            "gated": repo.gated,
            "disabled": False,
            "likes": 0,
            "tags": tags,
            "siblings": siblings,
            "usedStorage": sum(e.size for e in commit.tree.values()),
        }
        if card is not None:
            info["cardData"] = card
        if repo_type == "model":
            info["downloads"] = 0
            info["modelId"] = repo.repo_id
            if card is not None:
                for key in ("library_name", "pipeline_tag"):
                    if card.get(key):
                        info[key] = card[key]
            if "config.json" in commit.tree:
                try:
                    config = json.loads(self.hub.read_blob(commit.tree["config.json"].sha256))
                    info["config"] = {k: config[k] for k in ("architectures", "model_type") if k in config}
                except (json.JSONDecodeError, TypeError):
                    pass
        elif repo_type == "dataset":
            info["downloads"] = 0
        elif repo_type == "space":
            info["sdk"] = (card or {}).get("sdk") or repo.sdk
            info["subdomain"] = repo.repo_id.replace("/", "-").lower()
            info["host"] = f"{self.hub.url}/spaces/{repo.repo_id}"
        self._send(200, info)

    # -- uploads

    def _preupload(self, repo_type: str, repo_id: str, revision: str) -> None:
        self._require_write()
        payload = self._read_json()
        repo = self._repo(repo_type, repo_id)
        commit = self.hub.resolve_revision(repo, revision)
        patterns = self.hub.lfs_patterns(commit.tree)
        files = []
        for item in payload.get("files", []):
            path = item["path"]
            sample = base64.b64decode(item.get("sample") or "")
            mode = self.hub.upload_mode(path, int(item.get("size", 0)), sample, patterns)
            existing = commit.tree.get(path)
            files.append(
                {
                    "path": path,
                    "uploadMode": mode,
                    # `.gitignore` rules are not implemented: nothing is ever ignored.
                    "shouldIgnore": False,
                    "oid": existing.etag if existing is not None else None,
                }
            )
        self._send(200, {"files": files, "commitOid": commit.oid})

    def _commit(self, repo_type: str, repo_id: str, revision: str) -> None:
        self._require_write()
        body = self._read_body()
        repo = self._repo(repo_type, repo_id)
        try:
            lines = [json.loads(line) for line in body.splitlines() if line.strip()]
        except json.JSONDecodeError as error:
            raise HubError(400, f"Invalid ndjson commit payload: {error}") from error
        if not lines or lines[0].get("key") != "header":
            raise HubError(400, "The first line of a commit payload must be its header")
        create_pr = self.query.get("create_pr") in ("1", "true", "True")
        commit, pr_number = self.hub.commit(repo, revision, lines[0]["value"], lines[1:], create_pr=create_pr)
        repo_url = self.hub.repo_url(repo)
        self._send(
            200,
            {
                "success": True,
                "commitOid": commit.oid,
                "commitUrl": f"{repo_url}/commit/{commit.oid}",
                "pullRequestUrl": f"{repo_url}/discussions/{pr_number}" if pr_number is not None else None,
            },
        )

    def _lfs_batch(self, repo_type: str, repo_id: str) -> None:
        self._require_write()
        payload = self._read_json()
        repo = self._repo(repo_type, repo_id)
        if payload.get("operation") != "upload":
            raise HubError(400, "LocalHub only implements LFS uploads through the batch API")
        transfers = payload.get("transfers") or ["basic"]
        chunk_size = self.hub.multipart_chunk_size
        objects = []
        use_multipart = False
        for obj in payload.get("objects", []):
            sha256, size = obj["oid"], int(obj["size"])
            entry: dict[str, Any] = {"oid": sha256, "size": size}
            if sha256 in repo.lfs_objects and self.hub._blob_path(sha256).exists():
                objects.append(entry)  # no "actions": the client skips the upload
                continue
            upload_id = uuid.uuid4().hex
            verify = {
                "href": f"{self.hub.url}/{URL_PREFIXES[repo_type]}{repo_id}.git/info/lfs/objects/verify",
                "header": {},
            }
            if chunk_size is not None and "multipart" in transfers and size > chunk_size:
                use_multipart = True
                n_parts = -(-size // chunk_size)
                header = {"chunk_size": str(chunk_size)}
                header.update(
                    {f"{i:05d}": f"{self.hub.storage_url}/upload/{upload_id}/part/{i}" for i in range(1, n_parts + 1)}
                )
                upload = {"href": f"{self.hub.url}/api/complete_multipart?upload_id={upload_id}", "header": header}
                self.hub._uploads[upload_id] = _PendingUpload(repo.key, sha256, size, chunk_size)
            else:
                upload = {"href": f"{self.hub.storage_url}/upload/{upload_id}"}
                self.hub._uploads[upload_id] = _PendingUpload(repo.key, sha256, size)
            entry["authenticated"] = True
            entry["actions"] = {"upload": upload, "verify": verify}
            objects.append(entry)
        self._send(
            200,
            {"transfer": "multipart" if use_multipart else "basic", "objects": objects, "hash_algo": "sha256"},
            content_type="application/vnd.git-lfs+json",
        )

    def _lfs_verify(self, repo_type: str, repo_id: str) -> None:
        self._require_write()
        payload = self._read_json()
        repo = self._repo(repo_type, repo_id)
        sha256, size = payload.get("oid", ""), payload.get("size")
        path = self.hub._blob_path(sha256)
        if sha256 not in repo.lfs_objects or not path.exists() or path.stat().st_size != size:
            raise HubError(404, f"LFS object {sha256} was not uploaded")
        self._send(200, {})

    def _complete_multipart(self) -> None:
        # Like the Hub's completion URL, this one carries its own credentials (the upload id), not a token.
        payload = self._read_json()
        upload = self.hub._uploads.get(self.query.get("upload_id", ""))
        if upload is None or upload.chunk_size is None or payload.get("oid") != upload.sha256:
            raise HubError(404, "Unknown multipart upload")
        folder = self.hub.root / "incoming" / self.query["upload_id"]
        n_parts = -(-upload.size // upload.chunk_size)
        parts = payload.get("parts", [])
        if [p.get("partNumber") for p in parts] != list(range(1, n_parts + 1)):
            raise HubError(400, f"Expected parts 1..{n_parts}")
        digest = hashlib.sha256()
        assembled = folder / "assembled"
        with assembled.open("wb") as out:
            for part in parts:
                part_path = folder / str(part["partNumber"])
                if not part_path.exists():
                    raise HubError(400, f"Part {part['partNumber']} was not uploaded")
                data = part_path.read_bytes()
                if part.get("etag", "").strip('"') != hashlib.md5(data).hexdigest():
                    raise HubError(400, f"Wrong etag for part {part['partNumber']}")
                digest.update(data)
                out.write(data)
        self._finish_upload(upload, assembled, digest.hexdigest())
        shutil.rmtree(folder, ignore_errors=True)
        del self.hub._uploads[self.query["upload_id"]]
        self._send(200, {})

    def _finish_upload(self, upload: _PendingUpload, path: Path, sha256: str) -> None:
        size = path.stat().st_size
        if sha256 != upload.sha256 or size != upload.size:
            path.unlink(missing_ok=True)
            raise HubError(400, f"Uploaded content has sha256 {sha256} and size {size}, expected {upload.sha256}")
        os.replace(path, self.hub._blob_path(sha256))
        with self.hub._lock:
            repo = self.hub.repos.get(upload.repo_key)
            if repo is not None:
                repo.lfs_objects.add(sha256)

    # -- downloads and listings

    def _resolve(self, repo_type: str, repo_id: str, revision: str, path: str) -> None:
        repo = self._repo(repo_type, repo_id)
        commit = self.hub.resolve_revision(repo, revision)
        entry = commit.tree.get(path)
        if entry is None:
            # `X-Repo-Commit` on the 404 lets the client cache the file's absence for this commit (`.no_exist`).
            raise HubError(404, f"Entry not found: {path}", "EntryNotFound", {"X-Repo-Commit": commit.oid})
        filename = path.rsplit("/", 1)[-1]
        headers = {
            "X-Repo-Commit": commit.oid,
            "ETag": f'"{entry.oid}"',
            "Content-Disposition": f"inline; filename*=UTF-8''{quote(filename)}",
        }
        if entry.lfs:
            # LFS files live in a bucket on another host on the Hub: the client reads the metadata from this
            # redirect (it does not follow it on HEAD because the origin differs) and drops its token for the GET.
            headers.update(
                {
                    "Location": f"{self.hub.storage_url}/lfs/{entry.sha256}?filename={quote(filename)}",
                    "X-Linked-Etag": f'"{entry.sha256}"',
                    "X-Linked-Size": str(entry.size),
                }
            )
            self._send(302, b"", headers, content_type="text/plain")
            return
        self._send_file(self.hub._blob_path(entry.sha256), headers)

    def _tree(self, repo_type: str, repo_id: str, revision: str, path: str) -> None:
        repo = self._repo(repo_type, repo_id)
        commit = self.hub.resolve_revision(repo, revision)
        recursive = self.query.get("recursive", "").lower() in ("1", "true")
        expand = self.query.get("expand", "").lower() in ("1", "true")
        path = path.strip("/")
        folders = self.hub.folders(commit.tree)
        if path and path not in folders:
            raise HubError(404, f"Folder not found: {path}", "EntryNotFound", {"X-Repo-Commit": commit.oid})
        prefix = f"{path}/" if path else ""

        def wanted(p: str) -> bool:
            return p.startswith(prefix) and (recursive or "/" not in p[len(prefix) :])

        listed_folders = sorted(p for p in folders if wanted(p))
        listed_files = sorted(p for p in commit.tree if wanted(p))
        paths = listed_folders + listed_files if not recursive else sorted(listed_folders + listed_files)

        # Cursor pagination with a GitHub-style `Link` header, like the Hub (the client follows `rel="next"`).
        start = int(self.query.get("cursor") or 0)
        page = paths[start : start + self.hub.tree_page_size]
        headers = {}
        if start + self.hub.tree_page_size < len(paths):
            query = "&".join(f"{k}={quote(v)}" for k, v in self.query.items() if k != "cursor")
            next_url = f"{self.hub.url}{urlsplit(self.path).path}?{query}&cursor={start + self.hub.tree_page_size}"
            headers["Link"] = f'<{next_url}>; rel="next"'
        self._send(200, [self.hub.path_info(repo, commit, p, expand=expand) for p in page], headers)

    def _paths_info(self, repo_type: str, repo_id: str, revision: str) -> None:
        body = self._read_body().decode()
        repo = self._repo(repo_type, repo_id)
        commit = self.hub.resolve_revision(repo, revision)
        if self.headers.get("Content-Type", "").startswith("application/json"):
            payload = json.loads(body or "{}")
            paths, expand = payload.get("paths", []), bool(payload.get("expand"))
        else:
            form = parse_qs(body)
            paths, expand = form.get("paths", []), form.get("expand", ["False"])[-1].lower() == "true"
        folders = self.hub.folders(commit.tree)
        infos = [
            self.hub.path_info(repo, commit, p.strip("/"), expand=expand)
            for p in paths
            if p.strip("/") in commit.tree or p.strip("/") in folders
        ]
        self._send(200, infos)

    # -- refs and history

    def _refs(self, repo_type: str, repo_id: str) -> None:
        repo = self._repo(repo_type, repo_id)
        with self.hub._lock:
            data = {
                "branches": [
                    {"name": n, "ref": f"refs/heads/{n}", "targetCommit": oid}
                    for n, oid in sorted(repo.branches.items())
                ],
                "tags": [
                    {"name": n, "ref": f"refs/tags/{n}", "targetCommit": oid} for n, oid in sorted(repo.tags.items())
                ],
                "converts": [],
            }
            if self.query.get("include_prs") in ("1", "true"):
                data["pullRequests"] = [
                    {"name": f"refs/pr/{n}", "ref": f"refs/pr/{n}", "targetCommit": oid}
                    for n, oid in sorted(repo.pull_requests.items())
                ]
        self._send(200, data)

    def _commits(self, repo_type: str, repo_id: str, revision: str) -> None:
        repo = self._repo(repo_type, repo_id)
        commit = self.hub.resolve_revision(repo, revision)
        history = []
        while True:
            history.append(
                {
                    "id": commit.oid,
                    "title": commit.title,
                    "message": commit.message,
                    "authors": [{"user": commit.author, "avatar": None}],
                    "date": _iso(commit.date),
                }
            )
            if not commit.parents:
                break
            commit = repo.commits[commit.parents[0]]
        self._send(200, history)

    def _branch(self, method: str, repo_type: str, repo_id: str, branch: str) -> None:
        self._require_write()
        payload = self._read_json() if method == "POST" else {}
        repo = self._repo(repo_type, repo_id)
        with self.hub._lock:
            if method == "DELETE":
                if branch == "main":
                    raise HubError(403, "The main branch cannot be deleted")
                if repo.branches.pop(branch, None) is None:
                    raise HubError(404, f"Branch not found: {branch}", "RevisionNotFound")
                return self._send(200, {})
            if branch in repo.branches:
                raise HubError(409, f"Reference already exists: refs/heads/{branch}")
            start = self.hub.resolve_revision(repo, payload.get("startingPoint") or "main")
            repo.branches[branch] = start.oid
        self._send(200, {})

    def _tag(self, method: str, repo_type: str, repo_id: str, name: str) -> None:
        self._require_write()
        payload = self._read_json() if method == "POST" else {}
        repo = self._repo(repo_type, repo_id)
        with self.hub._lock:
            if method == "DELETE":
                if repo.tags.pop(name, None) is None:
                    raise HubError(404, f"Tag not found: {name}", "RevisionNotFound")
                return self._send(200, {})
            tag = payload.get("tag")
            if not tag:
                raise HubError(400, "Missing tag name")
            if tag in repo.tags:
                raise HubError(409, f"Tag already exists: {tag}")
            repo.tags[tag] = self.hub.resolve_revision(repo, name).oid
        self._send(200, {})

    # ------------------------------------------------------------------ storage server

    def _route_storage(self, method: str) -> None:
        # Pre-signed bucket URLs reject an `Authorization` header (S3 allows one auth mechanism per request); doing
        # the same here checks that the client keeps its Hub token away from the bucket.
        if self.headers.get("Authorization"):
            raise HubError(400, "Only one auth mechanism allowed: the storage URL is pre-signed")
        seg = self.segments
        if len(seg) == 2 and seg[0] == "lfs" and _HEX64.fullmatch(seg[1]) and method in ("GET", "HEAD"):
            path = self.hub._blob_path(seg[1])
            if not path.exists():
                raise HubError(404, "NoSuchKey")
            filename = self.query.get("filename") or seg[1]
            headers = {"ETag": f'"{seg[1]}"', "Content-Disposition": f"inline; filename*=UTF-8''{quote(filename)}"}
            return self._send_file(path, headers)
        if len(seg) == 2 and seg[0] == "upload" and method == "PUT":
            return self._upload_basic(seg[1])
        if len(seg) == 4 and seg[0] == "upload" and seg[2] == "part" and method == "PUT":
            return self._upload_part(seg[1], int(seg[3]))
        return self._unhandled(method)

    def _receive_to(self, path: Path) -> tuple[str, str]:
        """Stream the request body to `path`; return its sha256 and md5 hex digests."""
        sha256, md5 = hashlib.sha256(), hashlib.md5()
        with path.open("wb") as out:
            for data in self._iter_body():
                sha256.update(data)
                md5.update(data)
                out.write(data)
        return sha256.hexdigest(), md5.hexdigest()

    def _upload_basic(self, upload_id: str) -> None:
        upload = self.hub._uploads.get(upload_id)
        if upload is None or upload.chunk_size is not None:
            raise HubError(404, "Unknown upload")
        tmp = self.hub.root / "incoming" / f"{upload_id}.part"
        sha256, md5 = self._receive_to(tmp)
        self._finish_upload(upload, tmp, sha256)
        del self.hub._uploads[upload_id]
        self._send(200, b"", {"ETag": f'"{md5}"'}, content_type="text/plain")

    def _upload_part(self, upload_id: str, part_number: int) -> None:
        upload = self.hub._uploads.get(upload_id)
        if upload is None or upload.chunk_size is None:
            raise HubError(404, "Unknown multipart upload")
        folder = self.hub.root / "incoming" / upload_id
        folder.mkdir(exist_ok=True)
        _, md5 = self._receive_to(folder / str(part_number))
        # The client sends the parts' ETags back in the completion request, as with S3 multipart uploads.
        self._send(200, b"", {"ETag": f'"{md5}"'}, content_type="text/plain")
