"""Column schema shared by the dataset builders and the built-in dataset loader."""

from __future__ import annotations

from typing import Any

from datasets import Dataset, DatasetInfo, Features, NamedSplit, Value


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
