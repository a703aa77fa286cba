"""The comparison table: one workload's reference and gradiend-hf results side by side, with ratios.

Both runners report the same keys (see `hf_runner.py` / `reference_runner.py`):

    phases.{load|data_prep,training,encoder_eval,decoder_eval,rewrite}.seconds
    steps.step_seconds_median            median whole-step time, first step and evaluating steps excluded
    workflow_seconds                     model/data loading through the rewrite (imports excluded)
    peak_rss_mb                          peak RSS of the child process (`wait4`), else its own `ru_maxrss`
    encoder.{correlation,rows}
    decoder.{feature_factor,learning_rate,value,lms,rows_by_class,lms_texts,grid_points}

Ratios are reference / gradiend-hf: above 1 means gradiend-hf is faster (or smaller).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass


@dataclass
class Row:
    """One table row: a measurement of both sides and, for costs, their ratio."""

    workload: str
    metric: str
    reference: str
    ours: str
    ratio: str
    ratio_value: float | None = None


def get(result: dict | None, path: str):
    """`result[a][b]…` for `path = "a.b…"`, or `None` where a key is missing."""
    value = result
    for key in path.split("."):
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    return value


def ratio(reference: float | None, ours: float | None) -> float | None:
    """reference / ours, or `None` when either is missing or not positive."""
    if not isinstance(reference, (int, float)) or not isinstance(ours, (int, float)):
        return None
    if not (reference > 0 and ours > 0 and math.isfinite(reference) and math.isfinite(ours)):
        return None
    return reference / ours


def format_ratio(value: float | None) -> str:
    if value is None:
        return "–"
    return f"{value:.0f}×" if value >= 100 else f"{value:.3g}×"


def format_seconds(value: float | None) -> str:
    if not isinstance(value, (int, float)):
        return "–"
    if value >= 100:
        return f"{value:.0f} s"
    return f"{value:.3g} s"


def format_mb(value: float | None) -> str:
    if not isinstance(value, (int, float)):
        return "–"
    return f"{value / 1024:.1f} GB" if value >= 4096 else f"{value:.0f} MB"  # GB = 1024 MB, as psutil counts


def format_rewrite(result: dict | None) -> str:
    ff, lr = get(result, "decoder.feature_factor"), get(result, "decoder.learning_rate")
    if ff is None or lr is None:
        return "–"
    return f"ff {ff:+g}, lr {lr:g}"


def format_count(value) -> str:
    return f"{value:,}" if isinstance(value, int) else "–"


def format_number(value, digits: int = 4) -> str:
    return f"{value:.{digits}f}" if isinstance(value, (int, float)) else "–"


def peak_rss(result: dict | None) -> float | None:
    return get(result, "peak_rss_mb") or get(result, "self_max_rss_mb")


def counts(reference: dict | None, ours: dict | None, path: str) -> str:
    """`"900"` when both sides agree on a count, `"900 / 880"` (reference / ours) when not. `path` as for [`get`];
    `decoder.rows` is the sum of `decoder.rows_by_class`."""
    values = [decoder_size(r) if path == "decoder.rows" else get(r, path) for r in (reference, ours)]
    values = [v for v in values if v is not None]
    if not values:
        return "?"
    return str(values[0]) if len(set(values)) == 1 else " / ".join(str(v) for v in values)


def decoder_size(result: dict | None) -> int | None:
    rows = get(result, "decoder.rows_by_class")
    return sum(rows.values()) if isinstance(rows, dict) else None


def cost_row(workload: str, metric: str, reference: float | None, ours: float | None, fmt) -> Row:
    value = ratio(reference, ours)
    return Row(workload, metric, fmt(reference), fmt(ours), format_ratio(value), value)


def fact_row(workload: str, metric: str, fmt, reference: dict | None, ours: dict | None) -> Row:
    """A row without a ratio: `fmt(result)` of each side."""
    return Row(workload, metric, fmt(reference), fmt(ours), "")


def workload_rows(workload: dict, reference: dict | None, ours: dict | None) -> list[Row]:
    """The table rows of one workload (costs with ratios, then correlation and selected rewrite)."""
    name, w = workload["name"], workload
    rows = [
        cost_row(
            name,
            f"time per training step ({w['sentences_per_gradient']} sentences, median of {w['steps']} steps)",
            get(reference, "steps.step_seconds_median"),
            get(ours, "steps.step_seconds_median"),
            format_seconds,
        )
    ]
    if w.get("encoder_eval"):
        rows.append(
            cost_row(
                name,
                f"encoder evaluation ({counts(reference, ours, 'encoder.rows')} rows)",
                get(reference, "phases.encoder_eval.seconds"),
                get(ours, "phases.encoder_eval.seconds"),
                format_seconds,
            )
        )
    if w.get("decoder_eval"):
        label = (
            f"decoder grid ({counts(reference, ours, 'decoder.grid_points')} points, "
            f"{counts(reference, ours, 'decoder.rows')} rows + {counts(reference, ours, 'decoder.lms_texts')} "
            "LMS texts)"
        )
        rows.append(
            cost_row(
                name,
                label,
                get(reference, "phases.decoder_eval.seconds"),
                get(ours, "phases.decoder_eval.seconds"),
                format_seconds,
            )
        )
    rows.append(
        cost_row(
            name,
            "whole workflow (load, train, evaluate, grid, rewrite)",
            get(reference, "workflow_seconds"),
            get(ours, "workflow_seconds"),
            format_seconds,
        )
    )
    rows.append(cost_row(name, "peak RSS", peak_rss(reference), peak_rss(ours), format_mb))
    rows.append(
        fact_row(
            name,
            "GRADIEND inputs (base-model parameters covered)",
            lambda r: format_count(get(r, "gradiend_inputs")),
            reference,
            ours,
        )
    )
    if w.get("encoder_eval"):
        correlation = lambda r: format_number(get(r, "encoder.correlation"))  # noqa: E731
        rows.append(fact_row(name, "test correlation", correlation, reference, ours))
    if w.get("decoder_eval"):
        label = f"selected rewrite (strengthen {w.get('decoder_class')})"
        rows.append(fact_row(name, label, format_rewrite, reference, ours))
    return rows


def markdown(rows: list[Row], notes: list[str] = ()) -> str:
    """The issue-18 table: `| workload | reference | gradiend-hf | ratio |`, plus notes below."""
    lines = ["| workload | reference | gradiend-hf | ratio |", "|---|---|---|---|"]
    for row in rows:
        lines.append(f"| {row.workload}: {row.metric} | {row.reference} | {row.ours} | {row.ratio} |")
    lines.extend(["", *notes] if notes else [])
    return "\n".join(lines) + "\n"


def comparison(entries: list[dict]) -> dict:
    """Table rows of several workloads. `entries`: `{"workload": dict, "reference": result, "gradiend-hf": result}`."""
    rows = []
    for entry in entries:
        rows.extend(workload_rows(entry["workload"], entry.get("reference"), entry.get("gradiend-hf")))
    return {"rows": [asdict(row) for row in rows], "table": rows}


EXPLANATIONS = (
    "- ratio = reference / gradiend-hf: above 1, gradiend-hf is faster (or smaller).",
    "- time per training step: median of the intervals between step starts (gradient, GRADIEND update and "
    "callbacks of one step), the first step and steps that ran an evaluation left out.",
    "- `a / b` in a label: the counts differ, reference / gradiend-hf. For strengthening a class the reference's "
    "grid scores only the other class's rows (the ones its metric reads); gradiend-hf's scores both classes' rows.",
    "- Timings on a shared machine are noisy: compare the load averages above before reading much into a ratio.",
)


def notes(entries: list[dict]) -> list[str]:
    """The lines under the table: how loaded the machine was during each run, then what the columns mean."""
    return machine_notes(entries) + list(EXPLANATIONS)


def machine_notes(entries: list[dict]) -> list[str]:
    """One line per run saying how loaded the machine was (load averages before and after each child)."""
    notes = []
    for entry in entries:
        for side in ("reference", "gradiend-hf"):
            result = entry.get(side) or {}
            machine = result.get("machine") or {}
            if machine:
                threads = machine.get("threads")
                notes.append(
                    f"- {entry['workload']['name']} / {side}: {machine.get('cpu_count')} CPUs, "
                    f"{threads} thread{'' if threads == 1 else 's'}, load average {machine.get('load_before')} before → "
                    f"{machine.get('load_after')} after, run {result.get('finished', '?')}"
                )
    return notes
