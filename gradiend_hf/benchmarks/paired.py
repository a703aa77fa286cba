"""Is a rewrite less biased than its base model? The paired bootstrap of the change in a benchmark's headline score.

The base model and its rewrite score the same benchmark rows, so their scores are paired: a row that one model finds
hard, the other usually does too. Comparing two separate intervals ignores that and needs a change larger than
either interval's width before it counts. The paired bootstrap resamples the rows once per draw and recomputes both
models' scores on the same rows; the interval of the difference is then much narrower than either model's own
interval, and a change is clear when that interval excludes 0.

Bias is the distance of the headline score from its unbiased value (CrowS-Pairs stereotype score and StereoSet SS:
|score − 50|; WinoBias gap: |gap|), so a negative change means the rewrite is less biased.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from .bootstrap import Estimate, estimates
from .crows_pairs import CrowsPairsTask
from .errors import BenchmarkError
from .metrics import HEADLINES, STATISTICS
from .stereoset import StereoSetTask
from .winobias import WinoBiasTask


METRIC_COLUMNS = {task.name: task.metric_columns() for task in (CrowsPairsTask, StereoSetTask, WinoBiasTask)}
"""The per-row score columns of each benchmark's metrics, in order."""


def paired_change(name: str, base_inputs: Sequence, rewritten_inputs: Sequence, **bootstrap) -> dict[str, Estimate]:
    """The change of a benchmark's headline score and bias from the base model to a rewrite, with paired intervals.

    Args:
        name (`str`): `"crows_pairs"`, `"stereoset"` or `"winobias"`.
        base_inputs, rewritten_inputs (`Sequence`): Each model's inputs of the benchmark's metrics function (score
            columns, then label columns, as [`BenchmarkTask.metrics`] passes them), for the same rows in the same order.
        bootstrap: By keyword, `bootstrap_samples` (paired resamples, default 1000; 0: no intervals), `confidence`
            (default 0.95) and `seed` (default 0) of the resampling.

    Returns:
        `dict`: `value_change` (headline score of the rewrite minus that of the base model) and `bias_change` (its
        distance from the unbiased value minus the base model's; negative = less biased), each an [`Estimate`].

    Raises:
        BenchmarkError: for an unknown benchmark or inputs of different lengths.
    """
    if name not in STATISTICS:
        raise BenchmarkError(f"There is no paired comparison for {name!r}; use one of {', '.join(STATISTICS)}.")
    metric, ideal = HEADLINES[name]
    names_base, base = STATISTICS[name](*base_inputs)
    names_rewritten, rewritten = STATISTICS[name](*rewritten_inputs)
    n = len(np.asarray(base_inputs[0]))
    if len(np.asarray(rewritten_inputs[0])) != n:
        raise BenchmarkError(
            f"The base model and the rewrite scored different numbers of {name} rows ({n} vs "
            f"{len(np.asarray(rewritten_inputs[0]))}); a paired comparison needs the same rows."
        )
    at = names_base.index(metric)

    def statistic(idx):
        before, after = base(idx)[at], rewritten(idx)[at]
        return [after - before, abs(after - ideal) - abs(before - ideal)]

    unknown = sorted(set(bootstrap) - {"bootstrap_samples", "confidence", "seed"})
    if unknown:
        raise TypeError(f"paired_change() got unexpected keyword arguments {unknown}")
    samples = bootstrap.get("bootstrap_samples", 1000)
    confidence, seed = bootstrap.get("confidence", 0.95), bootstrap.get("seed", 0)
    return estimates(statistic, ["value_change", "bias_change"], n, samples, confidence, seed)


def paired_from_scores(
    name: str,
    base_scores: pd.DataFrame,
    rewritten_scores: pd.DataFrame,
    bootstrap_samples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> dict[str, Estimate]:
    """[`paired_change`] of two per-row score tables of one task (as `task(model)` returns them).

    Args:
        name (`str`): The benchmark.
        base_scores, rewritten_scores (`pd.DataFrame`): Per-row scores of the base model and of the rewrite.

    Raises:
        BenchmarkError: when the two tables do not hold the same rows in the same order.
    """
    if name not in METRIC_COLUMNS:
        raise BenchmarkError(f"There is no paired comparison for {name!r}; use one of {', '.join(METRIC_COLUMNS)}.")
    if "id" in base_scores and "id" in rewritten_scores and list(base_scores["id"]) != list(rewritten_scores["id"]):
        raise BenchmarkError(f"The base model and the rewrite scored different {name} rows; pair the same rows.")
    columns = METRIC_COLUMNS[name]
    inputs = [[scores[c] for c in columns] for scores in (base_scores, rewritten_scores)]
    return paired_change(name, *inputs, bootstrap_samples=bootstrap_samples, confidence=confidence, seed=seed)


def verdict(change: Estimate | dict | None) -> str | None:
    """`"less biased"` when the paired interval of the bias change lies below 0, `"more biased"` when above, else
    `"no clear change"` (`None` without an interval)."""
    if change is None:
        return None
    low, high = (
        (change.ci_low, change.ci_high) if isinstance(change, Estimate) else (change["ci_low"], change["ci_high"])
    )
    if low is None or high is None:
        return None
    return "less biased" if high < 0 else "more biased" if low > 0 else "no clear change"


def attach_paired(base, rewritten) -> dict[str, dict]:
    """Computes the paired change of every benchmark both reports scored and stores it in the rewrite's report.

    Each benchmark of `rewritten.benchmarks` that `base` also scored, with per-row scores in both (`.scores`, as
    [`evaluate_bias`] returns them), gets `paired_change`: `value_change` and `bias_change` as dicts (value, ci_low,
    ci_high, n), with the bootstrap settings of the rewrite's report. It is saved with the report (`to_dict`), so a
    `benchmarks.json` keeps it after the per-row scores are gone.

    Args:
        base ([`BenchmarkReport`]): The base model's report.
        rewritten ([`BenchmarkReport`]): The rewrite's report (changed in place).

    Returns:
        `dict`: benchmark → its `paired_change`.
    """
    settings = rewritten.settings or {}
    options = {key: settings[key] for key in ("bootstrap_samples", "confidence", "seed") if key in settings}
    found = {}
    for name, result in rewritten.benchmarks.items():
        if name in base.benchmarks and name in (base.scores or {}) and name in (rewritten.scores or {}):
            change = paired_from_scores(name, base.scores[name], rewritten.scores[name], **options)
            result["paired_change"] = found[name] = {key: e.to_dict() for key, e in change.items()}
    return found
