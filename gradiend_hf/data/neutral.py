"""`make_neutral_dataset`: sentences that contain none of a feature's words (encoder inputs that should give ~0)."""

from __future__ import annotations

import random
from collections.abc import Iterable

from datasets import Dataset, DatasetInfo

from .classes import normalize_words
from .errors import FeatureDataError, NoTextError
from .masking import MASK
from .phrases import PhraseMatcher
from .schema import neutral_dataset_features, rows_to_dataset
from .text import split_sentences


ENGLISH_PERSONAL_PRONOUNS = (
    *("i", "me", "my", "mine", "myself"),
    *("you", "your", "yours", "yourself", "yourselves"),
    *("he", "him", "his", "himself"),
    *("she", "her", "hers", "herself"),
    *("it", "its", "itself"),
    *("we", "us", "our", "ours", "ourselves"),
    *("they", "them", "their", "theirs", "themselves"),
)
"""Every English personal, possessive and reflexive pronoun; the excluded words of the built-in `neutral-en`."""


def make_neutral_dataset(
    texts: str | Iterable[str],
    exclude_words: Iterable[str],
    *,
    max_rows: int | None = None,
    seed: int = 0,
    segment: bool = True,
    min_words: int = 3,
    max_words: int = 64,
    language: str = "en",
) -> Dataset:
    """Build a neutral dataset: sentences of `texts` that contain none of `exclude_words`.

    Sentences are split and cleaned like in `make_feature_dataset` and kept once each. A sentence is dropped if it
    contains an excluded word or phrase (whole word, ignoring case: excluding "he" drops "He left." but keeps
    "Then the shed burnt."), and if it contains the literal `[MASK]`.

    Args:
        texts (`str` or iterable of `str`): Raw prose (a single string is one text).
        exclude_words (iterable of `str`): Words (or phrases) that must not occur, typically every word of the
            feature's classes (or `ENGLISH_PERSONAL_PRONOUNS`). May be empty.
        max_rows (`int`, *optional*): Keep at most this many sentences (a seeded random sample).
        seed (`int`, *optional*, defaults to 0): Seed of the sample and of the row order.
        segment (`bool`, *optional*, defaults to `True`): Split texts into sentences.
        min_words (`int`, *optional*, defaults to 3): Shortest sentence, in words.
        max_words (`int`, *optional*, defaults to 64): Longest sentence, in words.
        language (`str`, *optional*, defaults to `"en"`): Language of the sentence splitter.

    Returns:
        `datasets.Dataset`: One `text` column of sentences, in a seeded random order.

    Raises:
        `InvalidWordError`: If an excluded word is neither a word nor a phrase.
        `NoTextError`: If no sentence is left.
    """
    names = normalize_words(exclude_words, what="exclude_words")
    excluded = PhraseMatcher(dict.fromkeys(names, True))
    if max_rows is not None and max_rows < 1:
        raise FeatureDataError(f"max_rows must be None or >= 1, got {max_rows}.")
    sentences = split_sentences(
        texts, language=language, min_words=min_words, max_words=max_words, segment=segment, deduplicate=True
    )
    kept = [
        sentence for sentence in sentences if MASK not in sentence and next(excluded.finditer(sentence), None) is None
    ]
    if not kept:
        raise NoTextError(
            f"No sentence of the text ({len(sentences)} sentences with {min_words} to {max_words} words) is free of "
            "the excluded words. Give more (or more varied) text, or exclude fewer words."
        )
    rng = random.Random(f"{seed}:neutral")
    if max_rows is not None and len(kept) > max_rows:
        kept = rng.sample(kept, max_rows)
    else:
        rng.shuffle(kept)
    features = neutral_dataset_features()
    words = ", ".join(sorted(names)) or "(none)"
    info = DatasetInfo(features=features, description=f"Neutral sentences without the words: {words}.")
    return rows_to_dataset([{"text": sentence} for sentence in kept], features, info)
