"""Where each covered base parameter goes in an adapter: a LoRA factorisation, a LoRA bias, or a full module copy.

PEFT can only attach to modules, so the plan groups the GRADIEND's parameters by the module that holds them:

- the `weight` of an `nn.Linear` or GPT-2 `Conv1D` → LoRA (`lora_A` / `lora_B`, rank chosen by SVD);
- the `bias` of such a layer → `lora_B.bias` (`lora_bias=True`), exact;
- anything else held by a leaf module (LayerNorm / RMSNorm weights and biases, embeddings, …) → the whole module in
  `modules_to_save`, stored with its full new values, exact;
- a parameter shared by several modules (tied input/output embeddings) → every module that holds it is copied in
  `modules_to_save`, so the delta reaches the LM head exactly as it reached the gradient (see the package docstring
  for why LoRA cannot do this).

Parameters the GRADIEND does not cover are never touched; a LoRA module may have only its weight or only its bias
covered.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import nn

from ..errors import GradiendError
from .lora import LORA_LAYER_TYPES


class ExportError(GradiendError):
    """Raised when a GRADIEND's update cannot be written as a PEFT adapter."""


@dataclass
class LoraTarget:
    """A Linear/Conv1D module that gets a LoRA adapter.

    Args:
        module_name (`str`): Full module name in the base model.
        module (`nn.Module`): The `nn.Linear` or `Conv1D` itself.
        weight (`str`, *optional*): Name of its covered weight parameter, if covered.
        bias (`str`, *optional*): Name of its covered bias parameter, if covered.
    """

    module_name: str
    module: nn.Module
    weight: str | None = None
    bias: str | None = None

    @property
    def is_conv1d(self) -> bool:
        return not isinstance(self.module, nn.Linear)

    @property
    def has_base_bias(self) -> bool:
        return getattr(self.module, "bias", None) is not None


@dataclass
class FullModule:
    """A leaf module stored whole (`modules_to_save`) with its new values.

    Args:
        module_name (`str`): Full module name in the base model.
        module (`nn.Module`): The module.
        covered (`dict[str, str]`): Attribute name (`"weight"`, `"bias"`) → covered parameter name; attributes not
            listed keep their base values.
        tied (`bool`): Whether one of its covered parameters is shared with another module.
    """

    module_name: str
    module: nn.Module
    covered: dict[str, str] = field(default_factory=dict)
    tied: bool = False


@dataclass
class ExportPlan:
    """The modules an adapter touches, see [`plan_export`]."""

    lora: dict[str, LoraTarget]
    full: dict[str, FullModule]

    @property
    def needs_lora_bias(self) -> bool:
        return any(target.bias is not None for target in self.lora.values())


def parameter_owners(model: nn.Module) -> dict[int, list[tuple[str, nn.Module, str]]]:
    """Maps `id(parameter)` to every `(module_name, module, attribute)` that holds it directly (tied ones included)."""
    owners: dict[int, list[tuple[str, nn.Module, str]]] = {}
    seen: set[tuple[int, str]] = set()
    for module_name, module in model.named_modules(remove_duplicate=False):
        for attr, param in module.named_parameters(recurse=False):
            # The same module object can appear under two names; keep it once.
            if param is None or (id(module), attr) in seen:
                continue
            seen.add((id(module), attr))
            owners.setdefault(id(param), []).append((module_name, module, attr))
    return owners


def _is_leaf(module: nn.Module) -> bool:
    return next(module.children(), None) is None


def plan_export(model: nn.Module, param_names: list[str]) -> ExportPlan:
    """Decides, for every covered parameter, how an adapter reproduces its delta.

    Args:
        model (`nn.Module`):
            The base model (not wrapped by PEFT).
        param_names (`list[str]`):
            The parameters the GRADIEND covers.

    Returns:
        [`ExportPlan`]: LoRA targets (by module name) and full module copies (by module name).

    Raises:
        ExportError: when a covered parameter belongs directly to a module with submodules (PEFT can only replace
            leaf modules) or to the model itself.
    """
    owners_by_id = parameter_owners(model)
    lora: dict[str, LoraTarget] = {}
    full: dict[str, FullModule] = {}
    for name in param_names:
        holders = owners_by_id.get(id(model.get_parameter(name)), [])
        tied = len(holders) > 1
        for module_name, module, attr in holders:
            if not tied and isinstance(module, LORA_LAYER_TYPES) and attr in ("weight", "bias"):
                target = lora.setdefault(module_name, LoraTarget(module_name, module))
                setattr(target, attr, name)
                continue
            if not module_name or not _is_leaf(module):
                raise ExportError(
                    f"Parameter {name!r} belongs directly to module {module_name or type(model).__name__!r}, which "
                    "has submodules; a PEFT adapter can only replace whole leaf modules. Leave it out of the "
                    "GRADIEND or save the dense rewrite instead: `gradiend.rewrite(base, ff, lr).save_pretrained(...)`."
                )
            entry = full.setdefault(module_name, FullModule(module_name, module))
            entry.covered[attr] = name
            entry.tied = entry.tied or tied

    # A module copied whole carries all of its deltas; it must not also get a LoRA on top.
    for module_name in list(lora):
        if module_name in full:
            target = lora.pop(module_name)
            for attr in ("weight", "bias"):
                if getattr(target, attr) is not None:
                    full[module_name].covered[attr] = getattr(target, attr)
    return ExportPlan(lora=lora, full=full)
