"""Training data for [`GradiendTrainer`]: class-homogeneous row groups and their collator.

One gradient is the mean loss of a group of rows that share one transition (factual class → alternative class), so
the gradient points clearly towards one class. Groups are formed per transition (rows shuffled with the seed, only
full groups kept) and visited round-robin over the transitions, cycling the shorter ones, so both directions are
seen equally often (the reference package's scheme, method.md §2.4).
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from .data.errors import FeatureDataError, InvalidRowError
from .data.schema import MASK, ROW_COLUMNS
from .objectives import Objective


REQUIRED_COLUMNS = ROW_COLUMNS


# One error for unusable feature rows, wherever they are found (data building, training, evaluation).
GradiendDataError = FeatureDataError


def check_feature_rows(dataset, name: str = "train_dataset") -> None:
    """Raises a clear error when `dataset` lacks a required column, is empty, or has a row that cannot be used.

    Each kind of bad row gets its own message naming the first such row and how many there are: a text that is not
    a string (e.g. `None`), an empty text, a text without `[MASK]` or with several, or a missing word.

    Raises:
        [`FeatureDataError`] ([`InvalidRowError`] for bad rows).
    """
    if dataset is None:
        raise FeatureDataError(f"`{name}` is required.")
    columns = getattr(dataset, "column_names", None)
    if columns is None and len(dataset):
        columns = list(dataset[0].keys())
    missing = [c for c in REQUIRED_COLUMNS if c not in (columns or [])]
    if missing and "alternatives" in (columns or []):
        raise FeatureDataError(
            f"`{name}` has feature rows of several classes (an `alternatives` column); a GRADIEND learns one "
            "two-class feature of them. Train on a view (`gradiend_hf.data.pair_view`, `one_vs_rest_view`, "
            "`merged_view`) or a family of them with `gradiend_hf.suite.train_suite`."
        )
    if missing:
        raise FeatureDataError(
            f"`{name}` lacks the column(s) {missing}. Build feature rows with "
            "`gradiend_hf.data.make_feature_dataset`, which returns every required column."
        )
    if len(dataset) == 0:
        raise FeatureDataError(f"`{name}` is empty; a GRADIEND needs rows of both feature classes.")
    check_row_values(dataset, name)


def check_row_values(dataset, name: str = "dataset") -> None:
    """Raises an [`InvalidRowError`] for the first kind of unusable value in the feature columns (see
    [`check_feature_rows`]); an empty dataset passes."""
    for column in REQUIRED_COLUMNS:
        _check_column(dataset[column], column, name)


def _check_column(values: Sequence, column: str, name: str) -> None:
    problems: dict[str, list[int]] = defaultdict(list)
    for index, value in enumerate(values):
        if not isinstance(value, str):
            problems[f"is {type(value).__name__}, not text"].append(index)
        elif not value.strip():
            problems["is empty"].append(index)
        elif column == "masked" and value.count(MASK) != 1:
            count = value.count(MASK)
            problems["has no [MASK]" if count == 0 else f"has {count} [MASK]s"].append(index)
    for problem, rows in problems.items():
        raise InvalidRowError(
            f"`{name}` row {rows[0]}: `{column}` {problem} ({len(rows)} such row(s)). Every row needs a text with "
            f"exactly one {MASK} and the words for it; build rows with `gradiend_hf.data.make_feature_dataset`."
        )


def check_usable_rows(dataset, objective, role: str) -> None:
    """Checks, before anything is trained or evaluated, that the objective can use every row; nothing is dropped.

    Words of several tokens and phrases are fine (see [`Objective`]).

    Raises:
        [`UnrepresentableWordError`]: naming every word the tokenizer cannot represent (e.g. an unknown token).
        [`ObjectiveError`]: for other unusable rows (e.g. no text before the blank of a causal LM's row).
    """
    objective.check_rows(dataset["masked"], dataset["factual"], dataset["alternative"], what=f"{role} rows")


def feature_classes_of(dataset) -> list[str]:
    """The two feature classes of a dataset, the one labelled +1 first when a `label` column exists.

    Identity rows (`factual_class == alternative_class`, label 0: the other classes of a view with `identity=True`)
    belong to no feature class.
    """
    classes: dict[str, int] = {}
    has_label = "label" in dataset.column_names
    labels = dataset["label"] if has_label else [None] * len(dataset)
    for cls, other, label in zip(dataset["factual_class"], dataset["alternative_class"], labels):
        if cls == other:
            continue
        classes.setdefault(cls, label or 0)
    if len(classes) != 2:
        raise FeatureDataError(
            f"A GRADIEND learns a feature between two classes, but the rows have {len(classes)} factual "
            f"class(es) with a transition to another class: {sorted(classes)}. Give rows of both classes (e.g. he→she "
            "AND she→he); for a dataset with more classes, train on a view (`gradiend_hf.data.pair_view`, "
            "`one_vs_rest_view`, `merged_view`)."
        )
    return sorted(classes, key=lambda c: -classes[c])


class GroupedFeatureDataset(torch.utils.data.Dataset):
    """Class-homogeneous groups of rows, one group per item, transitions alternating.

    Args:
        dataset (`datasets.Dataset`): Feature rows (see [`REQUIRED_COLUMNS`]).
        group_size (`int`): Rows per group (sentences per gradient).
        seed (`int`, *optional*, defaults to 0): Shuffles rows within each transition before grouping.
    """

    def __init__(self, dataset, group_size: int, seed: int = 0):
        check_feature_rows(dataset)
        by_transition: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
        # Plain lists: with datasets>=4 `dataset[c]` is a lazy column whose every `[i]` reads Arrow again.
        columns = dataset.select_columns(list(REQUIRED_COLUMNS)).to_dict()
        for i in range(len(dataset)):
            row = {c: columns[c][i] for c in REQUIRED_COLUMNS}
            by_transition[(row["factual_class"], row["alternative_class"])].append(row)
        if len({t[0] for t in by_transition}) < 2:
            raise FeatureDataError(
                f"The training rows only contain the transition(s) {sorted(by_transition)}; a GRADIEND needs rows "
                "whose factual word belongs to each of the two classes."
            )
        rng = random.Random(seed)
        self.groups: dict[tuple[str, str], list[list[dict[str, Any]]]] = {}
        for transition in sorted(by_transition):
            rows = by_transition[transition]
            rng.shuffle(rows)
            full = len(rows) // group_size
            if full == 0:
                raise FeatureDataError(
                    f"The transition {transition[0]}→{transition[1]} has {len(rows)} training rows, fewer than "
                    f"`sentences_per_gradient`={group_size}. Lower `sentences_per_gradient` or add rows."
                )
            self.groups[transition] = [rows[g * group_size : (g + 1) * group_size] for g in range(full)]
        self.transitions = list(self.groups)
        self.length = sum(len(g) for g in self.groups.values())

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict[str, Any]:
        transition = self.transitions[index % len(self.transitions)]
        groups = self.groups[transition]
        rows = groups[(index // len(self.transitions)) % len(groups)]
        return {
            "masked": [r["masked"] for r in rows],
            "factual": [r["factual"] for r in rows],
            "alternative": [r["alternative"] for r in rows],
            "factual_class": transition[0],
            "alternative_class": transition[1],
        }


@dataclass
class GradiendDataCollator:
    """Tokenizes a list of row groups into one [`ObjectiveBatch`] per group.

    Args:
        objective ([`Objective`]): Masked or causal LM objective of the base model.

    Example:

    ```python
    >>> collator = GradiendDataCollator(get_objective("masked_lm", tokenizer))
    >>> batch = collator([{"masked": ["He said [MASK] came."], "factual": ["she"], "alternative": ["he"],
    ...                    "factual_class": "F", "alternative_class": "M"}])
    >>> len(batch["groups"])
    1
    ```
    """

    objective: Objective

    def __call__(self, features: Sequence[dict[str, Any]]) -> dict[str, Any]:
        groups = [self.objective.prepare(f["masked"], f["factual"], f["alternative"]) for f in features]
        return {"groups": groups, "factual_class": [f["factual_class"] for f in features]}
