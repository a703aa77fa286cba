import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from huggingface_hub import ModelCard
from transformers import AutoModelForCausalLM

from gradiend_hf import GradiendModel
from gradiend_hf.cli.arguments import DataArguments, ModelArguments
from gradiend_hf.cli.main import main as cli
from gradiend_hf.cli.train import load_feature_rows

from .tiny_models import tiny_model


ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tiny_dirs(tmp_path_factory):
    """Tiny BERT and Llama saved as ordinary model folders, as a user's local models would be."""
    dirs = {}
    for family in ("bert", "llama"):
        model, tokenizer = tiny_model(family)
        path = tmp_path_factory.mktemp(family)
        model.save_pretrained(path)
        tokenizer.save_pretrained(path)
        dirs[family] = str(path)
    return dirs


def write_yaml(path, **values):
    path.write_text(yaml.safe_dump(values, sort_keys=False))
    return str(path)


def base_config(tiny_dirs, output_dir, **overrides):
    config = dict(
        base_model=tiny_dirs["bert"],
        dataset="gender-en",
        output_dir=str(output_dir),
        max_steps=12,
        learning_rate=1e-3,
        sentences_per_gradient=4,
        eval_steps=6,
        eval_max_rows=32,
        report_to="none",
        disable_tqdm=True,
    )
    config.update(overrides)
    return config


def test_train_from_yaml_end_to_end(tiny_dirs, tmp_path, capsys):
    config = write_yaml(tmp_path / "train.yaml", **base_config(tiny_dirs, tmp_path / "out", params=["*.layer.1.*"]))
    cli(["train", config])
    assert "Saved the GRADIEND" in capsys.readouterr().out
    gradiend = GradiendModel.from_pretrained(tmp_path / "out")
    assert gradiend.config.base_model_name_or_path == tiny_dirs["bert"]
    assert all(name.startswith("bert.encoder.layer.1.") for name in gradiend.param_names)
    assert gradiend.config.training_summary["global_step"] == 12
    assert gradiend.config.training_summary["best_correlation"] > 0.5


def test_flags_override_the_yaml(tiny_dirs, tmp_path):
    config = write_yaml(
        tmp_path / "train.yaml", **base_config(tiny_dirs, tmp_path / "out", params=["*.layer.1.output.*"])
    )
    cli(["train", config, "--max_steps", "3", "--eval_strategy", "no"])
    assert GradiendModel.from_pretrained(tmp_path / "out").config.training_summary["global_step"] == 3


def test_raw_text_with_classes(tiny_dirs, tmp_path):
    text = tmp_path / "corpus.txt"
    sentences = [
        f"The tall doctor said that {w} would come home after the long day number {i}."
        for i in range(60)
        for w in ("he", "she")
    ]
    text.write_text("\n".join(sentences))
    config = write_yaml(
        tmp_path / "train.yaml",
        **base_config(
            tiny_dirs,
            tmp_path / "out",
            dataset=str(text),
            classes={"M": ["he"], "F": ["she"]},
            max_steps=2,
            eval_strategy="no",
            params=["*.layer.1.output.*"],
        ),
    )
    cli(["train", config])
    assert GradiendModel.from_pretrained(tmp_path / "out").config.feature_classes == ["M", "F"]


PAIRED_CORPUS = [
    f"On day {i} the old doctor said that {word} would come to the house {noun} soon."
    for i, noun in enumerate(("today", "again", "later", "early", "tonight", "once", "twice", "quietly") * 4)
    for word in ("he", "she")
] + [
    f"On day {i} the old doctor saw {word} friend near the house {noun} again."
    for i, noun in enumerate(("today", "again", "later", "early", "tonight", "once", "twice", "quietly") * 4)
    for word in ("his", "her")
]


@pytest.mark.parametrize(
    "pairing",
    [
        {"paired": True, "classes": {"M": ["he", "his"], "F": ["she", "her"]}},
        {"pairs": [["he", "she"], ["his", "her"]], "classes": {"M": ["he", "his"], "F": ["she", "her"]}},
        # A flag on the command line arrives as a JSON string.
        {"pairs": '[["he", "she"], ["his", "her"]]', "classes": '{"M": ["he", "his"], "F": ["she", "her"]}'},
    ],
    ids=["paired", "pairs-table", "pairs-json"],
)
def test_paired_word_forms_from_a_config(pairing, tiny_dirs, tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(PAIRED_CORPUS))
    _, data = load_feature_rows(
        ModelArguments(base_model=tiny_dirs["bert"]), DataArguments(dataset=str(corpus), **pairing), seed=0
    )
    rows = [row for split in data.values() for row in split]
    assert len(rows) == len(PAIRED_CORPUS)
    counterpart = {"he": "she", "she": "he", "his": "her", "her": "his"}
    assert all(row["alternative"] == counterpart[row["factual"]] for row in rows)


def test_paired_training_end_to_end(tiny_dirs, tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(PAIRED_CORPUS))
    config = write_yaml(
        tmp_path / "train.yaml",
        **base_config(
            tiny_dirs,
            tmp_path / "out",
            dataset=str(corpus),
            classes={"M": ["he", "his"], "F": ["she", "her"]},
            paired=True,
            max_steps=2,
            eval_strategy="no",
            params=["*.layer.1.output.*"],
        ),
    )
    cli(["train", config])
    assert GradiendModel.from_pretrained(tmp_path / "out").config.feature_classes == ["M", "F"]


BAD_CONFIGS = {
    "unknown key": ({"learning_rat": 0.1}, "unknown key(s) in"),
    "missing data file": ({"dataset": "./no/such/corpus.txt"}, "No such file or folder"),
    "overlapping class words": ({"dataset": "CORPUS", "classes": {"M": ["he"], "F": ["he", "she"]}}, "he"),
    "multi-word class word": ({"dataset": "CORPUS", "classes": {"M": ["he is"], "F": ["she"]}}, "he is"),
    "raw text without classes": ({"dataset": "CORPUS"}, "classes"),
    "bad dtype": ({"dtype": "float8"}, "Unknown dtype"),
    "bad gradient kind": ({"source": "gradient"}, "Unknown source gradient"),
    "paired lists of unequal length": (
        {"dataset": "CORPUS", "classes": {"M": ["he", "him"], "F": ["she"]}, "paired": True},
        "same length",
    ),
    "paired and pairs": (
        {"dataset": "CORPUS", "classes": {"M": ["he"], "F": ["she"]}, "paired": True, "pairs": [["he", "she"]]},
        "not both",
    ),
    "pairs not a list": ({"dataset": "CORPUS", "classes": {"M": ["he"], "F": ["she"]}, "pairs": "he-she"}, "pairs"),
    "paired on a built-in dataset": ({"dataset": "gender-en", "paired": True}, "apply only to raw text"),
}


@pytest.mark.parametrize("case", BAD_CONFIGS)
def test_bad_configs_give_one_line_errors(case, tiny_dirs, tmp_path, capsys):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("He said that she would come. She said that he would come.\n" * 5)
    overrides, expected = BAD_CONFIGS[case]
    overrides = {k: (str(corpus) if v == "CORPUS" else v) for k, v in overrides.items()}
    config = write_yaml(tmp_path / "bad.yaml", **base_config(tiny_dirs, tmp_path / "out", **overrides))
    with pytest.raises(SystemExit) as exit_info:
        cli(["train", config])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("gradiend-hf train: error:"), err
    assert expected in err
    assert not (tmp_path / "out" / "config.json").exists()


def test_missing_config_file_and_unknown_command(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli(["train", "does-not-exist.yaml"])
    assert exit_info.value.code == 2
    assert "does not exist" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli(["trian"])
    assert "unknown command 'trian'" in capsys.readouterr().err


def test_console_script_prints_no_traceback(tmp_path):
    bad = write_yaml(tmp_path / "bad.yaml", learning_rat=1)
    result = subprocess.run(
        [sys.executable, "-m", "gradiend_hf.cli.main", "train", bad], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr and "unknown key(s)" in result.stderr


def test_two_process_accelerate_launch_of_cli_train(tiny_dirs, tmp_path):
    config = write_yaml(
        tmp_path / "train.yaml",
        **base_config(
            tiny_dirs, tmp_path / "out", params=["*.layer.1.output.*"], max_steps=4, eval_steps=2, use_cpu=True
        ),
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    command = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--multi_gpu",
        "--num_processes",
        "2",
        "--num_machines",
        "1",
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
        "-m",
        "gradiend_hf.cli.train",
        config,
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env, cwd=ROOT)
    # gloo may abort at interpreter exit after the work is done (environment.md); the saved model decides.
    assert (tmp_path / "out" / "config.json").exists(), result.stderr[-3000:]
    assert result.stdout.count("Saved the GRADIEND") == 1  # only the main process reports
    assert GradiendModel.from_pretrained(tmp_path / "out").config.training_summary["global_step"] == 4


def test_demo_runs_end_to_end_on_a_tiny_causal_lm(tiny_dirs, tmp_path):
    from gradiend_hf.cli.demo import DemoArguments, run_demo

    args = DemoArguments(
        output_dir=str(tmp_path / "demo"),
        base_model=tiny_dirs["llama"],
        params=["model.layers.1.*"],
        max_steps=20,
        eval_steps=10,
        sentences_per_gradient=4,
        encoder_max_rows=32,
        decoder_max_rows=8,
        lms_max_texts=8,
        benchmark_max_rows=4,
        bootstrap_samples=20,
    )
    report = run_demo(args)
    out = tmp_path / "demo"
    saved = json.loads((out / "report.json").read_text())
    assert saved["test_correlation"] == pytest.approx(report["test_correlation"])
    assert saved["passed"] == (saved["test_correlation"] >= 0.8)
    for figure in ("training_convergence.png", "encoder_distributions.png", "decoder_grid.png"):
        assert (out / "figures" / figure).stat().st_size > 1000
    assert "test correlation" in (out / "report.md").read_text()
    assert (out / "gradiend" / "README.md").exists()
    # CrowS-Pairs (gender) and WinoBias of the base and the balanced rewrite, on both cards and in the report.
    assert {name: list(labels) for name, labels in saved["benchmarks"].items()} == {
        "crows_pairs": ["base", "rewritten"],
        "winobias": ["base", "rewritten"],
    }
    assert saved["benchmarks"]["crows_pairs"]["base"]["n"] == 4
    assert "| crows_pairs stereotype_score | " in (out / "report.md").read_text()
    assert json.loads((out / "benchmarks" / "benchmarks.json").read_text())["reports"]["rewritten"]["rewrite"]
    for card in ("gradiend", "rewritten"):
        assert "## Bias benchmarks" in (out / card / "README.md").read_text()
    assert ModelCard.load(out / "rewritten" / "README.md").data.eval_results
    GradiendModel.from_pretrained(out / "gradiend")
    rewritten = AutoModelForCausalLM.from_pretrained(out / "rewritten")
    base = AutoModelForCausalLM.from_pretrained(tiny_dirs["llama"])
    rewrite = saved["rewrite"]
    assert rewrite["search"] == "adaptive"
    changed = any(not torch.equal(a, b) for a, b in zip(rewritten.parameters(), base.parameters()))
    assert changed == (rewrite["learning_rate"] != 0 and rewrite["feature_factor"] is not None)


def test_demo_benchmark_options(tmp_path):
    from gradiend_hf.benchmarks import BenchmarkError
    from gradiend_hf.cli.demo import DemoArguments

    assert DemoArguments(output_dir=str(tmp_path / "a")).benchmarks == ["crows_pairs", "winobias"]
    assert DemoArguments(output_dir=str(tmp_path / "b"), benchmarks=["none"]).benchmarks == []
    assert DemoArguments(output_dir=str(tmp_path / "c"), benchmarks=["crows-pairs"]).benchmarks == ["crows_pairs"]
    with pytest.raises(BenchmarkError, match="Unknown benchmark 'seat'"):
        DemoArguments(output_dir=str(tmp_path / "d"), benchmarks=["seat"])
    with pytest.raises(BenchmarkError, match="bootstrap"):
        DemoArguments(output_dir=str(tmp_path / "e"), bootstrap_samples=-1)


def test_demo_decoder_search_option(tmp_path):
    from gradiend_hf import GradiendError
    from gradiend_hf.cli.demo import DemoArguments

    assert DemoArguments(output_dir=str(tmp_path / "a")).decoder_search == "adaptive"
    assert DemoArguments(output_dir=str(tmp_path / "b"), decoder_search="early_stop").decoder_search == "early_stop"
    with pytest.raises(GradiendError, match="`decoder_search` must be one of exhaustive, early_stop, adaptive"):
        DemoArguments(output_dir=str(tmp_path / "c"), decoder_search="binary")
