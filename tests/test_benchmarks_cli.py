"""`gradiend-hf benchmark`: a model folder, a GRADIEND with a rewrite, and one-line errors for user mistakes."""

import json
from pathlib import Path

import pytest
import torch
from huggingface_hub import ModelCard

from gradiend_hf import GradiendModel
from gradiend_hf.cli.main import main as cli

from .tiny_models import tiny_model


QUICK = ["--max_rows", "4", "--bootstrap_samples", "20", "--lm_max_texts", "4", "--bias_types", "gender"]


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    model, tokenizer = tiny_model("gpt2", seed=5)
    base = tmp_path_factory.mktemp("base")
    model.save_pretrained(base)
    tokenizer.save_pretrained(base)
    torch.manual_seed(0)
    gradiend = GradiendModel.from_base_model(model, params=["transformer.h.1.*"])
    gradiend.config.base_model_name_or_path = str(base)
    gradiend_dir = tmp_path_factory.mktemp("gradiend")
    gradiend.save_pretrained(gradiend_dir)
    return {"base": str(base), "gradiend": str(gradiend_dir)}


def test_benchmark_a_model_folder(folders, tmp_path, capsys):
    out = tmp_path / "out"
    cli(["benchmark", folders["base"], "--benchmarks", "crows_pairs", "winobias", "--output_dir", str(out), *QUICK])
    data = json.loads((out / "benchmarks.json").read_text())
    assert list(data["reports"]) == ["model"]
    report = data["reports"]["model"]
    assert set(report["benchmarks"]) == {"crows_pairs", "winobias"}
    assert report["benchmarks"]["crows_pairs"]["num_rows"] == 4
    assert "| CrowS-Pairs | stereotype score | gender |" in (out / "benchmarks.md").read_text()
    assert (out / "figures" / "benchmarks.png").is_file()
    assert "Wrote" in capsys.readouterr().out


def test_benchmark_a_gradiend_rewrite_against_its_base(folders, tmp_path):
    out = tmp_path / "out"
    cli(
        [
            "benchmark",
            folders["gradiend"],
            "--feature_factor",
            "1",
            "--learning_rate",
            "50",
            "--benchmarks",
            "crows_pairs",
            "--output_dir",
            str(out),
            *QUICK,
        ]
    )
    data = json.loads((out / "benchmarks.json").read_text())
    assert list(data["reports"]) == ["base", "rewritten"]
    assert data["reports"]["rewritten"]["rewrite"]["learning_rate"] == 50.0
    markdown = (out / "benchmarks.md").read_text()
    assert "| benchmark | metric | bias type | base | rewritten | ideal |" in markdown


@pytest.mark.parametrize(
    "arguments,message",
    [
        (["--benchmarks", "seat"], "Unknown benchmark 'seat'"),
        (["--feature_factor", "1", "--learning_rate", "1"], "need a GRADIEND"),
        (["--bias_types", "weather"], "none of the bias types"),
        (["--bootstrap_samples", "-3"], "bootstrap_samples"),
    ],
)
def test_user_mistakes_exit_2_with_one_line(folders, tmp_path, capsys, arguments, message):
    with pytest.raises(SystemExit) as exit_info:
        cli(["benchmark", folders["base"], "--output_dir", str(tmp_path), "--max_rows", "2", *arguments])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("gradiend-hf benchmark: error:"), err
    assert message in err


def test_gradiend_without_rewrite_and_missing_folder(folders, tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    for argv, message in (
        ([folders["gradiend"]], "give --feature_factor and --learning_rate"),
        ([folders["gradiend"], "--feature_factor", "nan", "--learning_rate", "1"], "finite"),
        ([str(tmp_path / "missing" / "model")], "No such model folder"),
        ([str(empty)], "is not a model folder or a reachable Hub model"),
        ([folders["base"], "--batch_size", "0"], "--batch_size must be at least 1"),
        ([folders["gradiend"], "--feature_factor", "1", "--learning_rate", "1e30"], "nan or infinite logits"),
    ):
        with pytest.raises(SystemExit) as exit_info:
            cli(["benchmark", *argv, "--output_dir", str(tmp_path)])
        assert exit_info.value.code == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and message in err, err


def test_rewrite_card_gets_the_benchmark_report(folders, tmp_path):
    # The README's two steps: score the rewrite against its base, then save it with that report on its card.
    scores, out = tmp_path / "scores", tmp_path / "rewritten"
    rewrite = ["--feature_factor", "1", "--learning_rate", "50"]
    cli(
        [
            "benchmark",
            folders["gradiend"],
            *rewrite,
            "--benchmarks",
            "crows_pairs",
            "--output_dir",
            str(scores),
            *QUICK,
        ]
    )
    cli(["rewrite", folders["gradiend"], *rewrite, "--output_dir", str(out), "--benchmarks", str(scores)])
    card = ModelCard.load(out / "README.md")
    assert "## Bias benchmarks" in card.content
    assert "| benchmark | metric | bias type | base | rewritten | ideal | verdict |" in card.content
    (result,) = card.data.eval_results  # CrowS-Pairs gender only
    saved = json.loads((scores / "benchmarks.json").read_text())["reports"]["rewritten"]
    assert result.metric_type == "stereotype_score" and result.metric_config == "gender"
    assert result.metric_value == round(saved["benchmarks"]["crows_pairs"]["headline"]["value"], 4)
    assert result.metric_value in (0.0, 25.0, 50.0, 75.0, 100.0, 12.5, 37.5, 62.5, 87.5)  # 4 pairs, ties count half


def test_rewrite_with_an_unreadable_report_fails_in_one_line(folders, tmp_path, capsys):
    argv = ["rewrite", folders["gradiend"], "--feature_factor", "1", "--learning_rate", "1"]
    with pytest.raises(SystemExit) as exit_info:
        cli([*argv, "--output_dir", str(tmp_path / "out"), "--benchmarks", str(tmp_path / "none.json")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert (
        err.startswith("gradiend-hf rewrite: error: Cannot read the benchmark report") and len(err.splitlines()) == 1
    )
    assert not (tmp_path / "out").exists()


def test_readme_benchmark_commands_work_as_written(folders, tmp_path, monkeypatch):
    # The README's commands, on the tiny model instead of SmolLM2 and with the quick settings appended.
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Bias benchmarks", 1)[1].split("```bash", 1)[1].split("```", 1)[0]
    commands = [line.split() for line in section.strip().splitlines()]
    assert [c[:2] for c in commands] == [["gradiend-hf", "benchmark"]] * 2 + [["gradiend-hf", "rewrite"]]
    monkeypatch.chdir(tmp_path)
    for words in commands:
        words = [
            {"HuggingFaceTB/SmolLM2-135M-Instruct": folders["base"], "out/gradiend-gender": folders["gradiend"]}.get(
                w, w
            )
            for w in words[1:]
        ]
        cli(words + (QUICK if words[0] == "benchmark" else []))
    card = ModelCard.load(tmp_path / "out" / "rewritten-benchmarked" / "README.md")
    assert {r.dataset_type for r in card.data.eval_results} == {"nyu-mll/crows_pairs", "uclanlp/wino_bias"}
    assert json.loads((tmp_path / "out" / "bench-base" / "benchmarks.json").read_text())["reports"]["model"]
