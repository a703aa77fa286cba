"""The README card of an exported adapter (`templates/adapter_card.md`, rendered with `huggingface_hub`)."""

from __future__ import annotations

import importlib.metadata
import os
from importlib import resources
from typing import Any

from huggingface_hub import ModelCard, ModelCardData

from .report import ExportReport


TEMPLATE = "adapter_card.md"


def is_hub_id(name: str | None) -> bool:
    """Whether `name` looks like a Hub repo id rather than a local folder (the Hub rejects local paths as
    `base_model`)."""
    if not name or os.path.isdir(name) or os.path.isabs(name) or name.startswith((".", "~")):
        return False
    return name.count("/") <= 1


def _versions() -> dict[str, str]:
    versions = {}
    for dist in ("gradiend-hf", "peft", "transformers", "torch", "huggingface_hub"):
        try:
            versions[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


def _format(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def render_adapter_card(
    report: ExportReport,
    *,
    base_model: str | None,
    objective: str | None,
    gradiend_config: Any = None,
    steering: bool = False,
    dense_deltas: str | None = None,
    repo_id: str | None = None,
) -> ModelCard:
    """Renders the adapter card.

    Args:
        report ([`ExportReport`]): What was exported (error table, size, metrics).
        base_model (`str`, *optional*): Base model id or path; recorded as `base_model` only if it is a Hub id.
        objective (`str`, *optional*): `"masked_lm"` or `"causal_lm"`, for the pipeline tag and the quick start.
        gradiend_config ([`GradiendConfig`], *optional*): For the feature classes.
        steering (`bool`, *optional*, defaults to `False`): A steering export instead of a static adapter.
        dense_deltas (`str`, *optional*): File name of the dense steering deltas.
        repo_id (`str`, *optional*): Hub id the card will live under; the quick start uses the local folder otherwise.

    Returns:
        `huggingface_hub.ModelCard`
    """
    hub_base = base_model if is_hub_id(base_model) else None
    tags = ["gradiend", "lora"] + (["steering"] if steering else [])
    if hub_base:
        tags.append(f"base_model:adapter:{hub_base}")
    card_data = ModelCardData(
        library_name="peft",
        base_model=hub_base,
        base_model_relation="adapter" if hub_base else None,
        pipeline_tag={"causal_lm": "text-generation", "masked_lm": "fill-mask"}.get(objective or ""),
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
    template = resources.files("gradiend_hf").joinpath("templates", TEMPLATE)
    with resources.as_file(template) as template_path:
        return ModelCard.from_template(
            card_data,
            template_path=str(template_path),
            title=f"GRADIEND {'steering adapters' if steering else 'LoRA adapter'} for {base_model or 'a base model'}",
            base_model=base_model or "<base model>",
            base_model_url=f"https://huggingface.co/{hub_base}" if hub_base else None,
            feature_classes=getattr(gradiend_config, "feature_classes", None),
            positive_class=getattr(gradiend_config, "positive_class", None),
            feature_factor=report.feature_factor,
            learning_rate=report.learning_rate,
            rank=report.rank,
            steering=steering,
            dense_deltas=dense_deltas,
            adapters=report.adapters,
            extra_adapters=extra,
            adapter_names=list(report.adapters),
            repo_or_path=repo_id or report.save_directory,
            auto_class="AutoModelForMaskedLM" if objective == "masked_lm" else "AutoModelForCausalLM",
            size_mb=f"{report.size_mb:.2f}",
            error_table=report.to_markdown(),
            metrics=metrics,
            metric_names=metric_names,
            versions=_versions(),
        )
