"""The two classes of a feature (class name -> words) and how a word is re-cased to stand in for another."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from .errors import ClassCountError, InvalidWordError, OverlappingClassesError
from .text import is_single_word


def normalize_words(words: Iterable[str], *, what: str) -> tuple[str, ...]:
    """Validate a list of single words and return them lower-cased, without duplicates, in input order.

    Args:
        words (iterable of `str`): The words.
        what (`str`): How to name the list in an error message (e.g. `"class 'M'"`).

    Raises:
        `InvalidWordError`: If `words` is a plain string or an item is not exactly one word.
    """
    if isinstance(words, str):
        raise InvalidWordError(
            f"The words of {what} must be a list of words, not the string {words!r}; write [{words!r}]."
        )
    result: dict[str, None] = {}
    for word in words:
        if not is_single_word(word):
            raise InvalidWordError(
                f"{what} has {word!r}, which is not a single word. A word is one run of letters and digits without "
                "spaces, hyphens or apostrophes (e.g. 'he', not 'he is' or 'he's'); split or drop it."
            )
        result[word.lower()] = None
    return tuple(result)


@dataclass(frozen=True)
class FeatureClasses:
    """Two named classes of words; the first one is labelled +1 and the second one -1.

    Build it with `FeatureClasses.from_mapping({"M": ["he"], "F": ["she"]})`. Words are stored lower-cased because
    matching is case-insensitive.
    """

    names: tuple[str, str]
    words: tuple[tuple[str, ...], tuple[str, ...]]

    @classmethod
    def from_mapping(cls, classes: Mapping[str, Sequence[str]]) -> FeatureClasses:
        """Validate `classes` (exactly two classes, each a non-empty list of single, distinct words).

        Raises:
            `ClassCountError`, `InvalidWordError`, `OverlappingClassesError`: With a message naming the fix.
        """
        if not isinstance(classes, Mapping):
            raise ClassCountError(
                f"classes must be a mapping from class name to its words, e.g. {{'M': ['he'], 'F': ['she']}}; "
                f"got {type(classes).__name__}."
            )
        if len(classes) != 2:
            raise ClassCountError(
                f"A feature needs exactly two classes, got {len(classes)} ({list(classes)}). Merge classes into two "
                "(e.g. {'3SG': ['he', 'she', 'it'], '3PL': ['they']}) or build one dataset per pair."
            )
        names = tuple(str(name) for name in classes)
        if not all(names) or names[0] == names[1]:
            raise ClassCountError(f"Class names must be two distinct non-empty strings, got {names}.")
        words = tuple(normalize_words(classes[name], what=f"class {name!r}") for name in classes)
        for name, class_words in zip(names, words):
            if not class_words:
                raise InvalidWordError(f"Class {name!r} has no words; give it at least one word.")
        overlap = sorted(set(words[0]) & set(words[1]))
        if overlap:
            raise OverlappingClassesError(
                f"The words {overlap} belong to both classes {names[0]!r} and {names[1]!r} (matching ignores case); "
                "remove them from one of the classes."
            )
        return cls(names=names, words=words)  # type: ignore[arg-type]

    @property
    def word_to_class(self) -> dict[str, int]:
        """Lower-cased word -> index of its class (0 or 1)."""
        return {word: index for index, class_words in enumerate(self.words) for word in class_words}

    def label(self, class_index: int) -> int:
        """The label of a row whose factual word belongs to class `class_index`: +1 for the first, -1 for the second."""
        return 1 if class_index == 0 else -1

    def describe(self) -> str:
        """One line that states the class order and the labels, for dataset descriptions and errors."""
        return "; ".join(
            f"{name} (label {self.label(index):+d}): {', '.join(self.words[index])}"
            for index, name in enumerate(self.names)
        )


def match_casing(template: str, word: str) -> str:
    """Write `word` in the casing of `template`, so that an alternative word fits where the factual one stood.

    `he` -> `she`, `He` -> `She`, `HE` -> `SHE`. A single upper-case letter (`I`, `A`) counts as capitalised, not as
    upper case, because that is almost always what it is. Any other mix of cases gives the lower-case word.

    Args:
        template (`str`): The word as it occurs in the text (the factual word).
        word (`str`): The word to re-case (the alternative word).

    Returns:
        `str`: `word` in the casing of `template`.
    """
    letters = [char for char in template if char.isalpha()]
    if len(letters) > 1 and all(char.isupper() for char in letters):
        return word.upper()
    if template[:1].isupper():
        return word[:1].upper() + word[1:].lower()
    return word.lower()
