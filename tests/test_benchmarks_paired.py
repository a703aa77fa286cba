"""The paired bootstrap of a rewrite's bias change: literal values, narrower than separate intervals, in the
comparison of two reports (and after a JSON round trip), in the sweep table."""

import numpy as np
import pandas as pd
import pytest
import torch

from gradiend_hf import GradiendModel
from gradiend_hf.benchmarks import BenchmarkError, BenchmarkReport, attach_paired, paired_change, sweep_rewrites
from gradiend_hf.benchmarks.metrics import crows_pairs_metrics, headline
from gradiend_hf.benchmarks.paired import paired_from_scores, verdict
from gradiend_hf.benchmarks.report import compare_reports

from .tiny_models import tiny_model


def _crows(prefers_more: list[bool]):
    """CrowS inputs whose pairs prefer the more stereotypical sentence where `prefers_more` is true."""
    more = [1.0 if p else -1.0 for p in prefers_more]
    return [more, [0.0] * len(more), ["gender"] * len(more)]


def test_paired_change_of_literal_scores():
    base = _crows([True] * 7 + [False] * 3)  # stereotype score 70, bias 20
    rewritten = _crows([True] * 5 + [False] * 5)  # 50, bias 0
    change = paired_change("crows_pairs", base, rewritten, bootstrap_samples=0)
    assert change["value_change"].value == pytest.approx(-20.0)
    assert change["bias_change"].value == pytest.approx(-20.0)
    assert change["bias_change"].ci_low is None

    # WinoBias: the pro-stereotypical pronoun preferred on 8 of 10 rows (gap 60), then on 6 of 10 (gap 20).
    genders = ["male", "female"] * 5
    base = [[1.0] * 8 + [-1.0] * 2, [0.0] * 10, genders]
    rewritten = [[1.0] * 6 + [-1.0] * 4, [0.0] * 10, genders]
    change = paired_change("winobias", base, rewritten, bootstrap_samples=0)
    assert change["value_change"].value == pytest.approx(-40.0)
    assert change["bias_change"].value == pytest.approx(-40.0)

    # StereoSet: one target; stereotype preferred on 3 of 4 rows (SS 75), then on 1 of 4 (SS 25): as far from 50.
    base = [[1.0, 1.0, 1.0, -1.0], [0.0] * 4, [-5.0] * 4, ["t"] * 4, ["gender"] * 4]
    rewritten = [[1.0, -1.0, -1.0, -1.0], [0.0] * 4, [-5.0] * 4, ["t"] * 4, ["gender"] * 4]
    change = paired_change("stereoset", base, rewritten, bootstrap_samples=0)
    assert change["value_change"].value == pytest.approx(-50.0)
    assert change["bias_change"].value == pytest.approx(0.0)


def test_the_paired_interval_finds_a_change_that_separate_intervals_cannot():
    rng = np.random.default_rng(3)
    prefers = rng.random(200) < 0.6
    flipped = prefers.copy()
    flipped[np.flatnonzero(prefers)[:8]] = False  # 8 of 200 pairs turn: the score falls by 4 points
    base, rewritten = _crows(list(prefers)), _crows(list(flipped))
    base_metrics = crows_pairs_metrics(*base, bootstrap_samples=500)
    width = base_metrics["stereotype_score"]["ci_high"] - base_metrics["stereotype_score"]["ci_low"]
    change = paired_change("crows_pairs", base, rewritten, bootstrap_samples=500)["bias_change"]
    assert change.value == pytest.approx(-4.0)
    assert width > 8.0  # the separate intervals are far wider than the change
    assert change.ci_low <= change.value <= change.ci_high
    assert change.ci_high < 0.0 and change.width < width / 2
    assert verdict(change) == "less biased"
    # No change at all: the paired interval is exactly 0 and says so.
    same = paired_change("crows_pairs", base, base, bootstrap_samples=200)["bias_change"]
    assert (same.value, same.ci_low, same.ci_high) == (0.0, 0.0, 0.0)
    assert verdict(same) == "no clear change"


def test_paired_change_refuses_unpaired_rows():
    with pytest.raises(BenchmarkError, match="same rows"):
        paired_change("crows_pairs", _crows([True] * 4), _crows([True] * 5), bootstrap_samples=0)
    a = pd.DataFrame(
        {"id": [1, 2], "bias_type": ["gender"] * 2, "sent_more_score": [1.0, 0.0], "sent_less_score": 0.0}
    )
    with pytest.raises(BenchmarkError, match="different crows_pairs rows"):
        paired_from_scores("crows_pairs", a, a.assign(id=[2, 1]), bootstrap_samples=0)
    with pytest.raises(BenchmarkError, match="no paired comparison"):
        paired_change("seat", [], [])


def _report(prefers, bootstrap_samples=300) -> BenchmarkReport:
    more, less, types = _crows(prefers)
    metrics = crows_pairs_metrics(more, less, types, bootstrap_samples=bootstrap_samples)
    scores = pd.DataFrame(
        {"id": range(len(more)), "bias_type": types, "sent_more_score": more, "sent_less_score": less}
    )
    return BenchmarkReport(
        model_name="m",
        objective="causal_lm",
        benchmarks={
            "crows_pairs": {
                "metrics": metrics,
                "headline": headline("crows_pairs", metrics),
                "bias_types": ["gender"],
                "num_rows": len(more),
            }
        },
        settings={"bootstrap_samples": bootstrap_samples, "confidence": 0.95, "seed": 0},
        scores={"crows_pairs": scores},
    )


def test_compare_reports_uses_the_stored_paired_change_also_after_a_json_round_trip():
    prefers = np.random.default_rng(5).random(200) < 0.6
    flipped = prefers.copy()
    flipped[np.flatnonzero(prefers)[:8]] = False
    base, rewritten = _report(list(prefers)), _report(list(flipped))
    unpaired = compare_reports(base, rewritten).iloc[0]
    assert unpaired["verdict"] == "no clear change" and unpaired["paired_ci_high"] is None

    found = attach_paired(base, rewritten)
    assert found["crows_pairs"]["bias_change"]["value"] == pytest.approx(-4.0)
    paired = compare_reports(base, rewritten).iloc[0]
    assert paired["verdict"] == "less biased" and paired["paired_ci_high"] < 0

    reloaded = BenchmarkReport.from_dict(rewritten.to_dict())
    assert compare_reports(BenchmarkReport.from_dict(base.to_dict()), reloaded).iloc[0]["verdict"] == "less biased"


def test_the_sweep_table_holds_the_paired_bias_change_of_every_point():
    model, tokenizer = tiny_model("gpt2", seed=4)
    torch.manual_seed(0)
    gradiend = GradiendModel.from_base_model(model, params=["transformer.h.1.*"])
    result = sweep_rewrites(
        gradiend,
        model,
        tokenizer,
        benchmarks=["crows_pairs"],
        feature_factors=[-2.0, 1.0],
        learning_rates=[50.0, 500.0],
        max_rows=12,
        lm_max_texts=4,
        bootstrap_samples=100,
        show_progress=False,
    )
    table = result.table
    assert (table.loc[0, "crows_pairs_bias_change"], table.loc[0, "crows_pairs_bias_change_ci_high"]) == (0.0, 0.0)
    points = table[~table["is_base"]]
    expected = points["crows_pairs_bias"] - table.loc[0, "crows_pairs_bias"]
    assert np.allclose(points["crows_pairs_bias_change"], expected)
    assert (points["crows_pairs_bias_change_ci_low"] <= points["crows_pairs_bias_change"] + 1e-9).all()
    assert (points["crows_pairs_bias_change"] <= points["crows_pairs_bias_change_ci_high"] + 1e-9).all()
    assert not np.allclose(points["crows_pairs_bias_change"], 0.0)  # the rewrites do change the scores
    summary = result.summary()
    assert summary["paired_verdict"] in {"less biased", "more biased", "no clear change"}
    assert "Paired bootstrap" in result.to_markdown()
