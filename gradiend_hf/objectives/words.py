"""Where a word (or phrase) is in a tokenized text: the run of tokens that spell it, found through the tokenizer's
character offsets, and the errors for a word no token sequence can represent."""

from __future__ import annotations

from collections.abc import Sequence

from ..errors import GradiendError


class ObjectiveError(GradiendError):
    """Raised when a row cannot be turned into model inputs (no blank, empty prefix, a word the tokenizer cannot
    represent, …)."""


class UnrepresentableWordError(ObjectiveError):
    """Raised for a target word that no token sequence represents: the tokenizer does not know it (unknown token),
    gives it no token, or merges it with the characters around it.

    Attributes:
        word (`str`): The word.
    """

    def __init__(self, message: str, word: str):
        super().__init__(message)
        self.word = word


def word_span(
    offsets: Sequence[tuple[int, int]],
    start: int,
    end: int,
    text: str,
    word: str,
    token_ids: Sequence[int],
    unk_id: int | None,
) -> tuple[int, int]:
    """`(first, stop)`: the tokens `first … stop - 1` spell `text[start:end]` (the word), else a clear error.

    The first token may carry the whitespace before the word (`"Ġshe"`); no token may reach into other characters,
    and the word may not be glued to letters or digits around it (`"x[MASK]"`), since the word's gradient would then
    not be the word's alone.

    Raises:
        [`UnrepresentableWordError`]: when the word gives no token, an unknown token, or tokens merged with (or glued
            to) its neighbours.
    """
    if (start > 0 and text[start - 1].isalnum()) or (end < len(text) and text[end].isalnum()):
        raise UnrepresentableWordError(
            f"The word {word!r} is glued to the letters around it in {text[:80]!r}; its tokens would not be the "
            "word's. Put spaces around the blank.",
            word,
        )
    hits = [i for i, (a, b) in enumerate(offsets) if b > a and a < end and b > start]
    if not hits:
        raise UnrepresentableWordError(f"The word {word!r} produced no token in {text[:80]!r}.", word)
    first, stop = hits[0], hits[-1] + 1
    if unk_id is not None and any(token_ids[i] == unk_id for i in range(first, stop)):
        raise UnrepresentableWordError(
            f"The tokenizer does not know {word!r} (it becomes the unknown token); use words in its vocabulary.", word
        )
    a, b = offsets[first][0], offsets[stop - 1][1]
    if b > end or text[a:start].strip():
        raise UnrepresentableWordError(
            f"The tokenizer merges {word!r} with neighbouring characters ({text[a:b]!r}) in {text[:80]!r}; its "
            "gradient would not be the word's. Put spaces around the word.",
            word,
        )
    return first, stop
