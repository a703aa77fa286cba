"""`ClassView`: which two-class feature a GRADIEND learns from a dataset with two or more classes.

A view is a pair of classes (A vs B), one class against the merged rest (one-vs-rest), or two groups of merged
classes (e.g. SG = {1SG, 3SG} vs PL = {1PL, 3PL}), optionally with identity rows (C -> C, label 0) for the classes in
neither group. It is plain data (`to_dict` / `from_dict`), so suites and model cards can record it, and it is
checked against the class names of a dataset (`resolve`) before any model is loaded.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import combinations
from typing import Any, Literal

from .errors import InvalidViewError, OneVsRestError, UnknownClassError


ViewKind = Literal["pair", "one_vs_rest", "merged"]


@dataclass(frozen=True)
class ClassView:
    """A two-class feature over the classes of a feature dataset.

    Build one with `ClassView.pair`, `ClassView.one_vs_rest` or `ClassView.merged`, and turn a dataset into its
    training rows with `apply_view` (or `pair_view`, `one_vs_rest_view`, `merged_view`).

    Attributes:
        kind (`"pair"`, `"one_vs_rest"` or `"merged"`): How the view was built.
        positive (`str`): Name of the class labelled +1 (the GRADIEND's positive class).
        negative (`str`): Name of the class labelled -1.
        positive_classes (`tuple[str, ...]`): The dataset classes that make up `positive`.
        negative_classes (`tuple[str, ...]`): The dataset classes that make up `negative`; empty in an unresolved
            one-vs-rest view, where it means "every other class".
        pairs (`tuple[tuple[str, str], ...]`, *optional*): The pairs of dataset classes whose words may replace each
            other (both directions); `None` allows every pair across the two groups.
        identity (`bool`): Add identity rows (C -> C, `factual == alternative`, label 0) for the classes in neither
            group.
    """

    kind: ViewKind
    positive: str
    negative: str
    positive_classes: tuple[str, ...]
    negative_classes: tuple[str, ...]
    pairs: tuple[tuple[str, str], ...] | None = None
    identity: bool = False

    @classmethod
    def pair(cls, positive: str, negative: str, *, identity: bool = False) -> ClassView:
        """A vs B: transitions A -> B (label +1) and B -> A (label -1).

        Args:
            positive (`str`): The class labelled +1.
            negative (`str`): The class labelled -1.
            identity (`bool`, *optional*, defaults to `False`): Add C -> C rows (label 0) for every other class.
        """
        return cls("pair", str(positive), str(negative), (str(positive),), (str(negative),), None, identity)

    @classmethod
    def one_vs_rest(
        cls, positive: str, rest: Sequence[str] | None = None, *, rest_name: str | None = None
    ) -> ClassView:
        """One class (label +1) against the merged other classes (label -1).

        Args:
            positive (`str`): The class labelled +1.
            rest (sequence of `str`, *optional*): The classes of the rest; by default every other class of the
                dataset (filled in by `resolve`).
            rest_name (`str`, *optional*): Name of the merged rest; defaults to `"non-<positive>"`.
        """
        rest_classes = tuple(str(name) for name in rest or ())
        if rest is not None and not [name for name in rest_classes if name != str(positive)]:
            raise OneVsRestError(_no_rest_message(str(positive), rest_classes))
        name = rest_name or f"non-{positive}"
        return cls("one_vs_rest", str(positive), name, (str(positive),), rest_classes, None, False)

    @classmethod
    def merged(
        cls,
        groups: Mapping[str, Sequence[str]],
        *,
        pairs: Iterable[tuple[str, str]] | None = None,
        identity: bool = False,
    ) -> ClassView:
        """Two groups of merged classes, e.g. `{"SG": ["1SG", "3SG"], "PL": ["1PL", "3PL"]}` (the first is +1).

        Args:
            groups (`Mapping[str, Sequence[str]]`): Exactly two groups, name -> the dataset classes it merges.
            pairs (iterable of `(str, str)`, *optional*): Restrict the transitions to these pairs of dataset classes
                (both directions), e.g. `[("1SG", "1PL"), ("3SG", "3PL")]` keeps the person and changes only the
                number. By default a row's alternative comes from any class of the other group.
            identity (`bool`, *optional*, defaults to `False`): Add C -> C rows (label 0) for the classes in neither
                group.
        """
        if not isinstance(groups, Mapping) or len(groups) != 2:
            count = len(groups) if isinstance(groups, Mapping) else type(groups).__name__
            raise InvalidViewError(
                f"A merged view needs exactly two groups (name -> classes), got {count}; e.g. "
                "{'SG': ['1SG', '3SG'], 'PL': ['1PL', '3PL']}."
            )
        (positive, positive_classes), (negative, negative_classes) = groups.items()
        for name, members in groups.items():
            if isinstance(members, str) or not members:
                raise InvalidViewError(f"Group {name!r} must be a non-empty list of class names, got {members!r}.")
        checked_pairs = None if pairs is None else tuple((str(a), str(b)) for a, b in pairs)
        return cls(
            "merged",
            str(positive),
            str(negative),
            tuple(map(str, positive_classes)),
            tuple(map(str, negative_classes)),
            checked_pairs,
            identity,
        )

    @property
    def name(self) -> str:
        """A short name for files and reports: `"1SG-vs-3SG"`, `"1SG-vs-rest"`, `"SG-vs-PL"`."""
        return f"{self.positive}-vs-rest" if self.kind == "one_vs_rest" else f"{self.positive}-vs-{self.negative}"

    @property
    def summary(self) -> str:
        """The view in words: `"1SG vs 3SG"`, `"1SG vs rest (1PL, 2)"`, `"SG (1SG, 3SG) vs PL (1PL, 3PL)"`."""

        def side(name: str, members: tuple[str, ...]) -> str:
            return name if members == (name,) else f"{name} ({', '.join(members) or 'every other class'})"

        if self.kind == "one_vs_rest":
            text = f"{self.positive} vs rest ({', '.join(self.negative_classes) or 'every other class'})"
        else:
            text = f"{side(self.positive, self.positive_classes)} vs {side(self.negative, self.negative_classes)}"
        if self.pairs is not None:
            text += f", transitions {', '.join(f'{a}↔{b}' for a, b in self.pairs)}"
        return text + (", with identity rows of the other classes" if self.identity else "")

    def group_of(self, class_name: str) -> str | None:
        """The view class (`positive` or `negative`) a dataset class belongs to, or `None` for the others."""
        if class_name in self.positive_classes:
            return self.positive
        if class_name in self.negative_classes:
            return self.negative
        return None

    def allows(self, factual_class: str, alternative_class: str) -> bool:
        """Whether the view trains on the transition `factual_class -> alternative_class` of dataset classes."""
        groups = {self.group_of(factual_class), self.group_of(alternative_class)}
        if groups != {self.positive, self.negative}:
            return False
        return self.pairs is None or any({factual_class, alternative_class} == set(pair) for pair in self.pairs)

    def label(self, factual_class: str, alternative_class: str) -> int:
        """+1 for a transition from the positive to the negative class, -1 for the reverse, 0 for any other."""
        if not self.allows(factual_class, alternative_class):
            return 0
        return 1 if self.group_of(factual_class) == self.positive else -1

    def resolve(self, class_names: Sequence[str]) -> ClassView:
        """Check the view against the classes of a dataset and fill in the rest of a one-vs-rest view.

        Args:
            class_names (sequence of `str`): The dataset's classes (`feature_class_names(dataset)`).

        Returns:
            `ClassView`: The checked view, with every group spelled out.

        Raises:
            `UnknownClassError`: If the view names a class the dataset does not have.
            `OneVsRestError`: If a one-vs-rest view has no other class to merge into the rest.
            `InvalidViewError`: If a class is in both groups, the two names are equal, or a group name is also
                the name of a class outside the view (identity rows would mix them up).
        """
        known = [str(name) for name in class_names]
        negative_classes = self.negative_classes
        if self.kind == "one_vs_rest" and not negative_classes:
            negative_classes = tuple(name for name in known if name != self.positive)
        for name in (*self.positive_classes, *negative_classes, *(c for pair in self.pairs or () for c in pair)):
            if name not in known:
                raise UnknownClassError(_unknown_class_message(name, known))
        if self.kind == "one_vs_rest":
            negative_classes = tuple(name for name in negative_classes if name != self.positive)
            if not negative_classes:
                raise OneVsRestError(_no_rest_message(self.positive, known))
        for pair in self.pairs or ():
            if {self.group_of(pair[0]), self.group_of(pair[1])} != {self.positive, self.negative}:
                raise InvalidViewError(
                    f"The pair {list(pair)} of the view {self.name!r} does not join its two sides "
                    f"({list(self.positive_classes)} and {list(negative_classes)}); each pair needs one class of each."
                )
        both = sorted(set(self.positive_classes) & set(negative_classes))
        if both:
            raise InvalidViewError(
                f"The class(es) {both} are on both sides of the view {self.name!r}; keep each class on one side."
            )
        if self.positive == self.negative:
            raise InvalidViewError(f"The two sides of a view need different names, got {self.positive!r} twice.")
        outside = set(known) - set(self.positive_classes) - set(negative_classes)
        clash = sorted({self.positive, self.negative} & outside)
        if clash:
            raise InvalidViewError(
                f"The view names a side {clash[0]!r}, which is also a class outside the view; rename the side."
            )
        return ClassView(
            self.kind, self.positive, self.negative, self.positive_classes, negative_classes, self.pairs, self.identity
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready description (`ClassView.from_dict` reads it back)."""
        return {
            "kind": self.kind,
            "name": self.name,
            "positive": self.positive,
            "negative": self.negative,
            "positive_classes": list(self.positive_classes),
            "negative_classes": list(self.negative_classes),
            "pairs": None if self.pairs is None else [list(pair) for pair in self.pairs],
            "identity": self.identity,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ClassView:
        """The view that `to_dict` described."""
        pairs = data.get("pairs")
        return cls(
            data["kind"],
            data["positive"],
            data["negative"],
            tuple(data["positive_classes"]),
            tuple(data["negative_classes"]),
            None if pairs is None else tuple((a, b) for a, b in pairs),
            bool(data.get("identity", False)),
        )


def all_pair_views(class_names: Sequence[str], *, identity: bool = False) -> list[ClassView]:
    """One `ClassView.pair` for every unordered pair of classes, the earlier class positive (k(k-1)/2 views)."""
    return [ClassView.pair(a, b, identity=identity) for a, b in combinations(class_names, 2)]


def one_vs_rest_views(class_names: Sequence[str]) -> list[ClassView]:
    """One resolved `ClassView.one_vs_rest` per class (k views).

    Raises:
        `OneVsRestError`: If there is only one class.
    """
    return [ClassView.one_vs_rest(name).resolve(class_names) for name in class_names]


def _unknown_class_message(name: str, known: Sequence[str]) -> str:
    hint = [class_name for class_name in known if class_name.lower() == name.lower()]
    suggestion = f" Did you mean {hint[0]!r}?" if hint else ""
    return f"The view names the class {name!r}, but the dataset's classes are {list(known)}.{suggestion}"


def _no_rest_message(positive: str, known: Sequence[str]) -> str:
    return (
        f"A one-vs-rest view of {positive!r} needs at least one other class for the rest, but the classes are "
        f"{list(known)}. Give a dataset with more classes, or train the pair instead."
    )
