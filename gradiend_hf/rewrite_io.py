"""Saving a rewritten base model with its tokenizer and a model card that says how it was rewritten."""

from __future__ import annotations

import importlib.metadata
import importlib.resources
import logging
import math
import os
import re
import shutil
import tempfile

from huggingface_hub import ModelCard, ModelCardData
from huggingface_hub.utils import HFValidationError, validate_repo_id

from .objectives import detect_objective


logger = logging.getLogger(__name__)

_AUTO_CLASSES = {"masked_lm": "AutoModelForMaskedLM", "causal_lm": "AutoModelForCausalLM"}
_PIPELINE_TAGS = {"masked_lm": "fill-mask", "causal_lm": "text-generation"}


def hub_id(name: str | None) -> str | None:
    """`name` when it looks like a Hub repo id and is not a local folder, else `None`."""
    if not name or os.path.exists(name) or name.startswith((".", "/", "~")):
        return None
    try:
        validate_repo_id(name)
    except HFValidationError:
        return None
    return name


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
) -> str:
    """Saves a rewritten model, its tokenizer and a model card (README.md) into `save_directory`.

    `model` must already be rewritten (e.g. `gradiend.rewrite(base, ff, lr)`); this function does not change it.
    The card names the base model, the GRADIEND, the feature factor and learning rate and, when `decoder_report`
    measured this rewrite, the class probabilities and language-modelling score before and after. Facts that are
    not known are left out. The files are written to a temporary folder first and moved into place with
    `config.json` last, so an interrupted save never leaves a folder that loads as a half-written model.

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

    Returns:
        `str`: `save_directory`.
    """
    save_directory = os.fspath(save_directory)
    if os.path.isfile(save_directory):
        raise ValueError(f"Cannot save the rewritten model to {save_directory!r}: it is a file, not a folder.")
    selected = getattr(decoder_report, "selected", None)
    if feature_factor is None and selected is not None:
        feature_factor = selected.feature_factor
    if learning_rate is None and selected is not None:
        learning_rate = selected.learning_rate
    card = build_rewrite_card(
        model, gradiend, decoder_report, feature_factor, learning_rate, model_id or save_directory, tags
    )

    os.makedirs(save_directory, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=".gradiend-rewrite-", dir=save_directory)
    try:
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        card.save(os.path.join(staging, "README.md"))
        written = sorted(os.listdir(staging), key=lambda name: (name == "config.json", name))
        for old in os.listdir(save_directory):
            # Weight shards of an earlier save that this one does not overwrite would be read with the new index.
            is_weights = old.startswith(("model", "pytorch_model")) and old.endswith((".safetensors", ".bin", ".json"))
            if is_weights and old not in written and not old.startswith(".gradiend-rewrite-"):
                os.remove(os.path.join(save_directory, old))
        for name in written:
            os.replace(os.path.join(staging, name), os.path.join(save_directory, name))
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return save_directory


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
        base_model=base_id,
        base_model_relation="finetune" if base_id else None,
        pipeline_tag=_PIPELINE_TAGS.get(objective),
        tags=card_tags,
    )

    row = _measured_row(decoder_report, feature_factor, learning_rate)
    if decoder_report is not None and row is None and (feature_factor is not None or learning_rate is not None):
        logger.warning(
            "The decoder report did not measure feature_factor=%s, learning_rate=%s; the card omits its numbers.",
            feature_factor,
            learning_rate,
        )
    intent = _intent(decoder_report)
    title = f"{base_id.split('/')[-1]} rewritten with GRADIEND" if base_id else "Rewritten with GRADIEND"
    if intent and decoder_report.policy != "balance":
        title += f" ({'+' if decoder_report.strengthen else '−'}{decoder_report.target_class})"
    has_config = gconfig is not None
    rewrite_rows = [
        ("Base model", _link(base_name, base_id)),
        ("GRADIEND", _link(gradiend_name, gradiend_id)),
        ("Feature", feature),
        ("GRADIEND gradients", f"source `{gconfig.source}`, target `{gconfig.target}`" if has_config else None),
        ("Rewritten base parameters", f"{gconfig.num_base_parameters:,} entries" if has_config else None),
        ("Feature factor", _fmt(feature_factor) if feature_factor is not None else None),
        ("Learning rate", _fmt(learning_rate) if learning_rate is not None else None),
        ("Intent", intent),
        ("Selection", _policy_text(decoder_report)),
    ]
    probability_rows, lms_rows, evaluation_sentence = _measurements(decoder_report, row, classes, objective)
    card = ModelCard.from_template(
        card_data,
        template_path=str(importlib.resources.files("gradiend_hf") / "templates" / "rewrite_card.md"),
        title=title,
        model_id=model_id,
        auto_class=_AUTO_CLASSES.get(objective, "AutoModel"),
        base_model_link=_link(base_name, base_id) if base_name else None,
        gradiend_link=_link(gradiend_name, gradiend_id),
        feature=feature,
        rewrite_rows=[(name, value) for name, value in rewrite_rows if value is not None],
        effect_sentence=f"It was rewritten to {intent}." if intent else None,
        probability_rows=probability_rows,
        lms_rows=lms_rows,
        evaluation_sentence=evaluation_sentence,
        versions=_versions(),
    )
    # Optional rows and sections leave blank lines behind; a card has at most one blank line in a row.
    return ModelCard(re.sub(r"\n{3,}", "\n\n", card.content))


def _intent(report) -> str | None:
    if report is None:
        return None
    if report.policy == "balance":
        return "make the two classes equally likely (debiasing)"
    if report.target_class is None:
        return None
    return f"{'strengthen' if report.strengthen else 'weaken'} class `{report.target_class}`"


def _policy_text(report) -> str | None:
    if report is None:
        return None
    return {
        "lms_threshold": "best score among rewrites that keep ≥ 99 % of the base model's language-modelling score",
        "balance": "most balanced class probabilities among rewrites that keep ≥ 99 % of the base LMS",
    }.get(report.policy, f"custom policy `{report.policy}`")


def _measurements(report, row, classes, objective) -> tuple[list[dict], list[dict], str | None]:
    """Before/after table rows of the class probabilities and the LMS, and the sentence that explains them."""
    if row is None:
        return [], [], None
    base = report.base
    probability_rows = [
        {
            "name": f"P({name}) on `{on}` rows",
            "before": _fmt(base[f"prob_{name}_on_{on}"]),
            "after": _fmt(row[f"prob_{name}_on_{on}"]),
        }
        for on in classes
        for name in classes
    ]
    lms_rows = [{"name": "Language-modelling score", "before": _fmt(base["lms"]), "after": _fmt(row["lms"])}]
    if "perplexity" in row:
        lms_rows.append({"name": "Perplexity", "before": _fmt(base["perplexity"]), "after": _fmt(row["perplexity"])})
    counts = ", ".join(f"{n} `{c}` rows" for c, n in report.num_rows.items())
    lms_kind = "accuracy on randomly masked tokens" if objective == "masked_lm" else "1 / (1 + mean next-token NLL)"
    sentence = (
        f"Mean probability of each class's words at the blank of held-out sentences ({counts}), and the "
        f"language-modelling score ({lms_kind}) on {report.num_lms_texts} neutral texts."
    )
    return probability_rows, lms_rows, sentence


def _measured_row(report, feature_factor, learning_rate):
    if report is None or feature_factor is None or learning_rate is None:
        return None
    grid = report.grid
    hits = grid[
        grid["feature_factor"].map(lambda f: math.isclose(f, feature_factor, rel_tol=1e-9, abs_tol=1e-12))
        & grid["learning_rate"].map(lambda r: math.isclose(r, learning_rate, rel_tol=1e-9, abs_tol=1e-12))
    ]
    return None if hits.empty else hits.iloc[0].to_dict()


def _link(name: str | None, repo_id: str | None) -> str | None:
    if not name:
        return None
    return f"[{repo_id}](https://huggingface.co/{repo_id})" if repo_id else f"`{name}`"


def _fmt(value) -> str:
    value = float(value)
    if math.isinf(value):
        return "∞"
    return f"{value:.4g}"


def _versions() -> list[tuple[str, str]]:
    out = []
    for name in ("gradiend-hf", "transformers", "torch", "huggingface_hub"):
        try:
            out.append((name, importlib.metadata.version(name)))
        except importlib.metadata.PackageNotFoundError:
            continue
    return out
