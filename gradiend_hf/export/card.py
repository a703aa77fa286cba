"""The README card of an exported adapter (`templates/adapter_card.md`, rendered with `huggingface_hub`)."""

from __future__ import annotations

import os
from typing import Any

from huggingface_hub import ModelCard, ModelCardData

from ..card_utils import fmt, framework_versions, hub_id, render, write_card
from .report import ExportReport


TEMPLATE = "adapter_card.md"
VERSIONS = ("gradiend-hf", "peft", "transformers", "torch", "huggingface_hub")


def adapter_card(
    report: ExportReport,
    *,
    base_model: str | None,
    objective=None,
    gradiend_config: Any = None,
    steering: bool = False,
    dense_deltas: str | None = None,
    repo_id: str | None = None,
) -> tuple[ModelCardData, dict[str, Any]]:
    """The card data and the template values of an adapter card.

    Args:
        report ([`ExportReport`]): What was exported (error table, size, metrics).
        base_model (`str`, *optional*): Base model id or path; recorded as `base_model` only if it is a Hub id.
        objective ([`Objective`] class, *optional*): The GRADIEND's objective, for the pipeline tag and the quick
            start.
        gradiend_config ([`GradiendConfig`], *optional*): For the feature classes.
        steering (`bool`, *optional*, defaults to `False`): A steering export instead of a static adapter.
        dense_deltas (`str`, *optional*): File name of the dense steering deltas.
        repo_id (`str`, *optional*): Hub id the card will live under; the quick start uses the local folder otherwise.

    Returns:
        `tuple`: `(ModelCardData, template values)`, for [`gradiend_hf.card_utils.write_card`].
    """
    hub_base = hub_id(base_model)
    tags = ["gradiend", "lora"] + (["steering"] if steering else [])
    if hub_base:
        tags.append(f"base_model:adapter:{hub_base}")
    card_data = ModelCardData(
        library_name="peft",
        base_model=hub_base,
        base_model_relation="adapter" if hub_base else None,
        pipeline_tag=objective.pipeline_tag if objective else None,
        tags=tags,
    )
    extra = {name: os.path.relpath(path, report.save_directory) for name, path in report.adapters.items()}
    extra = {name: folder for name, folder in extra.items() if folder != "."}
    metric_names: list[str] = []
    metrics = None
    if report.metrics:
        for row in report.metrics.values():
            metric_names += [key for key in row if key not in metric_names]
        metrics = {
            row: {key: _format(values.get(key, "")) for key in metric_names} for row, values in report.metrics.items()
        }
    values = dict(
        title=f"GRADIEND {'steering adapters' if steering else 'LoRA adapter'} for {base_model or 'a base model'}",
        base_model=base_model or "<base model>",
        base_model_url=f"https://huggingface.co/{hub_base}" if hub_base else None,
        feature_classes=gradiend_config.feature_classes if gradiend_config is not None else None,
        positive_class=gradiend_config.positive_class if gradiend_config is not None else None,
        feature_factor=report.feature_factor,
        learning_rate=report.learning_rate,
        rank=report.rank,
        steering=steering,
        dense_deltas=dense_deltas,
        extra_adapters=extra,
        adapter_names=list(report.adapters),
        model_id=repo_id or report.save_directory,
        auto_class=objective.auto_class if objective else "AutoModel",
        size_mb=f"{report.size_mb:.2f}",
        error_table=report.to_markdown(),
        metrics=metrics,
        metric_names=metric_names,
        versions=framework_versions(VERSIONS),
    )
    return card_data, values


def render_adapter_card(report: ExportReport, **kwargs: Any) -> ModelCard:
    """Renders the adapter card (see [`adapter_card`] for the arguments)."""
    card_data, values = adapter_card(report, **kwargs)
    return render(card_data, TEMPLATE, **values)


def write_adapter_card(folder: str | os.PathLike, report: ExportReport, **kwargs: Any) -> ModelCard:
    """Writes the adapter card into `folder` (see [`adapter_card`] for the arguments)."""
    card_data, values = adapter_card(report, **kwargs)
    return write_card(folder, card_data, TEMPLATE, **values)


def _format(value: Any) -> str:
    return fmt(value) if isinstance(value, float) else str(value)
