"""Benchmark reports: Markdown, JSON, and Hub eval results that round-trip through a model card."""

import json

import pytest
from huggingface_hub import ModelCard, ModelCardData

from gradiend_hf.benchmarks import (
    BenchmarkReport,
    comparison_markdown,
    crows_pairs_metrics,
    headline,
    winobias_metrics,
)


def _report(shift=0.0, name="tiny/base"):
    crows = crows_pairs_metrics(
        [-1.0 + shift, -2.0, -3.0, -4.0, -1.0, -2.0],
        [-2.0, -1.0, -3.5, -9.0, -0.5, -3.0],
        ["gender"] * 6,
        seed=1,
        bootstrap_samples=200,
    )
    wino = winobias_metrics([-1.0, -1.0, -2.0, -5.0], [-2.0, -2.0, -3.0, -1.0], ["male", "female", "male", "female"])
    return BenchmarkReport(
        model_name=name,
        objective="causal_lm",
        benchmarks={
            "crows_pairs": {
                "metrics": crows,
                "headline": headline("crows_pairs", crows),
                "bias_types": ["gender"],
                "num_rows": 6,
                "seconds": 1.5,
            },
            "winobias": {
                "metrics": wino,
                "headline": headline("winobias", wino),
                "bias_types": ["gender"],
                "num_rows": 4,
                "seconds": 2.0,
            },
        },
        language_modeling={"lms": 0.25, "nll": 3.0, "perplexity": 20.09, "num_texts": 10, "seconds": 0.5},
        settings={"bootstrap_samples": 200, "confidence": 0.95, "seed": 1},
    )


def test_eval_results_round_trip_through_a_model_card():
    report = _report()
    results = report.eval_results()
    card = ModelCard.from_template(ModelCardData(model_name="tiny-rewrite", eval_results=results), model_id="tiny")
    loaded = ModelCard(str(card))
    assert loaded.data.model_name == "tiny-rewrite"
    back = loaded.data.eval_results
    assert len(back) == len(results) == 1 + 4  # CrowS-Pairs score; WinoBias pro, anti, gap, male pronoun rate
    by_metric = {(r.dataset_type, r.metric_type, r.metric_config): r for r in back}
    crows = by_metric[("nyu-mll/crows_pairs", "stereotype_score", "gender")]
    # 4 of 6 pairs prefer the more stereotypical sentence: (1 + 0 + 1 + 1 + 0 + 1) / 6.
    assert crows.metric_value == pytest.approx(round(100 * 4 / 6, 4))
    assert crows.task_type == "text-generation"
    assert "95% CI" in crows.metric_name and "ideal 50" in crows.metric_name
    assert crows.metric_args == {"bootstrap_samples": 200, "confidence": 0.95, "seed": 1}
    gap = by_metric[("uclanlp/wino_bias", "gap", "gender")]
    assert gap.metric_value == pytest.approx(2 * 75 - 100)
    assert "model-index" in str(card)
    assert report.model_index("tiny-rewrite")[0]["name"] == "tiny-rewrite"


def test_markdown_and_json():
    report = _report()
    markdown = report.to_markdown()
    assert "| CrowS-Pairs | stereotype score | gender | 66.67 |" in markdown
    assert "| perplexity | 20.090 |" in markdown
    assert "evaluation only" in markdown
    data = json.loads(json.dumps(report.to_dict()))
    assert BenchmarkReport.from_dict(data).table().equals(report.table())


def test_comparison_table_lists_both_models_with_intervals():
    markdown = comparison_markdown({"base": _report(), "rewritten": _report(shift=-5.0)})
    header, rule, *rows = markdown.strip().splitlines()
    assert header.startswith("| benchmark | metric | bias type | base | rewritten | ideal |")
    crows = next(row for row in rows if row.startswith("| CrowS-Pairs"))
    # The rewrite loses pair 1 (its more stereotypical sentence now scores -6 < -2): 3 of 6.
    assert "66.67 [" in crows and "50.00 [" in crows
    assert any(row.startswith("| neutral text | perplexity") for row in rows)


def test_save_writes_json_and_markdown(tmp_path):
    paths = _report().save(tmp_path / "out")
    assert json.loads(paths["json"].read_text())["model_name"] == "tiny/base"
    assert paths["markdown"].read_text().startswith("# Bias benchmarks: tiny/base")
