"""Reading feature datasets: one split of a `DatasetDict` (or a `Dataset` itself), all of its splits, and the words
of each class. The one place that knows how a split is resolved and where class words come from."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from .errors import FeatureDataError


def split_of(dataset, split: str, error: type[Exception] = FeatureDataError):
    """The rows of `split` of a `DatasetDict` (any mapping of split names), or the `Dataset` itself.

    Raises:
        `error` (a [`FeatureDataError`] by default): when a `DatasetDict` has no such split.
    """
    if not isinstance(dataset, Mapping):
        return dataset
    if split not in dataset:
        raise error(f"The dataset has no split {split!r} (it has {sorted(dataset.keys())}); pass `split=` naming one.")
    return dataset[split]


def all_splits(dataset) -> list:
    """Every split of a `DatasetDict`, or `[dataset]` for a single `Dataset`."""
    if isinstance(dataset, Mapping):
        return [dataset[name] for name in dataset.keys()]
    return [dataset]


def class_words(dataset, classes: Sequence[str], error: type[Exception] = FeatureDataError) -> dict[str, list[str]]:
    """The words of each class: every factual word of its rows and every alternative word naming it, in all splits,
    as they are spelled (first occurrence first).

    Raises:
        `error` (a [`FeatureDataError`] by default): when a class has no word.
    """
    words: dict[str, dict[str, None]] = {name: {} for name in classes}
    for split in all_splits(dataset):
        for column, class_column in (("factual", "factual_class"), ("alternative", "alternative_class")):
            if column not in split.column_names:
                continue
            # Two columns read at once: iterating a `Column` formats row by row (100x slower on gender-en).
            values = split.select_columns([column, class_column]).to_dict()
            for word, name in zip(values[column], values[class_column]):
                if name in words:
                    words[name][word] = None
    for name, found in words.items():
        if not found:
            raise error(
                f"No row of the dataset names a word of class {name!r}; the GRADIEND's feature classes "
                f"{list(classes)} must be the dataset's `factual_class` values."
            )
    return {name: list(found) for name, found in words.items()}
