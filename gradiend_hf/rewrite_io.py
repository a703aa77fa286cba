"""Saving a rewritten base model with its tokenizer and a model card that says how it was rewritten."""

from __future__ import annotations

import logging
import os

from huggingface_hub import ModelCard, ModelCardData

from .io import KIND_REWRITE, atomic_folder, check_output_folder
from .model_card import (
    KNOWN_LICENSES,
    fmt,
    framework_versions,
    hub_id,
    intent_text,
    link,
    measured_row,
    measurements,
    policy_text,
    render,
)
from .objectives import detect_objective
from .rewrite import check_logits_finite, check_rewrite_numbers


logger = logging.getLogger(__name__)

_AUTO_CLASSES = {"masked_lm": "AutoModelForMaskedLM", "causal_lm": "AutoModelForCausalLM"}
_PIPELINE_TAGS = {"masked_lm": "fill-mask", "causal_lm": "text-generation"}


def save_rewritten(
    model,
    tokenizer,
    save_directory: str | os.PathLike,
    gradiend=None,
    decoder_report=None,
    feature_factor: float | None = None,
    learning_rate: float | None = None,
    model_id: str | None = None,
    tags: list[str] | None = None,
    overwrite: bool = False,
) -> str:
    """Saves a rewritten model, its tokenizer and a model card (README.md) into `save_directory`.

    `model` must already be rewritten (e.g. `gradiend.rewrite(base, ff, lr)`); this function does not change it.
    The card names the base model, the GRADIEND, the feature factor and learning rate and, when `decoder_report`
    measured this rewrite, the class probabilities and language-modelling score before and after. Facts that are
    not known are left out. The folder is written through [`gradiend_hf.io.atomic_folder`]: an interrupted save
    leaves the previous content or the new one, whole, and files of the user's in the folder are kept.

    Args:
        model (`PreTrainedModel`): The rewritten masked or causal LM.
        tokenizer: Its tokenizer (saved alongside, so the folder loads on its own).
        save_directory (`str` or `os.PathLike`): Target folder (created if missing).
        gradiend ([`GradiendModel`], *optional*): The GRADIEND that made the rewrite.
        decoder_report ([`DecoderReport`], *optional*): The decoder evaluation that chose (or measured) the rewrite.
        feature_factor (`float`, *optional*): Feature factor of the rewrite; defaults to the report's selection.
        learning_rate (`float`, *optional*): Learning rate of the rewrite; defaults to the report's selection.
        model_id (`str`, *optional*): Name used in the card's quick-start snippet (e.g. the Hub repo id you will push
            to); defaults to `save_directory`.
        tags (`list[str]`, *optional*): Extra card tags.
        overwrite (`bool`, *optional*, defaults to `False`): Replace another kind of artefact in the folder (a
            GRADIEND, an adapter, a model gradiend-hf did not write), which is refused otherwise.

    Returns:
        `str`: `save_directory`.

    Raises:
        [`GradiendSaveError`]: the folder is a file, not writable, or holds another kind of artefact.
        [`NonFiniteError`]: the feature factor or learning rate is not finite, or the model's logits on a probe
            input are `nan` or infinite (a broken model is never saved).
    """
    check_output_folder(save_directory, KIND_REWRITE, overwrite=overwrite)
    selected = getattr(decoder_report, "selected", None)
    if feature_factor is None and selected is not None:
        feature_factor = selected.feature_factor
    if learning_rate is None and selected is not None:
        learning_rate = selected.learning_rate
    if feature_factor is not None or learning_rate is not None:
        check_rewrite_numbers(0.0 if feature_factor is None else feature_factor, learning_rate or 0.0)
    check_logits_finite(model)
    card = build_rewrite_card(
        model, gradiend, decoder_report, feature_factor, learning_rate, model_id or os.fspath(save_directory), tags
    )
    with atomic_folder(save_directory, KIND_REWRITE, overwrite=overwrite) as staging:
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        card.save(os.path.join(staging, "README.md"))
    return os.fspath(save_directory)


def build_rewrite_card(
    model,
    gradiend=None,
    decoder_report=None,
    feature_factor: float | None = None,
    learning_rate: float | None = None,
    model_id: str = "path/to/rewritten-model",
    tags: list[str] | None = None,
) -> ModelCard:
    """Renders the model card of a rewritten model from `templates/rewrite_card.md` (see [`save_rewritten`])."""
    gconfig = getattr(gradiend, "config", None)
    base_name = getattr(gconfig, "base_model_name_or_path", None) or getattr(model.config, "_name_or_path", None)
    base_id = hub_id(base_name)
    gradiend_name = getattr(gconfig, "_name_or_path", None) or None
    gradiend_id = hub_id(gradiend_name)
    try:
        objective = detect_objective(model)
    except ValueError:
        objective = None
    classes = list(getattr(gconfig, "feature_classes", None) or getattr(decoder_report, "feature_classes", None) or [])
    feature = " vs ".join(f"`{name}`" for name in classes) if classes else None

    card_tags = ["gradiend", "gradiend-hf", "rewritten"]
    if decoder_report is not None and decoder_report.policy == "balance":
        card_tags.append("debiased")
    card_tags += [tag for tag in tags or [] if tag not in card_tags]
    card_data = ModelCardData(
        library_name="transformers",
        license=KNOWN_LICENSES.get(base_id),
        base_model=base_id,
        base_model_relation="finetune" if base_id else None,
        pipeline_tag=_PIPELINE_TAGS.get(objective),
        tags=card_tags,
    )

    row = measured_row(decoder_report, feature_factor, learning_rate)
    if decoder_report is not None and row is None and (feature_factor is not None or learning_rate is not None):
        logger.warning(
            "The decoder report did not measure feature_factor=%s, learning_rate=%s; the card omits its numbers.",
            feature_factor,
            learning_rate,
        )
    intent = intent_text(decoder_report)
    title = f"{base_id.split('/')[-1]} rewritten with GRADIEND" if base_id else "Rewritten with GRADIEND"
    if intent and decoder_report.policy != "balance":
        title += f" ({'+' if decoder_report.strengthen else '−'}{decoder_report.target_class})"
    has_config = gconfig is not None
    rewrite_rows = [
        ("Base model", link(base_name, base_id)),
        (
            "Base model revision",
            f"`{gconfig.base_model_revision}`" if getattr(gconfig, "base_model_revision", None) else None,
        ),
        ("GRADIEND", link(gradiend_name, gradiend_id)),
        ("Feature", feature),
        ("GRADIEND gradients", f"source `{gconfig.source}`, target `{gconfig.target}`" if has_config else None),
        ("Rewritten base parameters", f"{gconfig.num_base_parameters:,} entries" if has_config else None),
        ("Feature factor", fmt(feature_factor) if feature_factor is not None else None),
        ("Learning rate", fmt(learning_rate) if learning_rate is not None else None),
        ("Intent", intent),
        ("Selection", policy_text(decoder_report)),
    ]
    probability_rows, lms_rows, evaluation_sentence = measurements(decoder_report, row, classes, objective)
    return render(
        card_data,
        "rewrite_card.md",
        title=title,
        model_id=model_id,
        auto_class=_AUTO_CLASSES.get(objective, "AutoModel"),
        base_model_link=link(base_name, base_id) if base_name else None,
        gradiend_link=link(gradiend_name, gradiend_id),
        feature=feature,
        rewrite_rows=[(name, value) for name, value in rewrite_rows if value is not None],
        effect_sentence=f"It was rewritten to {intent}." if intent else None,
        probability_rows=probability_rows,
        lms_rows=lms_rows,
        evaluation_sentence=evaluation_sentence,
        versions=framework_versions(("gradiend-hf", "transformers", "torch", "huggingface_hub")),
    )
