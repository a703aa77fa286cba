"""Train/validation/test splits of the rows of one class, by row or with held-out words."""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Mapping, Sequence

from .errors import FeatureDataError, NotEnoughRowsError, NotEnoughWordsError


SPLITS = ("train", "validation", "test")


def normalize_split_ratios(split_ratios: Sequence[float] | Mapping[str, float]) -> dict[str, float]:
    """Validate split ratios given as `(train, validation, test)` or as a mapping with (some of) those keys.

    Raises:
        `FeatureDataError`: If a ratio is negative or not finite, the train ratio is 0, or they do not sum to 1.
    """
    if isinstance(split_ratios, Mapping):
        unknown = set(split_ratios) - set(SPLITS)
        if unknown:
            raise FeatureDataError(f"Unknown split names {sorted(unknown)} in split_ratios; use {list(SPLITS)}.")
        ratios = {split: float(split_ratios.get(split, 0.0)) for split in SPLITS}
    else:
        values = list(split_ratios)
        if len(values) != 3:
            raise FeatureDataError(f"split_ratios needs three values (train, validation, test), got {values}.")
        ratios = dict(zip(SPLITS, map(float, values)))
    if any(not math.isfinite(ratio) or ratio < 0 for ratio in ratios.values()) or ratios["train"] <= 0:
        raise FeatureDataError(f"Split ratios must be finite and >= 0 with a positive train ratio, got {ratios}.")
    if not math.isclose(sum(ratios.values()), 1.0, abs_tol=1e-6):
        raise FeatureDataError(f"Split ratios must sum to 1, got {ratios} (sum {sum(ratios.values())}).")
    return ratios


def split_sizes(num_rows: int, ratios: Mapping[str, float], *, class_name: str) -> dict[str, int]:
    """How many of `num_rows` rows go to each split: close to the ratios, and at least one per non-zero ratio.

    Raises:
        `NotEnoughRowsError`: If there are fewer rows than splits with a non-zero ratio.
    """
    wanted = [split for split in SPLITS if ratios[split] > 0]
    if num_rows < len(wanted):
        raise NotEnoughRowsError(
            f"Class {class_name!r} has {num_rows} usable row(s) but the splits {wanted} need at least one each. "
            "Sentences that also contain a word of another class, or with fewer than min_left_context_words words "
            "before the class word, give no row. Give more text, lower min_left_context_words, or set the ratio of "
            "a split to 0."
        )
    ideal = {split: ratios[split] * num_rows for split in SPLITS}
    sizes = {split: max(1, math.floor(ideal[split])) if split in wanted else 0 for split in SPLITS}
    # Take back from the most over-served split (never below one row), then hand out leftovers to the most
    # under-served one; both loops end because len(wanted) <= num_rows.
    while sum(sizes.values()) > num_rows:
        split = max((s for s in wanted if sizes[s] > 1), key=lambda s: sizes[s] - ideal[s])
        sizes[split] -= 1
    while sum(sizes.values()) < num_rows:
        split = max(wanted, key=lambda s: ideal[s] - sizes[s])
        sizes[split] += 1
    return sizes


def split_rows(
    rows: Sequence[int], ratios: Mapping[str, float], rng: random.Random, *, class_name: str
) -> dict[str, list[int]]:
    """Shuffle the row ids of one class and cut them into splits of `split_sizes`."""
    shuffled = list(rows)
    rng.shuffle(shuffled)
    sizes = split_sizes(len(shuffled), ratios, class_name=class_name)
    result, start = {}, 0
    for split in SPLITS:
        result[split] = shuffled[start : start + sizes[split]]
        start += sizes[split]
    return result


def split_words(
    rows: Sequence[int], words: Sequence[str], ratios: Mapping[str, float], rng: random.Random, *, class_name: str
) -> dict[str, list[int]]:
    """Split the rows of one class so that each factual word lands in exactly one split (held-out words).

    Words are placed from the most to the least frequent (the seed only breaks ties between equally frequent
    words), each into the split that is furthest below its share of rows; once there are only as many words left
    as splits without a word, those splits get them. So the train split gets the frequent words and validation
    and test get words the train split never saw as factual words.

    Args:
        rows (sequence of `int`): Row ids of the class.
        words (sequence of `str`): The lower-cased factual word of each row id, aligned with `rows`.
        ratios (mapping): Output of `normalize_split_ratios`.
        rng (`random.Random`): Source of randomness for ties and the order of rows inside a split.
        class_name (`str`): For error messages.

    Raises:
        `NotEnoughWordsError`: If the class has fewer distinct words than splits with a non-zero ratio.
    """
    wanted = [split for split in SPLITS if ratios[split] > 0]
    counts = Counter(words)
    if len(counts) < len(wanted):
        raise NotEnoughWordsError(
            f"split_by='word' holds out whole words, so class {class_name!r} needs at least {len(wanted)} distinct "
            f"factual words for the splits {wanted}, but its rows only have {sorted(counts)}. Use split_by='row', "
            "add words to the class, or set the ratio of a split to 0."
        )
    tie_breaker = {word: rng.random() for word in sorted(counts)}
    order = sorted(counts, key=lambda word: (-counts[word], tie_breaker[word]))
    target = {split: ratios[split] * len(words) for split in SPLITS}
    assigned_rows = dict.fromkeys(SPLITS, 0)
    word_split = {}
    for remaining, word in zip(range(len(order), 0, -1), order):
        empty = [split for split in wanted if assigned_rows[split] == 0]
        candidates = empty if remaining <= len(empty) else wanted
        split = max(candidates, key=lambda s: target[s] - assigned_rows[s])
        word_split[word] = split
        assigned_rows[split] += counts[word]
    result: dict[str, list[int]] = {split: [] for split in SPLITS}
    for row, word in zip(rows, words):
        result[word_split[word]].append(row)
    for split_rows_ in result.values():
        rng.shuffle(split_rows_)
    return result
