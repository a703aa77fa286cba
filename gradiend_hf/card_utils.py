"""What every model card of gradiend-hf shares: the one Hub-id check, number formatting, framework versions, and the
one template loader and renderer for all templates of `gradiend_hf/templates/` (GRADIEND, rewritten model, adapter,
Space files), in the style of trl's `_template_file`.

A card is written with [`write_card`], which also keeps what it was rendered from (`.gradiend-card.json`, local and
never uploaded), so a push renders the same card with the Hub repo id from the start ([`render_saved_card`]) instead
of editing the text.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import importlib.resources
import json
import math
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from huggingface_hub import CardData, ModelCard, ModelCardData

from .default_model import DEFAULT_BASE_MODEL
from .io import atomic_write_json
from .loading import is_hub_id


CARD_STATE_NAME = ".gradiend-card.json"

# Licenses of base models we know offline; a GRADIEND is derived from its base model's gradients, so it inherits them.
KNOWN_LICENSES = {DEFAULT_BASE_MODEL: "apache-2.0"}


def hub_id(name: str | None) -> str | None:
    """`name` when it is a Hub repo id and not a local folder, else `None` (the Hub rejects local paths as
    `base_model`)."""
    if not name or os.path.exists(name) or not is_hub_id(name):
        return None
    return name


def link(name: str | None, repo_id: str | None) -> str | None:
    """A markdown link to a Hub repo, or the name in code style when it is not a Hub id."""
    if not name:
        return None
    return f"[{repo_id}](https://huggingface.co/{repo_id})" if repo_id else f"`{name}`"


def fmt(value) -> str:
    """Four significant digits (`∞` for infinity)."""
    value = float(value)
    if math.isinf(value):
        return "∞" if value > 0 else "-∞"
    return f"{value:.4g}"


def signed(value) -> str:
    """Like [`fmt`] with an explicit sign (`+0.93`, `-1`)."""
    text = fmt(value)
    return text if text.startswith("-") else f"+{text}"


def py_str(text: str) -> str:
    """A Python string literal for a code snippet (JSON escapes are valid Python and keep non-ASCII readable)."""
    return json.dumps(text, ensure_ascii=False)


def framework_versions(names: Sequence[str]) -> list[tuple[str, str]]:
    """`(distribution, version)` of each installed distribution in `names`."""
    out = []
    for name in names:
        try:
            out.append((name, importlib.metadata.version(name)))
        except importlib.metadata.PackageNotFoundError:
            continue
    return out


@contextlib.contextmanager
def template_file(name: str) -> Iterator[Path]:
    """The path of a template shipped in `gradiend_hf/templates/` (also from a zipped installation)."""
    with importlib.resources.as_file(importlib.resources.files("gradiend_hf") / "templates" / name) as path:
        yield Path(path)


def template_text(name: str) -> str:
    """The text of a template of `gradiend_hf/templates/`."""
    with template_file(name) as path:
        return path.read_text(encoding="utf-8")


def render(card_data: CardData, template: str, **template_kwargs) -> ModelCard:
    """Renders a card template; optional rows and sections leave blank lines behind, and a card has at most one
    blank line in a row."""
    with template_file(template) as path:
        card = ModelCard.from_template(card_data, template_path=str(path), **template_kwargs)
    return ModelCard(re.sub(r"\n{3,}", "\n\n", card.content))


def write_card(folder: str | os.PathLike, card_data: CardData, template: str, **template_kwargs) -> ModelCard:
    """Renders a card into `folder/README.md` and keeps what it was rendered from, for [`render_saved_card`].

    `template_kwargs` must be JSON values (the quick start's location is `model_id`)."""
    card = render(card_data, template, **template_kwargs)
    card.save(os.path.join(folder, "README.md"))
    state = {"template": template, "card_data_class": type(card_data).__name__, "card_data": card_data.to_dict()}
    atomic_write_json(os.path.join(folder, CARD_STATE_NAME), {**state, "kwargs": template_kwargs})
    return card


def render_saved_card(
    folder: str | os.PathLike,
    model_id: str,
    card_data_classes: Sequence[type] = (),
    updates: Mapping[str, Any] | None = None,
) -> ModelCard | None:
    """The card of `folder` rendered again for `model_id` (a Hub repo id), with the card fields in `updates`
    replaced, or `None` when the folder keeps no card state (a card written by an older version, or by hand: it is
    then uploaded as it is)."""
    path = os.path.join(folder, CARD_STATE_NAME)
    if not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8") as file:
        state = json.load(file)
    classes = {cls.__name__: cls for cls in (ModelCardData, *card_data_classes)}
    data_class = classes.get(state.get("card_data_class"), ModelCardData)
    values: dict[str, Any] = dict(state["card_data"])
    if "model_id" in values:
        values["model_id"] = model_id
    if values.get("model-index"):  # a rewritten model's benchmark results name the repo the card describes
        values["model-index"] = [{**entry, "name": model_id} for entry in values["model-index"]]
    values.update(updates or {})
    card_data = data_class(**values)
    kwargs = {**state.get("kwargs", {})}
    if "model_id" in kwargs:
        kwargs["model_id"] = model_id
    return render(card_data, state["template"], **kwargs)
