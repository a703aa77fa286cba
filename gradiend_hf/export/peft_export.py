"""Exporting a GRADIEND rewrite `Δθ = lr · u(ff)` as a PEFT LoRA adapter, and loading it back."""

from __future__ import annotations

import contextlib
import json
import os
import warnings
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch
from peft import PeftModel
from peft.utils import ModulesToSaveWrapper
from torch import nn

from ..artefacts import KIND_ADAPTER, check_output_folder
from ..io import atomic_folder
from ..objectives import Objective, ObjectiveError, detect_objective, objective_class
from ..rewrite import RewriteSession, check_rewrite_finite
from .card import write_adapter_card
from .lora import RankSpec, validate_rank
from .plan import ExportError, FullModule, LoraTarget, plan_export
from .report import ExportReport, ModuleReport
from .writer import finish_export, full_state, lora_config, lora_state, write_adapter


MANIFEST_NAME = "gradiend_export.json"
DEFAULT_ADAPTER = "default"
NO_BIAS_ADAPTER = "no_bias"
FORMAT_VERSION = 1

# Warnings PEFT raises for the way this export handles tied embeddings on purpose (both tied modules are copied in
# `modules_to_save`, and `load_exported(merge=True)` re-ties them).
_EXPECTED_PEFT_WARNINGS = (
    r".*tied layer is part of the adapter.*",
    r".*Input and output embeddings are no longer tied after merging.*",
    r".*tie_word_embeddings=True` and the tied_target_modules.*",
)


# ---------------------------------------------------------------------------------------------------------------------
# helpers shared with the steering export
# ---------------------------------------------------------------------------------------------------------------------


def resolve_base_model_name(gradiend, base_model: nn.Module, explicit: str | None = None) -> str | None:
    """The base model id recorded in `adapter_config.json`: explicit, else the GRADIEND's, else the model's own."""
    if explicit:
        return explicit
    recorded = gradiend.config.base_model_name_or_path
    if recorded:
        return recorded
    config = getattr(base_model, "config", None)
    return getattr(base_model, "name_or_path", None) or getattr(config, "_name_or_path", None) or None


def resolve_objective(gradiend, base_model: nn.Module) -> type[Objective] | None:
    """The objective class of the GRADIEND (as its config records it, else detected from the base model)."""
    try:
        return objective_class(gradiend.config.objective or detect_objective(base_model))
    except ObjectiveError:
        return None


@contextlib.contextmanager
def quiet_peft_tie_warnings() -> Iterator[None]:
    with warnings.catch_warnings():
        for pattern in _EXPECTED_PEFT_WARNINGS:
            warnings.filterwarnings("ignore", message=pattern)
        yield


# ---------------------------------------------------------------------------------------------------------------------
# export
# ---------------------------------------------------------------------------------------------------------------------


@torch.no_grad()
def export_peft(
    gradiend,
    base_model: nn.Module,
    feature_factor: float | Sequence[float],
    learning_rate: float,
    save_directory: str | os.PathLike,
    rank: RankSpec = "full",
    *,
    part: str = "decoder",
    base_model_name_or_path: str | None = None,
    dtype: torch.dtype | None = None,
    evaluate_fn: Callable[[nn.Module], dict] | None = None,
    model_card: bool = True,
    repo_id: str | None = None,
    overwrite: bool = False,
) -> ExportReport:
    """Writes the rewrite `Δθ = learning_rate · u(feature_factor)` as a PEFT LoRA adapter.

    Linear and GPT-2 `Conv1D` weights become LoRA factors from a truncated SVD of their delta; their biases are
    carried exactly by `lora_B.bias`; every other covered module (norms, embeddings) and every module that shares a
    covered parameter (tied input/output embeddings) is stored whole in `modules_to_save`, exact. A tied embedding is
    therefore copied once for the input embedding and once for each tied head: PEFT's embedding LoRA would leave the
    head unchanged until the adapter is merged (and `ensure_weight_tying` applies the delta twice on merging), so the
    adapter would behave differently merged and unmerged. [`load_exported`] with `merge=True` ties the two copies
    again.

    The folder loads with plain `PeftModel.from_pretrained(base, save_directory)`. Only when some LoRA layers have a
    bias of their own and others do not (PEFT's `lora_bias` is per adapter, and merging it into a layer without bias
    fails), the bias-less ones go to a second adapter in `save_directory/no_bias/`; [`load_exported`] loads both.

    Args:
        gradiend ([`GradiendModel`]):
            The GRADIEND.
        base_model (`PreTrainedModel`):
            The model it was trained on; it is read, never changed (except temporarily during `evaluate_fn`).
        feature_factor (`float` or sequence of floats):
            Feature value fed to the decoder.
        learning_rate (`float`):
            Scale of the update.
        save_directory (`str` or `os.PathLike`):
            Output folder; written atomically (the adapter config is moved in last).
        rank (`int`, `float` or `"full"`, *optional*, defaults to `"full"`):
            Per-module LoRA rank: an int (clipped to `min(out, in)`), a float in (0, 1] (the smallest rank that keeps
            that share of the module's spectral energy, recorded in `rank_pattern` / `alpha_pattern`), or `"full"`
            (the delta is reproduced exactly up to floating point).
        part (`str`, *optional*, defaults to `"decoder"`):
            Which update, see [`GradiendModel.update`].
        base_model_name_or_path (`str`, *optional*):
            Recorded in `adapter_config.json`; defaults to the GRADIEND's base model, then to the model's own name.
        dtype (`torch.dtype`, *optional*):
            dtype of the stored tensors; defaults to each base parameter's dtype.
        evaluate_fn (`Callable[[nn.Module], dict]`, *optional*):
            Called on the base model, on the dense rewrite (applied in place and reverted) and on base + adapter
            (loaded unmerged and unloaded after); the three results are reported side by side.
        model_card (`bool`, *optional*, defaults to `True`):
            Write a `README.md` with the error table.
        repo_id (`str`, *optional*):
            Hub id the adapter will be pushed to, used in the card's quick start.
        overwrite (`bool`, *optional*, defaults to `False`):
            Replace another kind of artefact in `save_directory` (a GRADIEND, a model), which is refused otherwise.

    Returns:
        [`ExportReport`]: per-module ranks and errors, size in bytes and, with `evaluate_fn`, metrics.

    Raises:
        [`NonFiniteError`]: the feature factor or learning rate is not finite, or the rewrite makes weights or the
            logits on a probe input `nan` or infinite (no adapter of a broken model is written).
    """
    # ----- CHECKS -----

    validate_rank(rank)
    if isinstance(base_model, PeftModel):
        raise ExportError("Pass the plain base model, not a PeftModel: call `.get_base_model()` or unload it first.")
    gradiend.check_base_model(base_model)
    check_output_folder(save_directory, KIND_ADAPTER, overwrite=overwrite)
    check_rewrite_finite(gradiend, base_model, feature_factor, learning_rate, part=part)
    save_directory = os.path.abspath(os.fspath(save_directory))
    base_name = resolve_base_model_name(gradiend, base_model, base_model_name_or_path)
    objective = resolve_objective(gradiend, base_model)

    # ----- PREPARATION -----
    plan = plan_export(base_model, list(gradiend.param_names))
    if not plan.lora:
        raise ExportError(
            "The GRADIEND covers no Linear/Conv1D weight or bias, and a PEFT LoRA adapter needs at least one such "
            "target module. Save the dense rewrite instead: `gradiend.rewrite(base, ff, lr).save_pretrained(...)`."
        )
    lora_bias = plan.needs_lora_bias
    groups = {DEFAULT_ADAPTER: [t for t in plan.lora.values() if not lora_bias or t.has_base_bias]}
    no_bias = [t for t in plan.lora.values() if lora_bias and not t.has_base_bias]
    if no_bias:
        groups[NO_BIAS_ADAPTER] = no_bias
    folders = {name: os.path.join(save_directory, name) for name in groups}
    folders[DEFAULT_ADAPTER] = save_directory

    # ----- CONVERSION -----
    # The update streams one parameter at a time; a module is converted as soon as all of its covered parameters have
    # arrived, so at most a module's worth of dense deltas is held besides the (low-rank) adapter tensors.
    states = {name: {} for name in groups}
    ranks = {name: {} for name in groups}
    reports: list[ModuleReport] = []
    units = [("lora", name, target) for name, targets in groups.items() for target in targets]
    units += [("full", DEFAULT_ADAPTER, entry) for entry in plan.full.values()]
    missing = [_covered_names(unit) for _, _, unit in units]
    units_of: dict[str, list[int]] = {}
    for index, names in enumerate(missing):
        for param_name in names:
            units_of.setdefault(param_name, []).append(index)
    pending: dict[str, torch.Tensor] = {}
    counted: set[str] = set()
    for param_name, delta in gradiend.iter_update(feature_factor, learning_rate, part=part):
        pending[param_name] = delta
        for index in units_of.get(param_name, []):
            missing[index].discard(param_name)
            if missing[index]:
                continue
            kind, adapter, unit = units[index]
            if kind == "lora":
                group_bias = lora_bias and adapter == DEFAULT_ADAPTER
                state, unit_ranks, unit_reports = lora_state(
                    [unit], pending, rank, lora_bias=group_bias, adapter=adapter, dtype=dtype
                )
                ranks[adapter].update(unit_ranks)
            else:
                # ----- NON-LORA PARTS -----
                state, unit_reports = full_state([unit], pending, adapter=adapter, dtype=dtype, counted=counted)
            states[adapter].update(state)
            reports += unit_reports
        for done in [n for n in pending if not any(missing[i] for i in units_of.get(n, []))]:
            del pending[done]

    with atomic_folder(save_directory, KIND_ADAPTER, overwrite=overwrite) as staging:
        for name, targets in groups.items():
            is_default = name == DEFAULT_ADAPTER
            config = lora_config(
                ranks[name],
                lora_bias=lora_bias and is_default,
                modules_to_save=list(plan.full) if is_default and plan.full else None,
                fan_in_fan_out=any(t.is_conv1d for t in targets),
                task_type=objective.peft_task_type if objective else None,
                base_model_name_or_path=base_name,
                revision=gradiend.config.base_model_revision,
            )
            write_adapter(staging if is_default else os.path.join(staging, name), config, states.pop(name))
        manifest = {
            "format": "gradiend-peft",
            "format_version": FORMAT_VERSION,
            "adapters": {name: os.path.relpath(path, save_directory) for name, path in folders.items()},
            "feature_factor": _jsonable(feature_factor),
            "learning_rate": learning_rate,
            "part": part,
            "rank": rank,
            "base_model_name_or_path": base_name,
            "num_covered_parameters": len(gradiend.param_names),
        }
        report = finish_export(
            staging,
            MANIFEST_NAME,
            manifest,
            ExportReport(
                save_directory, folders, reports, 0, rank, learning_rate, feature_factor=_jsonable(feature_factor)
            ),
        )
        # ----- KEPT EFFECT -----
        if evaluate_fn is not None:
            # The staged folder is the finished adapter: evaluated before it replaces anything.
            report.metrics = evaluate_kept_effect(
                gradiend, base_model, feature_factor, learning_rate, str(staging), evaluate_fn, part=part
            )
        if model_card:
            card = {"base_model": base_name, "objective": objective, "gradiend_config": gradiend.config}
            write_adapter_card(staging, report, repo_id=repo_id, **card)
    return report


def _covered_names(unit: LoraTarget | FullModule) -> set[str]:
    if isinstance(unit, LoraTarget):
        return {name for name in (unit.weight, unit.bias) if name is not None}
    return set(unit.covered.values())


def _jsonable(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.tolist()
    if isinstance(value, (list, tuple)):
        return [float(v) for v in value]
    return value


def evaluate_kept_effect(
    gradiend,
    base_model: nn.Module,
    feature_factor: float | Sequence[float],
    learning_rate: float,
    adapter_directory: str,
    evaluate_fn: Callable[[nn.Module], dict],
    part: str = "decoder",
) -> dict[str, dict]:
    """Evaluates the base model, the dense rewrite and base + adapter with the same callable, without copying the model.

    The rewrite is applied in place and reverted bit for bit ([`RewriteSession`]); the adapter is loaded unmerged (as
    users run it) and unloaded again, and the base parameters' `requires_grad` flags are restored.

    Returns:
        `dict[str, dict]`: `{"base": …, "rewrite": …, "adapter": …}`, each what `evaluate_fn` returned.
    """
    metrics = {"base": dict(evaluate_fn(base_model))}
    with RewriteSession(base_model, gradiend) as session:
        session.apply(feature_factor, learning_rate, part=part)
        metrics["rewrite"] = dict(evaluate_fn(base_model))
    flags = [(p, p.requires_grad) for p in base_model.parameters()]
    peft_model = load_exported(base_model, adapter_directory)
    try:
        metrics["adapter"] = dict(evaluate_fn(peft_model))
    finally:
        unload_exported(peft_model)
        for param, flag in flags:
            param.requires_grad_(flag)
    return metrics


# ---------------------------------------------------------------------------------------------------------------------
# loading
# ---------------------------------------------------------------------------------------------------------------------


def read_manifest(directory: str | os.PathLike) -> dict:
    """The export manifest of `directory`; a plain PEFT adapter folder counts as one adapter named `"default"`."""
    path = os.path.join(os.fspath(directory), MANIFEST_NAME)
    if not os.path.isfile(path):
        return {"adapters": {DEFAULT_ADAPTER: "."}}
    with open(path) as f:
        return json.load(f)


def load_exported(base_model: nn.Module, directory: str | os.PathLike, merge: bool = False, **kwargs):
    """Loads an adapter folder written by [`export_peft`] onto `base_model` (changed in place, as PEFT does).

    Args:
        base_model (`PreTrainedModel`): The base model.
        directory (`str` or `os.PathLike`): The export folder (local).
        merge (`bool`, *optional*, defaults to `False`): Merge all adapters and return the plain model. Input and
            output embeddings that were tied before are tied again (PEFT unties them when it merges a
            `modules_to_save` copy; the two copies hold identical values).
        kwargs: Passed to `PeftModel.from_pretrained`.

    Returns:
        `PeftModel` with every exported adapter active, or the merged `PreTrainedModel` when `merge=True`.
    """

    directory = os.fspath(directory)
    adapters = read_manifest(directory)["adapters"]
    names = list(adapters)
    tied = _embeddings_tied(base_model)
    with quiet_peft_tie_warnings():
        model = PeftModel.from_pretrained(
            base_model, os.path.join(directory, adapters[names[0]]), adapter_name=names[0], **kwargs
        )
        for name in names[1:]:
            model.load_adapter(os.path.join(directory, adapters[name]), adapter_name=name)
        if len(names) > 1:
            model.base_model.set_adapter(names, inference_mode=True)
        if not merge:
            return model
        merged = model.merge_and_unload(adapter_names=names)
    if tied:
        retie_embeddings(merged)
    return merged


def unload_exported(peft_model) -> nn.Module:
    """Removes every adapter from a model loaded with [`load_exported`] and returns the base model as it was.

    PEFT's own `unload()` keeps the `modules_to_save` copies in the model (it returns "the wrapped module", i.e. the
    adapter's norms and embeddings); this puts the original modules back, so the base model is unchanged bit for bit.
    """

    base_model = peft_model.get_base_model()
    originals = [
        (name, module.original_module)
        for name, module in base_model.named_modules()
        if isinstance(module, ModulesToSaveWrapper)
    ]
    base_model = peft_model.unload()
    for name, original in originals:
        parent, _, child = name.rpartition(".")
        setattr(base_model.get_submodule(parent), child, original)
    return base_model


def _embeddings_tied(model: nn.Module) -> bool:
    try:
        inp, out = model.get_input_embeddings(), model.get_output_embeddings()
    except (AttributeError, NotImplementedError):
        return False
    return inp is not None and out is not None and out.weight is inp.weight


def retie_embeddings(model: nn.Module) -> bool:
    """Ties the output embedding to the input embedding again if their values are identical.

    Returns:
        `bool`: whether they are tied afterwards.
    """
    inp, out = model.get_input_embeddings(), model.get_output_embeddings()
    if out.weight is inp.weight:
        return True
    if out.weight.shape != inp.weight.shape or not torch.equal(out.weight, inp.weight):
        return False
    out.weight = inp.weight
    config = getattr(model, "config", None)
    if config is not None and hasattr(config, "tie_word_embeddings"):
        config.tie_word_embeddings = True
    return True
