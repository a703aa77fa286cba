"""The model card of a rewritten model: which GRADIEND rewrote which base model how, and what it measured."""

from __future__ import annotations

import logging
import math

from huggingface_hub import ModelCard, ModelCardData

from .benchmark_card import benchmark_model_index, benchmark_section
from .card_utils import KNOWN_LICENSES, fmt, framework_versions, hub_id, link, render
from .configuration_gradiend import SelectedRewrite
from .objectives import ObjectiveError, detect_objective, objective_class


logger = logging.getLogger(__name__)

TEMPLATE = "rewrite_card.md"


def intent_of(report) -> SelectedRewrite | None:
    """The selection of a decoder report as a [`SelectedRewrite`], which says what it aims at and how it was chosen."""
    if report is None:
        return None
    if report.selected is None:
        return SelectedRewrite(math.nan, math.nan, report.target_class, bool(report.strengthen), report.policy)
    return SelectedRewrite.from_report(report)


def measured_row(report, feature_factor, learning_rate) -> dict | None:
    """The grid row of a decoder report that measured `(feature_factor, learning_rate)`, or `None`."""
    if report is None or feature_factor is None or learning_rate is None:
        return None
    grid = report.grid
    hits = grid[
        grid["feature_factor"].map(lambda f: math.isclose(f, feature_factor, rel_tol=1e-9, abs_tol=1e-12))
        & grid["learning_rate"].map(lambda r: math.isclose(r, learning_rate, rel_tol=1e-9, abs_tol=1e-12))
    ]
    return None if hits.empty else hits.iloc[0].to_dict()


def measurements(report, row, classes, objective: str | None) -> tuple[list[dict], list[dict], str | None]:
    """Before/after table rows of the class probabilities and the LMS of a measured rewrite, and the sentence that
    explains them."""
    if row is None:
        return [], [], None
    base = report.base
    probability_rows = [
        {
            "name": f"P({name}) on `{on}` rows",
            "before": fmt(base[f"prob_{name}_on_{on}"]),
            "after": fmt(row[f"prob_{name}_on_{on}"]),
        }
        for on in classes
        for name in classes
    ]
    lms_rows = [{"name": "Language-modelling score", "before": fmt(base["lms"]), "after": fmt(row["lms"])}]
    if "perplexity" in row:
        lms_rows.append({"name": "Perplexity", "before": fmt(base["perplexity"]), "after": fmt(row["perplexity"])})
    counts = ", ".join(f"{n} `{c}` rows" for c, n in report.num_rows.items())
    lms_kind = objective_class(objective).lms_description if objective else "language-modelling score"
    sentence = (
        f"Mean probability of each class's words at the blank of held-out sentences ({counts}), and the "
        f"language-modelling score ({lms_kind}) on {report.num_lms_texts} neutral texts."
    )
    return probability_rows, lms_rows, sentence


def build_rewrite_card(model, gradiend=None, decoder_report=None, **kwargs) -> ModelCard:
    """Renders the model card of a rewritten model (see [`rewrite_card`] for the arguments)."""
    card_data, values = rewrite_card(model, gradiend, decoder_report, **kwargs)
    return render(card_data, TEMPLATE, **values)


def rewrite_card(
    model,
    gradiend=None,
    decoder_report=None,
    feature_factor: float | None = None,
    learning_rate: float | None = None,
    model_id: str = "path/to/rewritten-model",
    tags: list[str] | None = None,
    benchmark_reports=None,
) -> tuple[ModelCardData, dict]:
    """The card data and template values of a rewritten model's card (see [`save_rewritten`] for the arguments).

    Returns:
        `tuple`: `(ModelCardData, template values)`, for [`gradiend_hf.card_utils.write_card`].
    """
    gconfig = gradiend.config if gradiend is not None else None
    base_name = (gconfig.base_model_name_or_path if gconfig is not None else None) or model.config._name_or_path
    base_id = hub_id(base_name)
    gradiend_name = (gconfig._name_or_path if gconfig is not None else None) or None
    gradiend_id = hub_id(gradiend_name)
    try:
        objective = detect_objective(model)
    except ObjectiveError:
        objective = None
    family = objective_class(objective) if objective else None
    classes = list(
        (gconfig.feature_classes if gconfig is not None else None)
        or (decoder_report.feature_classes if decoder_report is not None else None)
        or []
    )
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
        pipeline_tag=family.pipeline_tag if family else None,
        tags=card_tags,
        **{"model-index": benchmark_model_index(benchmark_reports, model_id)} if benchmark_reports is not None else {},
    )

    row = measured_row(decoder_report, feature_factor, learning_rate)
    if decoder_report is not None and row is None and (feature_factor is not None or learning_rate is not None):
        logger.warning(
            "The decoder report did not measure feature_factor=%s, learning_rate=%s; the card omits its numbers.",
            feature_factor,
            learning_rate,
        )
    selection = intent_of(decoder_report)
    intent = selection.intent if selection else None
    title = f"{base_id.split('/')[-1]} rewritten with GRADIEND" if base_id else "Rewritten with GRADIEND"
    if intent and decoder_report.policy != "balance":
        title += f" ({'+' if decoder_report.strengthen else '−'}{decoder_report.target_class})"
    has_config = gconfig is not None
    rewrite_rows = [
        ("Base model", link(base_name, base_id)),
        (
            "Base model revision",
            f"`{gconfig.base_model_revision}`" if gconfig is not None and gconfig.base_model_revision else None,
        ),
        ("GRADIEND", link(gradiend_name, gradiend_id)),
        ("Feature", feature),
        ("GRADIEND gradients", f"source `{gconfig.source}`, target `{gconfig.target}`" if has_config else None),
        ("Rewritten base parameters", f"{gconfig.num_base_parameters:,} entries" if has_config else None),
        ("Feature factor", fmt(feature_factor) if feature_factor is not None else None),
        ("Learning rate", fmt(learning_rate) if learning_rate is not None else None),
        ("Intent", intent),
        ("Selection", selection.selection if selection else None),
    ]
    probability_rows, lms_rows, evaluation_sentence = measurements(decoder_report, row, classes, objective)
    return card_data, dict(
        title=title,
        model_id=model_id,
        auto_class=family.auto_class if family else "AutoModel",
        base_model_link=link(base_name, base_id) if base_name else None,
        gradiend_link=link(gradiend_name, gradiend_id),
        feature=feature,
        rewrite_rows=[(name, value) for name, value in rewrite_rows if value is not None],
        effect_sentence=f"It was rewritten to {intent}." if intent else None,
        probability_rows=probability_rows,
        lms_rows=lms_rows,
        evaluation_sentence=evaluation_sentence,
        **benchmark_section(benchmark_reports),
        versions=framework_versions(("gradiend-hf", "transformers", "torch", "huggingface_hub")),
    )
