"""Encoder evaluation: encode every test row (and neutral rows) and measure how well the encoding separates the
feature classes."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from ..data import ClassView, FeatureDataError, apply_view, feature_class_names, transitions_view
from ..data.rows import split_of
from ..gradients import encode_texts
from ..objectives import Objective, gradiend_objective
from .feature_factor import feature_classes_and_positive
from .metrics import EvaluationError, encoder_metrics, transition_stats
from .rows import (
    blank_random_word,
    check_usable,
    class_words,
    neutral_texts,
    resolve_split,
    sample_by_class,
    sample_by_transition,
    sample_texts,
)


@dataclass
class EncoderReport:
    """Result of [`evaluate_encoder`].

    Args:
        metrics (`dict`): See [`gradiend_hf.evaluation.metrics.encoder_metrics`]; `correlation` is the headline.
        rows (`pd.DataFrame`): One row per encoded example: `text` (the masked text that was encoded), `type`
            (`"training"`, `"neutral_training_masked"` or `"neutral_dataset"`), `factual`, `alternative`,
            `factual_class`, `alternative_class`, `label` (the dataset's label, 0 for neutral rows), `expected`
            (the encoding a perfect GRADIEND gives: ±1 by the class of the gradient's word, 0 for identity and
            neutral rows) and `encoding` (the first latent value; `encoding_<j>` for the others).
        feature_classes (`list[str]`): The GRADIEND's two classes.
        positive_class (`str`): The class whose words' gradients encode to +1.
        source (`str`): The gradient the encoder read.
        split (`str`): The evaluated split.
    """

    metrics: dict
    rows: pd.DataFrame
    feature_classes: list[str] = field(default_factory=list)
    positive_class: str | None = None
    source: str | None = None
    split: str | None = None

    @property
    def correlation(self) -> float:
        return self.metrics["correlation"]

    def __repr__(self) -> str:
        means = ", ".join(f"{k}: {v:+.3f}" for k, v in self.metrics.get("mean_by_class", {}).items())
        return (
            f"EncoderReport(split={self.split!r}, correlation={self.metrics['correlation']:.4f}, "
            f"accuracy={self.metrics['accuracy']:.3f}, mean_by_class={{{means}}}, rows={len(self.rows)})"
        )


def expected_encoding(factual_class: str, alternative_class: str, config) -> int:
    """The encoding a perfect GRADIEND gives a row; see [`GradiendConfig.expected_encoding`]."""
    return config.expected_encoding(factual_class, alternative_class)


def evaluate_encoder(
    gradiend,
    base_model,
    tokenizer,
    dataset,
    neutral=None,
    split: str = "test",
    max_rows: int | None = None,
    batch_size: int = 32,
    seed: int = 0,
    max_neutral_rows: int | None = None,
    include_other_classes: bool = False,
    objective: Objective | None = None,
) -> EncoderReport:
    """Encodes the rows of a split (and neutral rows) and measures how well the encoder separates the classes.

    Rows encoded:
    - `"training"`: the split's rows of the two feature classes (identity rows expect 0);
    - `"neutral_training_masked"`: the same sentences with the factual word put back and a random other word
      blanked out (never a class word);
    - `"neutral_dataset"`: sentences of `neutral` with a random word blanked out.
    For causal LMs a blanked-out word has at least one word before it (the model reads the text before the blank)
    and must be a single token; others are skipped. Neutral rows use the blanked word as factual and alternative
    word, expect 0 and are excluded from the correlation.

    An objective that reads only some words at a blank (`scores_any_word` false: an MLM head scores its labels)
    encodes no neutral rows.

    Per-example encodings come from batched forward-mode AD ([`gradiend_hf.gradients.encode_rows`]): no backward
    pass per example.

    Args:
        gradiend ([`GradiendModel`]): The GRADIEND; `config.feature_classes` names the dataset's classes.
        base_model (`PreTrainedModel`): The base model it was trained on.
        tokenizer: The base model's (fast) tokenizer.
        dataset (`datasets.DatasetDict` or `datasets.Dataset`): Feature rows (`masked`, `factual`, `alternative`,
            `factual_class`, `alternative_class`, `label`), or a dataset with three or more classes (read through
            the GRADIEND's view, see `include_other_classes`).
        neutral (`datasets.Dataset` or `list[str]`, *optional*): Neutral sentences (`text` column).
        split (`str`, *optional*, defaults to `"test"`): Split of a `DatasetDict` to evaluate.
        max_rows (`int`, *optional*): At most this many rows per feature class (with `include_other_classes` on a
            dataset with more classes: per transition), a seeded sample; all by default.
        batch_size (`int`, *optional*, defaults to 32): Rows per forward-mode pass.
        seed (`int`, *optional*, defaults to 0): Seed of the sampling and of the blanked-out neutral words.
        max_neutral_rows (`int`, *optional*): At most this many rows per neutral type; defaults to the number of
            feature rows evaluated.
        include_other_classes (`bool`, *optional*, defaults to `False`): Also encode the rows of every other
            transition (identity ones too; expected 0), reported per transition in `metrics["encoding_by_transition"]`
            but never in the pair `correlation`.
        objective ([`Objective`], *optional*): How the rows are scored; the GRADIEND's own by default (for
            `causal_lm_mlm_head` give `gradiend_hf.mlm_head.objective_for_gradiend(gradiend, tokenizer, base)`).

    Returns:
        [`EncoderReport`] with `.metrics` and `.rows`.

    Raises:
        EvaluationError: for an empty split, rows of one class only, or fewer than two rows.
    """
    config = gradiend.config
    classes, positive = feature_classes_and_positive(config)
    gradiend.check_base_model(base_model)
    rows, view = _rows_of(dataset, split, config, include_other_classes)
    if view is None:
        row_classes = classes
        picked = sample_by_class(rows, classes, max_rows, seed)
    else:  # every transition of the dataset's classes, each sampled on its own
        row_classes = feature_class_names(split_of(dataset, split))
        picked = sample_by_transition(rows, max_rows, seed)
    if not picked:
        raise EvaluationError(
            f"The split {split!r} has no rows of the classes {classes}; it is empty or its `factual_class` values "
            "differ from the GRADIEND's feature classes."
        )
    objective = objective if objective is not None else gradiend_objective(gradiend.config, base_model, tokenizer)
    # Every row is encoded, words of several tokens too; one the tokenizer cannot represent is an error.
    check_usable(objective, picked)
    excluded = {word for words in class_words(rows, row_classes).values() for word in words}

    table = []
    for row in picked:
        kind, expected = _kind_and_expected(row, config, view, include_other_classes)
        table.append(
            {
                "text": row["masked"],
                "type": kind,
                "factual": row["factual"],
                "alternative": row["alternative"],
                "factual_class": row["factual_class"],
                "alternative_class": row["alternative_class"],
                "label": int(row.get("label", 0) or 0),
                "expected": expected,
            }
        )
    neutral_cap = max_neutral_rows if max_neutral_rows is not None else len(picked)
    filled = [row["masked"].replace("[MASK]", row["factual"]) for row in picked]
    sources = [
        ("neutral_training_masked", sample_texts(filled, neutral_cap, seed)),
        ("neutral_dataset", sample_texts(neutral_texts(neutral), neutral_cap, seed)),
    ]
    for kind, texts in sources if objective.scores_any_word else ():
        for _, masked, word in blank_random_word(texts, objective, excluded, seed):
            table.append(
                {
                    "text": masked,
                    "type": kind,
                    "factual": word,
                    "alternative": word,
                    "factual_class": None,
                    "alternative_class": None,
                    "label": 0,
                    "expected": 0,
                }
            )

    encodings = encode_texts(
        gradiend,
        base_model,
        objective,
        [r["text"] for r in table],
        [r["factual"] for r in table],
        [r["alternative"] for r in table],
        batch_size,
    )
    frame = pd.DataFrame(table)
    frame["encoding"] = encodings[:, 0].tolist()
    for j in range(1, encodings.shape[1]):
        frame[f"encoding_{j}"] = encodings[:, j].tolist()
    metrics = encoder_metrics(frame) if view is None else _view_metrics(frame, view, config, row_classes)
    for key in ("encoding_by_class", "mean_by_class", "encoding_by_word"):
        if key in metrics:  # feature-class order, as everywhere else
            metrics[key] = {name: metrics[key][name] for name in classes if name in metrics[key]}
    return EncoderReport(
        metrics=metrics,
        rows=frame,
        feature_classes=classes,
        positive_class=positive,
        source=config.source,
        split=split,
    )


def _rows_of(dataset, split: str, config, include_other_classes: bool):
    """The rows to encode and the view that labels them (`None` for two-class data).

    A dataset with three or more classes is read through the GRADIEND's view (recorded in `config.class_view` by
    [`train_suite`], else the pair of its feature classes): its own transitions only, or with
    `include_other_classes` every transition of the dataset (identity ones too).
    """
    rows = split_of(dataset, split, error=EvaluationError)
    if "alternatives" not in rows.column_names:
        return resolve_split(dataset, split), None
    view = ClassView.from_dict(config.class_view) if config.class_view else ClassView.pair(*config.feature_classes)
    try:
        view = view.resolve(feature_class_names(rows))
        if include_other_classes:
            return resolve_split(transitions_view(rows, view, identity=True), None), view
        return resolve_split(apply_view(rows, view), None), None
    except FeatureDataError as error:
        raise EvaluationError(f"The GRADIEND's view does not fit the dataset: {error}") from None


def _view_metrics(frame: pd.DataFrame, view: ClassView, config, class_names) -> dict:
    """Metrics of a GRADIEND on every transition of a dataset with more classes.

    The pair metrics (correlation, accuracies, class means) read the GRADIEND's own transitions by the side of its
    view they come from (`SG` for a `1SG` row of `SG` vs `PL`), as for two-class data; the transitions are reported
    with the dataset's classes, and `mean_by_target_class` is the mean encoding of every non-identity row by the
    class of the word whose gradient the encoder reads (the alternative word for `source="alternative"`).
    """
    sides = frame.copy()
    own = sides["type"] == "training"
    for column in ("factual_class", "alternative_class"):
        sides.loc[own, column] = sides.loc[own, column].map(view.group_of)
    metrics = encoder_metrics(sides)
    classified = frame[frame["factual_class"].notna()]
    metrics["encoding_by_transition"] = transition_stats(classified)
    metrics["mean_by_transition"] = {t: s["mean"] for t, s in metrics["encoding_by_transition"].items()}
    moving = classified[classified["factual_class"] != classified["alternative_class"]]
    target = moving["alternative_class" if config.source == "alternative" else "factual_class"]
    means = moving.groupby(target, sort=False)["encoding"].mean()
    metrics["mean_by_target_class"] = {str(name): float(means[name]) for name in class_names if name in means}
    return metrics


def _kind_and_expected(row, config, view: ClassView | None, include_other_classes: bool) -> tuple[str, int]:
    """A row's type and expected encoding: the GRADIEND's own transitions are `"training"`; with
    `include_other_classes` identity rows are `"identity"` and every other transition `"transition"` (expected 0),
    so they are reported per transition but never enter the pair correlation."""
    factual, alternative = row["factual_class"], row["alternative_class"]
    if view is None:
        kind = "identity" if include_other_classes and factual == alternative else "training"
        return kind, config.expected_encoding(factual, alternative)
    sides = (view.group_of(factual), view.group_of(alternative))
    if None not in sides and sides[0] != sides[1]:
        return "training", config.expected_encoding(*sides)
    return ("identity" if factual == alternative else "transition"), 0
