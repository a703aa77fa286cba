"""Every subcommand turns user mistakes into one stderr line and exit status 2, keeps library bugs as tracebacks,
and runs the commands the README shows as written."""

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from gradiend_hf import GradiendModel
from gradiend_hf.cli.main import main as cli

from .tiny_models import tiny_model


ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A tiny Llama base model folder and a GRADIEND for it, as a user would have them."""
    root = tmp_path_factory.mktemp("cli")
    model, tokenizer = tiny_model("llama")
    model.save_pretrained(root / "base")
    tokenizer.save_pretrained(root / "base")
    torch.manual_seed(0)
    gradiend = GradiendModel.from_base_model(
        model, params=["model.layers.1.mlp.*"], base_model_name_or_path=str(root / "base"), feature_classes=["M", "F"]
    )
    gradiend.save_pretrained(root / "gradiend")
    corpus = root / "corpus.txt"
    corpus.write_text("He said that she would come home after the long day of work.\n" * 4)
    (root / "binary.txt").write_bytes(b"\x00\x01\x02 he she \x00" * 50)
    (root / "latin1.txt").write_bytes("Le café said that he would come, and she.\n".encode("latin-1") * 20)
    (root / "not-a-dataset").mkdir()
    (root / "not-a-dataset" / "notes.md").write_text("nothing here")
    (root / "a-file").write_text("not a folder")
    return root


def config_file(tmp_path, saved, **values):
    defaults = dict(
        base_model=str(saved / "base"),
        output_dir=str(tmp_path / "out"),
        max_steps=2,
        learning_rate=1e-3,
        sentences_per_gradient=4,
        eval_strategy="no",
        report_to="none",
        disable_tqdm=True,
        params=["model.layers.1.mlp.*"],
    )
    defaults.update(values)
    path = tmp_path / "train.yaml"
    path.write_text(yaml.safe_dump(defaults))
    return str(path)


def fails(argv, capsys, *expected):
    """Runs the CLI, asserting exit 2, exactly one stderr line `gradiend-hf <cmd>: error: …` containing `expected`."""
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        cli(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"gradiend-hf {argv[0]}: error:"), err
    for text in expected:
        assert text in err, err
    return err


def gradiend_bytes(folder) -> str:
    digest = hashlib.sha256()
    for name in sorted(os.listdir(folder)):
        if name.endswith((".safetensors", ".json")):
            digest.update((Path(folder) / name).read_bytes())
    return digest.hexdigest()


# --------------------------------------------------------------------------- train


@pytest.mark.parametrize(
    "values, expected",
    [
        ({"base_model": "./no/such/model"}, ["base model folder './no/such/model' does not exist"]),
        ({"base_model": "someone/not-cached"}, ["base model 'someone/not-cached'"]),
        ({"dataset": "gender-eng"}, ["'gender-eng' is neither a built-in", "did you mean 'gender-en'?"]),
        ({"dataset": "BINARY", "classes": {"M": ["he"], "F": ["she"]}}, ["looks binary"]),
        ({"dataset": "LATIN1", "classes": {"M": ["he"], "F": ["she"]}}, ["is not UTF-8"]),
        ({"dataset": "NOT_A_DATASET"}, ["holds no text, CSV, JSON(L) or parquet file"]),
        ({"output_dir": "A_FILE"}, ["output_dir", "it is a file"]),
        ({"objective": "masked"}, ["Unknown objective 'masked'"]),
        ({"learning_rate": "fast"}, ["`learning_rate` must be a number, got 'fast'"]),
        ({"max_steps": 0}, ["`max_steps` must be a positive number of steps"]),
        ({"learning_rate": float("inf")}, ["`learning_rate` must be a finite number > 0, got inf"]),
        ({"resume_from_checkpoint": "OUT/checkpoint-5"}, ["checkpoint-5' to resume from does not exist"]),
        ({"learning_rat": 1e-3}, ["unknown key(s)", "learning_rat"]),
    ],
)
def test_train_config_mistakes(values, expected, saved, tmp_path, capsys):
    names = {
        "BINARY": "binary.txt",
        "LATIN1": "latin1.txt",
        "NOT_A_DATASET": "not-a-dataset",
        "A_FILE": "a-file",
    }
    values = {
        k: (str(saved / names.get(v, v)) if v in names else v.replace("OUT", str(tmp_path / "out")))
        if isinstance(v, str)
        else v
        for k, v in values.items()
    }
    fails(["train", config_file(tmp_path, saved, **values)], capsys, *expected)
    assert not (tmp_path / "out" / "config.json").exists()


@pytest.mark.parametrize(
    "flags, expected",
    [
        (["--learning_rat", "1"], ["unrecognized arguments: --learning_rat"]),
        (["--max_step", "3"], ["unrecognized arguments: --max_step"]),  # never an abbreviation of --max_steps
        (["--max_steps", "three"], ["--max_steps", "invalid int value"]),
    ],
)
def test_train_flag_mistakes(flags, expected, saved, tmp_path, capsys):
    fails(["train", config_file(tmp_path, saved), *flags], capsys, *expected)


def test_yaml_numbers_without_a_dot_are_numbers(saved, tmp_path, capsys):
    path = tmp_path / "train.yaml"
    text = Path(config_file(tmp_path, saved)).read_text().replace("learning_rate: 0.001", "learning_rate: 1e-3")
    assert "learning_rate: 1e-3" in text
    path.write_text(text)
    cli(["train", str(path)])
    args = GradiendModel.from_pretrained(tmp_path / "out")  # trained and saved
    assert args.config.training_summary["global_step"] == 2


def test_a_missing_config_file(capsys):
    fails(["train", "no-such-config.yaml"], capsys, "config file 'no-such-config.yaml' does not exist")


def test_an_unknown_command_suggests_the_closest(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli(["trian"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.count("\n") == 1 and "did you mean 'train'?" in err


def test_library_bugs_keep_their_traceback(saved, tmp_path, monkeypatch):
    import gradiend_hf.cli.train as train

    def bug(*args, **kwargs):
        raise TypeError("a bug in gradiend-hf")

    monkeypatch.setattr(train, "run_training", bug)
    with pytest.raises(TypeError, match="a bug in gradiend-hf"):
        cli(["train", config_file(tmp_path, saved)])


# --------------------------------------------------------------------------- evaluate, rewrite, export-peft, push, app, demo


def test_readme_evaluate_and_rewrite_commands_work_as_written(saved, tmp_path, capsys):
    cli(["evaluate", str(saved / "gradiend"), "--skip_decoder", "true", "--max_rows", "8", "--neutral", "none",
         "--output_dir", str(tmp_path / "eval")])  # fmt: skip
    assert (tmp_path / "eval" / "report.json").is_file()
    cli(["rewrite", str(saved / "gradiend"), "--feature_factor", "-1", "--learning_rate", "0.5",
         "--output_dir", str(tmp_path / "rewritten")])  # fmt: skip
    assert (tmp_path / "rewritten" / "config.json").is_file()


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["evaluate", "./no/such/gradiend"], ["GRADIEND folder './no/such/gradiend' does not exist"]),
        (["evaluate", "BASE"], ["holds a 'llama' model, not a GRADIEND"]),
        (["evaluate", "GRADIEND", "--policy", "fair"], ["Unknown policy 'fair'"]),
        (["evaluate", "GRADIEND", "--search", "all"], ["Unknown search 'all'"]),
        (["evaluate", "GRADIEND", "--feature_factors", "wide"], ["Unknown feature-factor preset 'wide'"]),
        (
            ["rewrite", "GRADIEND", "--feature_factor", "nan", "--learning_rate", "1", "--output_dir", "OUT"],
            ["feature factor is nan"],
        ),  # fmt: skip
        (
            ["rewrite", "GRADIEND", "--feature_factor", "1", "--learning_rate", "1e30", "--output_dir", "OUT"],
            ["nan or infinite"],
        ),  # fmt: skip
        (["rewrite", "GRADIEND", "--feature_factor", "1", "--learning_rate", "0.1"], ["missing --output_dir"]),
        (
            [
                "export-peft",
                "GRADIEND",
                "--feature-factor",
                "1",
                "--learning-rate",
                "0.1",
                "--rank",
                "0",
                "--output-dir",
                "OUT",
            ],
            ["rank"],
        ),  # fmt: skip
        (
            [
                "export-peft",
                "GRADIEND",
                "--feature-factor",
                "1",
                "--learning-rate",
                "0.1",
                "--rank",
                "many",
                "--output-dir",
                "OUT",
            ],
            ["--rank must be 'full', an int or a float"],
        ),  # fmt: skip
        (
            ["export-peft", "GRADIEND", "--learning-rate", "0.1", "--output-dir", "OUT"],
            ["--feature_factor is required"],
        ),
        (["push", "./missing-folder", "me/repo"], ["is not a folder"]),
        (["app", "/no/such/gradiend"], ["is neither a GRADIEND folder nor a Hub repo id"]),
        (["app", "GRADIEND", "--max-chars", "0"], ["--max-chars", "expected a whole number >= 1"]),
        (["demo", "--output_dir", "A_FILE"], ["output_dir", "it is a file"]),
        (["demo", "--max_steps", "0"], ["`max_steps` must be an integer >= 1"]),
    ],
)
def test_subcommand_mistakes(argv, expected, saved, tmp_path, capsys):
    names = {
        "GRADIEND": saved / "gradiend",
        "BASE": saved / "base",
        "OUT": tmp_path / "out",
        "A_FILE": saved / "a-file",
    }
    argv = [str(names[a]) if a in names else a for a in argv]
    fails(argv, capsys, *expected)
    assert not (tmp_path / "out").exists()


def test_rewrite_into_the_gradiend_folder_is_refused_and_keeps_it(saved, tmp_path, capsys):
    folder = tmp_path / "g"
    GradiendModel.from_pretrained(saved / "gradiend").save_pretrained(folder)
    before = gradiend_bytes(folder)
    argv = ["rewrite", "--gradiend", str(folder), "--feature_factor", "1", "--learning_rate", "0.1"]
    fails([*argv, "--output_dir", str(folder)], capsys, "holds a GRADIEND", "--overwrite")
    assert gradiend_bytes(folder) == before
    GradiendModel.from_pretrained(folder)


def test_push_refuses_a_folder_with_only_pickled_weights(saved, tmp_path, capsys):
    folder = tmp_path / "pickled"
    folder.mkdir()
    (folder / "config.json").write_text('{"model_type": "llama"}')
    torch.save({"w": torch.zeros(1)}, folder / "pytorch_model.bin")
    fails(["push", str(folder), "me/pickled"], capsys, "pickled weights (*.bin) are never uploaded")


# --------------------------------------------------------------------------- resume through the command line


def test_cli_resume_of_an_interrupted_run_equals_the_uninterrupted_run(saved, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1"}
    common = dict(max_steps=8, save_strategy="steps", save_steps=4, eval_strategy="steps", eval_steps=2,
                  eval_max_rows=16, learning_rate=1e-3)  # fmt: skip
    full = tmp_path / "full"
    full.mkdir()
    subprocess.run(
        [sys.executable, "-m", "gradiend_hf.cli.main", "train", config_file(full, saved, **common)],
        check=True, capture_output=True, env=env, cwd=ROOT, timeout=300,
    )  # fmt: skip

    run = tmp_path / "run"
    run.mkdir()
    config = config_file(run, saved, **common)
    process = subprocess.Popen(
        [sys.executable, "-m", "gradiend_hf.cli.main", "train", config],
        env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    state = run / "out" / "checkpoint-4" / "trainer_state.json"
    deadline = time.time() + 300
    while not state.exists() and process.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)  # interrupted: killed right after its first checkpoint
    process.wait()
    assert state.exists() and not (run / "out" / "config.json").exists()
    checkpoint = run / "out" / "checkpoint-4"
    before = {p: p.read_bytes() for p in checkpoint.rglob("*") if p.is_file()}

    result = subprocess.run(
        [sys.executable, "-m", "gradiend_hf.cli.main", "train", config, "--resume_from_checkpoint", str(checkpoint)],
        capture_output=True, text=True, env=env, cwd=ROOT, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    resumed, uninterrupted = GradiendModel.from_pretrained(run / "out"), GradiendModel.from_pretrained(full / "out")
    assert resumed.config.training_summary["best_step"] == uninterrupted.config.training_summary["best_step"]
    for key, value in uninterrupted.state_dict().items():
        torch.testing.assert_close(resumed.state_dict()[key], value, rtol=0, atol=1e-7)
    assert {p: p.read_bytes() for p in checkpoint.rglob("*") if p.is_file()} == before
