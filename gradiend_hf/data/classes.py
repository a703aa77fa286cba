"""The classes of a feature (class name -> words or phrases): validation, word lookup and their description."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from .errors import ClassCountError, InvalidWordError, OverlappingClassesError
from .phrases import phrase_words
from .text import is_single_word


def normalize_phrase(word: object, *, what: str) -> str:
    """A class target as stored: one word, or a phrase of words separated by single spaces, lower-cased.

    Raises:
        `InvalidWordError`: If `word` is not a string of words separated by spaces (e.g. `"he's"`, `"New-York"`).
    """
    parts = word.split() if isinstance(word, str) else []
    if not parts or not all(is_single_word(part) for part in parts):
        raise InvalidWordError(
            f"{what} has {word!r}, which is neither a word nor a phrase. A word is one run of letters and digits "
            "without hyphens or apostrophes (e.g. 'he', not 'he's'); a phrase is words separated by spaces (e.g. "
            "'New York'). Split or drop it."
        )
    return " ".join(phrase_words(word))


def normalize_words(words: Iterable[str], *, what: str) -> tuple[str, ...]:
    """Validate a list of words or phrases and return them lower-cased, without duplicates, in input order.

    Args:
        words (iterable of `str`): The words (`"he"`) or phrases (`"African American"`).
        what (`str`): How to name the list in an error message (e.g. `"class 'M'"`).

    Raises:
        `InvalidWordError`: If `words` is a plain string or an item is neither a word nor a phrase.
    """
    if isinstance(words, str):
        raise InvalidWordError(
            f"The words of {what} must be a list of words, not the string {words!r}; write [{words!r}]."
        )
    return tuple(dict.fromkeys(normalize_phrase(word, what=what) for word in words))


@dataclass(frozen=True)
class FeatureClasses:
    """The classes of a feature (two or more), each a name and its words, in a fixed order.

    Build it with `FeatureClasses.from_mapping({"M": ["he"], "F": ["she"]})`. A word may be a phrase
    (`"African American"`), matched as a whole phrase. Words are stored lower-cased because matching is
    case-insensitive. With two classes the first one is labelled +1 and the second one -1; a feature
    with more classes has no label of its own (a pair or one-vs-rest view of it has, see `gradiend_hf.data.views`).
    """

    names: tuple[str, ...]
    words: tuple[tuple[str, ...], ...]

    @classmethod
    def from_mapping(cls, classes: Mapping[str, Sequence[str]]) -> FeatureClasses:
        """Validate `classes` (at least two classes, each a non-empty list of words or phrases, none in two classes).

        Raises:
            `ClassCountError`, `InvalidWordError`, `OverlappingClassesError`: With a message naming the fix.
        """
        if not isinstance(classes, Mapping):
            raise ClassCountError(
                f"classes must be a mapping from class name to its words, e.g. {{'M': ['he'], 'F': ['she']}}; "
                f"got {type(classes).__name__}."
            )
        if len(classes) < 2:
            raise ClassCountError(
                f"A feature needs at least two classes, got {len(classes)} ({list(classes)}). Add the class(es) "
                "to contrast it with, e.g. {'M': ['he'], 'F': ['she']}."
            )
        names = tuple(str(name) for name in classes)
        if not all(names) or len(set(names)) != len(names):
            raise ClassCountError(f"Class names must be distinct non-empty strings, got {names}.")
        words = tuple(normalize_words(classes[name], what=f"class {name!r}") for name in classes)
        for name, class_words in zip(names, words):
            if not class_words:
                raise InvalidWordError(f"Class {name!r} has no words; give it at least one word.")
        for index, class_words in enumerate(words):
            for first in range(index):
                overlap = sorted(set(words[first]) & set(class_words))
                if overlap:
                    raise OverlappingClassesError(
                        f"The words {overlap} belong to both classes {names[first]!r} and {names[index]!r} "
                        "(matching ignores case); remove them from one of the classes."
                    )
        return cls(names=names, words=words)

    def __len__(self) -> int:
        return len(self.names)

    @property
    def word_to_class(self) -> dict[str, int]:
        """Lower-cased word -> index of its class."""
        return {word: index for index, class_words in enumerate(self.words) for word in class_words}

    def label(self, class_index: int) -> int:
        """The label of a two-class row whose factual word belongs to class `class_index`: +1 for the first, -1 for
        the second."""
        return 1 if class_index == 0 else -1

    def describe(self) -> str:
        """One line that states the class order (and, for two classes, the labels), for descriptions and errors."""
        if len(self.names) == 2:
            return "; ".join(
                f"{name} (label {self.label(index):+d}): {', '.join(self.words[index])}"
                for index, name in enumerate(self.names)
            )
        return "; ".join(f"{name}: {', '.join(self.words[index])}" for index, name in enumerate(self.names))
