"""Exporting steering adapters: a GRADIEND's update split so its feature strength can be chosen at run time
([`gradiend_hf.export.steerable`] loads and runs them).

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

import os

import torch
from safetensors.torch import save_file
from torch import nn

from ..artefacts import KIND_STEERING, check_output_folder
from ..io import atomic_folder
from ..rewrite import check_rewrite_finite
from .card import write_adapter_card
from .lora import LORA_LAYER_TYPES, RankSpec, validate_rank
from .peft_export import resolve_base_model_name, resolve_objective
from .plan import ExportError, LoraTarget, parameter_owners
from .report import ExportReport, ModuleReport
from .writer import finish_export, lora_config, lora_state, write_adapter


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
                    task_type=objective.peft_task_type if objective else None,
                    base_model_name_or_path=base_name,
                    revision=gradiend.config.base_model_revision,
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
        report = finish_export(
            staging, MANIFEST_NAME, manifest, ExportReport(save_directory, folders, reports, 0, rank, learning_rate)
        )
        if model_card:
            card = {"base_model": base_name, "objective": objective, "gradiend_config": gradiend.config}
            write_adapter_card(staging, report, steering=True, dense_deltas=DENSE_DELTAS_NAME, repo_id=repo_id, **card)
    return report
