"""The sections of a GRADIEND's model card, each built from the config and the evaluation: quick start, details,
parameter groups, training data and hyper-parameters, training summary and history, encoder metrics and the chosen
rewrite. [`gradiend_hf.model_card`] puts them into [`GradiendModelCardData`]."""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping, Sequence
from typing import Any

from .card_utils import fmt, hub_id, link, py_str, signed
from .data import builtin_info, list_builtin
from .objectives import objective_class
from .rewrite_card import intent_of, measured_row, measurements


MAX_HISTORY_ROWS = 12
MAX_PARAMETER_GROUPS = 12

# Row types of an encoder report, in words.
ROW_TYPES = {
    "training": "class rows",
    "neutral_training_masked": "class sentences with another word blanked",
    "neutral_dataset": "neutral sentences",
}

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


def tag(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", str(name).lower()).strip("-")


def figure_title(name: str) -> str:
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


def quick_start(config, words: Mapping[str, Sequence[str]], classes: list[str]) -> dict:
    """Code values of the quick start: an encoding example (when a sentence and class words are known) and a
    rewrite (the selected one, else a feature factor that strengthens the first class)."""
    out: dict[str, Any] = {}
    examples = list(config.examples or [])
    if examples and len(classes) == 2 and all(words.get(name) for name in classes):
        word, other = words[classes[0]][0], words[classes[1]][0]
        factual, alternative = config.reading_words(word, other)
        out["encode"] = {
            "masked": py_str(examples[0]),
            "factual": py_str(factual),
            "alternative": py_str(alternative),
            "word": word,
            "word_class": classes[0],
            "expected": "+1" if classes[0] == config.positive_class else "-1",
        }
    selected = config.selected_rewrite
    if selected is not None:
        out["feature_factor"] = fmt(selected.feature_factor)
        out["learning_rate"] = fmt(selected.learning_rate)
        target = selected.target_class
        if selected.policy == "balance":
            out["rewrite_comment"] = "the rewrite chosen by the decoder evaluation (balancing the classes)"
        elif target:
            verb = "strengthens" if selected.strengthen else "weakens"
            out["rewrite_comment"] = f"the rewrite chosen by the decoder evaluation ({verb} class `{target}`)"
        else:
            out["rewrite_comment"] = "the rewrite chosen by the decoder evaluation"
    elif len(classes) == 2:
        out["feature_factor"] = fmt(config.feature_factor_for(classes[0]))
        out["learning_rate"] = "0.01"
        out["rewrite_comment"] = (
            f"this feature factor strengthens class `{classes[0]}`; pick the learning rate with "
            "gradiend_hf.evaluation.evaluate_decoder"
        )
    return out


def detail_rows(config, base_name, base_id, dtype) -> list[tuple[str, str]]:
    n = config.num_base_parameters
    k = config.latent_dim
    size = 2 * n * k + k + (n if config.bias_decoder else 0)
    rows = [
        ("Base model", link(base_name, base_id)),
        ("Base model revision", f"`{config.base_model_revision}`" if config.base_model_revision else None),
        ("Base architecture", ", ".join((config.base_model_config or {}).get("architectures") or []) or None),
        (
            "Objective",
            objective_class(config.objective).describe(getattr(config, "objective_options", None))
            if config.objective
            else None,
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
    if config.kept_counts is None:
        return None
    total = sum(math.prod(shape) for shape in config.selection_shapes)
    record = config.pruning or {}
    how = ", ".join(f"{key} `{record[key]}`" for key in ("method", "k", "part") if record.get(key) is not None)
    return f"keeps {config.num_base_parameters:,} of {total:,} entries" + (f" ({how})" if how else "")


def _count(number: int, noun: str) -> str:
    return f"{number:,} {noun}{'' if number == 1 else 's'}"


def training_data(dataset_name, dataset_sizes) -> tuple[str | None, list[str], list[list[str]]]:
    """The data sentence and a size table (split → rows, optionally per class)."""
    line = None
    info = None
    if dataset_name:
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


def hyperparameters(training_args) -> list[tuple[str, str]]:
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


def summary_rows(summary: Mapping, classes: list[str]) -> list[tuple[str, str]]:
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


def history(summary: Mapping, classes: list[str]) -> tuple[list[str], list[list[str]]]:
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


def encoder_rows(metrics: Mapping) -> list[tuple[str, str]]:
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


def rewrite(config, report, classes):
    measured = report is not None and report.selected is not None
    selected = intent_of(report) if measured else config.selected_rewrite
    if selected is None:
        return [], [], [], None
    ff, lr = selected.feature_factor, selected.learning_rate
    rows = [
        ("Feature factor", fmt(ff)),
        ("Learning rate", fmt(lr)),
        ("Intent", selected.intent),
        ("Selection", selected.selection if measured else None),
    ]
    probability_rows, lms_rows, sentence = measurements(
        report, measured_row(report, ff, lr), classes, config.objective
    )
    return [(name, value) for name, value in rows if value], probability_rows, lms_rows, sentence


# --------------------------------------------------------------------------- public API


def suite_values(suite: Mapping | None) -> dict:
    """The card fields of the suite section (`suite_title`, `suite_link`, `suite_rows`): every member of the suite
    as a link (a Hub repo id, or a folder next to this one), this member marked."""
    if not suite:
        return {"suite_title": None, "suite_link": None, "suite_rows": []}
    rows = []
    for member in suite.get("members", []):
        location = member["location"]
        repo_id = hub_id(location)
        target = f"https://huggingface.co/{repo_id}" if repo_id and not location.startswith(".") else location
        rows.append(
            {
                "link": f"**`{member['name']}`** (this GRADIEND)"
                if member.get("is_self")
                else f"[`{member['name']}`]({target})",
                "feature": member["feature"],
            }
        )
    return {"suite_title": suite.get("title"), "suite_link": suite.get("link"), "suite_rows": rows}
