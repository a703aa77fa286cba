"""Runtime steering: change a GRADIEND's feature strength per call, or switch it off, without touching the weights.

With the identity decoder activation the update is affine in the feature factor:
`Δθ(ff) = lr · (ff · W_d + b_d) = ff · (lr · W_d) + lr · b_d`. [`export_steering`] therefore writes

- a `feature` adapter with `lr · W_d` (one per latent dimension, `feature_0`, `feature_1`, … when `latent_dim > 1`),
  scaled at run time by the feature factor through PEFT's per-adapter LoRA scaling (`LoraLayer.set_scale`);
- a `bias` adapter with `lr · b_d`, switched on or off (when the decoder has a bias);
- `steering_deltas.safetensors` with both parts for every covered parameter LoRA cannot scale: Linear/Conv1D biases,
  norms, embeddings (a `modules_to_save` copy holds fixed values and cannot be scaled). [`load_steerable`] applies
  them through `torch.nn.utils.parametrize`, as `θ + ff · F + b` computed on access, on every module that holds the
  parameter, so a tied input/output embedding moves in both places, as in the dense rewrite.

Each adapter's delta of a module is factorised by its own SVD: even for `latent_dim == 1` a module's delta reshaped
to `(out, in)` is a general matrix, not a rank-1 one. At `rank="full"` steering with strength `s` equals the dense
rewrite with feature factor `s` up to floating point, and [`SteerableModel.disable`] gives back the base model's
outputs bit for bit (LoRA layers call the untouched base layer, parametrizations return the original tensor).

Steering needs `activation_decoder == "id"`: with any other activation `lr · act(ff · W_d + b_d)` is not affine in
`ff`, and only [`export_peft`] (one adapter per feature factor) is exact.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator, Sequence
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn
from torch.nn.utils import parametrize

from ..errors import GradiendError, GradiendFileNotFoundError
from ..io import KIND_STEERING, atomic_folder, atomic_write_json, check_output_folder
from ..rewrite import check_rewrite_finite
from .card import render_adapter_card
from .lora import LORA_LAYER_TYPES, RankSpec, validate_rank
from .peft_export import resolve_base_model_name, resolve_objective
from .plan import ExportError, LoraTarget, parameter_owners
from .report import ExportReport, ModuleReport, check_report_finite
from .writer import folder_size, lora_config, lora_state, write_adapter


MANIFEST_NAME = "gradiend_steering.json"
DENSE_DELTAS_NAME = "steering_deltas.safetensors"
FEATURE_ADAPTER = "feature"
BIAS_ADAPTER = "bias"
FORMAT_VERSION = 1


# ---------------------------------------------------------------------------------------------------------------------
# export
# ---------------------------------------------------------------------------------------------------------------------


def _feature_names(latent_dim: int) -> list[str]:
    return [FEATURE_ADAPTER] if latent_dim == 1 else [f"{FEATURE_ADAPTER}_{j}" for j in range(latent_dim)]


@torch.no_grad()
def export_steering(
    gradiend,
    base_model: nn.Module,
    learning_rate: float,
    save_directory: str | os.PathLike,
    rank: RankSpec = "full",
    *,
    base_model_name_or_path: str | None = None,
    dtype: torch.dtype | None = None,
    model_card: bool = True,
    repo_id: str | None = None,
    overwrite: bool = False,
) -> ExportReport:
    """Writes steering adapters for `gradiend` (see the module docstring for the layout).

    Args:
        gradiend ([`GradiendModel`]):
            The GRADIEND; its decoder activation must be `"id"`.
        base_model (`PreTrainedModel`):
            The model it was trained on (read only).
        learning_rate (`float`):
            Scale of the update; the feature factor is chosen at run time.
        save_directory (`str` or `os.PathLike`):
            Output folder (written atomically).
        rank (`int`, `float` or `"full"`, *optional*, defaults to `"full"`):
            Per-module LoRA rank of every adapter, see [`export_peft`]. `"full"` makes steering exact.
        base_model_name_or_path (`str`, *optional*):
            Recorded in the adapter configs.
        dtype (`torch.dtype`, *optional*):
            dtype of the stored tensors; defaults to each base parameter's dtype.
        model_card (`bool`, *optional*, defaults to `True`):
            Write a `README.md`.
        repo_id (`str`, *optional*):
            Hub id used in the card's quick start.
        overwrite (`bool`, *optional*, defaults to `False`):
            Replace another kind of artefact in `save_directory`, which is refused otherwise.

    Returns:
        [`ExportReport`]: per adapter and module the rank and relative error; dense deltas are exact.
    """
    # ----- CHECKS -----
    activation = gradiend.config.activation_decoder
    if activation != "id":
        raise ExportError(
            f"Steering needs the identity decoder activation, but this GRADIEND uses {activation!r}: then "
            "`lr · act(ff · W_d + b_d)` is not affine in the feature factor and no fixed adapter can be scaled to it. "
            "Export one adapter per feature factor with `gradiend.export_peft(...)` instead."
        )
    validate_rank(rank)
    gradiend.check_base_model(base_model)
    check_output_folder(save_directory, KIND_STEERING, overwrite=overwrite)
    # Steering scales the feature part at run time: both signs of a unit strength must keep the model working.
    for strength in (1.0, -1.0):
        check_rewrite_finite(gradiend, base_model, [strength] * gradiend.config.latent_dim, learning_rate)
    save_directory = os.path.abspath(os.fspath(save_directory))
    base_name = resolve_base_model_name(gradiend, base_model, base_model_name_or_path)
    objective = resolve_objective(gradiend, base_model)

    # ----- PREPARATION -----
    owners = parameter_owners(base_model)
    targets: dict[str, LoraTarget] = {}
    dense: list[str] = []
    for name in gradiend.param_names:
        holders = owners.get(id(base_model.get_parameter(name)), [])
        if len(holders) == 1 and isinstance(holders[0][1], LORA_LAYER_TYPES) and holders[0][2] == "weight":
            module_name, module, _ = holders[0]
            targets[module_name] = LoraTarget(module_name, module, weight=name)
        else:
            dense.append(name)
    latent_dim = gradiend.config.latent_dim
    parts = {name: ("feature", j) for j, name in enumerate(_feature_names(latent_dim))}
    if gradiend.decoder.bias is not None:
        parts[BIAS_ADAPTER] = ("bias", None)

    position = {name: i for i, name in enumerate(gradiend.param_names)}

    def part_delta(name: str, kind: str, j: int | None) -> torch.Tensor:
        key, shape = gradiend.param_keys[position[name]], gradiend.param_shapes[position[name]]
        value = gradiend.decoder.weight[key][:, j] if kind == "feature" else gradiend.decoder.bias[key]
        # A pruned GRADIEND holds only its kept entries; the others get a zero delta.
        return (learning_rate * gradiend.scatter_kept(name, value)).reshape(shape)

    # ----- CONVERSION -----
    folders: dict[str, str] = {}
    reports: list[ModuleReport] = []
    dense_state: dict[str, torch.Tensor] = {}
    with atomic_folder(save_directory, KIND_STEERING, overwrite=overwrite) as staging:
        for adapter, (kind, j) in parts.items():
            if targets:
                state, ranks = {}, {}
                for target in targets.values():  # one module's dense delta at a time
                    delta = {target.weight: part_delta(target.weight, kind, j)}
                    unit_state, unit_ranks, unit_reports = lora_state(
                        [target], delta, rank, lora_bias=False, adapter=adapter, dtype=dtype
                    )
                    state.update(unit_state)
                    ranks.update(unit_ranks)
                    reports += unit_reports
                config = lora_config(
                    ranks,
                    fan_in_fan_out=any(t.is_conv1d for t in targets.values()),
                    task_type="CAUSAL_LM" if objective == "causal_lm" else None,
                    base_model_name_or_path=base_name,
                    revision=getattr(gradiend.config, "base_model_revision", None),
                )
                write_adapter(os.path.join(staging, adapter), config, state)
                folders[adapter] = os.path.join(save_directory, adapter)
            # ----- NON-LORA PARTS -----
            for name in dense:
                delta = part_delta(name, kind, j)
                store = dtype or base_model.get_parameter(name).dtype
                dense_state[f"{adapter}/{name}"] = delta.to(device="cpu", dtype=store).contiguous()
                reports.append(
                    ModuleReport(
                        module=name,
                        kind="dense",
                        parameters=[name],
                        adapter=adapter,
                        exact_norm=float(delta.double().norm()),
                    )
                )
        if dense_state:
            save_file(dense_state, os.path.join(staging, DENSE_DELTAS_NAME), metadata={"format": "pt"})
        manifest = {
            "format": "gradiend-steering",
            "format_version": FORMAT_VERSION,
            "learning_rate": learning_rate,
            "latent_dim": latent_dim,
            "feature_adapters": [a for a, (kind, _) in parts.items() if kind == "feature"],
            "bias_adapter": BIAS_ADAPTER if BIAS_ADAPTER in parts else None,
            "adapters": {a: a for a in folders},
            "dense_deltas": DENSE_DELTAS_NAME if dense_state else None,
            "rank": rank,
            "base_model_name_or_path": base_name,
        }
        atomic_write_json(os.path.join(staging, MANIFEST_NAME), manifest)
        report = ExportReport(
            save_directory=save_directory,
            adapters=folders,
            modules=reports,
            size_bytes=folder_size(staging),
            rank=rank,
            learning_rate=learning_rate,
        )
        check_report_finite(report)
        if model_card:
            card = render_adapter_card(
                report,
                base_model=base_name,
                objective=objective,
                gradiend_config=gradiend.config,
                steering=True,
                dense_deltas=DENSE_DELTAS_NAME,
                repo_id=repo_id,
            )
            card.save(os.path.join(staging, "README.md"))
    return report


# ---------------------------------------------------------------------------------------------------------------------
# runtime
# ---------------------------------------------------------------------------------------------------------------------


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
            from peft.tuners.lora import LoraLayer

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
    from peft import PeftModel

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
