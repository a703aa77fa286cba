"""The bias-vs-quality figure of a sweep (matplotlib, optional: `pip install "gradiend-hf[plot]"`).

The figures are built and written as those of [`gradiend_hf.plotting`] (no pyplot state, atomic PNGs).
"""

from __future__ import annotations

import os

from ..plotting import _figure, _save
from .metrics import HEADLINES


def plot_sweep(result, save_path: str | os.PathLike | None = None, title: str | None = None):
    """Bias score against LM quality: every rewrite of the sweep (with its interval), the Pareto front, the base
    model, the selected rewrite and the LM-quality budget.

    Args:
        result ([`SweepResult`]): The sweep.
        save_path (`str`, *optional*): Write a PNG there.
        title (`str`, *optional*): Figure title.

    Returns:
        `matplotlib.figure.Figure`.
    """
    table, primary = result.table, result.primary
    metric, ideal = HEADLINES[primary]
    value, low, high = table[f"{primary}_{metric}"], table[f"{primary}_ci_low"], table[f"{primary}_ci_high"]
    quality = result.settings.get("quality", "lms")
    x = table[quality]
    usable = value.notna() & x.notna() & (x.abs() != float("inf"))

    figure, axes = _figure(1, 1, (7.0, 4.5))
    axes = axes[0, 0]
    errors = [(value - low).where(low.notna(), 0.0)[usable], (high - value).where(high.notna(), 0.0)[usable]]
    axes.errorbar(
        x[usable], value[usable], yerr=errors, fmt="o", color="#9e9e9e", ms=4, alpha=0.6, lw=0.8, label="rewrites"
    )
    front = table[table["pareto"] & usable].sort_values(quality)
    axes.plot(front[quality], front[f"{primary}_{metric}"], "-o", color="#1f77b4", ms=5, label="Pareto front")
    axes.axhline(ideal, color="#2ca02c", ls="--", lw=1, label=f"unbiased ({ideal:g})")
    base = table.iloc[0]
    budget = result.settings.get("budget")
    if budget is not None:
        limit = (1 - budget) * base[quality] if quality == "lms" else (1 + budget) * base[quality]
        axes.axvline(limit, color="#ff7f0e", ls=":", lw=1, label=f"{100 * budget:g} % {quality} budget")
    # A hollow square drawn over the star, so the base model stays visible when it is the selected point.
    axes.plot(
        [base[quality]],
        [base[f"{primary}_{metric}"]],
        "s",
        mfc="none",
        mec="black",
        mew=1.5,
        ms=12,
        zorder=5,
        label="base model",
    )
    chosen = result.selected
    axes.plot(
        [chosen[quality]],
        [chosen[f"{primary}_{metric}"]],
        "*",
        color="#d62728",
        ms=16,
        label="selected: no rewrite"
        if chosen["is_base"]
        else f"selected (ff {chosen['feature_factor']:g}, lr {chosen['learning_rate']:g})",
    )
    axes.set_xlabel("LMS (higher is better)" if quality == "lms" else "perplexity (lower is better)")
    axes.set_ylabel(f"{primary} {metric}")
    axes.set_title(title or f"Bias vs. language-modelling quality ({primary})")
    axes.legend(fontsize=8, loc="best")
    _save(figure, save_path)
    return figure


def plot_benchmarks(reports, save_path: str | os.PathLike | None = None, title: str | None = None):
    """The headline score of every benchmark for one or more models (e.g. base vs rewritten), with intervals.

    Args:
        reports (`Mapping[str, BenchmarkReport]`): Label → report.
        save_path (`str`, *optional*): Write a PNG there.
        title (`str`, *optional*): Figure title.

    Returns:
        `matplotlib.figure.Figure`: one panel per benchmark; the unbiased value as a dashed line.
    """
    labels = list(reports)
    names = list(dict.fromkeys(name for report in reports.values() for name in report.benchmarks))
    figure, axes = _figure(1, max(1, len(names)), (3.2 * max(1, len(names)), 3.4))
    axes = axes[0]
    for axis, name in zip(axes, names):
        metric, ideal = HEADLINES[name]
        for k, label in enumerate(labels):
            result = reports[label].benchmarks.get(name)
            if result is None:
                continue
            top = result["headline"]
            low, high = top.get("ci_low"), top.get("ci_high")
            error = None if low is None else [[top["value"] - low], [high - top["value"]]]
            axis.errorbar([k], [top["value"]], yerr=error, fmt="o", ms=7, capsize=4, label=label)
        axis.axhline(ideal, color="#2ca02c", ls="--", lw=1)
        axis.set_xticks(range(len(labels)), labels)
        axis.set_xlim(-0.6, len(labels) - 0.4)
        axis.set_title(f"{name}: {metric} (ideal {ideal:g})", fontsize=9)
    if title:
        figure.suptitle(title)
    _save(figure, save_path)
    return figure
