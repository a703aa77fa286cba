"""Runtime steering: change a GRADIEND's feature strength per call, or switch it off, without touching the weights.

[`load_steerable`] loads what [`gradiend_hf.export.steering.export_steering`] wrote: the `feature` adapter(s) are
scaled by the feature factor through PEFT's per-adapter LoRA scaling, the `bias` adapter is switched on or off, and the
dense deltas (biases, norms, embeddings) are applied through `torch.nn.utils.parametrize` as `θ + ff · F + b`, on
every module that holds the parameter. [`SteerableModel.disable`] gives back the base model's outputs bit for bit.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator, Sequence
from typing import Any

import torch
from peft import PeftModel
from peft.tuners.lora import LoraLayer
from safetensors.torch import load_file
from torch import nn
from torch.nn.utils import parametrize

from ..errors import GradiendError, GradiendFileNotFoundError
from .plan import parameter_owners
from .steering import MANIFEST_NAME


class _SteeringState:
    """The strengths every LoRA layer and parametrization of one [`SteerableModel`] reads."""

    def __init__(self, latent_dim: int):
        self.strengths = [0.0] * latent_dim
        self.bias = False
        self.enabled = True


class _AffineDelta(nn.Module):
    """Parametrization `θ ↦ θ + Σ_j s_j · F_j + b` (only the enabled terms; `θ` itself when all are off)."""

    def __init__(self, state: _SteeringState, features: list[torch.Tensor | None], bias: torch.Tensor | None):
        super().__init__()
        self.state = state
        self.num_features = len(features)
        for j, feature in enumerate(features):
            self.register_buffer(f"feature_{j}", feature, persistent=False)
        self.register_buffer("bias", bias, persistent=False)

    def forward(self, original: torch.Tensor) -> torch.Tensor:
        state = self.state
        if not state.enabled:
            return original
        delta = None
        for j, strength in enumerate(state.strengths):
            feature = getattr(self, f"feature_{j}")
            if strength != 0 and feature is not None:
                term = strength * feature
                delta = term if delta is None else delta + term
        if state.bias and self.bias is not None:
            delta = self.bias if delta is None else delta + self.bias
        return original if delta is None else original + delta.to(original.dtype)


class SteerableModel:
    """A base model with GRADIEND steering adapters whose feature strength can be changed between calls.

    Build it with [`load_steerable`]. Calling it calls the wrapped model; `set_strength(ff)` makes it behave like the
    dense rewrite with feature factor `ff`; `disable()` gives the base model back exactly; `unload()` removes
    everything and returns the plain base model.

    While it is loaded, the parameters with dense deltas are parametrized (their original tensors appear as
    `<module>.parametrizations.<name>.original` in `named_parameters()`), and PEFT wraps the LoRA targets: call
    [`unload`] before saving the base model or rewriting it with a GRADIEND.

    Args:
        model (`nn.Module`): The `PeftModel` holding the LoRA adapters (or the base model when all deltas are dense).
        base_model (`nn.Module`): The base model.
        feature_adapters (`list[str]`): One adapter name per latent dimension.
        bias_adapter (`str`, *optional*): Name of the bias adapter.
        lora_adapters (`list[str]`): The adapters actually loaded into PEFT.
        parametrized (`list[tuple[nn.Module, str]]`): Modules and attributes carrying dense deltas.
        state (`_SteeringState`): Shared strengths.
    """

    def __init__(
        self,
        model: nn.Module,
        base_model: nn.Module,
        feature_adapters: list[str],
        bias_adapter: str | None,
        lora_adapters: list[str],
        parametrized: list[tuple[nn.Module, str]],
        state: _SteeringState,
    ):
        self.model = model
        self.base_model = base_model
        self.feature_adapters = feature_adapters
        self.bias_adapter = bias_adapter
        self.lora_adapters = lora_adapters
        self._parametrized = parametrized
        self._state = state
        if lora_adapters:
            self._lora_layers = [m for m in model.modules() if isinstance(m, LoraLayer)]
        else:
            self._lora_layers = []
        self._apply()

    # ----- strength -----

    @property
    def feature_factor(self) -> float | list[float]:
        """The current feature factor (a float for `latent_dim == 1`)."""
        strengths = list(self._state.strengths)
        return strengths[0] if len(strengths) == 1 else strengths

    @property
    def bias(self) -> bool:
        """Whether the ff-independent part `lr · b_d` is on."""
        return self._state.bias

    def set_strength(self, feature_factor: float | Sequence[float], bias: bool = True) -> None:
        """Behave like the dense rewrite with `feature_factor` (`bias=True`), or like `ff · lr · W_d` alone.

        Args:
            feature_factor (`float` or sequence of floats): The feature value, one per latent dimension.
            bias (`bool`, *optional*, defaults to `True`): Include the decoder bias part `lr · b_d`.
        """
        values = feature_factor.tolist() if isinstance(feature_factor, torch.Tensor) else feature_factor
        values = [float(v) for v in values] if isinstance(values, (list, tuple)) else [float(values)]
        if len(values) != len(self._state.strengths):
            raise GradiendError(
                f"Expected {len(self._state.strengths)} feature value(s), one per latent dimension, got {values}."
            )
        self._state.strengths = values
        self._state.bias = bool(bias) and self.bias_adapter is not None
        self._apply()

    @contextlib.contextmanager
    def steer(self, feature_factor: float | Sequence[float], bias: bool = True) -> Iterator[SteerableModel]:
        """Temporarily sets the strength; the previous one is restored on exit."""
        previous = (list(self._state.strengths), self._state.bias)
        self.set_strength(feature_factor, bias=bias)
        try:
            yield self
        finally:
            self._state.strengths, self._state.bias = previous
            self._apply()

    @contextlib.contextmanager
    def disable(self) -> Iterator[SteerableModel]:
        """Inside the block the model computes exactly what the base model computes."""
        enabled = self._state.enabled
        self._state.enabled = False
        self._apply()
        try:
            yield self
        finally:
            self._state.enabled = enabled
            self._apply()

    def _apply(self) -> None:
        """Pushes the shared state into PEFT: per-adapter scaling and the set of active adapters."""
        if not self.lora_adapters:
            return
        scales = dict(zip(self.feature_adapters, self._state.strengths))
        for layer in self._lora_layers:
            for adapter, scale in scales.items():
                # Relative to the initial scaling alpha / r = 1, so the LoRA delta is exactly `scale · B A`.
                layer.set_scale(adapter, scale)
        active = [a for a in self.feature_adapters if scales[a] != 0 and a in self.lora_adapters]
        if self._state.bias and self.bias_adapter in self.lora_adapters:
            active.append(self.bias_adapter)
        tuner = self.model.base_model
        if not self._state.enabled or not active:
            # Disabled LoRA layers call only their base layer: the base model's computation, bit for bit.
            tuner.disable_adapter_layers()
            return
        tuner.enable_adapter_layers()
        tuner.set_adapter(active, inference_mode=True)

    # ----- model access -----

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.model(*args, **kwargs)

    def generate(self, *args: Any, **kwargs: Any) -> Any:
        return self.model.generate(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        # Only reached for attributes SteerableModel does not have (config, device, …).
        if name.startswith("_") or name in ("model", "base_model"):
            raise AttributeError(name)
        return getattr(self.model, name)

    def unload(self) -> nn.Module:
        """Removes the adapters and parametrizations and returns the plain base model with its original weights."""
        for module, attr in self._parametrized:
            if parametrize.is_parametrized(module, attr):
                parametrize.remove_parametrizations(module, attr, leave_parametrized=False)
        self._parametrized = []
        self._lora_layers = []
        if self.lora_adapters:
            self.model.base_model.enable_adapter_layers()
            self.model = self.model.unload()
        self.lora_adapters = []
        return self.base_model


def read_steering_manifest(directory: str | os.PathLike) -> dict:
    path = os.path.join(os.fspath(directory), MANIFEST_NAME)
    if not os.path.isfile(path):
        raise GradiendFileNotFoundError(
            f"{os.fspath(directory)!r} has no {MANIFEST_NAME}; it is not a steering export. Write one with "
            "`gradiend_hf.export.export_steering(gradiend, base_model, learning_rate, save_directory)`."
        )
    with open(path) as f:
        return json.load(f)


def load_steerable(
    base_model: nn.Module,
    directory: str | os.PathLike,
    feature_factor: float | Sequence[float] | None = None,
    bias: bool = True,
) -> SteerableModel:
    """Loads steering adapters written by [`export_steering`] onto `base_model` (changed in place, as PEFT does).

    Args:
        base_model (`PreTrainedModel`): The base model the adapters were exported for.
        directory (`str` or `os.PathLike`): The steering export folder (local).
        feature_factor (`float` or sequence of floats, *optional*): Initial strength; `None` starts switched off
            (the model behaves like the base model until [`SteerableModel.set_strength`]).
        bias (`bool`, *optional*, defaults to `True`): Initial state of the bias part when `feature_factor` is given.

    Returns:
        [`SteerableModel`]
    """

    directory = os.fspath(directory)
    manifest = read_steering_manifest(directory)
    state = _SteeringState(manifest["latent_dim"])
    feature_adapters = list(manifest["feature_adapters"])
    bias_adapter = manifest.get("bias_adapter")
    owners = parameter_owners(base_model)  # before PEFT wraps any module

    # ----- LoRA adapters -----
    lora_adapters = list(manifest.get("adapters", {}))
    model = base_model
    if lora_adapters:
        folders = manifest["adapters"]
        first = lora_adapters[0]
        model = PeftModel.from_pretrained(base_model, os.path.join(directory, folders[first]), adapter_name=first)
        for adapter in lora_adapters[1:]:
            model.load_adapter(os.path.join(directory, folders[adapter]), adapter_name=adapter)

    # ----- dense deltas -----
    parametrized: list[tuple[nn.Module, str]] = []
    if manifest.get("dense_deltas"):
        tensors = load_file(os.path.join(directory, manifest["dense_deltas"]))
        by_param: dict[str, dict[str, torch.Tensor]] = {}
        for key, value in tensors.items():
            adapter, name = key.split("/", 1)
            by_param.setdefault(name, {})[adapter] = value
        for name, parts in by_param.items():
            param = base_model.get_parameter(name)
            features = [_to(parts.get(a), param) for a in feature_adapters]
            delta = _AffineDelta(state, features, _to(parts.get(bias_adapter), param) if bias_adapter else None)
            # Every module holding the parameter (a tied embedding and its LM head) sees the same delta.
            for _, module, attr in owners.get(id(param), []):
                parametrize.register_parametrization(module, attr, delta)
                parametrized.append((module, attr))

    steerable = SteerableModel(model, base_model, feature_adapters, bias_adapter, lora_adapters, parametrized, state)
    if feature_factor is not None:
        steerable.set_strength(feature_factor, bias=bias)
    return steerable


def _to(tensor: torch.Tensor | None, param: torch.Tensor) -> torch.Tensor | None:
    return None if tensor is None else tensor.to(device=param.device, dtype=param.dtype)
