"""`make_feature_dataset`: masked rows of a two-class feature from raw text."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

from datasets import DatasetDict, DatasetInfo

from .classes import FeatureClasses, match_casing
from .errors import FeatureDataError, NoMatchError, NoTextError
from .masking import MASK, WordMatch, choose_occurrence, find_class_words
from .schema import feature_dataset_features, rows_to_dataset
from .splits import SPLITS, normalize_split_ratios, split_rows, split_words
from .text import split_sentences


def make_feature_dataset(
    texts: str | Iterable[str],
    classes: Mapping[str, Sequence[str]],
    *,
    min_left_context_words: int = 0,
    max_rows_per_class: int | None = None,
    split_ratios: Sequence[float] | Mapping[str, float] = (0.8, 0.1, 0.1),
    split_by: Literal["row", "word"] = "row",
    seed: int = 0,
    segment: bool = True,
    min_words: int = 3,
    max_words: int = 64,
    language: str = "en",
) -> DatasetDict:
    """Build a GRADIEND feature dataset from raw text: one masked class word per row, with its alternative.

    The text is split into sentences (`split_sentences`, identical sentences kept once). A word matches a class
    when it equals one of the class words, as a whole word and ignoring case ("he" matches "He" and "HE", not
    "then" or "shed"). Masking policy (see `choose_occurrence`): a sentence gives at most one row; a sentence
    with words of both classes gives none, so the masked text never shows a word of the other class; otherwise
    the first occurrence with at least `min_left_context_words` words before it becomes `[MASK]`, and other
    words of the same class stay.

    The alternative word of a row is drawn (seeded) from the other class with probability proportional to how
    often each of its words occurs in the text, and takes the casing of the factual word (`He` -> `She`,
    `HE` -> `SHE`). Every row is labelled +1 if its factual word belongs to the first class of `classes` and -1 if
    it belongs to the second one; the class order is also written into each split's `info.description`.

    Args:
        texts (`str` or iterable of `str`): Raw prose (a single string is one text). Blank lines separate
            paragraphs; single line breaks are wrapped lines.
        classes (`Mapping[str, Sequence[str]]`): Exactly two classes, name -> words, e.g.
            `{"M": ["he"], "F": ["she"]}` or `{"3SG": ["he", "she", "it"], "3PL": ["they"]}`. Words are single
            words (letters and digits) and no word may belong to both classes.
        min_left_context_words (`int`, *optional*, defaults to 0): Fewest words before the masked word. Decoder-only
            (causal) models see only the text left of `[MASK]`; use 10 for them (as the built-in datasets do).
        max_rows_per_class (`int`, *optional*): Keep at most this many rows per class (a seeded random sample).
        split_ratios (`(train, validation, test)` or mapping, *optional*, defaults to `(0.8, 0.1, 0.1)`): Share of
            each class's rows per split. A split with a non-zero ratio gets at least one row of each class.
        split_by (`"row"` or `"word"`, *optional*, defaults to `"row"`): `"row"` splits the rows of each class at
            random. `"word"` holds out whole words: no factual word of validation or test is a factual word of
            train (nor of the other held-out split), which measures whether a GRADIEND generalises to unseen
            words. It needs at least as many distinct words per class as non-empty splits.
        seed (`int`, *optional*, defaults to 0): Seed of every random choice (sampling, alternatives, splits,
            row order). The same inputs and seed give the same dataset.
        segment (`bool`, *optional*, defaults to `True`): Split texts into sentences; `False` keeps each paragraph
            whole (for input that is already one sentence per item).
        min_words (`int`, *optional*, defaults to 3): Shortest sentence, in words.
        max_words (`int`, *optional*, defaults to 64): Longest sentence, in words.
        language (`str`, *optional*, defaults to `"en"`): Language of the sentence splitter.

    Returns:
        `datasets.DatasetDict`: Splits `train`, `validation` and `test` with the string columns `text`, `masked`
        (exactly one `[MASK]`), `factual`, `alternative`, `factual_class`, `alternative_class` and the integer
        columns `label` (+1 / -1) and `left_context_words`. `masked.replace("[MASK]", factual) == text`.

    Raises:
        `ClassCountError`, `InvalidWordError`, `OverlappingClassesError`: If `classes` is not two classes of
            distinct single words.
        `NoTextError`: If the text holds no sentence.
        `NoMatchError`: If no word of a class occurs in the text.
        `NotEnoughRowsError`: If a class has fewer rows than the splits need (`NotEnoughWordsError` for
            `split_by="word"` with too few distinct words).
    """
    feature_classes = FeatureClasses.from_mapping(classes)
    ratios = normalize_split_ratios(split_ratios)
    if split_by not in ("row", "word"):
        raise FeatureDataError(f"split_by must be 'row' or 'word', got {split_by!r}.")
    if min_left_context_words < 0:
        raise FeatureDataError(f"min_left_context_words must be >= 0, got {min_left_context_words}.")
    if max_rows_per_class is not None and max_rows_per_class < 1:
        raise FeatureDataError(f"max_rows_per_class must be None or >= 1, got {max_rows_per_class}.")

    sentences = split_sentences(
        texts, language=language, min_words=min_words, max_words=max_words, segment=segment, deduplicate=True
    )
    if not sentences:
        raise NoTextError(
            f"No sentence with {min_words} to {max_words} words was found in the text. Pass prose (a string or a "
            "list of strings), or relax min_words/max_words."
        )

    word_to_class = feature_classes.word_to_class
    frequencies: list[Counter[str]] = [Counter(), Counter()]
    candidates: list[list[tuple[str, WordMatch]]] = [[], []]
    for sentence in sentences:
        matches = find_class_words(sentence, word_to_class)
        for match in matches:
            frequencies[match.class_index][match.surface.lower()] += 1
        chosen = choose_occurrence(sentence, matches, min_left_context_words)
        if chosen is not None:
            candidates[chosen.class_index].append((sentence, chosen))
    for index, name in enumerate(feature_classes.names):
        if not frequencies[index]:
            raise NoMatchError(
                f"No word of class {name!r} ({', '.join(feature_classes.words[index])}) occurs in the text "
                f"({len(sentences)} sentences). Add text that uses these words or change the class words."
            )

    # One random stream per purpose, so that e.g. changing max_rows_per_class does not reshuffle the splits of
    # the rows that stay.
    sample_rng, alternative_rng, split_rng, order_rng = (random.Random(f"{seed}:{part}") for part in range(4))
    splits: dict[str, list[dict[str, Any]]] = {split: [] for split in SPLITS}
    for index, name in enumerate(feature_classes.names):
        class_candidates = candidates[index]
        if max_rows_per_class is not None and len(class_candidates) > max_rows_per_class:
            keep = sorted(sample_rng.sample(range(len(class_candidates)), max_rows_per_class))
            class_candidates = [class_candidates[i] for i in keep]
        rows = _rows(class_candidates, feature_classes, frequencies[1 - index], alternative_rng)
        ids = range(len(rows))
        if split_by == "word":
            by_split = split_words(ids, [row["factual"].lower() for row in rows], ratios, split_rng, class_name=name)
        else:
            by_split = split_rows(ids, ratios, split_rng, class_name=name)
        for split, row_ids in by_split.items():
            splits[split].extend(rows[i] for i in row_ids)

    features = feature_dataset_features()
    info = DatasetInfo(
        features=features,
        description=(
            f"GRADIEND feature dataset. Classes: {feature_classes.describe()}. Each row masks one class word "
            f"as {MASK}; min_left_context_words={min_left_context_words}, split_by={split_by!r}, seed={seed}."
        ),
    )
    result = DatasetDict()
    for split in SPLITS:
        order_rng.shuffle(splits[split])
        result[split] = rows_to_dataset(splits[split], features, info, split)
    return result


def _rows(
    candidates: list[tuple[str, WordMatch]],
    feature_classes: FeatureClasses,
    other_frequencies: Counter[str],
    rng: random.Random,
) -> list[dict[str, Any]]:
    """Turn the chosen occurrences of one class into rows, drawing each alternative from the other class."""
    if not candidates:
        return []
    other_words = sorted(other_frequencies)
    weights = [other_frequencies[word] for word in other_words]
    rows = []
    for sentence, match in candidates:
        alternative = rng.choices(other_words, weights=weights)[0]
        rows.append(
            {
                "text": sentence,
                "masked": match.mask(sentence),
                "factual": match.surface,
                "alternative": match_casing(match.surface, alternative),
                "factual_class": feature_classes.names[match.class_index],
                "alternative_class": feature_classes.names[1 - match.class_index],
                "label": feature_classes.label(match.class_index),
                "left_context_words": match.left_context_words,
            }
        )
    return rows
