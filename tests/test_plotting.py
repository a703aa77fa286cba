"""Figures render from hand-made histories and reports, save PNGs, and fail clearly without matplotlib."""

import sys

import numpy as np
import pandas as pd
import pytest

from gradiend_hf.evaluation import DecoderReport, DecoderSelection, EncoderReport
from gradiend_hf.plotting import plot_decoder_grid, plot_encoder_distributions, plot_training_convergence


PNG = b"\x89PNG\r\n\x1a\n"


def encoder_report() -> EncoderReport:
    rng = np.random.default_rng(0)
    rows = []
    for name, expected in (("M", 1), ("F", -1)):
        for value in np.clip(expected * 0.8 + rng.normal(0, 0.1, 20), -1, 1):
            rows.append(
                {
                    "type": "training",
                    "factual_class": name,
                    "factual": name.lower(),
                    "expected": expected,
                    "encoding": value,
                }
            )
    for kind in ("neutral_training_masked", "neutral_dataset"):
        for value in rng.uniform(-0.3, 0.3, 15):
            rows.append({"type": kind, "factual_class": None, "factual": "w", "expected": 0, "encoding": value})
    return EncoderReport(
        metrics={"correlation": 0.97, "accuracy": 0.9},
        rows=pd.DataFrame(rows),
        feature_classes=["M", "F"],
        split="test",
    )


def decoder_report(lrs=(0.01, 0.1, 1.0, 10.0)) -> DecoderReport:
    records = []
    for ff in (1.0, -1.0):
        for lr in lrs:
            shift = ff * lr / 10
            records.append(
                {
                    "feature_factor": ff,
                    "learning_rate": lr,
                    "prob_M_on_M": 0.5 + shift / 2,
                    "prob_F_on_M": 0.2 - shift / 10,
                    "prob_M_on_F": 0.1 + shift / 20,
                    "prob_F_on_F": 0.6 - shift / 2,
                    "lms": 0.5 - abs(lr) / 40,
                }
            )
    grid = pd.DataFrame(records)
    base = {"prob_M_on_M": 0.5, "prob_F_on_M": 0.2, "prob_M_on_F": 0.1, "prob_F_on_F": 0.6, "lms": 0.5}
    selected = DecoderSelection(1.0, 1.0, 0.105, 0.475, 0.1, 0.5, "strengthen_M")
    return DecoderReport(grid, base, selected, "M", True, "lms_threshold", ["M", "F"], {"M": 4, "F": 4}, 8)


def test_training_convergence_reads_plain_and_trainer_histories(tmp_path):
    history = [
        {"step": 0, "correlation": 0.1, "mean_by_class": {"M": 0.05, "F": 0.0}},
        {"step": 10, "correlation": -0.9, "mean_by_class": {"M": -0.8, "F": 0.7}},
        {"step": 20, "correlation": 0.6, "mean_by_class": {"M": 0.5, "F": -0.4}},
    ]
    figure = plot_training_convergence(history, save_path=tmp_path / "a" / "conv.png")
    assert (tmp_path / "a" / "conv.png").read_bytes().startswith(PNG)
    top, bottom = figure.axes
    assert list(top.lines[0].get_ydata()) == [0.1, -0.9, 0.6]
    assert list(top.lines[1].get_xdata()) == [10, 10]  # best |correlation| marker
    assert [line.get_label() for line in bottom.get_legend().get_lines()] == ["M", "F"]

    log_history = [
        {"loss": 0.1, "step": 1},
        {"eval_correlation": 0.8, "eval_mean_M": 0.7, "eval_mean_F": -0.6, "step": 5},
    ]
    figure = plot_training_convergence(log_history)
    assert list(figure.axes[0].lines[0].get_xdata()) == [5]
    with pytest.raises(ValueError, match="no evaluation with a correlation"):
        plot_training_convergence([{"loss": 0.3, "step": 1}])


def test_encoder_distributions_show_each_class_and_neutral_type(tmp_path):
    figure = plot_encoder_distributions(encoder_report(), save_path=tmp_path / "enc.png")
    assert (tmp_path / "enc.png").read_bytes().startswith(PNG)
    (ax,) = figure.axes
    labels = [tick.get_text() for tick in ax.get_xticklabels()]
    assert labels == [
        "M rows\nexpected +1",
        "F rows\nexpected -1",
        "neutral\n(test sentences)",
        "neutral\n(neutral text)",
    ]
    assert "correlation 0.970" in ax.get_title()


@pytest.mark.parametrize("lrs, scale", [((0.01, 0.1, 1.0, 10.0), "log"), ((-1.0, 0.0, 0.1, 1.0), "symlog")])
def test_decoder_grid_marks_the_selection_and_the_base(tmp_path, lrs, scale):
    report = decoder_report(lrs)
    figure = plot_decoder_grid(report, save_path=tmp_path / "dec.png")
    assert (tmp_path / "dec.png").read_bytes().startswith(PNG)
    panels = figure.axes
    assert len(panels) == 3 and all(ax.get_xscale() == scale for ax in panels)
    assert [ax.get_title() for ax in panels] == ["rows of class M", "rows of class F", "language-modelling score"]
    stars = [line for line in panels[2].lines if line.get_marker() == "*"]
    assert [(list(s.get_xdata()), list(s.get_ydata())) for s in stars] == [([1.0], [0.475])]
    base_lines = [line for line in panels[2].lines if list(line.get_ydata()) == [0.5, 0.5]]
    assert base_lines, "base LMS drawn as a horizontal line"
    assert "strengthen M" in figure.get_suptitle()


def test_missing_matplotlib_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    with pytest.raises(ImportError, match=r'pip install "gradiend-hf\[plot\]"'):
        plot_decoder_grid(decoder_report())
