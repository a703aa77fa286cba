"""A Gradio Space that shows a GRADIEND pushed to the Hub: its files ([`render_space`]) and the push
([`push_space`]). The Space's app only calls [`gradiend_hf.app.build_demo`].

```python
from gradiend_hf.space import push_space

push_space("me/gradiend-gender-demo", "me/gradiend-gender")
```
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import tempfile
from collections.abc import Sequence

import jinja2
from huggingface_hub import SpaceCard, SpaceCardData, hf_hub_download

from .artefacts import KIND_SPACE
from .card_utils import hub_id, py_str, template_text
from .errors import GradiendError
from .hub import HubCommit, upload_folder
from .io import atomic_folder, atomic_write_text


SPACE_FILES = {
    "README.md": "space_README.md.j2",
    "app.py": "space_app.py.j2",
    "requirements.txt": "space_requirements.txt.j2",
}


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
    if not hub_id(gradiend_id):
        raise GradiendError(f"A Space loads its GRADIEND from the Hub; {gradiend_id!r} is not a Hub repo id.")
    title = title or f"GRADIEND demo: {gradiend_id.split('/')[-1]}"
    models = [gradiend_id] + ([base_model_id] if base_model_id and hub_id(base_model_id) else [])
    card_data = SpaceCardData(
        title=title,
        sdk="gradio",
        sdk_version=_installed("gradio"),
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
        "gradiend_hf_version": _installed("gradiend-hf"),
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
    return jinja2.Environment(
        loader=jinja2.FunctionLoader(template_text), keep_trailing_newline=True, undefined=jinja2.StrictUndefined
    )


def _installed(distribution: str) -> str:
    """The installed version of a distribution (the Space pins what this machine runs)."""
    return importlib.metadata.version(distribution)


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
            HubCommit(private=private, token=token, commit_message=commit_message),
            default_message=f"Demo of {gradiend_id}",
            repo_type="space",
            space_sdk="gradio",
            space_hardware=hardware,
        )
