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

import importlib.metadata
import importlib.resources
import json
import logging
import math
import os
import re
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from huggingface_hub import CardData, ModelCard
from huggingface_hub.utils import HFValidationError, validate_repo_id, yaml_dump

from .default_model import DEFAULT_BASE_MODEL
from .errors import GradiendError, GradiendFileNotFoundError
from .io import KIND_GRADIEND, atomic_folder


logger = logging.getLogger(__name__)

TEMPLATE = "gradiend_card.md"

# Licenses of base models we know offline; a GRADIEND is derived from its base model's gradients, so it inherits them.
KNOWN_LICENSES = {DEFAULT_BASE_MODEL: "apache-2.0"}

# `TrainingArguments` fields worth a row in the card (the rest are logging and infrastructure).
HYPERPARAMETERS = (
    "learning_rate",
    "optim",
    "weight_decay",
    "adam_epsilon",
    "lr_scheduler_type",
    "max_grad_norm",
    "num_train_epochs",
    "max_steps",
    "per_device_train_batch_size",
    "gradient_accumulation_steps",
    "sentences_per_gradient",
    "source",
    "target",
    "eval_steps",
    "eval_max_rows",
    "normalize_sign",
    "select_best",
    "seed",
)

# Row types of an encoder report, in words.
ROW_TYPES = {
    "training": "class rows",
    "neutral_training_masked": "class sentences with another word blanked",
    "neutral_dataset": "neutral sentences",
}

MAX_HISTORY_ROWS = 12
MAX_PARAMETER_GROUPS = 12
MAX_EXAMPLES = 3


# --------------------------------------------------------------------------- formatting helpers (shared)


def hub_id(name: str | None) -> str | None:
    """`name` when it looks like a Hub repo id and is not a local folder, else `None` (the Hub rejects local paths
    as `base_model`)."""
    if not name or os.path.exists(name) or name.startswith((".", "/", "~")):
        return None
    try:
        validate_repo_id(name)
    except HFValidationError:
        return None
    return name


def link(name: str | None, repo_id: str | None) -> str | None:
    """A markdown link to a Hub repo, or the name in code style when it is not a Hub id."""
    if not name:
        return None
    return f"[{repo_id}](https://huggingface.co/{repo_id})" if repo_id else f"`{name}`"


def fmt(value) -> str:
    """Four significant digits (`∞` for infinity)."""
    value = float(value)
    if math.isinf(value):
        return "∞" if value > 0 else "-∞"
    return f"{value:.4g}"


def signed(value) -> str:
    """Like [`fmt`] with an explicit sign (`+0.93`, `-1`)."""
    text = fmt(value)
    return text if text.startswith("-") else f"+{text}"


def py_str(text: str) -> str:
    """A Python string literal for a code snippet (JSON escapes are valid Python and keep non-ASCII readable)."""
    return json.dumps(text, ensure_ascii=False)


def framework_versions(names: Sequence[str]) -> list[tuple[str, str]]:
    """`(distribution, version)` of each installed distribution in `names`."""
    out = []
    for name in names:
        try:
            out.append((name, importlib.metadata.version(name)))
        except importlib.metadata.PackageNotFoundError:
            continue
    return out


def intent_text(report) -> str | None:
    """What a decoder report's selection aimed at, e.g. "strengthen class `F`"."""
    if report is None:
        return None
    if report.policy == "balance":
        return "make the two classes equally likely (debiasing)"
    if report.target_class is None:
        return None
    return f"{'strengthen' if report.strengthen else 'weaken'} class `{report.target_class}`"


def policy_text(report) -> str | None:
    """How a decoder report selected its rewrite, in words."""
    if report is None:
        return None
    return {
        "lms_threshold": "best score among rewrites that keep ≥ 99 % of the base model's language-modelling score",
        "balance": "most balanced class probabilities among rewrites that keep ≥ 99 % of the base LMS",
    }.get(report.policy, f"custom policy `{report.policy}`")


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


def measurements(report, row, classes, objective) -> tuple[list[dict], list[dict], str | None]:
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
    lms_kind = "accuracy on randomly masked tokens" if objective == "masked_lm" else "1 / (1 + mean next-token NLL)"
    sentence = (
        f"Mean probability of each class's words at the blank of held-out sentences ({counts}), and the "
        f"language-modelling score ({lms_kind}) on {report.num_lms_texts} neutral texts."
    )
    return probability_rows, lms_rows, sentence


def render(card_data: CardData, template: str, **template_kwargs) -> ModelCard:
    """Renders a template of `gradiend_hf/templates/`; optional rows and sections leave blank lines behind, and a
    card has at most one blank line in a row."""
    path = importlib.resources.files("gradiend_hf") / "templates" / template
    with importlib.resources.as_file(path) as template_path:
        card = ModelCard.from_template(card_data, template_path=str(template_path), **template_kwargs)
    return ModelCard(re.sub(r"\n{3,}", "\n\n", card.content))


# --------------------------------------------------------------------------- facts recorded in the config


def reading_row(source: str, word: str, other_word: str) -> tuple[str, str]:
    """`(factual, alternative)` of a row whose source gradient is the gradient of filling the blank with `word`.

    The encoder reads the alternative word's gradient when `source="alternative"` and the factual word's (for
    `"diff"`: factual minus alternative) otherwise, so this row encodes to the direction of `word`'s class.
    """
    return (other_word, word) if source == "alternative" else (word, other_word)


def record_card_facts(config, encoder_report=None, decoder_report=None) -> None:
    """Records in a GRADIEND's config what its card and the demo app need later and an evaluation knows now.

    - `class_words` (class → words), from the evaluated rows, when the config has none;
    - `examples` (up to three masked test sentences), when the config has none;
    - `selected_rewrite` (`feature_factor`, `learning_rate`, `target_class`, `strengthen`, `policy`), from the decoder
      report's selection.

    They are plain config attributes, so they are saved in config.json and reach the Hub with the GRADIEND.
    """
    rows = getattr(encoder_report, "rows", None)
    if rows is not None and len(rows):
        training = rows[rows["type"] == "training"]
        if not getattr(config, "class_words", None):
            words: dict[str, dict[str, None]] = {name: {} for name in config.feature_classes or []}
            for word_column, class_column in (("factual", "factual_class"), ("alternative", "alternative_class")):
                for word, name in zip(training[word_column], training[class_column]):
                    if name in words:
                        words[name][str(word)] = None
            if words and all(words.values()):
                config.class_words = {name: list(found) for name, found in words.items()}
        if not getattr(config, "examples", None):
            examples = list(dict.fromkeys(str(text) for text in training["text"]))[:MAX_EXAMPLES]
            if examples:
                config.examples = examples
    selected = getattr(decoder_report, "selected", None)
    if selected is not None:
        config.selected_rewrite = {
            "feature_factor": float(selected.feature_factor),
            "learning_rate": float(selected.learning_rate),
            "target_class": decoder_report.target_class,
            "strengthen": bool(decoder_report.strengthen),
            "policy": decoder_report.policy,
        }


# --------------------------------------------------------------------------- card data


YAML_FIELDS = ("library_name", "license", "language", "base_model", "datasets", "tags", "pipeline_tag")


@dataclass
class GradiendModelCardData(CardData):
    """Everything a GRADIEND card says. Only the fields in `YAML_FIELDS` go into the front matter; the others are
    template variables of `templates/gradiend_card.md`. Build one with [`GradiendModelCardData.from_config`].

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
    versions: list[tuple[str, str]] = field(default_factory=list)

    def to_yaml(self, line_break=None, original_order=None) -> str:
        data = {name: getattr(self, name) for name in YAML_FIELDS if getattr(self, name) not in (None, [], "")}
        return yaml_dump(data, sort_keys=False, line_break=line_break).strip()

    @classmethod
    def from_config(
        cls,
        config,
        model_id: str,
        encoder_report=None,
        decoder_report=None,
        figures: Sequence[str] = (),
        dataset_name: str | None = None,
        dataset_sizes: Mapping | None = None,
        training_args=None,
        dtype: str | None = None,
    ) -> GradiendModelCardData:
        """Collects the facts of a card from a [`GradiendConfig`] and whatever evaluation is given (see
        [`write_gradiend_card`] for the arguments)."""
        from .evaluation.feature_factor import feature_factor_for

        base_name = config.base_model_name_or_path
        base_id = hub_id(base_name)
        classes = list(config.feature_classes or [])
        feature = " vs ".join(f"`{name}`" for name in classes) if classes else None
        words = dict(getattr(config, "class_words", None) or {})
        class_rows = []
        if len(classes) == 2:
            for name in classes:
                class_rows.append(
                    {
                        "name": name,
                        "words": ", ".join(words.get(name, [])) or None,
                        "encoding": "+1" if name == config.positive_class else "-1",
                        "strengthen": signed(feature_factor_for(config, name)),
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
            tags=["gradiend", "gradient-encoder"] + [_tag(name) for name in classes if _tag(name)],
            model_id=model_id,
            title=title,
            base_model_link=link(base_name, base_id),
            base_model_revision=config.base_model_revision,
            feature=feature,
            class_rows=class_rows,
            positive_class=config.positive_class,
            quick_start=_quick_start(config, words, classes),
            detail_rows=_detail_rows(config, base_name, base_id, dtype),
            parameter_groups=compact_parameter_names(config.param_names),
            figures=[(_figure_title(name), name) for name in figures],
            versions=framework_versions(("gradiend-hf", "transformers", "torch", "huggingface_hub", "datasets")),
        )
        data.dataset_line, data.size_columns, data.size_rows = _training_data(dataset_name, dataset_sizes)
        data.hyperparameter_rows = _hyperparameters(training_args)
        summary = getattr(config, "training_summary", None) or {}
        data.summary_rows = _summary_rows(summary, classes)
        data.history_columns, data.history_rows = _history(summary, classes)
        if encoder_report is not None:
            data.encoder_split = encoder_report.split
            data.encoder_rows = _encoder_rows(encoder_report.metrics)
        data.rewrite_rows, data.probability_rows, data.lms_rows, data.evaluation_sentence = _rewrite(
            config, decoder_report, classes
        )
        return data


def _tag(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", str(name).lower()).strip("-")


def _figure_title(name: str) -> str:
    stem = os.path.splitext(os.path.basename(name))[0]
    return re.sub(r"[_-]+", " ", stem).strip().capitalize() or "Figure"


def compact_parameter_names(names: Sequence[str], max_groups: int = MAX_PARAMETER_GROUPS) -> list[str]:
    """Groups parameter names that differ only in their layer numbers: `layers.{0-11}.mlp.down_proj.weight`.

    Args:
        names (`Sequence[str]`): Parameter names in GRADIEND order.
        max_groups (`int`, *optional*): At most this many groups; the rest is counted in a last line.

    Returns:
        `list[str]`: One line per group, in order of first appearance.
    """
    groups: dict[str, list[tuple[int, ...]]] = {}
    for name in names:
        numbers = tuple(int(n) for n in re.findall(r"(?<=\.)\d+(?=\.)", name))
        pattern = re.sub(r"(?<=\.)\d+(?=\.)", "{}", name)
        groups.setdefault(pattern, []).append(numbers)
    lines = []
    for pattern, numbers in groups.items():
        if not numbers[0]:
            lines.append(pattern)
            continue
        columns = list(zip(*numbers))
        lines.append(pattern.format(*(_ranges(sorted(set(column))) for column in columns)))
    if len(lines) > max_groups:
        rest = len(lines) - max_groups + 1
        lines = lines[: max_groups - 1] + [f"… and {rest} more groups"]
    return lines


def _ranges(values: list[int]) -> str:
    if len(values) == 1:
        return str(values[0])
    parts, start = [], values[0]
    for previous, value in zip(values, values[1:] + [None]):
        if value != previous + 1 if value is not None else True:
            parts.append(str(start) if start == previous else f"{start}-{previous}")
            start = value
    return "{" + ",".join(parts) + "}"


def _quick_start(config, words: Mapping[str, Sequence[str]], classes: list[str]) -> dict:
    """Code values of the quick start: an encoding example (when a sentence and class words are known) and a
    rewrite (the selected one, else a feature factor that strengthens the first class)."""
    from .evaluation.feature_factor import feature_factor_for

    out: dict[str, Any] = {}
    examples = list(getattr(config, "examples", None) or [])
    if examples and len(classes) == 2 and all(words.get(name) for name in classes):
        word, other = words[classes[0]][0], words[classes[1]][0]
        factual, alternative = reading_row(config.source, word, other)
        out["encode"] = {
            "masked": py_str(examples[0]),
            "factual": py_str(factual),
            "alternative": py_str(alternative),
            "word": word,
            "word_class": classes[0],
            "expected": "+1" if classes[0] == config.positive_class else "-1",
        }
    selected = getattr(config, "selected_rewrite", None) or {}
    if selected.get("feature_factor") is not None and selected.get("learning_rate") is not None:
        out["feature_factor"] = fmt(selected["feature_factor"])
        out["learning_rate"] = fmt(selected["learning_rate"])
        target = selected.get("target_class")
        if selected.get("policy") == "balance":
            out["rewrite_comment"] = "the rewrite chosen by the decoder evaluation (balancing the classes)"
        elif target:
            verb = "strengthens" if selected.get("strengthen", True) else "weakens"
            out["rewrite_comment"] = f"the rewrite chosen by the decoder evaluation ({verb} class `{target}`)"
        else:
            out["rewrite_comment"] = "the rewrite chosen by the decoder evaluation"
    elif len(classes) == 2:
        out["feature_factor"] = fmt(feature_factor_for(config, classes[0]))
        out["learning_rate"] = "0.01"
        out["rewrite_comment"] = (
            f"this feature factor strengthens class `{classes[0]}`; pick the learning rate with "
            "gradiend_hf.evaluation.evaluate_decoder"
        )
    return out


def _detail_rows(config, base_name, base_id, dtype) -> list[tuple[str, str]]:
    n = config.num_base_parameters
    k = config.latent_dim
    size = 2 * n * k + k + (n if config.bias_decoder else 0)
    rows = [
        ("Base model", link(base_name, base_id)),
        ("Base model revision", f"`{config.base_model_revision}`" if config.base_model_revision else None),
        ("Base architecture", ", ".join((config.base_model_config or {}).get("architectures") or []) or None),
        (
            "Objective",
            {
                "masked_lm": "masked LM (the blank is the mask token)",
                "causal_lm": "causal LM (next token after the text before the blank)",
            }.get(config.objective or ""),
        ),
        ("Covered base parameters", f"{n:,} entries in {_count(len(config.param_names), 'tensor')}"),
        ("Pruning", _pruning_text(config)),
        ("Latent dimension", str(k)),
        ("Encoder", f"`{config.activation_encoder}`, reads the `{config.source}` gradient"),
        (
            "Decoder",
            f"`{config.activation_decoder}`{', with bias' if config.bias_decoder else ''}, reconstructs the `{config.target}` gradient",
        ),
        ("GRADIEND parameters", f"{size:,}"),
        ("dtype", f"`{dtype}`" if dtype else None),
    ]
    return [(name, value) for name, value in rows if value]


def _pruning_text(config) -> str | None:
    """How many entries a pruned GRADIEND keeps of the selection it was pruned from (`None` when not pruned)."""
    if getattr(config, "kept_counts", None) is None:
        return None
    total = sum(math.prod(shape) for shape in getattr(config, "unpruned_param_shapes", None) or config.param_shapes)
    record = getattr(config, "pruning", None) or {}
    how = ", ".join(f"{key} `{record[key]}`" for key in ("method", "k", "part") if record.get(key) is not None)
    return f"keeps {config.num_base_parameters:,} of {total:,} entries" + (f" ({how})" if how else "")


def _count(number: int, noun: str) -> str:
    return f"{number:,} {noun}{'' if number == 1 else 's'}"


def _training_data(dataset_name, dataset_sizes) -> tuple[str | None, list[str], list[list[str]]]:
    """The data sentence and a size table (split → rows, optionally per class)."""
    line = None
    info = None
    if dataset_name:
        from .data import builtin_info, list_builtin

        if dataset_name in list_builtin():
            info = builtin_info(dataset_name)
            line = f"the built-in gradiend-hf dataset `{dataset_name}`: {info.get('description', '').strip()}"
            if info.get("license"):
                line += f" License: {info['license']}."
        elif "/" in dataset_name and hub_id(dataset_name):
            line = f"[{dataset_name}](https://huggingface.co/datasets/{dataset_name})"
        else:
            line = f"`{dataset_name}`"
    sizes = dataset_sizes
    if sizes is None and info is not None:
        sizes = info.get("num_rows_per_class") or info.get("num_rows")
    if not sizes:
        return line, [], []
    per_class = any(isinstance(value, Mapping) for value in sizes.values())
    if not per_class:
        return line, ["Split", "Rows"], [[str(split), f"{int(n):,}"] for split, n in sizes.items()]
    classes = list(dict.fromkeys(name for value in sizes.values() if isinstance(value, Mapping) for name in value))
    rows = []
    for split, value in sizes.items():
        counts = value if isinstance(value, Mapping) else {}
        total = sum(int(n) for n in counts.values()) if counts else int(value)
        rows.append([str(split), f"{total:,}"] + [f"{int(counts[c]):,}" if c in counts else "" for c in classes])
    return line, ["Split", "Rows"] + [f"`{c}`" for c in classes], rows


def _hyperparameters(training_args) -> list[tuple[str, str]]:
    if training_args is None:
        return []
    values = training_args.to_dict() if hasattr(training_args, "to_dict") else dict(training_args)
    if (values.get("max_steps") or -1) > 0:
        values.pop("num_train_epochs", None)  # max_steps overrides epochs
    rows = []
    for name in HYPERPARAMETERS:
        value = values.get(name)
        if value is None or (name == "max_steps" and value <= 0):
            continue
        value = getattr(value, "value", value)  # enums (optim, lr_scheduler_type)
        rows.append((name, f"`{fmt(value) if isinstance(value, float) else value}`"))
    return rows


def _summary_rows(summary: Mapping, classes: list[str]) -> list[tuple[str, str]]:
    if not summary:
        return []
    rows = []
    if summary.get("global_step") is not None:
        rows.append(("Training steps", str(summary["global_step"])))
    if summary.get("best_step") is not None and summary.get("best_correlation") is not None:
        rows.append(("Kept GRADIEND", f"step {summary['best_step']} (best validation correlation)"))
        rows.append(("Validation correlation", fmt(summary["best_correlation"])))
    means = summary.get("mean_by_class") or {}
    for name in classes:
        if means.get(name) is not None:
            rows.append((f"Mean validation encoding, rows with a `{name}` factual word", signed(means[name])))
    if "converged" in summary:
        rows.append(("Converged", "yes" if summary["converged"] else "no (see the limitations below)"))
    return rows


def _history(summary: Mapping, classes: list[str]) -> tuple[list[str], list[list[str]]]:
    history = [entry for entry in summary.get("history") or [] if entry.get("correlation") is not None]
    if not history:
        return [], []
    if len(history) > MAX_HISTORY_ROWS:
        # An even sample that keeps the first, the best and the last evaluation.
        best = summary.get("best_step")
        picks = {round(i * (len(history) - 1) / (MAX_HISTORY_ROWS - 2)) for i in range(MAX_HISTORY_ROWS - 1)}
        picks |= {i for i, entry in enumerate(history) if entry.get("step") == best}
        history = [history[i] for i in sorted(picks)]
    mean_columns = [name for name in classes if any(f"mean_{name}" in entry for entry in history)]
    columns = ["Step", "Correlation"] + [f"Mean `{name}`" for name in mean_columns]
    rows = [
        [str(entry.get("step")), fmt(entry["correlation"])]
        + [signed(entry[f"mean_{name}"]) if entry.get(f"mean_{name}") is not None else "" for name in mean_columns]
        for entry in history
    ]
    return columns, rows


def _encoder_rows(metrics: Mapping) -> list[tuple[str, str]]:
    rows = [("Correlation (Pearson, expected vs. encoding)", fmt(metrics["correlation"]))]
    if "accuracy" in metrics:
        rows.append(("Accuracy (ternary, boundaries ±0.5)", fmt(metrics["accuracy"])))
    if "binary_accuracy" in metrics:
        rows.append(("Sign accuracy (class rows)", fmt(metrics["binary_accuracy"])))
    if "correlation_all" in metrics:
        rows.append(("Correlation with neutral rows (expected 0)", fmt(metrics["correlation_all"])))
    by_class = metrics.get("encoding_by_class") or {}
    for name, mean in (metrics.get("mean_by_class") or {}).items():
        # Which sign a row expects depends on the gradient the encoder reads, so the report states it per class.
        expected = (by_class.get(name) or {}).get("expected")
        suffix = f" (expected {expected:+d})" if expected else ""
        rows.append((f"Mean encoding, rows with a `{name}` factual word", signed(mean) + suffix))
    for kind, mean in (metrics.get("neutral_mean") or {}).items():
        rows.append((f"Mean encoding, {ROW_TYPES.get(kind, kind)} (expected 0)", signed(mean)))
    counts = metrics.get("num_rows") or {}
    if counts:
        rows.append(("Encoded rows", ", ".join(f"{n} {ROW_TYPES.get(kind, kind)}" for kind, n in counts.items())))
    return rows


def _rewrite(config, report, classes):
    selected = getattr(config, "selected_rewrite", None) or {}
    selection = getattr(report, "selected", None)
    ff = selection.feature_factor if selection is not None else selected.get("feature_factor")
    lr = selection.learning_rate if selection is not None else selected.get("learning_rate")
    if ff is None or lr is None:
        return [], [], [], None
    intent = intent_text(report)
    if intent is None and selected.get("target_class"):
        verb = "strengthen" if selected.get("strengthen", True) else "weaken"
        intent = f"{verb} class `{selected['target_class']}`"
    rows = [
        ("Feature factor", fmt(ff)),
        ("Learning rate", fmt(lr)),
        ("Intent", intent),
        ("Selection", policy_text(report)),
    ]
    probability_rows, lms_rows, sentence = measurements(
        report, measured_row(report, ff, lr), classes, config.objective
    )
    return [(name, value) for name, value in rows if value], probability_rows, lms_rows, sentence


# --------------------------------------------------------------------------- public API


def build_gradiend_card(
    config,
    model_id: str,
    encoder_report=None,
    decoder_report=None,
    figures: Sequence[str] = (),
    dataset_name: str | None = None,
    dataset_sizes: Mapping | None = None,
    training_args=None,
    dtype: str | None = None,
) -> ModelCard:
    """Renders the card of a GRADIEND from its config (and any evaluation). Writes nothing.

    Args:
        config ([`GradiendConfig`]): The GRADIEND's config.
        model_id (`str`): Hub id or folder the quick start loads the GRADIEND from.
        figures (`Sequence[str]`): PNG file names relative to the card (already in the repo folder).
        dtype (`str`, *optional*): dtype of the GRADIEND's weights.
        others: see [`write_gradiend_card`].

    Returns:
        `huggingface_hub.ModelCard`
    """
    data = GradiendModelCardData.from_config(
        config,
        model_id,
        encoder_report=encoder_report,
        decoder_report=decoder_report,
        figures=figures,
        dataset_name=dataset_name,
        dataset_sizes=dataset_sizes,
        training_args=training_args,
        dtype=dtype,
    )
    return render(data, TEMPLATE)


def write_gradiend_card(
    gradiend,
    save_directory: str | os.PathLike,
    encoder_report=None,
    decoder_report=None,
    figures: Sequence[str | os.PathLike] | None = None,
    dataset_name: str | None = None,
    dataset_sizes: Mapping | None = None,
    training_args=None,
) -> ModelCard:
    """Writes the full model card (README.md) of a GRADIEND into `save_directory`.

    Also records in `gradiend.config` what the evaluation knows and the demo app and later cards need (the class
    words, a few example sentences and the selected rewrite, see [`record_card_facts`]) and, when `save_directory`
    holds this GRADIEND's config.json, updates that file too (atomically), so the folder pushed to the Hub carries
    them.

    Args:
        gradiend ([`GradiendModel`]): The GRADIEND (usually just saved into `save_directory`).
        save_directory (`str` or `os.PathLike`): The GRADIEND's folder (created if missing).
        encoder_report ([`EncoderReport`], *optional*): Test metrics of the encoder.
        decoder_report ([`DecoderReport`], *optional*): The decoder evaluation and its selected rewrite.
        figures (`list`, *optional*): PNG files: names already in `save_directory` or paths that are copied in.
        dataset_name (`str`, *optional*): A built-in dataset name (`"gender-en"`), a Hub dataset id or a local name.
        dataset_sizes (`dict`, *optional*): Split → number of rows, or split → {class → rows}; read from the
            built-in dataset's manifest when not given.
        training_args ([`GradiendTrainingArguments`] or `dict`, *optional*): The training hyper-parameters.

    Returns:
        `huggingface_hub.ModelCard`: the card that was written.
    """
    save_directory = os.fspath(save_directory)
    record_card_facts(gradiend.config, encoder_report, decoder_report)
    # One atomic update of the folder: the card, the figures and the config with the recorded facts appear together,
    # and every other file of the save (the weights) is kept as it is.
    with atomic_folder(save_directory, KIND_GRADIEND, update=True) as staging:
        names = [_place_figure(path, save_directory, staging) for path in figures or []]
        _update_saved_config(gradiend.config, save_directory, staging)
        card = build_gradiend_card(
            gradiend.config,
            model_id=save_directory,
            encoder_report=encoder_report,
            decoder_report=decoder_report,
            figures=names,
            dataset_name=dataset_name,
            dataset_sizes=dataset_sizes,
            training_args=training_args,
            dtype=str(gradiend.dtype).replace("torch.", ""),
        )
        card.save(os.path.join(staging, "README.md"))
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
