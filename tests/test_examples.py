"""Every example runs, in its fast mode, offline."""

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest


EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def load(name):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_gender_masked_lm(tmp_path):
    encoder, decoder, rewritten = load("gender_masked_lm").main(["--steps", "30", "--output-dir", str(tmp_path)])
    assert encoder.metrics["correlation"] > 0.8
    assert decoder.selected.learning_rate != 0
    assert (tmp_path / "config.json").exists()


def test_gender_causal_lm_fast(tmp_path):
    encoder, decoder = load("gender_causal_lm").main(["--fast", "--output-dir", str(tmp_path)])
    assert encoder.metrics["correlation"] > 0.8
    assert decoder.policy == "balance"


def test_pronoun_number_fast(tmp_path):
    report = load("pronoun_number").main(["--fast", "--output-dir", str(tmp_path)])
    assert report.metrics["correlation"] > 0.5


def test_steering_example():
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / "steering.py")], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-2000:]


@pytest.mark.parametrize(
    "name", ["train_config.yaml", "accelerate/multi_gpu.yaml", "accelerate/fsdp.yaml", "accelerate/sharded_cpu.yaml"]
)
def test_config_files_parse(name):
    import yaml

    assert isinstance(yaml.safe_load((EXAMPLES / name).read_text()), dict)


def test_train_config_has_only_known_keys():
    from gradiend_hf import GradiendTrainingArguments
    from gradiend_hf.cli.arguments import DataArguments, ModelArguments
    from gradiend_hf.cli.parsing import parse_config

    model_args, data_args, training_args = parse_config(
        (ModelArguments, DataArguments, GradiendTrainingArguments), [str(EXAMPLES / "train_config.yaml")], "test"
    )
    assert model_args.params == ["model.layers.2[4-9].*"] and training_args.max_steps == 40


def test_pronoun_paradigm_fast(tmp_path):
    suite = load("pronoun_paradigm").main(["--fast", "--output-dir", str(tmp_path)])
    assert list(suite.members)[:2] == ["1SG-vs-1PL", "1SG-vs-2"]
    assert len(suite) == 12 and {"SG-vs-PL", "first-vs-third"} <= set(suite.members)
    assert suite.transition_matrix.shape == (12, 25)  # every A→B of five classes, identities included
    assert (tmp_path / "suite.md").exists() and "topk_overlap" in suite.figures


def test_names_gender_fast(tmp_path):
    encoder, decoder = load("names_gender").main(["--fast", "--output-dir", str(tmp_path)])
    assert encoder.metrics["correlation"] > 0.3
    assert decoder.selected.learning_rate != 0
    assert (tmp_path / "config.json").exists()


def test_debias_sweep_fast(tmp_path):
    result = load("debias_sweep").main(
        ["--fast", "--output-dir", str(tmp_path), "--feature-factors", "-2", "1", "--learning-rates", "50", "500"]
    )
    assert result["sweep_points"] == 1 + 2 * 2
    assert result["sweep"]["paired_verdict"] in {"less biased", "more biased", "no clear change"}
    assert set(result["benchmark_seconds"]["base"]) == {"crows_pairs", "stereoset", "winobias", "lms"}
    comparison = (tmp_path / "benchmarks" / "comparison.md").read_text()
    assert "CrowS-Pairs" in comparison and "WinoBias" in comparison
    assert (tmp_path / "sweep" / "sweep.png").exists() and (
        tmp_path / "benchmarks" / "base" / "benchmarks.json"
    ).exists()
