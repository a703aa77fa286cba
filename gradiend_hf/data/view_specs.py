"""The members of a suite, written the short way: `"pairs"`, `"one_vs_rest"`, `"1SG-vs-3SG"`, `"1SG-vs-rest"` or
a mapping for merged groups, turned into checked [`ClassView`]s before any model is loaded.

```python
views_from_specs(["pairs", "1SG-vs-rest", {"SG": ["1SG", "3SG"], "PL": ["1PL", "3PL"]}], classes)
```
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .class_view import ClassView, all_pair_views, one_vs_rest_views
from .errors import InvalidViewError


FAMILIES = ("pairs", "one_vs_rest", "all")
SPEC_HELP = (
    '"pairs" (every pair of classes), "one_vs_rest" (every class against the rest), "all" (both), "A-vs-B", '
    '"A-vs-rest", or a mapping of two groups such as {"SG": ["1SG", "3SG"], "PL": ["1PL", "3PL"]} (with an optional '
    '"pairs" list restricting the transitions and "identity": true)'
)


def views_from_specs(
    specs: str | ClassView | Mapping | Sequence, class_names: Sequence[str], *, identity: bool = False
) -> list[ClassView]:
    """The checked views a list of member specs names, in order, without duplicates.

    Args:
        specs (`str`, [`ClassView`], mapping, or a sequence of them): The members, see `SPEC_HELP`: a family
            (`"pairs"`, `"one_vs_rest"`, `"all"`), one view `"A-vs-B"` / `"A-vs-rest"`, a `ClassView`, or a mapping of
            two merged groups (`{"SG": [...], "PL": [...]}`, optionally with `"pairs"` and `"identity"`).
        class_names (sequence of `str`): The dataset's classes ([`feature_class_names`]).
        identity (`bool`, *optional*, defaults to `False`): Add identity rows (C -> C, label 0) of the other classes
            to every pair view that does not say otherwise.

    Returns:
        `list[ClassView]`: Resolved views with distinct names.

    Raises:
        `InvalidViewError` (or its subclasses `UnknownClassError`, `OneVsRestError`): a spec that is malformed, names
        an unknown class, or a one-vs-rest view without a rest; two members with one name; no member at all.
    """
    classes = [str(name) for name in class_names]
    if isinstance(specs, (str, ClassView, Mapping)) or not isinstance(specs, Sequence):
        specs = [specs]  # one member (anything else but a list is refused by `_expand` with the spec shown)
    views: list[ClassView] = []
    for spec in specs:
        for view in _expand(spec, classes, identity):
            resolved = view.resolve(classes)
            if any(existing.name == resolved.name for existing in views):
                if resolved in views:
                    continue  # e.g. "pairs" and "1SG-vs-3SG" together
                raise InvalidViewError(
                    f"Two members of the suite are both called {resolved.name!r}; give one of them other side names."
                )
            views.append(resolved)
    if not views:
        raise InvalidViewError(f"The suite has no member; give at least one of {SPEC_HELP}.")
    return views


def _expand(spec: Any, classes: list[str], identity: bool) -> list[ClassView]:
    if isinstance(spec, ClassView):
        return [spec]
    if isinstance(spec, Mapping):
        return [_merged(spec, identity)]
    if not isinstance(spec, str) or not spec.strip():
        raise InvalidViewError(f"A suite member must be {SPEC_HELP}; got {spec!r}.")
    spec = spec.strip()
    if spec == "pairs":
        return all_pair_views(classes, identity=identity)
    if spec == "one_vs_rest":
        return one_vs_rest_views(classes)
    if spec == "all":
        return all_pair_views(classes, identity=identity) + one_vs_rest_views(classes)
    positive, sep, negative = spec.partition("-vs-")
    if not sep or not positive or not negative:
        raise InvalidViewError(f"Cannot read the suite member {spec!r}: write {SPEC_HELP}.")
    if negative == "rest":
        return [ClassView.one_vs_rest(positive)]
    return [ClassView.pair(positive, negative, identity=identity)]


def _merged(spec: Mapping, identity: bool) -> ClassView:
    groups = {str(key): value for key, value in spec.items() if key not in ("pairs", "identity")}
    pairs = spec.get("pairs")
    if pairs is not None and (
        isinstance(pairs, str)
        or not all(isinstance(p, Sequence) and not isinstance(p, str) and len(p) == 2 for p in pairs)
    ):
        raise InvalidViewError(f"`pairs` of a merged member must be a list of [class, class] pairs, got {pairs!r}.")
    return ClassView.merged(groups, pairs=pairs, identity=bool(spec.get("identity", identity)))
