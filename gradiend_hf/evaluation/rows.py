"""Evaluation rows from feature datasets and neutral text: split resolution, balanced sampling, class words and
neutral rows with one random word blanked out."""

from __future__ import annotations

import random
import re
from collections.abc import Iterable, Sequence

from ..data.rows import class_words as data_class_words
from ..data.rows import split_of
from ..data.schema import ROW_COLUMNS
from ..objectives import MASK, Objective, ObjectiveError
from ..training_data import check_row_values
from .metrics import EvaluationError


# A word is a run of letters (any script); digits and punctuation are never blanked out.
_WORD = re.compile(r"[^\W\d_]+")


def resolve_split(dataset, split: str | None):
    """Returns the rows of `split` of a `DatasetDict`, or the `Dataset` itself, checked for the feature columns.

    Raises:
        EvaluationError: when the split is missing or a feature column is absent.
    """
    rows = split_of(dataset, split, error=EvaluationError)
    columns = set(getattr(rows, "column_names", None) or [])
    missing = [c for c in ROW_COLUMNS if c not in columns]
    if missing:
        raise EvaluationError(
            f"The feature dataset lacks the column(s) {missing}; build it with "
            "`gradiend_hf.data.make_feature_dataset` (columns masked, factual, alternative, factual_class, "
            "alternative_class, label)."
        )
    check_row_values(rows, "dataset")
    return rows


def class_words(dataset, classes: Sequence[str]) -> dict[str, list[str]]:
    """The words of each class (see [`gradiend_hf.data.rows.class_words`]).

    Raises:
        EvaluationError: when a class has no word.
    """
    return data_class_words(dataset, classes, error=EvaluationError)


def check_usable(objective: Objective, rows: Sequence[dict]) -> None:
    """Checks that the objective can use every evaluation row (nothing is dropped; see [`Objective.check_rows`])."""
    objective.check_rows(
        [r["masked"] for r in rows], [r["factual"] for r in rows], [r["alternative"] for r in rows], "evaluation rows"
    )


def sample_by_class(rows, classes: Sequence[str], max_rows: int | None, seed: int) -> list[dict]:
    """Rows whose factual class is in `classes`, at most `max_rows` per class (a seeded random sample).

    Rows of other classes are dropped; rows of a class keep their dataset order.
    """
    wanted = set(classes)
    groups = [(name,) if name in wanted else None for name in rows["factual_class"]]
    return _sample_groups(rows, groups, max_rows, seed, order=[(name,) for name in classes])


def sample_by_transition(rows, max_rows: int | None, seed: int) -> list[dict]:
    """At most `max_rows` rows of each transition (`factual_class`, `alternative_class`), a seeded random sample.

    Used for evaluations over every transition of a feature with more classes, so each transition is measured on
    as many rows as the others (a per-class sample would spread them thin over the transitions)."""
    return _sample_groups(rows, list(zip(rows["factual_class"], rows["alternative_class"])), max_rows, seed)


def _sample_groups(
    rows, groups: Sequence[tuple | None], max_rows: int | None, seed: int, order: Sequence[tuple] = ()
) -> list[dict]:
    """The rows of every group (`None`: dropped), at most `max_rows` per group, in dataset order. Groups are sampled
    in `order` first (then in order of appearance), which fixes what a seed draws."""
    by_group: dict[tuple, list[int]] = {group: [] for group in order}
    for index, group in enumerate(groups):
        if group is not None:
            by_group.setdefault(group, []).append(index)
    rng = random.Random(seed)
    keep = []
    for indices in by_group.values():
        if max_rows is not None and len(indices) > max_rows:
            indices = sorted(rng.sample(indices, max_rows))
        keep.extend(indices)
    keep.sort()
    columns = {name: rows[name] for name in rows.column_names}
    return [{name: values[i] for name, values in columns.items()} for i in keep]


def sample_texts(texts: Sequence[str], max_texts: int | None, seed: int) -> list[str]:
    """A seeded random sample of at most `max_texts` non-empty texts, in their original order."""
    indices = [i for i, text in enumerate(texts) if text and text.strip()]
    if max_texts is not None and len(indices) > max_texts:
        indices = sorted(random.Random(seed).sample(indices, max_texts))
    return [texts[i] for i in indices]


def neutral_texts(neutral) -> list[str]:
    """The `text` column of a neutral `Dataset` (or a plain list of strings)."""
    if neutral is None:
        return []
    if isinstance(neutral, (list, tuple)):
        return [str(t) for t in neutral]
    if "text" not in (getattr(neutral, "column_names", None) or []):
        raise EvaluationError(
            "The neutral dataset needs a `text` column (see `gradiend_hf.data.make_neutral_dataset`)."
        )
    return list(neutral["text"])


def blank_random_word(
    texts: Iterable[str],
    objective: Objective,
    excluded_words: Iterable[str],
    seed: int,
    max_tries: int = 8,
) -> list[tuple[int, str, str]]:
    """Blanks out one random word of each text, for neutral rows.

    A word qualifies when it is not one of `excluded_words` (case-insensitive), the objective reads it as a single
    token (the cheapest neutral target; feature words may be several tokens), and, for causal LMs, at least one word
    precedes it (the model needs left context to predict it).

    Args:
        texts (`Iterable[str]`): Sentences without `[MASK]`.
        objective ([`Objective`]): Decides whether a word is usable (single token, unchanged context).
        excluded_words (`Iterable[str]`): Words never blanked out (the feature classes' words).
        seed (`int`): Seed of the word choice.
        max_tries (`int`, *optional*, defaults to 8): Candidates tried per text before it is skipped.

    Returns:
        `list[tuple[int, str, str]]`: `(index of the text, masked text, the blanked word)` for every text with a
        usable word; texts without one are skipped.
    """
    excluded = {w.lower() for w in excluded_words}
    min_left = objective.min_left_context_words
    rng = random.Random(seed)
    out = []
    for index, text in enumerate(texts):
        if MASK in text:
            continue
        spans = [m for k, m in enumerate(_WORD.finditer(text)) if k >= min_left and m.group().lower() not in excluded]
        rng.shuffle(spans)
        for match in spans[:max_tries]:
            masked = text[: match.start()] + MASK + text[match.end() :]
            try:
                if len(objective.word_tokens([masked], [match.group()])[0]) != 1:
                    continue  # split into several tokens: try another word
            except ObjectiveError:
                continue  # unknown or merged with its neighbours: try another word
            out.append((index, masked, match.group()))
            break
    return out
