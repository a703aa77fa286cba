"""Building and writing PEFT LoRA adapters from per-parameter deltas.

Key layout (peft 0.21, adapter name removed, `base_model.model.` prefix kept):

| what | key(s) | shape |
| --- | --- | --- |
| Linear/Conv1D weight ΔW | `<module>.lora_A.weight`, `<module>.lora_B.weight` | `(r, in)`, `(out, r)` |
| that layer's bias Δb (`lora_bias=True`) | `<module>.lora_B.bias` | `(out,)` |
| a module in `modules_to_save` | `<module>.<param>` (full new values, not deltas) | the parameter's shape |
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterable, Mapping

import torch
from peft import LoraConfig
from safetensors.torch import save_file

from ..io import atomic_write_json
from .lora import RankSpec, delta_as_matrix, lora_from_delta
from .plan import FullModule, LoraTarget
from .report import ExportReport, ModuleReport, check_report_finite


PREFIX = "base_model.model."
WEIGHTS_NAME = "adapter_model.safetensors"
CONFIG_NAME = "adapter_config.json"


def _layer_dims(target: LoraTarget) -> tuple[int, int]:
    weight = target.module.weight
    # Conv1D stores (in, out); nn.Linear (out, in).
    return (weight.shape[1], weight.shape[0]) if target.is_conv1d else (weight.shape[0], weight.shape[1])


@torch.no_grad()
def lora_state(
    targets: Iterable[LoraTarget],
    deltas: Mapping[str, torch.Tensor],
    rank: RankSpec,
    *,
    lora_bias: bool,
    adapter: str,
    dtype: torch.dtype | None = None,
) -> tuple[dict[str, torch.Tensor], dict[str, int], list[ModuleReport]]:
    """LoRA tensors for Linear/Conv1D modules.

    Args:
        targets (`Iterable[LoraTarget]`): The modules.
        deltas (`Mapping[str, torch.Tensor]`): Covered parameter name → delta in the parameter's shape. Covered
            parameters missing here count as zero deltas.
        rank (`RankSpec`): Rank specification, applied per module.
        lora_bias (`bool`): Whether the adapter carries bias deltas (`lora_B.bias`, zeros where none is covered).
        adapter (`str`): Adapter name, for the report.
        dtype (`torch.dtype`, *optional*): dtype of the stored tensors; defaults to each module's weight dtype.

    Returns:
        `tuple`: the state dict (CPU tensors), module name → rank, and one [`ModuleReport`] per module.
    """
    state, ranks, reports = {}, {}, []
    for target in targets:
        if target.bias is not None and not lora_bias:
            raise ValueError(f"{target.module_name} has a covered bias but the adapter is built with lora_bias=False.")
        out_features, in_features = _layer_dims(target)
        weight = target.module.weight
        store_dtype = dtype or weight.dtype
        key = f"{PREFIX}{target.module_name}"
        delta = deltas.get(target.weight) if target.weight is not None else None
        parameters = [name for name in (target.weight, target.bias) if name is not None]
        if delta is not None:
            factors = lora_from_delta(delta_as_matrix(target.module, delta), rank, dtype=store_dtype)
            lora_A, lora_B, r = factors.lora_A, factors.lora_B, factors.rank
            delta_norm, residual = factors.delta_norm, factors.residual_norm
            max_rank = factors.max_rank
        else:
            # Only the bias is covered: a rank-1 LoRA with B = 0 leaves the weight exactly as it is.
            lora_A = torch.zeros(1, in_features, dtype=store_dtype)
            lora_B = torch.zeros(out_features, 1, dtype=store_dtype)
            r, delta_norm, residual, max_rank = 1, 0.0, 0.0, min(out_features, in_features)
        state[f"{key}.lora_A.weight"] = lora_A.cpu()
        state[f"{key}.lora_B.weight"] = lora_B.cpu()
        if lora_bias:
            bias_delta = deltas.get(target.bias) if target.bias is not None else None
            if bias_delta is None:
                bias_delta = torch.zeros(out_features)
            bias_dtype = dtype or target.module.bias.dtype
            state[f"{key}.lora_B.bias"] = bias_delta.detach().to(device="cpu", dtype=bias_dtype).contiguous()
        ranks[target.module_name] = r
        exact = float(bias_delta.double().norm()) if lora_bias else 0.0
        reports.append(
            ModuleReport(target.module_name, "lora", parameters, adapter, r, max_rank, delta_norm, residual, exact)
        )
    return state, ranks, reports


@torch.no_grad()
def full_state(
    modules: Iterable[FullModule],
    deltas: Mapping[str, torch.Tensor],
    *,
    adapter: str,
    dtype: torch.dtype | None = None,
    counted: set[str] | None = None,
) -> tuple[dict[str, torch.Tensor], list[ModuleReport]]:
    """`modules_to_save` tensors: every direct parameter of each module, with its delta added where covered.

    The new value is computed as `param + delta.to(param.dtype)`, exactly as the dense rewrite adds it, so a merge
    reproduces the rewrite bit for bit. `counted` collects the parameters whose delta norm was reported already: a
    tied parameter's delta counts once in the overall error, not once per module holding it.
    """
    state, reports = {}, []
    counted = set() if counted is None else counted
    for entry in modules:
        norm_sq = 0.0
        for attr, param in entry.module.named_parameters(recurse=False):
            value = param.detach()
            name = entry.covered.get(attr)
            if name is not None and name in deltas:
                delta = deltas[name].to(device=value.device, dtype=value.dtype)
                value = value + delta
                if name not in counted:
                    norm_sq += float(deltas[name].double().norm()) ** 2
                    counted.add(name)
            state[f"{PREFIX}{entry.module_name}.{attr}"] = value.to(device="cpu", dtype=dtype or value.dtype).clone()
        reports.append(
            ModuleReport(
                module=entry.module_name,
                kind="full",
                parameters=sorted(set(entry.covered.values())),
                adapter=adapter,
                exact_norm=norm_sq**0.5,
            )
        )
    return state, reports


def lora_config(
    ranks: Mapping[str, int],
    *,
    lora_bias: bool = False,
    modules_to_save: list[str] | None = None,
    fan_in_fan_out: bool = False,
    task_type: str | None = None,
    base_model_name_or_path: str | None = None,
    revision: str | None = None,
) -> LoraConfig:
    """A `LoraConfig` whose scaling is 1 in every module (`lora_alpha = r`, per module through the patterns).

    The most common rank becomes `r`; modules with another rank get `rank_pattern` / `alpha_pattern` entries keyed by
    their full module name.
    """
    counts = Counter(ranks.values())
    default_r = max(counts, key=lambda r: (counts[r], r)) if counts else 1
    pattern = {name: r for name, r in sorted(ranks.items()) if r != default_r}
    config = LoraConfig(
        r=default_r,
        lora_alpha=default_r,
        target_modules=sorted(ranks),
        rank_pattern=dict(pattern),
        alpha_pattern=dict(pattern),
        lora_bias=lora_bias,
        lora_dropout=0.0,
        bias="none",
        modules_to_save=sorted(modules_to_save) if modules_to_save else None,
        fan_in_fan_out=fan_in_fan_out,
        task_type=task_type,
        inference_mode=True,
        revision=revision,
    )
    # Last: `get_peft_model` and friends overwrite it from the model they are given.
    config.base_model_name_or_path = base_model_name_or_path
    return config


def write_adapter(folder: str, config: LoraConfig, state: Mapping[str, torch.Tensor]) -> None:
    """Writes `adapter_model.safetensors` and then `adapter_config.json` (the file that makes the folder loadable)."""
    os.makedirs(folder, exist_ok=True)
    save_file(dict(state), os.path.join(folder, WEIGHTS_NAME), metadata={"format": "pt"})
    config.save_pretrained(folder)


def folder_size(folder: str) -> int:
    """Total size in bytes of the `.safetensors` files under `folder`."""
    total = 0
    for root, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        total += sum(os.path.getsize(os.path.join(root, f)) for f in files if f.endswith(".safetensors"))
    return total


def finish_export(
    staging: str | os.PathLike, manifest_name: str, manifest: dict, report: ExportReport
) -> ExportReport:
    """Checks an export's numbers (never a report of `nan` deltas), measures its size and writes its manifest."""
    report.size_bytes = folder_size(os.fspath(staging))
    check_report_finite(report)
    atomic_write_json(os.path.join(staging, manifest_name), manifest)
    return report
