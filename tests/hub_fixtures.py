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
"""The `local_hub` pytest fixture: a [`LocalHub`] that the real Hugging Face clients talk to.

Import it into `tests/conftest.py` to make it available to every test:

```python
from hub_fixtures import local_hub  # noqa: F401
```

Why setting environment variables is not enough: `huggingface_hub.constants` reads `HF_ENDPOINT`, `HF_HOME`,
`HF_HUB_CACHE`, `HF_HUB_OFFLINE`, `HF_HUB_DISABLE_XET`, ... once, when `huggingface_hub` is first imported, and derives
`HUGGINGFACE_CO_URL_TEMPLATE` (used by `hf_hub_url`) and `HF_URL_HOSTS` from the endpoint. The module-level `HfApi`
behind `huggingface_hub.create_repo`, `file_exists`, ... (used by peft) and the shared `HfApi` that
`transformers.utils.hub.hf_api()` creates lazily also keep the endpoint they were created with, and `datasets.config`
has its own copies of the endpoint and cache paths. In a test session
these are all imported long before the fixture runs, so the fixture sets the environment variables (for code that reads
them at call time and for subprocesses) *and* the configuration values themselves, with `monkeypatch` so that
everything is restored afterwards. No client function is replaced: requests go through the real code paths.
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from huggingface_hub import HfApi


try:  # `tests` is a package
    from .hub_server import LocalHub
except ImportError:  # `tests/` is on `sys.path` (pytest's default "prepend" import mode, no `__init__.py`)
    from hub_server import LocalHub


LOCAL_HUB_TOKEN = "hf_local_hub_test_token"
LOCAL_HUB_USER = "local-user"


@dataclass
class LocalHubSession:
    """What the `local_hub` fixture yields.

    Attributes:
        url: the Hub's base URL (`HF_ENDPOINT`).
        api: an `HfApi` for this Hub, authenticated with `token`.
        token: the token the Hub accepts (also in `HF_TOKEN`).
        user: the user name returned by `whoami`; namespace for test repos (`f"{user}/my-model"`).
        hub: the running [`LocalHub`] (for `request_log`, `unhandled`, ...).
        cache_dir: the throw-away `HF_HUB_CACHE` downloads go to.
    """

    url: str
    api: HfApi
    token: str
    user: str
    hub: LocalHub
    cache_dir: Path


def point_clients_at(monkeypatch: pytest.MonkeyPatch, url: str, home: Path, token: str) -> None:
    """Point `huggingface_hub` (and `transformers`, if imported) at `url` with a fresh `HF_HOME`, using `monkeypatch`.

    Only configuration is changed: environment variables, the constants `huggingface_hub` derived from them at import
    time, and the endpoint cached in long-lived `HfApi` objects.
    """
    from huggingface_hub import constants, hf_api
    from huggingface_hub.utils import close_session

    hub_cache = home / "hub"
    env = {
        "HF_ENDPOINT": url,
        "HF_HOME": str(home),
        "HF_HUB_CACHE": str(hub_cache),
        "HF_ASSETS_CACHE": str(home / "assets"),
        "HF_XET_CACHE": str(home / "xet"),
        "HF_TOKEN_PATH": str(home / "token"),
        "HF_TOKEN": token,
        # Overrides the offline defaults of `tests/conftest.py` for this test only.
        "HF_HUB_OFFLINE": "0",
        "HF_DATASETS_OFFLINE": "0",
        "TRANSFORMERS_OFFLINE": "0",
        # `huggingface_hub` uploads through Xet whenever `hf_xet` is installed, without asking the server first;
        # LocalHub speaks the classic LFS protocol only.
        "HF_HUB_DISABLE_XET": "1",
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "HF_HUB_DISABLE_UPDATE_CHECK": "1",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    for name in (
        "HUGGING_FACE_HUB_TOKEN",
        "HF_HUB_ENABLE_HF_TRANSFER",
        "HUGGINGFACE_CO_STAGING",
        "HUGGINGFACE_HUB_CACHE",
    ):
        monkeypatch.delenv(name, raising=False)

    values = {
        "ENDPOINT": url,
        "HUGGINGFACE_CO_URL_TEMPLATE": url + "/{repo_id}/resolve/{revision}/{filename}",
        "HF_HOME": str(home),
        "HF_HUB_CACHE": str(hub_cache),
        "HUGGINGFACE_HUB_CACHE": str(hub_cache),
        "HF_ASSETS_CACHE": str(home / "assets"),
        "HUGGINGFACE_ASSETS_CACHE": str(home / "assets"),
        "HF_XET_CACHE": str(home / "xet"),
        "HF_TOKEN_PATH": str(home / "token"),
        "HF_STORED_TOKENS_PATH": str(home / "stored_tokens"),
        "HF_HUB_OFFLINE": False,
        "HF_HUB_DISABLE_XET": True,
        "HF_HUB_DISABLE_TELEMETRY": True,
        "HF_HUB_DISABLE_UPDATE_CHECK": True,
    }
    for name, value in values.items():
        if hasattr(constants, name):
            monkeypatch.setattr(constants, name, value)
    if hasattr(constants, "HF_URL_HOSTS"):
        monkeypatch.setattr(constants, "HF_URL_HOSTS", frozenset(constants.HF_URL_HOSTS | {"127.0.0.1"}))

    # `huggingface_hub.create_repo`, `file_exists`, ... are bound methods of this module-level instance.
    monkeypatch.setattr(hf_api.api, "endpoint", url)
    # transformers caches one `HfApi` (created on first use with the endpoint of that moment): drop it.
    transformers_hub = sys.modules.get("transformers.utils.hub")
    if transformers_hub is not None and hasattr(transformers_hub, "_hf_api"):
        monkeypatch.setattr(transformers_hub, "_hf_api", None)

    # `datasets` has its own copies, read from the environment when it is imported.
    datasets_config = sys.modules.get("datasets.config")
    if datasets_config is not None:
        datasets_cache = home / "datasets"
        datasets_values = {
            "HF_ENDPOINT": url,
            "HUB_DATASETS_URL": url + "/datasets/{repo_id}/resolve/{revision}/{path}",
            "HF_HUB_OFFLINE": False,
            "HF_DATASETS_OFFLINE": False,
            "HF_CACHE_HOME": str(home),
            "HF_DATASETS_CACHE": datasets_cache,
            "DOWNLOADED_DATASETS_PATH": datasets_cache / "downloads",
            "EXTRACTED_DATASETS_PATH": datasets_cache / "downloads" / "extracted",
        }
        for name, value in datasets_values.items():
            if hasattr(datasets_config, name):
                monkeypatch.setattr(datasets_config, name, value)

    # The shared `httpx` client may hold keep-alive connections to a server of an earlier test.
    close_session()


@pytest.fixture
def local_hub(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalHubSession]:
    """A fresh, empty [`LocalHub`] on 127.0.0.1, with the Hugging Face clients pointed at it.

    Sets `HF_ENDPOINT`, a throw-away `HF_HOME`/`HF_HUB_CACHE`, a dummy `HF_TOKEN`, `HF_HUB_OFFLINE=0` and
    `HF_HUB_DISABLE_XET=1` (and the matching `huggingface_hub.constants`) for the duration of the test. Stops the
    server and restores everything at teardown.
    """
    from huggingface_hub.utils import close_session

    base = tmp_path_factory.mktemp("local_hub")
    hub = LocalHub(base / "storage", token=LOCAL_HUB_TOKEN, user=LOCAL_HUB_USER)
    url = hub.start()
    try:
        point_clients_at(monkeypatch, url, base / "hf_home", LOCAL_HUB_TOKEN)
        yield LocalHubSession(
            url=url,
            api=HfApi(endpoint=url, token=LOCAL_HUB_TOKEN),
            token=LOCAL_HUB_TOKEN,
            user=LOCAL_HUB_USER,
            hub=hub,
            cache_dir=base / "hf_home" / "hub",
        )
    finally:
        close_session()
        # Objects created during the test (e.g. transformers' shared `HfApi`) must not outlive this server.
        transformers_hub = sys.modules.get("transformers.utils.hub")
        if transformers_hub is not None and hasattr(transformers_hub, "_hf_api"):
            transformers_hub._hf_api = None
        hf_file_system = sys.modules.get("huggingface_hub.hf_file_system")
        if hf_file_system is not None:
            hf_file_system.HfFileSystem.clear_instance_cache()  # fsspec caches instances, with their endpoint
        hub.stop()
        if hub.unhandled:
            warnings.warn(f"LocalHub received requests it has no route for: {hub.unhandled}", stacklevel=1)
