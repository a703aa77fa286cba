"""`SelectedRewrite`: the rewrite a decoder evaluation chose, as a GRADIEND's config records it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any


@dataclass
class SelectedRewrite:
    """The rewrite a decoder evaluation chose: `θ + learning_rate · u(feature_factor)`, and why.

    Args:
        feature_factor (`float`): The feature value fed to the decoder.
        learning_rate (`float`): The scale of the update.
        target_class (`str`, *optional*): The class it strengthens or weakens (`None` for a balancing rewrite).
        strengthen (`bool`, *optional*, defaults to `True`): Whether it raises or lowers the class's probability.
        policy (`str`, *optional*): The selection policy (`"lms_threshold"`, `"balance"`, or a custom one).
    """

    feature_factor: float
    learning_rate: float
    target_class: str | None = None
    strengthen: bool = True
    policy: str | None = None

    @classmethod
    def from_value(cls, value: SelectedRewrite | Mapping[str, Any] | None) -> SelectedRewrite | None:
        if value is None or isinstance(value, cls):
            return value
        fields = {
            k: value[k]
            for k in ("feature_factor", "learning_rate", "target_class", "strengthen", "policy")
            if k in value
        }
        return cls(**fields)

    @classmethod
    def from_report(cls, report) -> SelectedRewrite:
        """The selection of a [`DecoderReport`] (its `selected` grid point, target class, direction and policy)."""
        return cls(
            feature_factor=float(report.selected.feature_factor),
            learning_rate=float(report.selected.learning_rate),
            target_class=report.target_class,
            strengthen=bool(report.strengthen),
            policy=report.policy,
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    # Read like the mapping config.json stores (`selected["learning_rate"]`), as before it was a dataclass.
    def __getitem__(self, key: str) -> Any:
        return self.to_dict()[key]

    def get(self, key: str, default: Any = None) -> Any:
        return self.to_dict().get(key, default)

    @property
    def intent(self) -> str | None:
        """What the rewrite was chosen to do, in words (e.g. "strengthen class `F`")."""
        if self.policy == "balance":
            return "make the two classes equally likely (debiasing)"
        if self.target_class is None:
            return None
        return f"{'strengthen' if self.strengthen else 'weaken'} class `{self.target_class}`"

    @property
    def selection(self) -> str | None:
        """How the rewrite was selected, in words."""
        if self.policy is None:
            return None
        return {
            "lms_threshold": "best score among rewrites that keep ≥ 99 % of the base model's language-modelling score",
            "balance": "most balanced class probabilities among rewrites that keep ≥ 99 % of the base LMS",
        }.get(self.policy, f"custom policy `{self.policy}`")
