"""Two-class training data from a feature dataset with two or more classes, without rebuilding it from text.

Every function here takes a feature dataset (`make_feature_dataset`'s output, or a built-in, with two or more
classes) and returns rows in the two-class schema (`FEATURE_COLUMNS`) that `GradiendTrainer` trains on, keeping the
dataset's splits and row order:

- `pair_view(data, "1SG", "3SG")`: the transitions 1SG -> 3SG (label +1) and 3SG -> 1SG (label -1);
- `one_vs_rest_view(data, "1SG")`: 1SG (+1) against every other class merged (-1);
- `merged_view(data, {"SG": ["1SG", "3SG"], "PL": ["1PL", "3PL"]})`: two groups of merged classes;
- `identity=True` adds C -> C rows (`factual == alternative`, label 0) for the classes outside the view;
- `transitions_view(data, view)`: every transition of every row (for evaluation), labelled by a view.

A row of a merged class gets the alternative word of one class of the other group; where that group has several
classes the row's allowed ones are drawn from with equal chance, seeded by the row's sentence, so a view is the same
whatever the order or split of its rows.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from datasets import Dataset, DatasetDict, DatasetInfo

from .class_view import ClassView
from .errors import EmptyClassError, InvalidViewError
from .schema import feature_dataset_features, rows_to_dataset


def feature_class_names(dataset: Dataset | DatasetDict) -> list[str]:
    """The classes of a feature dataset, in its class order.

    With three or more classes that is the order of the `alternatives` fields (the order of `classes` given to
    `make_feature_dataset`); with two, the class labelled +1 comes first.

    Args:
        dataset (`datasets.Dataset` or `datasets.DatasetDict`): A feature dataset.

    Returns:
        `list[str]`: The class names.
    """
    splits = _splits(dataset)
    first = next(iter(splits.values()))
    if "alternatives" in first.column_names:
        return list(first.features["alternatives"])
    order: dict[str, int] = {}
    for data in splits.values():
        labels = data["label"] if "label" in data.column_names else [0] * len(data)
        for factual_class, alternative_class, label in zip(data["factual_class"], data["alternative_class"], labels):
            order.setdefault(factual_class, -label)
            order.setdefault(alternative_class, label if alternative_class != factual_class else 0)
    return sorted(order, key=lambda name: order[name])


def apply_view(dataset: Dataset | DatasetDict, view: ClassView, *, seed: int = 0) -> Dataset | DatasetDict:
    """The training rows of `view`: its transitions in both directions, plus identity rows if the view asks.

    Args:
        dataset (`datasets.Dataset` or `datasets.DatasetDict`): A feature dataset with two or more classes.
        view (`ClassView`): The feature to learn.
        seed (`int`, *optional*, defaults to 0): Seed of the choice among several classes of a merged group.

    Returns:
        Like `dataset`: rows in the two-class schema with `factual_class` / `alternative_class` the view's class
        names (`view.positive`, `view.negative`) and `label` +1 / -1; identity rows keep their dataset class and
        have label 0.

    Raises:
        `UnknownClassError`, `OneVsRestError`, `InvalidViewError`: If the view does not fit the dataset's classes.
        `EmptyClassError`: If a side of the view has no row in a split that has rows.
    """
    class_names = feature_class_names(dataset)
    view = view.resolve(class_names)
    splits = _splits(dataset)
    result = {}
    for split, data in splits.items():
        rows = [view_row for row in _wide_rows(data) if (view_row := _view_row(row, view, seed)) is not None]
        if len(data):
            for side in (view.positive, view.negative):
                if not any(row["factual_class"] == side for row in rows):
                    raise EmptyClassError(
                        f"The view {view.name!r} has no row of {side!r} in the split {split!r}: no row of the "
                        f"class(es) {_side_classes(view, side)} has an allowed transition. Check the view's pairs "
                        "or give data with rows of these classes."
                    )
        result[split] = rows
    description = f"{_describe(view)} View of: {_description(splits)}"
    return _to_dataset(dataset, result, description)


def pair_view(
    dataset: Dataset | DatasetDict, positive: str, negative: str, *, identity: bool = False
) -> Dataset | DatasetDict:
    """A vs B: the transitions `positive -> negative` (label +1) and `negative -> positive` (label -1).

    Args:
        dataset (`datasets.Dataset` or `datasets.DatasetDict`): A feature dataset with two or more classes.
        positive (`str`): The class labelled +1.
        negative (`str`): The class labelled -1.
        identity (`bool`, *optional*, defaults to `False`): Add C -> C rows (label 0) for every other class.

    Returns:
        Like `dataset`, in the two-class schema (see `apply_view`).
    """
    return apply_view(dataset, ClassView.pair(positive, negative, identity=identity))


def one_vs_rest_view(
    dataset: Dataset | DatasetDict,
    positive: str,
    *,
    rest: Sequence[str] | None = None,
    rest_name: str | None = None,
    seed: int = 0,
) -> Dataset | DatasetDict:
    """One class (label +1) against the merged other classes (label -1, named `"non-<positive>"` by default).

    Args:
        dataset (`datasets.Dataset` or `datasets.DatasetDict`): A feature dataset with two or more classes.
        positive (`str`): The class labelled +1.
        rest (sequence of `str`, *optional*): The classes of the rest; defaults to every other class.
        rest_name (`str`, *optional*): Name of the merged rest.
        seed (`int`, *optional*, defaults to 0): Seed of the choice of a rest class for the alternatives of
            `positive` rows.

    Returns:
        Like `dataset`, in the two-class schema (see `apply_view`).
    """
    return apply_view(dataset, ClassView.one_vs_rest(positive, rest, rest_name=rest_name), seed=seed)


def merged_view(
    dataset: Dataset | DatasetDict,
    groups: Mapping[str, Sequence[str]],
    *,
    pairs: Iterable[tuple[str, str]] | None = None,
    identity: bool = False,
    seed: int = 0,
) -> Dataset | DatasetDict:
    """Two groups of merged classes, e.g. `{"SG": ["1SG", "3SG"], "PL": ["1PL", "3PL"]}` (the first group is +1).

    Args:
        dataset (`datasets.Dataset` or `datasets.DatasetDict`): A feature dataset with two or more classes.
        groups (`Mapping[str, Sequence[str]]`): Exactly two groups, name -> the dataset classes it merges.
        pairs (iterable of `(str, str)`, *optional*): Only these pairs of dataset classes replace each other (both
            directions); rows of a class without a pair are left out. E.g. `[("1SG", "1PL"), ("3SG", "3PL")]`.
        identity (`bool`, *optional*, defaults to `False`): Add C -> C rows (label 0) for the classes in neither
            group.
        seed (`int`, *optional*, defaults to 0): Seed of the choice among several classes of the other group.

    Returns:
        Like `dataset`, in the two-class schema (see `apply_view`).
    """
    return apply_view(dataset, ClassView.merged(groups, pairs=pairs, identity=identity), seed=seed)


def transitions_view(
    dataset: Dataset | DatasetDict, view: ClassView | None = None, *, identity: bool = True
) -> Dataset | DatasetDict:
    """Every transition of every row, one row each: for evaluating a GRADIEND on all of a feature's transitions.

    A row of class C becomes one row per other class D (`C -> D`, `alternative = alternatives[D]`) and, with
    `identity`, one `C -> C` row (`alternative == factual`). Classes stay the dataset's own (`1SG`, not a merged
    `SG`), so metrics can be reported per transition and per class. The rows of one sentence stay in its split.

    Args:
        dataset (`datasets.Dataset` or `datasets.DatasetDict`): A feature dataset with two or more classes.
        view (`ClassView`, *optional*): Labels the rows: +1 for the view's transitions from its positive side to
            its negative side, -1 for the reverse, 0 for every other transition. Without a view every label is 0.
        identity (`bool`, *optional*, defaults to `True`): Include the identity transitions.

    Returns:
        Like `dataset`, in the two-class schema.
    """
    class_names = feature_class_names(dataset)
    if view is not None:
        view = view.resolve(class_names)
    splits = _splits(dataset)
    result = {}
    for split, data in splits.items():
        rows = []
        for row in _wide_rows(data):
            for target in class_names:
                word = row["alternatives"].get(target)
                if word is None or (target == row["factual_class"] and not identity):
                    continue
                label = 0 if view is None else view.label(row["factual_class"], target)
                rows.append(_two_class_row(row, word, row["factual_class"], target, label))
        result[split] = rows
    about = "every transition" + (f", labelled by the view {view.name!r}" if view is not None else ", label 0")
    return _to_dataset(dataset, result, f"Transitions view ({about}) of: {_description(splits)}")


# --- rows --------------------------------------------------------------------------------------------------------


def _view_row(row: dict[str, Any], view: ClassView, seed: int) -> dict[str, Any] | None:
    """The training row of `row` under `view`: a transition to the other side, an identity row, or `None`."""
    factual_class = row["factual_class"]
    side = view.group_of(factual_class)
    if side is None:
        if view.identity:
            return _two_class_row(row, row["factual"], factual_class, factual_class, 0)
        return None
    other_side = view.negative if side == view.positive else view.positive
    targets = [
        target
        for target in (view.negative_classes if side == view.positive else view.positive_classes)
        if view.allows(factual_class, target) and row["alternatives"].get(target) is not None
    ]
    if not targets:
        return None
    # Seeded by the sentence, so the choice does not depend on where the row stands.
    target = targets[0] if len(targets) == 1 else random.Random(f"{seed}:{row['text']}").choice(targets)
    label = 1 if side == view.positive else -1
    return _two_class_row(row, row["alternatives"][target], side, other_side, label)


def _two_class_row(
    row: dict[str, Any], alternative: str, factual_class: str, alternative_class: str, label: int
) -> dict[str, Any]:
    return {
        "text": row["text"],
        "masked": row["masked"],
        "factual": row["factual"],
        "alternative": alternative,
        "factual_class": factual_class,
        "alternative_class": alternative_class,
        "label": label,
        "left_context_words": row["left_context_words"],
    }


def _wide_rows(data: Dataset) -> Iterator[dict[str, Any]]:
    """The rows of a split with an `alternatives` mapping, also for two-class data (built from its one alternative).

    Raises:
        `InvalidViewError`: If two-class rows give one class several alternative classes (e.g. the output of
            `transitions_view`), which is not one row per sentence.
    """
    if "alternatives" in data.column_names:
        yield from data
        return
    targets: dict[str, str] = {}
    for row in data:
        factual_class, alternative_class = row["factual_class"], row["alternative_class"]
        if factual_class != alternative_class:
            if targets.setdefault(factual_class, alternative_class) != alternative_class:
                raise InvalidViewError(
                    f"The rows of {factual_class!r} go to several classes ({targets[factual_class]!r}, "
                    f"{alternative_class!r}); a view needs a feature dataset with one row per sentence, such as "
                    "make_feature_dataset's output, not the rows of transitions_view."
                )
        alternatives = {alternative_class: row["alternative"], factual_class: row["factual"]}
        yield {**row, "alternatives": alternatives}


# --- datasets ----------------------------------------------------------------------------------------------------


def _splits(dataset: Dataset | DatasetDict) -> dict[str, Dataset]:
    if isinstance(dataset, DatasetDict):
        if not dataset:
            raise InvalidViewError("The feature dataset has no split.")
        return dict(dataset)
    if isinstance(dataset, Dataset):
        return {str(dataset.split or "train"): dataset}
    raise InvalidViewError(f"A view needs a datasets.Dataset or DatasetDict of feature rows, got {type(dataset)}.")


def _to_dataset(
    dataset: Dataset | DatasetDict, rows: dict[str, list[dict[str, Any]]], description: str
) -> Dataset | DatasetDict:
    features = feature_dataset_features()
    first = next(iter(_splits(dataset).values()))
    info = DatasetInfo(description=description, license=first.info.license, citation=first.info.citation)
    built = {split: rows_to_dataset(split_rows, features, info, split) for split, split_rows in rows.items()}
    if isinstance(dataset, DatasetDict):
        return DatasetDict(built)
    return next(iter(built.values()))


def _description(splits: Mapping[str, Dataset]) -> str:
    return next(iter(splits.values())).info.description or "a feature dataset"


def _side_classes(view: ClassView, side: str) -> list[str]:
    return list(view.positive_classes if side == view.positive else view.negative_classes)


def _describe(view: ClassView) -> str:
    sides = "; ".join(
        f"{side} (label {label:+d}): {', '.join(_side_classes(view, side))}"
        for side, label in ((view.positive, 1), (view.negative, -1))
    )
    extra = ", with identity rows (label 0) for the other classes" if view.identity else ""
    pairs = f", pairs {[list(pair) for pair in view.pairs]}" if view.pairs is not None else ""
    return f"GRADIEND feature view {view.name!r}. Classes: {sides}{pairs}{extra}."
