"""Model cards (README.md) of GRADIENDs, and the formatting helpers the rewrite card shares.

A card is rendered like trl's and setfit's: a card-data object ([`GradiendModelCardData`]) holds the facts, the Jinja
template `templates/gradiend_card.md` (shipped in the package) turns them into markdown, and only an allow-list of
fields goes into the YAML front matter the Hub reads. Facts that are not known are left out, never rendered as empty
headings or placeholders.

- [`GradiendModel.save_pretrained`] writes a basic card from the config alone (covered parameters, feature classes,
  the training summary the trainer recorded, the chosen rewrite if one was recorded).
- [`write_gradiend_card`] writes the full card once the GRADIEND is evaluated: test metrics, the chosen rewrite and
  its measured effect, figures, the training data and hyper-parameters.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from huggingface_hub import CardData, ModelCard
from huggingface_hub.utils import yaml_dump

from . import model_card_sections as sections
from .artefacts import KIND_GRADIEND
from .benchmark_card import benchmark_model_index, benchmark_section
from .card_utils import KNOWN_LICENSES, framework_versions, hub_id, link, render, signed, write_card
from .errors import GradiendError, GradiendFileNotFoundError
from .io import atomic_folder


logger = logging.getLogger(__name__)

TEMPLATE = "gradiend_card.md"

# --------------------------------------------------------------------------- facts recorded in the config


@dataclass
class GradiendCardFacts:
    """What a full GRADIEND card reports beyond the config, in one object (see [`write_gradiend_card`]).

    Args:
        encoder_report ([`EncoderReport`], *optional*): Test metrics of the encoder.
        decoder_report ([`DecoderReport`], *optional*): The decoder evaluation and its selected rewrite.
        figures (`Sequence[str]`): PNG files: names inside the GRADIEND's folder, or paths copied into it.
        dataset_name (`str`, *optional*): A built-in dataset name (`"gender-en"`), a Hub dataset id or a local name.
        dataset_sizes (`Mapping`, *optional*): Split → number of rows, or split → {class → rows}; read from the
            built-in dataset's manifest when not given.
        training_args ([`GradiendTrainingArguments`] or `dict`, *optional*): The training hyper-parameters.
        benchmark_reports (*optional*): Bias benchmarks of a rewrite by this GRADIEND (see
            [`gradiend_hf.benchmark_card.benchmark_reports`]): their table, and the rewritten model's scores as
            `model-index` eval results.
        suite (`Mapping`, *optional*): The suite the GRADIEND belongs to ([`gradiend_hf.suite_report.suite_facts`]):
            its `title`, `link` and `members` (name, feature, location), for a section linking the siblings.
    """

    encoder_report: Any = None
    decoder_report: Any = None
    figures: Sequence[str | os.PathLike] = ()
    dataset_name: str | None = None
    dataset_sizes: Mapping | None = None
    training_args: Any = None
    benchmark_reports: Any = None
    suite: Mapping | None = None

    def __bool__(self) -> bool:
        return any(value not in (None, ()) for value in vars(self).values())


# --------------------------------------------------------------------------- card data


YAML_FIELDS = ("library_name", "license", "language", "base_model", "datasets", "tags", "pipeline_tag")


@dataclass
class GradiendModelCardData(CardData):
    """Everything a GRADIEND card says. Only the fields in `YAML_FIELDS` (and `model_index`, as `model-index`) go
    into the front matter; the others are template variables of `templates/gradiend_card.md`. Build one with [`GradiendModelCardData.from_config`].

    Args:
        library_name (`str`): Hub library tag, `"gradiend-hf"`.
        license (`str`, *optional*): Inherited from the base model when known.
        base_model (`str`, *optional*): Hub id of the base model (never a local path).
        datasets (`list[str]`, *optional*): Hub ids of the training data.
        tags (`list[str]`): `gradiend`, `gradient-encoder` and the feature classes.
        model_id (`str`): Where the quick start loads the GRADIEND from (a Hub id or a local folder).
        title (`str`): The card's heading.
        base_model_link (`str`, *optional*): The base model as a markdown link (or a local path in code style).
        other fields: rows of the card's tables, pre-formatted; `None` or empty when unknown.
    """

    library_name: str = "gradiend-hf"
    license: str | None = None
    language: str | list[str] | None = None
    base_model: str | None = None
    datasets: list[str] | None = None
    tags: list[str] = field(default_factory=lambda: ["gradiend", "gradient-encoder"])
    pipeline_tag: str | None = None

    model_id: str = "path/to/gradiend"
    title: str = "GRADIEND"
    base_model_link: str | None = None
    base_model_revision: str | None = None
    feature: str | None = None
    class_rows: list[dict] = field(default_factory=list)
    positive_class: str | None = None
    quick_start: dict = field(default_factory=dict)
    detail_rows: list[tuple[str, str]] = field(default_factory=list)
    parameter_groups: list[str] = field(default_factory=list)
    dataset_line: str | None = None
    size_columns: list[str] = field(default_factory=list)
    size_rows: list[list[str]] = field(default_factory=list)
    hyperparameter_rows: list[tuple[str, str]] = field(default_factory=list)
    summary_rows: list[tuple[str, str]] = field(default_factory=list)
    history_columns: list[str] = field(default_factory=list)
    history_rows: list[list[str]] = field(default_factory=list)
    encoder_split: str | None = None
    encoder_rows: list[tuple[str, str]] = field(default_factory=list)
    rewrite_rows: list[tuple[str, str]] = field(default_factory=list)
    probability_rows: list[dict] = field(default_factory=list)
    lms_rows: list[dict] = field(default_factory=list)
    evaluation_sentence: str | None = None
    figures: list[tuple[str, str]] = field(default_factory=list)
    benchmark_header: list[str] = field(default_factory=list)
    benchmark_rows: list[list[str]] = field(default_factory=list)
    benchmark_sentence: str | None = None
    model_index: list[dict] | None = None
    suite_title: str | None = None
    suite_link: str | None = None
    suite_rows: list[dict] = field(default_factory=list)
    versions: list[tuple[str, str]] = field(default_factory=list)

    def to_yaml(self, line_break=None, original_order=None) -> str:
        data = {name: getattr(self, name) for name in YAML_FIELDS if getattr(self, name) not in (None, [], "")}
        if self.model_index:
            data["model-index"] = self.model_index
        return yaml_dump(data, sort_keys=False, line_break=line_break).strip()

    @classmethod
    def from_config(
        cls, config, model_id: str, facts: GradiendCardFacts | None = None, dtype: str | None = None
    ) -> GradiendModelCardData:
        """Collects the facts of a card from a [`GradiendConfig`] and whatever evaluation `facts` hold (their
        `figures` are file names inside the card's folder)."""
        facts = facts or GradiendCardFacts()
        encoder_report, decoder_report, figures = facts.encoder_report, facts.decoder_report, facts.figures
        dataset_name, dataset_sizes, training_args = facts.dataset_name, facts.dataset_sizes, facts.training_args
        base_name = config.base_model_name_or_path
        base_id = hub_id(base_name)
        classes = list(config.feature_classes or [])
        feature = " vs ".join(f"`{name}`" for name in classes) if classes else None
        words = dict(config.class_words or {})
        class_rows = []
        if len(classes) == 2:
            for name in classes:
                class_rows.append(
                    {
                        "name": name,
                        "words": ", ".join(words.get(name, [])) or None,
                        "encoding": "+1" if name == config.positive_class else "-1",
                        "strengthen": signed(config.feature_factor_for(name)),
                    }
                )
        base_short = base_name.rstrip("/").split("/")[-1] if base_name else None
        title = (
            "GRADIEND"
            + (f" for {' vs '.join(classes)}" if classes else "")
            + (f" on {base_short}" if base_short else "")
        )

        data = cls(
            license=KNOWN_LICENSES.get(base_id),
            base_model=base_id,
            datasets=[dataset_name] if dataset_name and "/" in dataset_name and hub_id(dataset_name) else None,
            tags=["gradiend", "gradient-encoder"] + [sections.tag(name) for name in classes if sections.tag(name)],
            model_id=model_id,
            title=title,
            base_model_link=link(base_name, base_id),
            base_model_revision=config.base_model_revision,
            feature=feature,
            class_rows=class_rows,
            positive_class=config.positive_class,
            quick_start=sections.quick_start(config, words, classes),
            detail_rows=sections.detail_rows(config, base_name, base_id, dtype),
            parameter_groups=sections.compact_parameter_names(config.param_names),
            figures=[(sections.figure_title(name), name) for name in figures],
            versions=framework_versions(("gradiend-hf", "transformers", "torch", "huggingface_hub", "datasets")),
        )
        data.dataset_line, data.size_columns, data.size_rows = sections.training_data(dataset_name, dataset_sizes)
        data.hyperparameter_rows = sections.hyperparameters(training_args)
        summary = config.training_summary or {}
        data.summary_rows = sections.summary_rows(summary, classes)
        data.history_columns, data.history_rows = sections.history(summary, classes)
        if encoder_report is not None:
            data.encoder_split = encoder_report.split
            data.encoder_rows = sections.encoder_rows(encoder_report.metrics)
        data.rewrite_rows, data.probability_rows, data.lms_rows, data.evaluation_sentence = sections.rewrite(
            config, decoder_report, classes
        )
        benchmarks = benchmark_section(facts.benchmark_reports)
        data.benchmark_header, data.benchmark_rows = benchmarks["benchmark_header"], benchmarks["benchmark_rows"]
        data.benchmark_sentence = benchmarks["benchmark_sentence"]
        data.model_index = benchmark_model_index(facts.benchmark_reports)
        for name, value in sections.suite_values(facts.suite).items():
            setattr(data, name, value)
        return data


def build_gradiend_card(
    config, model_id: str, facts: GradiendCardFacts | None = None, dtype: str | None = None, **fact_kwargs
) -> ModelCard:
    """Renders the card of a GRADIEND from its config (and any evaluation). Writes nothing.

    Args:
        config ([`GradiendConfig`]): The GRADIEND's config.
        model_id (`str`): Hub id or folder the quick start loads the GRADIEND from.
        facts ([`GradiendCardFacts`], *optional*): What the card reports beyond the config (figures: file names
            relative to the card). Its fields may also be passed as keyword arguments.
        dtype (`str`, *optional*): dtype of the GRADIEND's weights.

    Returns:
        `huggingface_hub.ModelCard`
    """
    return render(card_data(config, model_id, facts, dtype, **fact_kwargs), TEMPLATE)


def card_data(config, model_id, facts=None, dtype=None, **fact_kwargs) -> GradiendModelCardData:
    """The [`GradiendModelCardData`] of a config and facts (given as one object or as keyword arguments)."""
    facts = facts or GradiendCardFacts(**fact_kwargs)
    return GradiendModelCardData.from_config(config, model_id, facts, dtype=dtype)


def write_gradiend_card(
    gradiend,
    save_directory: str | os.PathLike,
    encoder_report=None,
    decoder_report=None,
    figures: Sequence[str | os.PathLike] | None = None,
    dataset_name: str | None = None,
    dataset_sizes: Mapping | None = None,
    training_args=None,
    model_id: str | None = None,
    benchmark_reports=None,
    suite: Mapping | None = None,
) -> ModelCard:
    """Writes the full model card (README.md) of a GRADIEND into `save_directory`.

    Also records in `gradiend.config` what the evaluation knows and the demo app and later cards need (the class
    words, a few example sentences and the selected rewrite, see [`GradiendConfig.record_evaluation`]) and, when `save_directory`
    holds this GRADIEND's config.json, updates that file too, in the same atomic update of the folder, so the folder
    pushed to the Hub carries them.

    Args:
        gradiend ([`GradiendModel`]): The GRADIEND (usually just saved into `save_directory`).
        save_directory (`str` or `os.PathLike`): The GRADIEND's folder (created if missing).
        encoder_report, decoder_report, figures, dataset_name, dataset_sizes, training_args, benchmark_reports,
        suite: see
            [`GradiendCardFacts`].
        model_id (`str`, *optional*): Where the quick start loads the GRADIEND from (a Hub repo id the folder will be
            pushed to); defaults to `save_directory`. A push renders the card again for its repo anyway.

    Returns:
        `huggingface_hub.ModelCard`: the card that was written.
    """
    save_directory = os.fspath(save_directory)
    gradiend.config.record_evaluation(encoder_report, decoder_report)
    # One atomic update of the folder: the card, the figures and the config with the recorded facts appear together,
    # and every other file of the save (the weights) is kept as it is.
    with atomic_folder(save_directory, KIND_GRADIEND, update=True) as staging:
        names = [_place_figure(path, save_directory, staging) for path in figures or []]
        _update_saved_config(gradiend.config, save_directory, staging)
        facts = GradiendCardFacts(
            encoder_report, decoder_report, names, dataset_name, dataset_sizes, training_args, benchmark_reports, suite
        )
        data = card_data(gradiend.config, model_id or save_directory, facts, str(gradiend.dtype).replace("torch.", ""))
        card = write_card(staging, data, TEMPLATE)
    return card


def _place_figure(path: str | os.PathLike, save_directory: str, staging: str | os.PathLike) -> str:
    """The figure's name inside `save_directory`, copying it into `staging` when it lies elsewhere."""
    path = os.fspath(path)
    if not path.lower().endswith(".png"):
        raise GradiendError(f"Figures must be PNG files, got {path!r}.")
    inside = os.path.join(save_directory, path)
    if not os.path.isabs(path) and os.path.isfile(inside):
        return path.replace(os.sep, "/")
    if not os.path.isfile(path):
        raise GradiendFileNotFoundError(f"The figure {path!r} exists neither in {save_directory!r} nor as a path.")
    name = os.path.basename(path)
    target = os.path.join(save_directory, name)
    if not os.path.exists(target) or not os.path.samefile(path, target):
        shutil.copyfile(path, os.path.join(staging, name))
    return name


def _update_saved_config(config, save_directory: str, staging: str | os.PathLike) -> None:
    """Writes `config` into `staging` when `save_directory/config.json` is the same GRADIEND (same parameters)."""
    path = os.path.join(save_directory, "config.json")
    if not os.path.isfile(path):
        return
    try:
        with open(path, encoding="utf-8") as file:
            saved = json.load(file)
    except (OSError, json.JSONDecodeError):
        return
    if saved.get("model_type") != "gradiend" or saved.get("param_fingerprint") != config.param_fingerprint:
        logger.warning("%s holds another model's config; the card facts are not written into it.", path)
        return
    config.to_json_file(os.path.join(staging, "config.json"))
