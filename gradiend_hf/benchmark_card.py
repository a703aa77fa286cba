"""The bias-benchmark part of a card (rewritten model or GRADIEND): a table of every score with its interval, and the
scores as `model-index` eval results in the card's metadata.

Reports come from [`gradiend_hf.benchmarks.evaluate_bias`] or from the `benchmarks.json` that
`gradiend-hf benchmark` (or [`BenchmarkReport.save`]) writes. With a `"base"` and a `"rewritten"` report the table
compares them (with the verdict of [`compare_reports`]); the eval results are those of the rewritten model.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path

from .benchmarks.errors import BenchmarkError
from .benchmarks.report import BenchmarkReport, comparison_markdown, comparison_rows


def benchmark_reports(reports) -> dict[str, BenchmarkReport]:
    """`reports` as `{label: BenchmarkReport}`.

    Args:
        reports: A [`BenchmarkReport`]; a mapping of labels to reports (or to their `to_dict()`); or the path of a
            `benchmarks.json` (or of the folder holding it) as `gradiend-hf benchmark` or `BenchmarkReport.save`
            write it.

    Raises:
        [`BenchmarkError`]: for a missing or unreadable `benchmarks.json`, or something that is not a report.
    """
    if isinstance(reports, BenchmarkReport):
        return {"model": reports}
    if isinstance(reports, (str, os.PathLike)):
        path = Path(reports)
        path = path / "benchmarks.json" if path.is_dir() else path
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            raise BenchmarkError(f"Cannot read the benchmark report {os.fspath(path)!r}: {error}") from None
        reports = data.get("reports", {"model": data}) if isinstance(data, dict) else None
    if not isinstance(reports, Mapping) or not reports:
        raise BenchmarkError(
            "`benchmark_reports` must be a BenchmarkReport, a non-empty {label: report} mapping or the path of a "
            "benchmarks.json."
        )
    out = {}
    for label, report in reports.items():
        if isinstance(report, Mapping) and {"model_name", "objective", "benchmarks"} <= set(report):
            report = BenchmarkReport.from_dict(report)
        if not isinstance(report, BenchmarkReport):
            raise BenchmarkError(f"The benchmark report {label!r} is not a BenchmarkReport or its dict.")
        out[str(label)] = report
    return out


def scored_report(reports: Mapping[str, BenchmarkReport]) -> BenchmarkReport:
    """The report of the model a card describes: `"rewritten"` when there is one, else the last."""
    return reports.get("rewritten", list(reports.values())[-1])


def benchmark_section(reports) -> dict:
    """The template values of a card's benchmark section (empty values without reports).

    Returns:
        `dict`: `benchmark_header` (cells), `benchmark_rows` (rows of cells) and `benchmark_sentence`.
    """
    if reports is None:
        return {"benchmark_header": [], "benchmark_rows": [], "benchmark_sentence": None}
    reports = benchmark_reports(reports)
    header, rows = comparison_rows(reports)
    settings = scored_report(reports).settings
    confidence = round(100 * float(settings.get("confidence", 0.95)))
    sentence = (
        f"Bias benchmarks scored with gradiend-hf (`gradiend_hf.benchmarks`): each score with its {confidence} % "
        f"bootstrap interval ({settings.get('bootstrap_samples')} resamples over rows, seed {settings.get('seed')})."
    )
    if len(reports) == 2:
        sentence += (
            " A verdict of *less* or *more biased* needs the change of the distance to the ideal value to exceed the "
            "width of the first model's interval."
        )
    sentence += " CrowS-Pairs is for evaluation only: its authors ask that it never be used to train a model."
    return {"benchmark_header": header, "benchmark_rows": rows, "benchmark_sentence": sentence}


def benchmark_model_index(reports, model_name: str | None = None) -> list[dict] | None:
    """The `model-index` metadata of the scored model's report (see [`scored_report`]), named `model_name` (by default
    the report's model name), or `None` without reports."""
    if reports is None:
        return None
    return scored_report(benchmark_reports(reports)).model_index(model_name)


def benchmark_markdown(reports) -> str:
    """The benchmark section as Markdown (its sentence and table), e.g. for the app."""
    reports = benchmark_reports(reports)
    return benchmark_section(reports)["benchmark_sentence"] + "\n\n" + comparison_markdown(reports)
