"""`make_feature_dataset`: masked rows of a feature with two or more classes from raw text."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

from datasets import DatasetDict, DatasetInfo

from .casing import always_capitalised_words, recase, starts_capitalised
from .classes import FeatureClasses
from .errors import EmptyClassError, FeatureDataError, InvalidPairingError, NoMatchError, NoTextError
from .evaluation_only import refuse_evaluation_only
from .masking import MASK, ClassScan, WordMatch, scan_sentences
from .pairing import WordPairing
from .schema import feature_dataset_features, multiclass_dataset_features, rows_to_dataset
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
    capitalised_words: Sequence[str] | None = None,
    paired: bool = False,
    pairs: Sequence[Sequence[str] | Mapping[str, str]] | None = None,
) -> DatasetDict:
    """Build a GRADIEND feature dataset from raw text: one masked class word per row, with its alternative(s).

    The text is split into sentences (`split_sentences`, identical sentences kept once). A word matches a class
    when it equals one of the class words, as a whole word and ignoring case ("he" matches "He" and "HE", not
    "then" or "shed"); a class word may be a phrase ("African American"), matched as a whole phrase. Masking policy (see `choose_occurrence`): a sentence gives at most one row; a sentence
    with words of two classes gives none, so the masked text never shows a word of another class; otherwise
    the first occurrence with at least `min_left_context_words` words before it becomes `[MASK]`, and other
    words of the same class stay. So no sentence is in two rows, let alone in two splits.

    The alternative word of a row for another class is drawn (seeded) from that class with probability
    proportional to how often each of its words occurs in the text, and is cased for the blank (`He` -> `She`,
    `HE` -> `SHE`; with English `I`, `and I went` -> `and we went`, `We went` -> `I went`, see `recase`). With
    paired word forms (`paired=True` or `pairs=`, see `gradiend_hf.data.pairing`) it is the word's counterpart
    instead (`his` -> `her`), drawn by the same frequencies only among several counterparts (`her` -> `him` or `his`).

    With **two classes** every row is labelled +1 if its factual word belongs to the first class of `classes` and -1
    if it belongs to the second one, and has one `alternative` (of the other class). With **three or more classes**
    a row has an `alternatives` mapping instead, one word per class, so that it serves every transition from its
    class to any other; `pair_view`, `one_vs_rest_view` and `merged_view` (`gradiend_hf.data.views`) give the
    two-class datasets a GRADIEND trains on. The class order is written into each split's `info.description`.

    Args:
        texts (`str` or iterable of `str`): Raw prose (a single string is one text). Blank lines separate
            paragraphs; single line breaks are wrapped lines.
        classes (`Mapping[str, Sequence[str]]`): Two or more classes, name -> words, e.g.
            `{"M": ["he"], "F": ["she"]}` or `{"1SG": ["i"], "1PL": ["we"], "3SG": ["he", "she", "it"]}`. Words are
            words (letters and digits) or phrases of words separated by spaces (`"New York"`), and no word may belong
            to two classes.
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
        language (`str`, *optional*, defaults to `"en"`): Language of the sentence splitter and of the words that
            are capitalised in every position (English: `I`).
        capitalised_words (sequence of `str`, *optional*): Words capitalised in every position, instead of the
            language's (e.g. German nouns of a feature); `[]` treats every word by its written casing only.
        paired (`bool`, *optional*, defaults to `False`): The class lists are aligned word forms: position i of each
            list is one form (`{"M": ["he", "him", "his"], "F": ["she", "her", "her"]}`), and each word's
            alternative is its counterpart. A word may be repeated to pair several words with it.
        pairs (sequence, *optional*): An explicit table of word forms instead, each entry one word per class in class
            order (`("his", "her")`) or a mapping (`{"M": "his", "F": "her"}`); every class word must be in it.

    Returns:
        `datasets.DatasetDict`: Splits `train`, `validation` and `test`. Two classes: the string columns `text`,
        `masked` (exactly one `[MASK]`), `factual`, `alternative`, `factual_class`, `alternative_class` and the
        integer columns `label` (+1 / -1) and `left_context_words` (`FEATURE_COLUMNS`). Three or more classes:
        `text`, `masked`, `factual`, `factual_class`, `alternatives` (class -> word, the row's own class -> its
        factual word) and `left_context_words` (`MULTICLASS_COLUMNS`). `masked.replace("[MASK]", factual) == text`.

    Raises:
        `ClassCountError`, `InvalidWordError`, `OverlappingClassesError`: If `classes` is not two or more classes of
            distinct words or phrases.
        `InvalidPairingError`: If the paired forms do not give every word a counterpart (lists of different
            lengths, a word without a pair, words paired many-to-many).
        `NoTextError`: If the text holds no sentence.
        `NoMatchError`: If no word of a class occurs in the text.
        `EmptyClassError`: If every sentence with a word of a class was dropped (words of two classes, or too
            little left context), so the class has no row.
        `NotEnoughRowsError`: If a class has fewer rows than the splits need (`NotEnoughWordsError` for
            `split_by="word"` with too few distinct words).
        `EvaluationOnlyDataError`: If the text is CrowS-Pairs (an evaluation-only benchmark).
    """
    if not isinstance(texts, str):  # a string is prose here, never a dataset name
        refuse_evaluation_only(texts)
    feature_classes = FeatureClasses.from_mapping(classes)
    ratios = normalize_split_ratios(split_ratios)
    if split_by not in ("row", "word"):
        raise FeatureDataError(f"split_by must be 'row' or 'word', got {split_by!r}.")
    if min_left_context_words < 0:
        raise FeatureDataError(f"min_left_context_words must be >= 0, got {min_left_context_words}.")
    if max_rows_per_class is not None and max_rows_per_class < 1:
        raise FeatureDataError(f"max_rows_per_class must be None or >= 1, got {max_rows_per_class}.")
    capitalised = always_capitalised_words(language, capitalised_words)
    pairing = _pairing(classes, feature_classes, paired, pairs)

    sentences = split_sentences(
        texts, language=language, min_words=min_words, max_words=max_words, segment=segment, deduplicate=True
    )
    if not sentences:
        raise NoTextError(
            f"No sentence with {min_words} to {max_words} words was found in the text. Pass prose (a string or a "
            "list of strings), or relax min_words/max_words."
        )
    scan = scan_sentences(sentences, feature_classes, min_left_context_words)
    _check_every_class_has_rows(scan, feature_classes, len(sentences), min_left_context_words)

    # One random stream per purpose, so that e.g. changing max_rows_per_class does not reshuffle the splits of
    # the rows that stay.
    sample_rng, alternative_rng, split_rng, order_rng = (random.Random(f"{seed}:{part}") for part in range(4))
    splits: dict[str, list[dict[str, Any]]] = {split: [] for split in SPLITS}
    for index, name in enumerate(feature_classes.names):
        class_candidates = scan.candidates[index]
        if max_rows_per_class is not None and len(class_candidates) > max_rows_per_class:
            keep = sorted(sample_rng.sample(range(len(class_candidates)), max_rows_per_class))
            class_candidates = [class_candidates[i] for i in keep]
        rows = _rows(class_candidates, index, feature_classes, scan.frequencies, alternative_rng, capitalised, pairing)
        ids = range(len(rows))
        if split_by == "word":
            by_split = split_words(ids, [row["factual"].lower() for row in rows], ratios, split_rng, class_name=name)
        else:
            by_split = split_rows(ids, ratios, split_rng, class_name=name)
        for split, row_ids in by_split.items():
            splits[split].extend(rows[i] for i in row_ids)

    two_classes = len(feature_classes) == 2
    features = feature_dataset_features() if two_classes else multiclass_dataset_features(feature_classes.names)
    info = DatasetInfo(
        features=features,
        description=(
            f"GRADIEND feature dataset. Classes: {feature_classes.describe()}. Each row masks one class word "
            f"as {MASK}; min_left_context_words={min_left_context_words}, split_by={split_by!r}, seed={seed}."
            + (f" Paired word forms: {[list(form) for form in pairing.forms]}." if pairing is not None else "")
        ),
    )
    result = DatasetDict()
    for split in SPLITS:
        order_rng.shuffle(splits[split])
        result[split] = rows_to_dataset(splits[split], features, info, split)
    return result


def _pairing(classes, feature_classes: FeatureClasses, paired: bool, pairs) -> WordPairing | None:
    """The checked word pairing of `paired=True` or `pairs=`, or `None`."""
    if paired and pairs is not None:
        raise InvalidPairingError("Give either paired=True (aligned class lists) or a `pairs` table, not both.")
    if not paired and pairs is None:
        return None
    pairing = WordPairing.aligned(classes) if paired else WordPairing.from_pairs(pairs, feature_classes.names)
    pairing.check(feature_classes)
    return pairing


def _check_every_class_has_rows(
    scan: ClassScan, feature_classes: FeatureClasses, num_sentences: int, min_left_context_words: int
) -> None:
    """Raise `NoMatchError` for a class whose words never occur, `EmptyClassError` for one without any row."""
    for index, name in enumerate(feature_classes.names):
        if not scan.frequencies[index]:
            raise NoMatchError(
                f"No word of class {name!r} ({', '.join(feature_classes.words[index])}) occurs in the text "
                f"({num_sentences} sentences). Add text that uses these words or change the class words."
            )
    for index, name in enumerate(feature_classes.names):
        if not scan.candidates[index]:
            seen, mixed = scan.sentences_with[index], scan.mixed_sentences[index]
            raise EmptyClassError(
                f"Class {name!r} has 0 usable rows: its words occur in {seen} sentence(s), {mixed} of which also "
                f"contain a word of another class, and the other {seen - mixed} have fewer than "
                f"min_left_context_words={min_left_context_words} words before every class word. A sentence with "
                "words of two classes gives no row (the masked text would show the other word). Give more text, "
                "lower min_left_context_words, or merge the classes that occur together."
            )


def _rows(
    candidates: list[tuple[str, WordMatch]],
    class_index: int,
    feature_classes: FeatureClasses,
    frequencies: list[Counter[str]],
    rng: random.Random,
    capitalised: frozenset[str],
    pairing: WordPairing | None = None,
) -> list[dict[str, Any]]:
    """Turn the chosen occurrences of one class into rows, drawing one alternative per other class.

    The draws go class by class in class order, one per row and other class, so two-class data uses the random
    stream exactly as it always has (one draw per row) and keeps its alternatives for the same seed. With a pairing
    the alternative is the word's counterpart, drawn (by frequency) only among several.
    """
    names = feature_classes.names
    vocabularies = [(sorted(counts), [counts[word] for word in sorted(counts)]) for counts in frequencies]
    rows = []
    for sentence, match in candidates:
        capitalised_position = starts_capitalised(sentence, match.start)
        alternatives = {}
        for other, (words, weights) in enumerate(vocabularies):
            if other == class_index:
                alternatives[names[other]] = match.surface
                continue
            if pairing is None:
                word = rng.choices(words, weights=weights)[0]
            else:
                word = _counterpart(pairing.counterparts(match.surface, class_index, other), frequencies[other], rng)
            alternatives[names[other]] = recase(
                match.surface, word, capitalised_position=capitalised_position, always_capitalised=capitalised
            )
        row: dict[str, Any] = {"text": sentence, "masked": match.mask(sentence), "factual": match.surface}
        if len(names) == 2:
            other_name = names[1 - class_index]
            row |= {
                "alternative": alternatives[other_name],
                "factual_class": names[class_index],
                "alternative_class": other_name,
                "label": feature_classes.label(class_index),
            }
        else:
            row |= {"factual_class": names[class_index], "alternatives": alternatives}
        rows.append(row | {"left_context_words": match.left_context_words})
    return rows


def _counterpart(candidates: tuple[str, ...], frequencies: Counter[str], rng: random.Random) -> str:
    """The one counterpart, or one of several drawn with the weights of their frequencies in the text."""
    if len(candidates) == 1:
        return candidates[0]
    weights = [frequencies[word] for word in candidates]
    return rng.choices(candidates, weights=weights if any(weights) else None)[0]
