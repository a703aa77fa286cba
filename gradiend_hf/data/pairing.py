"""Paired word forms: the counterpart of each class word in every other class (he ↔ she, him ↔ her, his ↔ her), so
that a row's alternative is its word's counterpart instead of a word drawn from the whole other class.

A pairing is a list of *forms*, each one word per class (in class order): aligned class lists
(`{"M": ["he", "him", "his"], "F": ["she", "her", "her"]}` with `paired=True`) or an explicit table
(`[("he", "she"), ("him", "her"), ("his", "her")]`). The counterparts of a word of class C in class D are the D words
of the forms it is in.

Several words may share one counterpart (him, his → her), and then that counterpart has several (her → him or his:
the alternative of a "her" row is drawn among them, weighted by how often each occurs in the text). What must be
one-to-one is each group of words linked through the forms: such a group may have several words on one side only;
words paired many-to-many (him–her, his–her, his–hers) have no counterpart a row could trust, and are an error
naming them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property

from .classes import FeatureClasses, normalize_phrase
from .errors import InvalidPairingError


@dataclass(frozen=True)
class WordPairing:
    """Forms of paired words over the classes of a feature.

    Build one with [`WordPairing.aligned`] or [`WordPairing.from_pairs`], then [`check`] it against the classes.

    Attributes:
        class_names (`tuple[str, ...]`): The classes, in the feature's order.
        forms (`tuple[tuple[str, ...], ...]`): Each form: one lower-cased word (or phrase) per class, in that order.
    """

    class_names: tuple[str, ...]
    forms: tuple[tuple[str, ...], ...]

    @classmethod
    def aligned(cls, classes: Mapping[str, Sequence[str]]) -> WordPairing:
        """The forms of aligned class lists: position i of every list is one form (repeat a word for many-to-one).

        Raises:
            `InvalidPairingError`: If the lists differ in length.
        """
        lengths = {str(name): len(words) for name, words in classes.items() if not isinstance(words, str)}
        if len(set(lengths.values())) > 1:
            raise InvalidPairingError(
                f"paired=True needs class lists of the same length (position i of each list is one form), got "
                f"{lengths}. Repeat a word to pair several words with it (e.g. F: ['she', 'her', 'her'] for M: "
                "['he', 'him', 'his']), or give an explicit `pairs` table."
            )
        names = tuple(str(name) for name in classes)
        columns = [[normalize_phrase(word, what=f"class {name!r}") for word in classes[name]] for name in classes]
        return cls(names, tuple(zip(*columns)))

    @classmethod
    def from_pairs(cls, pairs: Sequence[Sequence[str] | Mapping[str, str]], class_names: Sequence[str]) -> WordPairing:
        """The forms of an explicit table: each entry one word per class, as a sequence in class order
        (`("he", "she")`) or a mapping (`{"M": "he", "F": "she"}`).

        Raises:
            `InvalidPairingError`: If an entry does not name one word for every class.
        """
        names = tuple(str(name) for name in class_names)
        forms = []
        for entry in pairs:
            if isinstance(entry, Mapping):
                words = [entry.get(name) for name in names]
            else:
                words = list(entry) if not isinstance(entry, str) else [entry]
            if len(words) != len(names) or any(word is None for word in words):
                raise InvalidPairingError(
                    f"The pair {entry!r} must name one word for each of the classes {list(names)}, in that order "
                    f"(e.g. {tuple(f'<{name} word>' for name in names)})."
                )
            forms.append(tuple(normalize_phrase(word, what="pairs") for word in words))
        if not forms:
            raise InvalidPairingError("`pairs` is empty; give at least one pair of words.")
        return cls(names, tuple(forms))

    def check(self, classes: FeatureClasses) -> None:
        """Checks the pairing against the classes: every word of a form belongs to its class, every class word has a
        counterpart in every other class, and no words are paired many-to-many.

        Raises:
            `InvalidPairingError`: Naming the words.
        """
        if self.class_names != classes.names:
            raise InvalidPairingError(f"The pairs are for the classes {self.class_names}, not {classes.names}.")
        for index, name in enumerate(classes.names):
            in_forms = {form[index] for form in self.forms}
            foreign = sorted(in_forms - set(classes.words[index]))
            if foreign:
                raise InvalidPairingError(f"The pairs name {foreign} for class {name!r}, which are not its words.")
            unpaired = [word for word in classes.words[index] if word not in in_forms]
            if unpaired:
                raise InvalidPairingError(
                    f"The word(s) {unpaired} of class {name!r} have no counterpart in the pairs; add a pair for each."
                )
        for i in range(len(self.class_names)):
            for j in range(i + 1, len(self.class_names)):
                self._check_groups(i, j)

    def _check_groups(self, i: int, j: int) -> None:
        """Raises for a group of words of classes i and j linked through the forms with several words on both sides."""
        parent: dict[tuple[int, str], tuple[int, str]] = {}

        def root(node):
            while parent.setdefault(node, node) != node:
                node = parent[node]
            return node

        for form in self.forms:
            parent[root((i, form[i]))] = root((j, form[j]))
        groups: dict[tuple[int, str], list[set[str]]] = {}
        for node in list(parent):
            sides = groups.setdefault(root(node), [set(), set()])
            sides[0 if node[0] == i else 1].add(node[1])
        tangled = [(sorted(left), sorted(right)) for left, right in groups.values() if len(left) > 1 < len(right)]
        if not tangled:
            return
        (left, right), a, b = tangled[0], self.class_names[i], self.class_names[j]
        raise InvalidPairingError(
            f"The words {left} ({a}) and {right} ({b}) are paired many-to-many, so some of them have no counterpart "
            f"a row could use. Several words may share one counterpart (e.g. {left[0]!r} and {left[1]!r} → one {b} "
            "word), but then that counterpart is theirs alone; pair these words one-to-one or many-to-one."
        )

    @cached_property
    def _counterparts(self) -> dict[tuple[int, int, str], tuple[str, ...]]:
        table: dict[tuple[int, int, str], dict[str, None]] = {}
        for form in self.forms:
            for source, word in enumerate(form):
                for target, other in enumerate(form):
                    if target != source:
                        table.setdefault((source, target, word), {})[other] = None
        return {key: tuple(words) for key, words in table.items()}

    def counterparts(self, word: str, source: int, target: int) -> tuple[str, ...]:
        """The counterparts in class `target` of `word` (any casing) of class `source`, in form order."""
        return self._counterparts.get((source, target, " ".join(word.lower().split())), ())
