"""How an alternative word is written where the factual word stood (`He` -> `She`, `I` -> `we`, `we` -> `I`).

The factual word's casing tells how the blank is written (`he`, `He`, `HE`), and `match_casing` copies it. That is
not enough for words that are capitalised in every position, such as English `I`: the capital of `I` says nothing
about the blank, so `"and I went"` needs `"and we went"`, while `"and we went"` needs `"and I went"`. For those words
(`always_capitalised_words`, English `I` by default) `recase` looks at where the blank stands (`starts_capitalised`).
For any other pair of words it is `match_casing`, so features without such words get exactly the old alternatives.
"""

from __future__ import annotations

from collections.abc import Iterable


# Characters that may stand between the start of a sentence (or of a quotation) and its first word.
_OPENING = "\"'([{\u2014\u2013- "
_SENTENCE_END = ".!?\u2026"

ALWAYS_CAPITALISED = {"en": frozenset({"i"})}
"""Per language, the (lower-cased) words its orthography capitalises in every position."""


def _is_all_caps(word: str) -> bool:
    letters = [char for char in word if char.isalpha()]
    return len(letters) > 1 and all(char.isupper() for char in letters)


def match_casing(template: str, word: str) -> str:
    """Write `word` in the casing of `template`, so that an alternative word fits where the factual one stood.

    `he` -> `she`, `He` -> `She`, `HE` -> `SHE`. A single upper-case letter (`I`, `A`) counts as capitalised, not as
    upper case, because that is almost always what it is. Any other mix of cases gives the lower-case word. For
    phrases, a template with every word capitalised capitalises every word (`Black` -> `African American`, `New York`
    -> `Los Angeles`); one with only its first word capitalised, only the first (`African american` -> `White`).

    Args:
        template (`str`): The word as it occurs in the text (the factual word).
        word (`str`): The word to re-case (the alternative word).

    Returns:
        `str`: `word` in the casing of `template`.
    """
    if _is_all_caps(template):
        return word.upper()
    if template[:1].isupper():
        if all(part[:1].isupper() for part in template.split()):
            return " ".join(part[:1].upper() + part[1:].lower() for part in word.split(" "))
        return word[:1].upper() + word[1:].lower()
    return word.lower()


def starts_capitalised(sentence: str, start: int) -> bool:
    """Whether a word at character `start` of `sentence` is capitalised by position (not by what the word is).

    True at the start of the sentence, at the start of a quotation (`he said, "We ...`) and after a sentence end
    inside the sentence (`... no. We ...`); opening quotes, brackets and dashes before the word are skipped.

    Args:
        sentence (`str`): The sentence.
        start (`int`): Offset of the word's first character.

    Returns:
        `bool`: Whether the position itself asks for a capital letter.
    """
    before = sentence[:start]
    stripped = before.rstrip(_OPENING)
    if not stripped:
        return True
    opened_quote = '"' in before[len(stripped) :]
    return stripped[-1] in _SENTENCE_END or (opened_quote and stripped[-1] in ",:;")


def always_capitalised_words(language: str, words: Iterable[str] | None = None) -> frozenset[str]:
    """The words written with a capital wherever they stand: `words` if given, else those of `language`.

    Args:
        language (`str`): ISO 639-1 code; English gives `{"i"}`, any other language none.
        words (iterable of `str`, *optional*): Overrides the language's list (e.g. German nouns of a feature).

    Returns:
        `frozenset[str]`: The lower-cased words.
    """
    if words is not None:
        return frozenset(word.lower() for word in words)
    return ALWAYS_CAPITALISED.get(language, frozenset())


def recase(template: str, word: str, *, capitalised_position: bool, always_capitalised: frozenset[str]) -> str:
    """Write the alternative `word` where the factual word `template` stood.

    Like `match_casing`, except for words in `always_capitalised`: such a word is always written with a capital
    (`we` -> `I`), and replacing one by another word keeps a capital only where the position asks for one
    (`and I went` -> `and we went`, but `I went` -> `We went`). All caps stay all caps (`HE` -> `SHE`, `WE` -> `I`).

    Args:
        template (`str`): The factual word as written in the sentence.
        word (`str`): The alternative word (any casing).
        capitalised_position (`bool`): `starts_capitalised` of the blank.
        always_capitalised (`frozenset[str]`): Output of `always_capitalised_words`.

    Returns:
        `str`: The alternative word, cased for the blank.
    """
    if _is_all_caps(template):
        return word.upper()
    if word.lower() in always_capitalised:
        return word[:1].upper() + word[1:].lower()
    if template.lower() in always_capitalised and not capitalised_position:
        return word.lower()
    return match_casing(template, word)
