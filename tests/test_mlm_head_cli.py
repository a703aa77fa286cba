"""`gradiend-hf train-mlm-head`, then `gradiend-hf train --mlm_head`: a GRADIEND trained through the saved head."""

import os

from gradiend_hf import GradiendModel
from gradiend_hf.cli.main import main as cli
from gradiend_hf.mlm_head import MLMHeadModel

from .tiny_models import tiny_model


def test_train_a_head_then_a_gradiend_through_it(tmp_path, capsys):
    model, tokenizer = tiny_model("llama")
    base = tmp_path / "llama"
    model.save_pretrained(base)
    tokenizer.save_pretrained(base)
    common = ["--base_model", str(base), "--max_rows_per_class", "40", "--disable_tqdm", "true"]
    cli(
        [
            "train-mlm-head",
            *common,
            "--output_dir",
            str(tmp_path / "head"),
            "--num_train_epochs",
            "1",
            "--max_eval_rows",
            "16",
        ]
    )
    assert "held-out accuracy" in capsys.readouterr().out
    head = MLMHeadModel.from_pretrained(tmp_path / "head")
    assert sorted(head.labels) == ["he", "she"] and head.config.base_model_name_or_path == str(base)

    flags = ["--max_steps", "4", "--eval_steps", "2", "--eval_max_rows", "16", "--sentences_per_gradient", "4"]
    cli(["train", *common, *flags, "--mlm_head", str(tmp_path / "head"), "--output_dir", str(tmp_path / "out")])
    assert "Saved the GRADIEND" in capsys.readouterr().out
    gradiend = GradiendModel.from_pretrained(tmp_path / "out")
    assert gradiend.config.objective == "causal_lm_mlm_head"
    assert gradiend.config.mlm_head["name_or_path"] == os.path.realpath(tmp_path / "head")
