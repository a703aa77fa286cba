"""Column schemas shared by the dataset builders, the views and the built-in dataset loader."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from datasets import Dataset, DatasetInfo, Features, NamedSplit, Value


MASK = "[MASK]"
"""The literal placeholder of the masked word in the `masked` column; `objectives` turns it into model inputs."""

ROW_COLUMNS = ("masked", "factual", "alternative", "factual_class", "alternative_class")
"""The columns every feature row needs to train or evaluate a GRADIEND."""

FEATURE_COLUMNS = (
    "text",
    "masked",
    "factual",
    "alternative",
    "factual_class",
    "alternative_class",
    "label",
    "left_context_words",
)


def feature_dataset_features() -> Features:
    """Features of a feature dataset split: the sentence, its masked form, the two words, their classes, the label.

    `label` is +1 when `factual_class` is the first class of the pair and -1 when it is the second one;
    `left_context_words` is the number of words before `[MASK]`.
    """
    return Features(
        {
            "text": Value("string"),
            "masked": Value("string"),
            "factual": Value("string"),
            "alternative": Value("string"),
            "factual_class": Value("string"),
            "alternative_class": Value("string"),
            "label": Value("int64"),
            "left_context_words": Value("int64"),
        }
    )


MULTICLASS_COLUMNS = ("text", "masked", "factual", "factual_class", "alternatives", "left_context_words")
"""Columns of a feature dataset with three or more classes (see `multiclass_dataset_features`)."""


def multiclass_dataset_features(class_names: Sequence[str]) -> Features:
    """Features of a split of a feature dataset with three or more classes: one row per sentence.

    `alternatives` has one string field per class, in class order: the word that fills the blank for that class,
    cased for the blank. The field of the row's own class (`factual_class`) holds the factual word, so every
    transition of the row, the identity one included, reads `alternatives[target_class]`. A field is `None` where a
    row has no transition to that class (only in views that restrict transitions, never in data built from text).
    Pair, one-vs-rest and merged views (`gradiend_hf.data.views`) turn these rows into the two-class schema.

    Args:
        class_names (sequence of `str`): The class names, in the feature's class order.
    """
    return Features(
        {
            "text": Value("string"),
            "masked": Value("string"),
            "factual": Value("string"),
            "factual_class": Value("string"),
            "alternatives": {name: Value("string") for name in class_names},
            "left_context_words": Value("int64"),
        }
    )


def neutral_dataset_features() -> Features:
    """Features of a neutral dataset: one `text` column of sentences."""
    return Features({"text": Value("string")})


def rows_to_dataset(
    rows: list[dict[str, Any]], features: Features, info: DatasetInfo, split: str | None = None
) -> Dataset:
    """An in-memory `Dataset` of `rows` with exactly `features` (also when `rows` is empty); writes no cache."""
    columns = {name: [row[name] for row in rows] for name in features}
    info = info.copy()
    info.features = features
    return Dataset.from_dict(columns, features=features, info=info, split=NamedSplit(split) if split else None)
