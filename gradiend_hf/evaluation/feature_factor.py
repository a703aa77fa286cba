"""Which feature factor strengthens (or weakens) a class.

The decoder learned `u(h) ≈ target gradient of the rows that encode to h`. Which rows encode to +1 depends on the
gradient the encoder reads (`config.source`), and what adding `lr · u` does to them depends on the gradient the decoder
reconstructs (`config.target`):

- the encoder maps a gradient towards the positive class's word to +1, so with `source="alternative"` the rows
  encoding to `dir[C]` are those whose ALTERNATIVE word is of class C, and with `source="factual"`/`"diff"` those
  whose FACTUAL word is;
- adding `lr · (∇L_factual − ∇L_alternative)` (`target="diff"`) is a descent step on the alternative word's loss and an
  ascent step on the factual word's: it strengthens the alternative class of those rows. `target="factual"` only
  raises the factual word's loss (so the alternative class gains), `target="alternative"` raises the alternative
  word's loss (so the factual class gains).

Hence `ff(strengthen C) = dir[C] · s_source · s_target` with `s_source = +1` for `"alternative"` and -1 otherwise, and
`s_target = -1` for `"alternative"` and +1 otherwise. For the default `target="diff"` this is the reference rule
`+dir[C]` for `source="alternative"`, `-dir[C]` for `"factual"`/`"diff"` (method §4.1); the tests check it
empirically on trained tiny models.
"""

from __future__ import annotations

from ..errors import GradiendError


def feature_classes_and_positive(config) -> tuple[list[str], str]:
    """The GRADIEND's two feature classes and the one it maps to +1.

    Raises:
        ValueError: when the config names no feature classes.
    """
    classes = list(getattr(config, "feature_classes", None) or [])
    if len(classes) != 2:
        raise GradiendError(
            "The GRADIEND's config names no feature classes. Set `gradiend.config.feature_classes = [A, B]` (and "
            "`positive_class`, the class whose words' gradients encode to +1) before evaluating it."
        )
    positive = getattr(config, "positive_class", None) or classes[0]
    if positive not in classes:
        raise GradiendError(f"`positive_class` {positive!r} is not one of the feature classes {classes}.")
    return classes, positive


def encoding_direction(config, feature_class: str) -> int:
    """+1 for the positive class, -1 for the other one (the sign a gradient towards its words encodes to)."""
    classes, positive = feature_classes_and_positive(config)
    if feature_class not in classes:
        raise GradiendError(f"{feature_class!r} is not one of the GRADIEND's feature classes {classes}.")
    return 1 if feature_class == positive else -1


def feature_factor_for(config, target_class: str, strengthen: bool = True) -> float:
    """The feature factor whose decoded update strengthens (or, with `strengthen=False`, weakens) `target_class`.

    Args:
        config ([`GradiendConfig`]): The GRADIEND's config (`feature_classes`, `positive_class`, `source`, `target`).
        target_class (`str`): One of the feature classes.
        strengthen (`bool`, *optional*, defaults to `True`): Raise the class's probability, or lower it.

    Returns:
        `float`: +1.0 or -1.0.
    """
    source_sign = 1 if getattr(config, "source", "alternative") == "alternative" else -1
    target_sign = -1 if getattr(config, "target", "diff") == "alternative" else 1
    factor = encoding_direction(config, target_class) * source_sign * target_sign
    return float(factor if strengthen else -factor)
