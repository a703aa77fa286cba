"""Sentence splitting, cleaning and word tokenisation of raw prose.

Every other module of `gradiend_hf.data` sees text only through `split_sentences` and `iter_words`, so what counts
as a sentence and what counts as a word is decided here, once.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Iterator
from functools import lru_cache

import pysbd

from ..errors import GradiendError
from .errors import NotTextError


# A word is a maximal run of letters and digits. Apostrophes, hyphens and underscores separate words, so "he" is a
# word of "he's" and "he-goat" (the pronoun the reader sees) but "she" is not a word of "shed".
WORD_PATTERN = re.compile(r"[^\W_]+")

_PARAGRAPH_BREAK = re.compile(r"\n\s*\n")
_WHITESPACE = re.compile(r"\s+")
_DOUBLE_QUOTES = str.maketrans({"\u201c": '"', "\u201d": '"', "\u201e": '"', "\u201f": '"', "\u2033": '"'})
_SINGLE_QUOTES = str.maketrans({"\u2018": "'", "\u2019": "'", "\u201a": "'", "\u201b": "'"})
# Dashes, bullets and similar that sentence splitting leaves at the edges of a sentence ("-- Then he left.").
_EDGE_JUNK = " -\u2010\u2011\u2012\u2013\u2014\u2015*\u2022\u00b7|/\\~"
# Control and format characters (NUL, zero-width space, BOM, soft hyphen, ...) never help a language model and
# can hide inside words, so they are dropped before anything is matched.
_DROPPED_CATEGORIES = {"Cc", "Cf", "Cs", "Co", "Cn"}


def iter_words(text: str) -> Iterator[re.Match[str]]:
    """Iterate over the words of `text` as regex matches (use `.group()`, `.start()`, `.end()`)."""
    return WORD_PATTERN.finditer(text)


def count_words(text: str) -> int:
    """Number of words of `text` (runs of letters and digits)."""
    return sum(1 for _ in WORD_PATTERN.finditer(text))


def is_single_word(word: object) -> bool:
    """Whether `word` is a non-empty string that is exactly one word (no space, no punctuation)."""
    return isinstance(word, str) and WORD_PATTERN.fullmatch(word) is not None


def normalize_text(text: str) -> str:
    """Normalise unicode (NFC), typographic quotes and invisible characters of a raw text; keep its line breaks."""
    text = unicodedata.normalize("NFC", text)
    text = text.translate(_DOUBLE_QUOTES).translate(_SINGLE_QUOTES)
    return "".join(
        char if char in "\n\t" or unicodedata.category(char) not in _DROPPED_CATEGORIES else " " for char in text
    )


def clean_sentence(sentence: str) -> str:
    """Clean one sentence: collapse whitespace, trim stray dashes at its edges and repair cut quotations.

    Sentence splitting of dialogue leaves quotes that open in one sentence and close in a later one
    (`"Oh! Mr. Bennet, how can you abuse your children?` / `You take delight in vexing me," cried she.`). A closing
    quote without its opening one gets an opening quote at the start of the sentence, an opening quote without its
    closing one gets a closing quote at the end; a sentence that is then one whole quotation loses its quotes, so
    that all sentences cut from one long speech read alike. Quotes inside a sentence stay.

    Args:
        sentence (`str`): One sentence, already normalised by `normalize_text`.

    Returns:
        `str`: The cleaned sentence (possibly empty).
    """
    sentence = _WHITESPACE.sub(" ", sentence).strip(_EDGE_JUNK)
    if sentence.count('"') % 2:
        first = sentence.index('"')
        sentence = '"' + sentence if not _opens_quote(sentence, first) else sentence + '"'
    if len(sentence) > 1 and sentence[0] == sentence[-1] == '"' and sentence.count('"') == 2:
        sentence = sentence[1:-1].strip(_EDGE_JUNK)
    return sentence


def _opens_quote(text: str, index: int) -> bool:
    """Whether the straight quote at `index` opens a quotation (judged by the characters around it)."""
    before = text[index - 1] if index > 0 else " "
    after = text[index + 1] if index + 1 < len(text) else " "
    return (before.isspace() or before in "([{\u2014\u2013-") and not after.isspace()


@lru_cache(maxsize=8)
def _segmenter(language: str) -> pysbd.Segmenter:
    return pysbd.Segmenter(language=language, clean=False)


def as_text_list(texts: str | Iterable[str]) -> list[str]:
    """Accept one text or an iterable of texts and return a list; reject anything that is not text.

    A lone string is one text (not an iterable of characters).
    """
    if isinstance(texts, str):
        return [texts]
    if texts is None:
        return []
    result = []
    for text in texts:
        if text is None:
            continue
        if not isinstance(text, str):
            raise NotTextError(
                f"Expected texts to be strings, got {type(text).__name__} at position {len(result)}: {text!r:.80}. "
                "Drop or convert the values that are not text."
            )
        result.append(text)
    return result


def split_sentences(
    texts: str | Iterable[str],
    *,
    language: str = "en",
    min_words: int = 3,
    max_words: int = 64,
    segment: bool = True,
    deduplicate: bool = False,
) -> list[str]:
    """Split raw prose into clean sentences.

    Each text is cut into paragraphs at blank lines; single line breaks inside a paragraph are wrapped lines and
    become spaces. Paragraphs are split into sentences with `pysbd` (rule based; it knows abbreviations such as
    "Mr." or "U.S." and keeps quoted dialogue together), then every sentence is cleaned with `clean_sentence` and
    kept only if it has between `min_words` and `max_words` words and at least one letter.

    Args:
        texts (`str` or iterable of `str`): The raw text(s). A single string is one text.
        language (`str`, *optional*, defaults to `"en"`): ISO 639-1 language code understood by `pysbd`.
        min_words (`int`, *optional*, defaults to 3): Shortest sentence (in words) to keep.
        max_words (`int`, *optional*, defaults to 64): Longest sentence (in words) to keep.
        segment (`bool`, *optional*, defaults to `True`): Split paragraphs into sentences. With `False`, every
            paragraph is kept as one unit (useful for text that is already one sentence per item).
        deduplicate (`bool`, *optional*, defaults to `False`): Keep only the first occurrence of identical sentences.

    Returns:
        `list[str]`: The sentences, in input order.
    """
    if min_words < 1 or max_words < min_words:
        raise GradiendError(f"Need 1 <= min_words <= max_words, got min_words={min_words}, max_words={max_words}.")
    segmenter = _segmenter(language) if segment else None
    sentences: list[str] = []
    seen: set[str] = set()
    for text in as_text_list(texts):
        for paragraph in _PARAGRAPH_BREAK.split(normalize_text(text)):
            paragraph = _WHITESPACE.sub(" ", paragraph).strip()
            if not any(char.isalpha() for char in paragraph):
                continue
            raw_sentences = (
                [raw for chunk in _chunks(paragraph, max_words) for raw in _segment(chunk, segmenter)]
                if segmenter is not None
                else [paragraph]
            )
            for raw in raw_sentences:
                sentence = clean_sentence(raw)
                if not min_words <= count_words(sentence) <= max_words:
                    continue
                if not any(char.isalpha() for char in sentence):
                    continue
                if deduplicate:
                    if sentence in seen:
                        continue
                    seen.add(sentence)
                sentences.append(sentence)
    return sentences


# `pysbd` takes time that grows faster than the length of its input (a 64,000-character paragraph takes ~8 s, 16
# paragraphs of 4,000 characters 0.8 s), so long paragraphs are cut first, after a sentence end that is not an
# abbreviation ("Mr.") and before a capital or a quote. A stretch without any is far longer than a kept sentence.
_CHUNK_CHARS = 3000
_CHUNK_CUT = re.compile(r'(?<=[^\W\d_]{3})[.!?]["\')\]]*\s+(?=["\'A-Z])')
_SENTENCE_END = re.compile(r"[.!?]")


def _chunks(paragraph: str, max_words: int) -> Iterator[str]:
    """`paragraph` in pieces of at most about `_CHUNK_CHARS` characters (more for very long `max_words`), cut
    between sentences; a piece without any sentence end is one over-long "sentence" and is yielded whole."""
    limit = max(_CHUNK_CHARS, 40 * max_words)
    start = 0
    while len(paragraph) - start > limit:
        window = paragraph[start : start + limit]
        cuts = [match.end() for match in _CHUNK_CUT.finditer(window)]
        cut = cuts[-1] if cuts else (window.rfind(" ") + 1 or limit)
        piece = paragraph[start : start + cut]
        # No sentence end at all: nothing in it can be a sentence short enough to keep, and `pysbd` need not see it.
        if _SENTENCE_END.search(piece):
            yield piece
        start += cut
    yield paragraph[start:]


_QUOTATION = re.compile(r'"[^"]*"')
# `pysbd` never ends a sentence between two quotations (`...Mr. Darcy." "Oh! ...`), but in dialogue a quotation
# that ends a sentence and a quotation that starts with a capital letter are two sentences (or two speakers).
_QUOTE_AFTER_QUOTE = re.compile(r'[.!?]"\s+(?="([^\W\d_]))')
# A quoted speech is cut into sentences only where both parts have at least this many words, so that short
# exclamations stay with what follows ("Oh! Mr. Bennet, ...") and `She said "Stop. Now." and left.` stays whole.
_MIN_WORDS_PER_QUOTED_SENTENCE = 3


def _segment(paragraph: str, segmenter: pysbd.Segmenter) -> list[str]:
    """Split a paragraph into sentences, including the sentences of long quotations.

    `pysbd` keeps a quotation together however many sentences it has, which turns a paragraph of dialogue into
    one "sentence". The sentences inside each quotation are therefore found with a second pass, and consecutive
    quotations are cut apart.
    """
    sentences = []
    for segment in segmenter.segment(paragraph):
        cuts = {match.end() for match in _QUOTE_AFTER_QUOTE.finditer(segment) if match.group(1).isupper()}
        for quotation in _QUOTATION.finditer(segment):
            cuts.update(quotation.start() + 1 + cut for cut in _sentence_starts(quotation.group()[1:-1], segmenter))
        bounds = [0, *sorted(cuts), len(segment)]
        sentences.extend(segment[start:end] for start, end in zip(bounds, bounds[1:]))
    return sentences


def _sentence_starts(text: str, segmenter: pysbd.Segmenter) -> list[int]:
    """Offsets in `text` where a sentence of at least `_MIN_WORDS_PER_QUOTED_SENTENCE` words begins (not 0)."""
    starts, cursor, words_since_cut = [], 0, 0
    pieces = [piece.strip() for piece in segmenter.segment(text)]
    for index, piece in enumerate(piece for piece in pieces if piece):
        position = text.find(piece, cursor)
        if position < 0:  # the splitter changed the text; keep the quotation whole rather than cut it wrongly
            return []
        if index and words_since_cut >= _MIN_WORDS_PER_QUOTED_SENTENCE:
            starts.append(position)
            words_since_cut = 0
        words_since_cut += count_words(piece)
        cursor = position + len(piece)
    if starts and words_since_cut < _MIN_WORDS_PER_QUOTED_SENTENCE:
        starts.pop()  # a short last sentence stays with the one before it
    return starts
