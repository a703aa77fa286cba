"""The table of a bias-vs-quality sweep and what can be read from it: the selected rewrite, whether it beats the base
model by more than its interval, per-point reports for model cards, files and the figure."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ..io import atomic_write_json, atomic_write_text
from .metrics import HEADLINES, headline
from .paired import verdict as paired_verdict
from .plots import plot_sweep
from .report import BenchmarkReport


@dataclass
class SweepResult:
    """Result of [`sweep_rewrites`].

    Args:
        table (`pd.DataFrame`): One row per point (row 0 = the unchanged model, `is_base`): `feature_factor`,
            `learning_rate`, `lms` (+ `nll`, `perplexity` for causal LMs), `lms_loss` (relative to the base), per
            benchmark `<name>_<metric>`, `<name>_ci_low`, `<name>_ci_high`, `<name>_bias` and the change of that
            bias from the base model with its paired-bootstrap interval (`<name>_bias_change`,
            `<name>_bias_change_ci_low`, `<name>_bias_change_ci_high`; negative = less biased); `bias` (the primary
            benchmark's), `broken` (non-finite scores), `pareto`, `selected`, `seconds`.
        primary (`str`): The benchmark the selection minimises.
        selected_index (`int`): Row of the selected point.
        metrics (`list[dict]`): Per row, every benchmark's full metrics (with intervals).
        settings (`dict`): The sweep's settings (budget, quality, bootstrap, …).
    """

    table: pd.DataFrame
    primary: str
    selected_index: int
    metrics: list = field(default_factory=list, repr=False)
    settings: dict = field(default_factory=dict)
    model_name: str | None = None
    objective: str | None = None

    @property
    def base(self) -> pd.Series:
        return self.table.iloc[0]

    @property
    def selected(self) -> pd.Series:
        return self.table.loc[self.selected_index]

    def summary(self) -> dict:
        """The base model and the selected rewrite on the primary benchmark: whether the rewrite is closer to the
        unbiased value by more than the width of the base model's interval (`significant`), and the paired-bootstrap
        interval of its bias change (`paired_bias_change`, `paired_verdict`: "less biased" when the interval lies
        below 0)."""
        base, chosen, p = self.base, self.selected, self.primary
        width = float(base[f"{p}_ci_high"] - base[f"{p}_ci_low"]) if pd.notna(base[f"{p}_ci_low"]) else None
        improvement = float(base["bias"] - chosen["bias"])
        return {
            "benchmark": p,
            "metric": headline_metric(p),
            "base": _point(base, p),
            "selected": _point(chosen, p),
            "improvement": improvement,
            "base_interval_width": width,
            "significant": bool(width is not None and improvement > width),
            "paired_bias_change": _paired(chosen, p),
            "paired_verdict": paired_verdict(_paired(chosen, p)),
            "lms_loss": float(chosen["lms_loss"]),
            "budget": self.settings.get("budget"),
        }

    def report(self, index: int | None = None) -> BenchmarkReport:
        """The [`BenchmarkReport`] of one point (default: the selected one), e.g. for a model card."""
        index = self.selected_index if index is None else index
        row = self.table.loc[index]
        benchmarks = {}
        for name, metrics in self.metrics[index].items():
            benchmarks[name] = {
                "metrics": metrics,
                "headline": headline(name, metrics),
                "bias_types": self.settings["bias_types"].get(name),
                "num_rows": self.settings["num_rows"][name],
            }
            if not row["is_base"] and _paired(row, name) is not None:
                benchmarks[name]["paired_change"] = {"bias_change": _paired(row, name)}
        lm = {k: float(row[k]) for k in ("lms", "nll", "perplexity") if k in row and pd.notna(row[k])}
        rewrite = (
            None
            if row["is_base"]
            else {"feature_factor": row["feature_factor"], "learning_rate": row["learning_rate"]}
        )
        return BenchmarkReport(
            model_name=self.model_name,
            objective=self.objective,
            benchmarks=benchmarks,
            language_modeling={**lm, "num_texts": self.settings["num_lm_texts"]},
            settings={k: self.settings[k] for k in ("bootstrap_samples", "confidence", "seed")},
            rewrite=rewrite,
        )

    def to_dict(self) -> dict:
        return {
            "primary": self.primary,
            "summary": self.summary(),
            "settings": self.settings,
            "table": self.table.to_dict(orient="records"),
        }

    def to_markdown(self) -> str:
        s, p = self.summary(), self.primary
        keep = [
            "feature_factor",
            "learning_rate",
            f"{p}_{s['metric']}",
            f"{p}_ci_low",
            f"{p}_ci_high",
            "lms",
            "lms_loss",
        ]
        front = self.table[self.table["pareto"]][keep + ["selected"]]
        base, chosen = s["base"], s["selected"]
        width = "n/a" if s["base_interval_width"] is None else f"{s['base_interval_width']:.2f}"
        if self.selected["is_base"]:
            what = "no rewrite (no point within the budget is less biased than the base model)"
        else:
            what = f"the rewrite with feature factor {chosen['feature_factor']:g}, learning rate {chosen['learning_rate']:g}"
        lines = [
            f"# Bias-vs-quality sweep ({p})",
            "",
            f"Base model: {s['metric']} {base['value']:.2f} [{_fmt(base['ci_low'])}, {_fmt(base['ci_high'])}], "
            f"LMS {base['lms']:.4f}.",
            f"Selected: {what} — {s['metric']} {chosen['value']:.2f} [{_fmt(chosen['ci_low'])}, "
            f"{_fmt(chosen['ci_high'])}], LMS {chosen['lms']:.4f} ({100 * s['lms_loss']:.2f} % loss; budget "
            f"{100 * s['budget']:g} %).",
            f"It is closer to the unbiased value by {s['improvement']:.2f}, "
            f"{'more' if s['significant'] else 'not more'} than the width of the base model's interval ({width}).",
            _paired_sentence(s["paired_bias_change"], s["paired_verdict"]),
            "",
            "Pareto front:",
            "",
            markdown_table(front),
        ]
        return "\n".join(lines) + "\n"

    def save(self, directory) -> dict:
        """Writes `sweep.json`, `sweep.csv` and `sweep.md` (atomically); returns their paths."""
        directory = Path(directory)
        paths = {"json": directory / "sweep.json", "csv": directory / "sweep.csv", "markdown": directory / "sweep.md"}
        atomic_write_json(paths["json"], self.to_dict(), indent=2, default=float)
        atomic_write_text(paths["csv"], self.table.to_csv(index=False))
        atomic_write_text(paths["markdown"], self.to_markdown())
        return paths

    def plot(self, save_path=None, title: str | None = None):
        """Bias against LM quality with the Pareto front and the selected point (see [`plot_sweep`])."""
        return plot_sweep(self, save_path=save_path, title=title)


def _paired(row: pd.Series, name: str) -> dict | None:
    column = f"{name}_bias_change"
    if column not in row or pd.isna(row[column]):
        return None
    return {
        key: _maybe(row[f"{column}{suffix}"])
        for key, suffix in (("value", ""), ("ci_low", "_ci_low"), ("ci_high", "_ci_high"))
    }


def _paired_sentence(change: dict | None, verdict: str | None) -> str:
    if change is None or verdict is None:
        return "The paired change of the bias has no interval (no bootstrap)."
    return (
        f"Paired bootstrap of the bias change (rewrite − base, same resampled rows): {change['value']:+.2f} "
        f"[{_fmt(change['ci_low'])}, {_fmt(change['ci_high'])}] — {verdict}."
    )


def headline_metric(name: str) -> str:
    """The name of a benchmark's headline metric (`stereotype_score`, `ss`, `gap`)."""
    return HEADLINES[name][0]


def _point(row: pd.Series, name: str) -> dict:
    value = row[f"{name}_{headline_metric(name)}"]
    return {
        "value": float(value),
        "ci_low": _maybe(row[f"{name}_ci_low"]),
        "ci_high": _maybe(row[f"{name}_ci_high"]),
        "bias": float(row["bias"]),
        "feature_factor": float(row["feature_factor"]),
        "learning_rate": float(row["learning_rate"]),
        "lms": float(row["lms"]),
    }


def _fmt(value) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def _maybe(value):
    return None if value is None or pd.isna(value) else float(value)


def markdown_table(frame: pd.DataFrame) -> str:
    """A plain Markdown table of `frame` (numbers with 4 significant digits)."""
    cells = [[f"{v:.4g}" if isinstance(v, float) else str(v) for v in row] for row in frame.itertuples(index=False)]
    lines = ["| " + " | ".join(map(str, frame.columns)) + " |", "|" + " --- |" * len(frame.columns)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in cells])
