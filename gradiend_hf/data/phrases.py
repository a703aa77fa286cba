"""Class targets of one or more words ("he", "Muslim", "African American", "New York"), found in text as whole phrases.

A phrase is a run of words (see `text.iter_words`) written with whitespace between them: "New York" matches
"New York" and "new york", not "New-York" or "New Yorker". Matching ignores case and takes, at every position, the
longest phrase that starts there, so "New York City" wins over "New York" when both are targets.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Generic, TypeVar

from .text import iter_words


T = TypeVar("T")


def phrase_words(phrase: str) -> tuple[str, ...]:
    """The lower-cased words of a phrase (`"African  American"` -> `("african", "american")`)."""
    return tuple(match.group().lower() for match in iter_words(phrase))


@dataclass(frozen=True)
class PhraseMatch(Generic[T]):
    """One occurrence of a phrase: its character span, the index of its first word, and the phrase's value."""

    start: int
    end: int
    word_index: int
    value: T


class PhraseMatcher(Generic[T]):
    """Finds the phrases of a mapping `phrase -> value` in sentences (whole phrases, ignoring case, longest first).

    Args:
        phrases (`Mapping[str, T]`): Each phrase (one or more words separated by spaces) and what a match returns.
    """

    def __init__(self, phrases: Mapping[str, T]):
        by_first: dict[str, list[tuple[tuple[str, ...], T]]] = {}
        for phrase, value in phrases.items():
            words = phrase_words(phrase)
            if words:
                by_first.setdefault(words[0], []).append((words, value))
        # Longest first, so that a longer phrase wins over a phrase it begins with.
        self._by_first = {first: sorted(items, key=lambda item: -len(item[0])) for first, items in by_first.items()}

    def finditer(self, sentence: str) -> Iterator[PhraseMatch[T]]:
        """The non-overlapping occurrences in `sentence`, in reading order."""
        words = list(iter_words(sentence))
        index = 0
        while index < len(words):
            candidates = self._by_first.get(words[index].group().lower())
            length = 0
            for phrase, value in candidates or ():
                if index + len(phrase) <= len(words) and self._spells(sentence, words, index, phrase):
                    length = len(phrase)
                    yield PhraseMatch(words[index].start(), words[index + length - 1].end(), index, value)
                    break
            index += max(length, 1)

    @staticmethod
    def _spells(sentence: str, words, index: int, phrase: tuple[str, ...]) -> bool:
        for offset, expected in enumerate(phrase):
            word = words[index + offset]
            if word.group().lower() != expected:
                return False
            if offset and sentence[words[index + offset - 1].end() : word.start()].strip():
                return False  # something other than whitespace between the words ("New-York")
        return True
