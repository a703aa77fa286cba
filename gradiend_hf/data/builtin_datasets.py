"""Offline loading of the datasets that ship inside the package (`gradiend_hf/data/builtin/`)."""

from __future__ import annotations

import gzip
import json
from importlib import resources
from typing import Any

from datasets import Dataset, DatasetDict, DatasetInfo

from .errors import UnknownBuiltinError
from .schema import feature_dataset_features, multiclass_dataset_features, neutral_dataset_features, rows_to_dataset


MANIFEST = "manifest.json"


def _builtin_dir() -> resources.abc.Traversable:
    return resources.files(__package__).joinpath("builtin")


def _manifest() -> dict[str, dict[str, Any]]:
    return json.loads(_builtin_dir().joinpath(MANIFEST).read_text(encoding="utf-8"))


def list_builtin() -> list[str]:
    """Names of the datasets that ship with gradiend-hf, e.g. `["gender-en", "names-en", "neutral-en",
    "pronoun-number-en", "pronouns-en"]`."""
    return sorted(_manifest())


def builtin_info(name: str) -> dict[str, Any]:
    """What a built-in dataset is: `kind` (`"feature"` or `"neutral"`), `classes` (in class order; with two classes
    the first is labelled +1),
    `description`, `license`, `sources`, `num_rows` per split, and the parameters it was built with.

    Raises:
        `UnknownBuiltinError`: If no built-in dataset has that name.
    """
    manifest = _manifest()
    if name not in manifest:
        raise UnknownBuiltinError(f"No built-in dataset named {name!r}; available: {sorted(manifest)}.")
    return manifest[name]


def load_builtin(name: str) -> DatasetDict | Dataset:
    """Load a built-in English dataset from the package files (no network, no cache directory).

    - `"gender-en"`: he (class `"M"`, label +1) vs she (class `"F"`, label -1), from Jane Austen's six novels.
    - `"pronoun-number-en"`: he/she/it (class `"3SG"`, label +1) vs they (class `"3PL"`, label -1), from English
      Wikipedia paragraphs.
    - `"pronouns-en"`: the English subject pronouns in five classes, `"1SG"` (I), `"1PL"` (we), `"2"` (you),
      `"3SG"` (he, she, it) and `"3PL"` (they), from Jane Austen's novels and English Wikipedia. Its rows have an
      `alternatives` column (one word per class); `pair_view`, `one_vs_rest_view` and `merged_view` turn it into
      two-class training data.
    - `"names-en"`: male (class `"M"`, label +1) vs female (class `"F"`, label -1) character names of Jane Austen's
      novels (Darcy, Edmund, ...; Elizabeth, Elinor, ...), many of them several tokens for common tokenizers.
    - `"neutral-en"`: Wikipedia sentences without any English personal pronoun.

    Feature rows have at least 10 words before `[MASK]`, so they suit causal as well as masked language models.
    See `builtin_info(name)` and `gradiend_hf/data/builtin/ATTRIBUTION.md` for sources and licences.

    Args:
        name (`str`): One of `list_builtin()`.

    Returns:
        `datasets.DatasetDict` (splits `train`, `validation`, `test`) for a feature dataset, or a `datasets.Dataset`
        with a `text` column for a neutral dataset.

    Raises:
        `UnknownBuiltinError`: If no built-in dataset has that name.
    """
    info = builtin_info(name)
    dataset_info = DatasetInfo(
        description=info["description"], license=info["license"], citation=info.get("citation", ""), dataset_name=name
    )
    if info["kind"] == "neutral":
        features = neutral_dataset_features()
    elif len(info["classes"]) > 2:
        features = multiclass_dataset_features(list(info["classes"]))
    else:
        features = feature_dataset_features()
    splits = {
        split: rows_to_dataset(_read_jsonl_gz(path), features, dataset_info, split)
        for split, path in info["files"].items()
    }
    if info["kind"] == "neutral":
        return splits["train"]
    return DatasetDict(splits)


def _read_jsonl_gz(relative_path: str) -> list[dict[str, Any]]:
    with _builtin_dir().joinpath(relative_path).open("rb") as raw, gzip.open(raw, "rt", encoding="utf-8") as lines:
        return [json.loads(line) for line in lines if line.strip()]
