"""Saving a rewritten base model with its tokenizer and a model card that says how it was rewritten."""

from __future__ import annotations

import logging
import os

from .artefacts import KIND_REWRITE, check_output_folder
from .card_utils import write_card
from .io import atomic_folder
from .rewrite import check_logits_finite, check_rewrite_numbers
from .rewrite_card import TEMPLATE, rewrite_card


logger = logging.getLogger(__name__)


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
    benchmark_reports=None,
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
        benchmark_reports (*optional*): Bias benchmarks of the rewrite ([`evaluate_bias`] reports, ideally
            `{"base": …, "rewritten": …}`, or the path of a `benchmarks.json` of `gradiend-hf benchmark`): the card
            then shows their table and lists the rewritten model's scores as `model-index` eval results.

    Returns:
        `str`: `save_directory`.

    Raises:
        [`GradiendSaveError`]: the folder is a file, not writable, or holds another kind of artefact.
        [`BenchmarkError`]: `benchmark_reports` is not a report or a readable `benchmarks.json`.
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
    card_data, values = rewrite_card(
        model,
        gradiend,
        decoder_report,
        feature_factor,
        learning_rate,
        model_id or os.fspath(save_directory),
        tags,
        benchmark_reports,
    )
    with atomic_folder(save_directory, KIND_REWRITE, overwrite=overwrite) as staging:
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        write_card(staging, card_data, TEMPLATE, **values)
    return os.fspath(save_directory)
