"""How GRADIENDs encode every transition of a feature with two or more classes.

[`transition_encoding_matrix`] encodes the same rows of every transition `A→B` of a dataset (identity transitions
`C→C` too) with each GRADIEND and returns a GRADIEND × transition `pandas.DataFrame`, oriented so that +1 is always
the direction of the GRADIEND's positive class; [`transition_frame`] builds it from encoder reports already made.
The figure is [`gradiend_hf.comparison_plots.plot_transition_heatmap`].
"""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

from .comparison import named_gradiends
from .data import feature_class_names
from .evaluation.encoder import evaluate_encoder


def transition_orientation(config) -> int:
    """+1 or -1: the factor that maps the GRADIEND's positive class (the positive side of its view) to +1."""
    view = config.class_view or {}
    positive = view.get("positive") or config.positive_class
    classes = config.feature_classes or []
    return config.encoding_direction(positive) if positive in classes else 1


def transition_frame(reports: Mapping, class_names=None) -> pd.DataFrame:
    """The GRADIEND × transition matrix of encoder reports made with `include_other_classes=True`.

    A cell `"A→B"` is the mean encoding of the rows whose factual word is of class `A` and whose alternative is of
    class `B` (`"C→C"`: identity rows), times the GRADIEND's [`transition_orientation`], so every row of the matrix
    reads the same way: +1 is the direction of the GRADIEND's positive class. The encoder reads the gradient of the
    word its `source` names (the alternative word by default), so with the default a GRADIEND for `A` vs `B` shows
    about +1 on the transitions *towards* `A` (`B→A`) and -1 on those towards `B`.

    Args:
        reports (`Mapping[str, tuple[EncoderReport, GradiendConfig]]`): name → its report and its config.
        class_names (sequence of `str`, *optional*): Order of the classes (defaults to order of appearance).

    Returns:
        `pd.DataFrame`: rows = GRADIEND names, columns = transitions in class order; `attrs["counts"]` holds the
        rows behind each cell.
    """
    means, counts, seen = {}, {}, {}
    for name, (report, config) in reports.items():
        rows = report.rows[report.rows["factual_class"].notna() & report.rows["alternative_class"].notna()]
        sign = transition_orientation(config)
        for (factual, alternative), group in rows.groupby(["factual_class", "alternative_class"], sort=False):
            column = f"{factual}→{alternative}"
            seen.setdefault(column, (factual, alternative))
            means.setdefault(column, {})[name] = sign * float(group["encoding"].mean())
            counts.setdefault(column, {})[name] = int(len(group))
    order = list(class_names) if class_names is not None else []
    for factual, alternative in seen.values():
        order += [c for c in (factual, alternative) if c not in order]
    columns = sorted(seen, key=lambda c: (order.index(seen[c][0]), order.index(seen[c][1])))
    frame = pd.DataFrame({c: means[c] for c in columns}, index=list(reports), columns=columns)
    frame.attrs["counts"] = {c: counts[c] for c in columns}
    return frame


def transition_encoding_matrix(
    gradiends,
    base_model,
    tokenizer,
    dataset,
    split: str = "test",
    max_rows: int | None = 64,
    batch_size: int = 32,
    seed: int = 0,
) -> pd.DataFrame:
    """How each GRADIEND encodes every transition of a feature dataset with two or more classes.

    Every GRADIEND encodes the same rows: every transition `A→B` of the dataset's `split` (identity ones too), at
    most `max_rows` each ([`evaluate_encoder`] with `include_other_classes=True`); see [`transition_frame`] for the
    orientation. Plot it with [`gradiend_hf.comparison_plots.plot_transition_heatmap`].

    Args:
        gradiends (`Mapping[str, GradiendModel]`, a sequence, or a [`SuiteResult`]): The GRADIENDs.
        base_model (`PreTrainedModel`): Their base model.
        tokenizer: Its tokenizer.
        dataset (`datasets.DatasetDict`): A feature dataset with two or more classes (as `make_feature_dataset`).
        split (`str`, *optional*, defaults to `"test"`): Split to encode.
        max_rows (`int`, *optional*, defaults to 64): At most this many rows per transition (seeded sample).
        batch_size (`int`, *optional*, defaults to 32): Rows per forward-mode pass.
        seed (`int`, *optional*, defaults to 0): Seed of the sampling.

    Returns:
        `pd.DataFrame`: rows = GRADIEND names, columns = transitions `"A→B"`.
    """
    named = named_gradiends(gradiends)
    reports = {
        name: (
            evaluate_encoder(
                gradiend,
                base_model,
                tokenizer,
                dataset,
                split=split,
                max_rows=max_rows,
                batch_size=batch_size,
                seed=seed,
                max_neutral_rows=0,
                include_other_classes=True,
            ),
            gradiend.config,
        )
        for name, gradiend in named.items()
    }
    return transition_frame(reports, feature_class_names(dataset))
