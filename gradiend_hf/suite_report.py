"""The report of a suite: `suite.json`, `suite.md` and the figures, and the suite facts of each member's card.

Written by [`gradiend_hf.suite.train_suite`] after every member (then without the comparisons) and once more at
the end, each file atomically.
"""

from __future__ import annotations

import importlib.util
import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd
from transformers.utils import logging

from .artefacts import SUITE_REPORT_NAME
from .card_utils import fmt, signed
from .comparison import similarity_matrix, topk_sets
from .data import ClassView
from .io import atomic_write_json, atomic_write_text


logger = logging.get_logger(__name__)

SUITE_FORMAT = "gradiend-hf-suite/1"
SUITE_MARKDOWN = "suite.md"
FIGURES_DIR = "figures"
SCALAR_METRICS = ("correlation", "accuracy", "binary_accuracy", "correlation_all")


def member_test_metrics(report) -> dict[str, Any]:
    """What the suite report keeps of a member's [`EncoderReport`]: the pair's scalar metrics, the class means,
    the neutral means and the mean encoding of every transition (not oriented)."""
    metrics = report.metrics
    kept = {name: metrics[name] for name in SCALAR_METRICS if name in metrics}
    for name in ("mean_by_class", "mean_by_target_class", "neutral_mean", "mean_by_transition", "num_rows"):
        if metrics.get(name):
            kept[name] = dict(metrics[name])
    kept["split"] = report.split
    return kept


def suite_facts(
    members: Mapping[str, Any], self_name: str, title: str, locations: Mapping[str, str] | None = None, link=None
) -> dict[str, Any]:
    """The suite section of a member's card: the suite's title and link and every member with its feature.

    Args:
        members (`Mapping[str, SuiteMember]`): The suite's members.
        self_name (`str`): The member whose card this is.
        title (`str`): The suite's name.
        locations (`Mapping[str, str]`, *optional*): member → Hub repo id; by default the members' folders
            relative to this member's folder (`../<folder>`), for a card read locally.
        link (`str`, *optional*): URL of the suite (e.g. its Hub collection).
    """
    rows = []
    for name, member in members.items():
        location = (locations or {}).get(name) or f"../{os.path.basename(member.folder)}"
        rows.append(
            {
                "name": name,
                "feature": ClassView.from_dict(member.view).summary,
                "location": location,
                "is_self": name == self_name,
            }
        )
    return {"title": title, "link": link, "members": rows}


def write_suite_report(
    report: dict,
    *,
    result=None,
    transitions: pd.DataFrame | None = None,
    top_k: int | float = 1000,
    venn: Sequence[str] | None = None,
    figures: bool = True,
) -> dict:
    """Writes `suite.json` and `suite.md` into `report["output_dir"]` (and the figures), each atomically.

    Args:
        report (`dict`): The suite's members and facts.
        result ([`SuiteResult`], *optional*): The trained suite; with it the top-k overlap of the members' decoder
            weights is computed and the figures drawn.
        transitions (`pd.DataFrame`, *optional*): The member × transition matrix ([`transition_frame`]).
        top_k (`int` or `float`, *optional*, defaults to 1000): k of the top-k overlap.
        venn (`Sequence[str]`, *optional*): Members of the Venn figure (two or three); by default all of a suite of
            two or three.
        figures (`bool`, *optional*, defaults to `True`): Draw the figures (skipped with a warning without
            matplotlib).

    Returns:
        `dict`: the report as written.
    """
    output_dir = report["output_dir"]
    report = {**report, "output_dir": None}  # a suite folder can move; its paths are relative to it
    if transitions is not None:
        report["transition_encoding"] = _frame_json(transitions)
        report["transition_encoding"]["orientation"] = (
            "Mean encoding of the rows of each transition factual→alternative, times the member's orientation: +1 is "
            "the direction of its positive class"
        )
    overlap = None
    if result is not None and len(result) >= 2:
        overlap = similarity_matrix(result, measure="topk_overlap", k=top_k, part="decoder-weight")
        report["topk_overlap"] = {**_frame_json(overlap), "k": overlap.attrs.get("k", top_k), "part": "decoder-weight"}
    if result is not None and figures:
        report["figures"] = _draw(output_dir, result, overlap, transitions, top_k, venn)
    atomic_write_json(os.path.join(output_dir, SUITE_REPORT_NAME), report, default=_json_default)
    atomic_write_text(os.path.join(output_dir, SUITE_MARKDOWN), suite_markdown(report))
    return report


def _draw(output_dir, result, overlap, transitions, top_k, venn) -> dict[str, str]:
    if importlib.util.find_spec("matplotlib") is None:
        logger.warning('The suite figures need matplotlib (pip install "gradiend-hf[plot]"); skipped.')
        return {}
    from .comparison_plots import (  # noqa: PLC0415 (optional dependency: matplotlib)
        plot_similarity_heatmap,
        plot_topk_venn,
        plot_transition_heatmap,
    )

    os.makedirs(os.path.join(output_dir, FIGURES_DIR), exist_ok=True)
    drawn = {}

    def path(name: str) -> str:
        drawn[name] = f"{FIGURES_DIR}/{name}.png"
        return os.path.join(output_dir, drawn[name])

    if overlap is not None:
        plot_similarity_heatmap(overlap, save_path=path("topk_overlap"))
    members = list(venn) if venn is not None else (list(result) if 2 <= len(result) <= 3 else [])
    if members:
        sets = topk_sets({name: result[name] for name in members}, k=top_k, part="decoder-weight")
        plot_topk_venn(sets, save_path=path("topk_venn"), title=f"Top-{top_k} decoder weights")
    if transitions is not None and not transitions.empty:
        plot_transition_heatmap(transitions, save_path=path("transition_encoding"))
    return drawn


def suite_markdown(report: Mapping[str, Any]) -> str:
    """`suite.md`: the members, the transition matrix, the top-k overlap and the figures, as markdown."""
    lines = [f"# GRADIEND suite: {', '.join(report.get('classes', []))}", ""]
    facts = [
        ("Base model", report.get("base_model")),
        ("Dataset", report.get("dataset")),
        ("Complete", "yes" if report.get("complete") else "no (members are still to be trained)"),
        ("Wall time of this run", f"{report.get('wall_time_s', 0):.1f} s"),
    ]
    lines += [f"- {name}: {value}" for name, value in facts if value is not None] + ["", "## Members", ""]
    lines += [
        "| Member | Feature | Status | Converged | Validation corr. | Test corr. | Test mean per class | Training time |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for member in report.get("members", []):
        test = member.get("test") or {}
        means = ", ".join(f"{name} {signed(value)}" for name, value in (test.get("mean_by_class") or {}).items())
        cells = [
            f"`{member['name']}`",
            ClassView.from_dict(member["view"]).summary,
            member.get("status", ""),
            {True: "yes", False: "no"}.get(member.get("converged"), "–"),
            _number(member.get("best_correlation")),
            _number(test.get("correlation")),
            means or "–",
            f"{member['wall_time_s']:.1f} s" if member.get("wall_time_s") is not None else "–",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    table = report.get("transition_encoding")
    if table:
        lines += ["", "## How each member encodes every transition", "", table["orientation"] + ".", ""]
        lines += _markdown_table(table)
    overlap = report.get("topk_overlap")
    if overlap:
        lines += ["", f"## Top-{overlap['k']} overlap of the decoder weights", "", "Share of shared entries."]
        lines += [""] + _markdown_table(overlap)
    for name, path in (report.get("figures") or {}).items():
        lines += ["", f"![{name.replace('_', ' ')}]({path})"]
    return "\n".join(lines) + "\n"


def _markdown_table(table: Mapping[str, Any]) -> list[str]:
    lines = ["| | " + " | ".join(f"`{c}`" for c in table["columns"]) + " |"]
    lines.append("| --- |" + " --- |" * len(table["columns"]))
    for name, values in zip(table["index"], table["data"]):
        lines.append(f"| `{name}` | " + " | ".join(_number(v, "{:+.2f}") for v in values) + " |")
    return lines


def _number(value, style: str | None = None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return style.format(value) if style else fmt(value)


def _frame_json(frame: pd.DataFrame) -> dict[str, Any]:
    return {
        "index": [str(i) for i in frame.index],
        "columns": [str(c) for c in frame.columns],
        "data": [[None if pd.isna(v) else float(v) for v in row] for row in frame.to_numpy()],
    }


def _json_default(value):
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")
