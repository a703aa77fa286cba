"""What an export kept of the rewrite: per-module approximation errors, size on disk and, optionally, metrics."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from ..errors import NonFiniteError


@dataclass
class ModuleReport:
    """How one module of the base model is represented in an adapter.

    Args:
        module (`str`): Full module name in the base model.
        kind (`str`): `"lora"` (low-rank weight delta, exact bias), `"full"` (`modules_to_save` copy, exact) or
            `"dense"` (a steering delta applied by parametrization, exact).
        parameters (`list[str]`): The covered base parameters this module carries.
        adapter (`str`): Name of the adapter holding it (`"default"`, `"no_bias"`, `"feature"`, `"bias"`, …).
        rank (`int`, *optional*): LoRA rank kept (`None` for full copies).
        max_rank (`int`, *optional*): `min(out, in)`, the rank that reproduces the delta exactly.
        delta_norm (`float`): `‖ΔW‖_F` of the low-rank weight delta (0 for full copies).
        residual_norm (`float`): `‖ΔW − B A‖_F`, from the discarded singular values.
        exact_norm (`float`): `‖Δ‖_F` of the deltas the adapter carries exactly (LoRA bias, full copies).
    """

    module: str
    kind: str
    parameters: list[str]
    adapter: str = "default"
    rank: int | None = None
    max_rank: int | None = None
    delta_norm: float = 0.0
    residual_norm: float = 0.0
    exact_norm: float = 0.0

    @property
    def is_finite(self) -> bool:
        return all(math.isfinite(v) for v in (self.delta_norm, self.residual_norm, self.exact_norm))

    @property
    def relative_error(self) -> float:
        """`‖ΔW − B A‖_F / ‖ΔW‖_F` (0 for an exact or a zero delta, `nan` when a norm is not finite)."""
        if not self.is_finite:
            return math.nan
        return self.residual_norm / self.delta_norm if self.delta_norm > 0 else 0.0


def overall_relative_error(modules: Iterable[ModuleReport]) -> float:
    """`sqrt(Σ residual²) / sqrt(Σ ‖Δ‖²)` over modules: the relative error of the whole update as one vector."""
    modules = list(modules)
    if not all(m.is_finite for m in modules):
        return math.nan
    total = math.sqrt(sum(m.delta_norm**2 + m.exact_norm**2 for m in modules))
    residual = math.sqrt(sum(m.residual_norm**2 for m in modules))
    return residual / total if total > 0 else 0.0


def check_report_finite(report: ExportReport) -> None:
    """Raises [`NonFiniteError`] when a module's delta or approximation error is not finite (never report 0)."""
    broken = [m.module for m in report.modules if not m.is_finite]
    if broken:
        raise NonFiniteError(
            f"The adapter's deltas of {', '.join(broken[:3])} are nan or infinite (the update overflows); no "
            "adapter was written. Use a smaller learning rate."
        )


@dataclass
class ExportReport:
    """Returned by [`export_peft`] and [`export_steering`].

    Args:
        save_directory (`str`): The folder written.
        adapters (`dict[str, str]`): Adapter name → folder (absolute) of every adapter written.
        modules (`list[ModuleReport]`): One entry per module and adapter.
        size_bytes (`int`): Total size of the adapter weight files (plus dense steering deltas, if any).
        rank (`int`, `float` or `str`): The requested rank specification.
        feature_factor (`float` or `list[float]`, *optional*): Feature factor of a static export.
        learning_rate (`float`): Learning rate of the update.
        metrics (`dict[str, dict]`, *optional*): When an `evaluate_fn` was given: its results for `"base"` (the
            unchanged model), `"rewrite"` (the dense rewrite) and `"adapter"` (base + adapter, not merged).
    """

    save_directory: str
    adapters: dict[str, str]
    modules: list[ModuleReport]
    size_bytes: int
    rank: Any
    learning_rate: float
    feature_factor: Any = None
    metrics: dict[str, dict] | None = field(default=None)

    @property
    def relative_error(self) -> float:
        """Relative Frobenius error of the whole update (all covered parameters, all adapters)."""
        return overall_relative_error(self.modules)

    def adapter_relative_error(self, adapter: str) -> float:
        """Relative Frobenius error of one adapter's part of the update."""
        return overall_relative_error(m for m in self.modules if m.adapter == adapter)

    @property
    def size_mb(self) -> float:
        return self.size_bytes / 2**20

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["relative_error"] = self.relative_error
        for entry, module in zip(out["modules"], self.modules):
            entry["relative_error"] = module.relative_error
        return out

    def to_markdown(self) -> str:
        """A Markdown table of the per-module errors and the overall error (used in the adapter card)."""
        lines = [
            "| module | adapter | kind | rank | relative error |",
            "| --- | --- | --- | --- | --- |",
        ]
        for m in self.modules:
            rank = f"{m.rank} / {m.max_rank}" if m.rank is not None else "exact"
            lines.append(f"| `{m.module}` | {m.adapter} | {m.kind} | {rank} | {m.relative_error:.3e} |")
        lines.append(f"| **overall** | | | | **{self.relative_error:.3e}** |")
        return "\n".join(lines)

    def __str__(self) -> str:
        return (
            f"ExportReport({self.save_directory}: {len(self.modules)} modules in {len(self.adapters)} adapter(s), "
            f"{self.size_mb:.2f} MiB, relative error {self.relative_error:.3e})"
        )
