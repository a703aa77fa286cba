"""Cards with bias benchmarks: the rewritten model's and the GRADIEND's card show the benchmark table and carry the
scores as `model-index` eval results that read back with `huggingface_hub.ModelCard`."""

import json

import pytest
import torch
from huggingface_hub import ModelCard

from gradiend_hf import GradiendModel
from gradiend_hf.benchmark_card import benchmark_reports
from gradiend_hf.benchmarks import BenchmarkError
from gradiend_hf.card_utils import render_saved_card
from gradiend_hf.errors import GradiendError
from gradiend_hf.model_card import build_gradiend_card
from gradiend_hf.rewrite_io import save_rewritten

from .test_benchmarks_report import _report
from .tiny_models import tiny_model


def _reports():
    return {"base": _report(), "rewritten": _report(shift=-5.0, name="tiny/base rewritten")}


def _by_metric(card):
    return {(r.dataset_type, r.metric_type, r.metric_config): r for r in card.data.eval_results}


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    model, tokenizer = tiny_model("gpt2", seed=3)
    folder = tmp_path_factory.mktemp("rewrite") / "out"
    save_rewritten(model, tokenizer, folder, model_id="me/tiny-debiased", benchmark_reports=_reports())
    return folder


def test_rewritten_card_shows_the_benchmark_table(saved):
    card = ModelCard.load(saved / "README.md")
    section = card.content.split("## Bias benchmarks", 1)[1].split("\n## ", 1)[0]
    assert "| benchmark | metric | bias type | base | rewritten | ideal | verdict |" in section
    crows = next(line for line in section.splitlines() if line.startswith("| CrowS-Pairs"))
    # Base: 4 of 6 pairs prefer the more stereotypical sentence; the rewrite loses pair 1: 3 of 6.
    assert crows.startswith("| CrowS-Pairs | stereotype score | gender | 66.67 [")
    # The change (16.67 points closer to 50) is smaller than the base interval's width (66.67): no clear change.
    assert "| 50.00 [16.67–83.33] |" in crows and crows.endswith("| 50 | no clear change |")
    assert "| neutral text | perplexity | – | 20.09 | 20.09 |" in section
    assert "95 % bootstrap interval (200 resamples over rows, seed 1)" in section
    assert "evaluation only" in section


def test_rewritten_card_metadata_holds_the_rewritten_scores(saved):
    card = ModelCard.load(saved / "README.md")
    assert card.data.model_name == "me/tiny-debiased"
    results = _by_metric(card)
    assert len(results) == 5  # CrowS-Pairs score; WinoBias pro, anti, gap, male pronoun rate
    crows = results[("nyu-mll/crows_pairs", "stereotype_score", "gender")]
    assert crows.metric_value == 50.0  # the rewritten model's score, not the base model's 66.67
    assert crows.task_type == "text-generation"
    assert results[("uclanlp/wino_bias", "gap", "gender")].metric_value == 50.0
    assert card.data.base_model is None  # a tiny model from a config has no Hub id


def test_a_push_renders_the_results_for_the_repo(saved):
    card = render_saved_card(saved, "someone/elsewhere")
    assert ModelCard(str(card)).data.model_name == "someone/elsewhere"
    assert "## Bias benchmarks" in card.content


def test_gradiend_card_shows_the_benchmarks_of_its_rewrite():
    model, _ = tiny_model("gpt2", seed=3)
    torch.manual_seed(0)
    gradiend = GradiendModel.from_base_model(model, params=["transformer.h.1.*"])
    card = ModelCard(str(build_gradiend_card(gradiend.config, "me/gradiend", benchmark_reports=_reports())))
    assert "## Bias benchmarks" in card.content
    assert card.data.library_name == "gradiend-hf"
    assert card.data.model_name == "tiny/base rewritten"
    assert _by_metric(card)[("nyu-mll/crows_pairs", "stereotype_score", "gender")].metric_value == 50.0
    plain = ModelCard(str(build_gradiend_card(gradiend.config, "me/gradiend")))
    assert "Bias benchmarks" not in plain.content and "model-index" not in str(plain)


def test_reports_are_read_from_a_benchmarks_json(tmp_path):
    data = {"model": "tiny/base", "reports": {label: r.to_dict() for label, r in _reports().items()}}
    (tmp_path / "benchmarks.json").write_text(json.dumps(data))
    reports = benchmark_reports(tmp_path)
    assert list(reports) == ["base", "rewritten"]
    assert reports["rewritten"].benchmarks["crows_pairs"]["headline"]["value"] == 50.0
    single = tmp_path / "one.json"
    single.write_text(json.dumps(_report().to_dict()))
    assert list(benchmark_reports(single)) == ["model"]


@pytest.mark.parametrize("bad", ["no/such/benchmarks.json", {}, {"x": 3}, 42])
def test_unusable_reports_are_refused(tmp_path, bad):
    with pytest.raises(BenchmarkError) as error:
        benchmark_reports(bad)
    assert isinstance(error.value, GradiendError)
    model, tokenizer = tiny_model("gpt2", seed=3)
    with pytest.raises(BenchmarkError):
        save_rewritten(model, tokenizer, tmp_path / "out", benchmark_reports=bad)
    assert not (tmp_path / "out").exists()  # refused before anything is written
