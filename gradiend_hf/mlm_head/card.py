"""The model card of an [`MLMHeadModel`]: what it predicts, how it pools, how it was trained, how to load it."""

from __future__ import annotations

import os

from huggingface_hub import ModelCard, ModelCardData

from ..card_utils import fmt, framework_versions, hub_id, write_card
from .configuration import MLMHeadConfig


TEMPLATE = "mlm_head_card.md"
VERSIONS = ("gradiend-hf", "transformers", "torch")


def mlm_head_card_values(config: MLMHeadConfig, model_id: str) -> tuple[ModelCardData, dict]:
    """The card data and template values of a head's card.

    Args:
        config ([`MLMHeadConfig`]): The head's config.
        model_id (`str`): Hub id or folder the quick start loads the head from.

    Returns:
        `tuple`: `(ModelCardData, template values)`.
    """
    base = config.base_model_name_or_path
    hub_base = hub_id(base)
    card_data = ModelCardData(
        library_name="gradiend-hf",
        base_model=hub_base,
        tags=["gradiend", "gradiend-mlm-head"],
    )
    summary = {key: fmt(value) for key, value in (config.training_summary or {}).items()}
    values = dict(
        title=f"MLM head for {base or 'a decoder-only model'}",
        base_model=base or "<base model>",
        base_model_url=f"https://huggingface.co/{hub_base}" if hub_base else None,
        mask_token=config.mask_token,
        pooling_length=config.pooling_length,
        labels=list(config.labels),
        label_classes=dict(config.label_classes or {}),
        summary=summary,
        model_id=os.fspath(model_id),
        versions=framework_versions(VERSIONS),
    )
    return card_data, values


def build_mlm_head_card(config: MLMHeadConfig, model_id: str, folder: str | os.PathLike) -> ModelCard:
    """Writes the head's card into `folder/README.md` (with the state a push renders it again from)."""
    card_data, values = mlm_head_card_values(config, model_id)
    return write_card(folder, card_data, TEMPLATE, **values)
