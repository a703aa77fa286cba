"""Which occurrence of a class word in a sentence becomes the `[MASK]` of a row (the masking policy)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from .classes import FeatureClasses
from .phrases import PhraseMatcher
from .schema import MASK


@dataclass(frozen=True)
class WordMatch:
    """One occurrence of a class word (or phrase) in a sentence.

    Attributes:
        surface (`str`): The word or phrase as written in the sentence (its casing is kept).
        class_index (`int`): Index of its class in the feature's class order.
        start (`int`), end (`int`): Character span of the word in the sentence.
        left_context_words (`int`): Number of words before it in the sentence.
    """

    surface: str
    class_index: int
    start: int
    end: int
    left_context_words: int

    def mask(self, sentence: str) -> str:
        """The sentence with this occurrence (and only this one) replaced by `[MASK]`."""
        return sentence[: self.start] + MASK + sentence[self.end :]


def find_class_words(sentence: str, word_to_class: Mapping[str, int] | PhraseMatcher[int]) -> list[WordMatch]:
    """All whole-word (whole-phrase), case-insensitive occurrences of class words in `sentence`, in reading order;
    at each position the longest class phrase that starts there (see `gradiend_hf.data.phrases`)."""
    matcher = word_to_class if isinstance(word_to_class, PhraseMatcher) else PhraseMatcher(word_to_class)
    return [
        WordMatch(sentence[m.start : m.end], m.value, m.start, m.end, m.word_index) for m in matcher.finditer(sentence)
    ]


def choose_occurrence(sentence: str, matches: list[WordMatch], min_left_context_words: int = 0) -> WordMatch | None:
    """Apply the masking policy to the class-word occurrences of one sentence.

    The policy, chosen so that a row never gives its answer away and never contradicts its label:

    - a sentence with words of **two (or more)** classes gives no row: masking one of them would leave a word of
      another class in view (e.g. "she told him he was late" for he/she);
    - a sentence that already contains the literal `[MASK]` gives no row, so every row has exactly one;
    - otherwise the **first** occurrence with at least `min_left_context_words` words before it is masked, and only
      that one. Later words of the same class stay as they are (they are natural text and agree with the label).
      Taking the first qualifying occurrence, rather than one row per occurrence, keeps near-duplicate rows out and
      makes the rows independent of the seed.

    Args:
        sentence (`str`): The sentence the matches come from.
        matches (`list[WordMatch]`): `find_class_words(sentence, ...)`.
        min_left_context_words (`int`, *optional*, defaults to 0): Fewest words before the masked word.

    Returns:
        `WordMatch` or `None`: The occurrence to mask, or `None` if the sentence gives no row.
    """
    if not matches or MASK in sentence:
        return None
    if len({match.class_index for match in matches}) > 1:
        return None
    for match in matches:
        if match.left_context_words >= min_left_context_words:
            return match
    return None


@dataclass
class ClassScan:
    """What `scan_sentences` found, per class (lists are indexed like the feature's classes).

    Attributes:
        frequencies (`list[Counter[str]]`): Occurrences of each lower-cased class word in all sentences; the
            alternatives of a class are drawn with these weights.
        candidates (`list[list[tuple[str, WordMatch]]]`): Per class, the sentences that give a row and the
            occurrence to mask, in sentence order.
        sentences_with (`list[int]`): Sentences with at least one word of the class.
        mixed_sentences (`list[int]`): Of those, sentences that also have a word of another class (no row).
    """

    frequencies: list[Counter[str]]
    candidates: list[list[tuple[str, WordMatch]]] = field(default_factory=list)
    sentences_with: list[int] = field(default_factory=list)
    mixed_sentences: list[int] = field(default_factory=list)


def scan_sentences(
    sentences: Sequence[str], feature_classes: FeatureClasses, min_left_context_words: int = 0
) -> ClassScan:
    """Find the class words of every sentence and apply the masking policy (`choose_occurrence`) to each.

    Args:
        sentences (sequence of `str`): Clean sentences (`split_sentences`).
        feature_classes (`FeatureClasses`): The classes and their words.
        min_left_context_words (`int`, *optional*, defaults to 0): Fewest words before the masked word.

    Returns:
        `ClassScan`: Word frequencies, row candidates and per-class sentence counts.
    """
    num_classes = len(feature_classes.names)
    scan = ClassScan(
        frequencies=[Counter() for _ in range(num_classes)],
        candidates=[[] for _ in range(num_classes)],
        sentences_with=[0] * num_classes,
        mixed_sentences=[0] * num_classes,
    )
    matcher = PhraseMatcher(feature_classes.word_to_class)
    for sentence in sentences:
        matches = find_class_words(sentence, matcher)
        for match in matches:
            scan.frequencies[match.class_index][match.surface.lower()] += 1
        present = {match.class_index for match in matches}
        for class_index in present:
            scan.sentences_with[class_index] += 1
            scan.mixed_sentences[class_index] += len(present) > 1
        chosen = choose_occurrence(sentence, matches, min_left_context_words)
        if chosen is not None:
            scan.candidates[chosen.class_index].append((sentence, chosen))
    return scan
