"""The sign rules of a GRADIEND as functions of its config (the rules live on [`GradiendConfig`]): which class is
positive, which feature factor strengthens a class."""

from __future__ import annotations


def feature_classes_and_positive(config) -> tuple[list[str], str]:
    """The GRADIEND's two feature classes and the one it maps to +1; see [`GradiendConfig.classes_and_positive`]."""
    return config.classes_and_positive()


def encoding_direction(config, feature_class: str) -> int:
    """+1 for the positive class, -1 for the other one; see [`GradiendConfig.encoding_direction`]."""
    return config.encoding_direction(feature_class)


def feature_factor_for(config, target_class: str, strengthen: bool = True) -> float:
    """The feature factor that strengthens (or weakens) `target_class`; see [`GradiendConfig.feature_factor_for`]."""
    return config.feature_factor_for(target_class, strengthen)
