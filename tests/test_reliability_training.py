"""Training refuses absurd settings up front, stops on non-finite values naming the step, and resumes exactly or
says why it cannot; bad feature rows each get their own message."""

import hashlib
import json
import os
import shutil

import pytest
import torch
from datasets import Dataset, DatasetDict

from gradiend_hf import GradiendModel, GradiendTrainer, GradiendTrainingArguments
from gradiend_hf.data import InvalidRowError, load_builtin
from gradiend_hf.errors import GradiendSaveError, GradiendTrainingError, NonFiniteError
from gradiend_hf.trainer_callbacks import BEST_DIR

from .tiny_models import tiny_model


COMMON = dict(
    learning_rate=1e-3, sentences_per_gradient=4, eval_max_rows=16, report_to="none", disable_tqdm=True, seed=0
)


@pytest.fixture(scope="module")
def gender():
    data = load_builtin("gender-en")
    return DatasetDict({split: data[split].select(range(80)) for split in data})


def make_trainer(output_dir, data, seed=0, callbacks=None, **overrides):
    model, tokenizer = tiny_model("bert")
    torch.manual_seed(seed)
    gradiend = GradiendModel.from_base_model(model, params=["bert.encoder.layer.1.*"])
    args = GradiendTrainingArguments(str(output_dir), **{**COMMON, **overrides})
    return GradiendTrainer(
        model=gradiend,
        base_model=model,
        processing_class=tokenizer,
        args=args,
        train_dataset=data,
        callbacks=callbacks,
    )


# --------------------------------------------------------------------------- settings refused before training


@pytest.mark.parametrize(
    "overrides, error, message",
    [
        ({"learning_rate": float("inf")}, NonFiniteError, "learning_rate` must be a finite number > 0, got inf"),
        ({"learning_rate": float("nan")}, NonFiniteError, "learning_rate"),
        ({"learning_rate": -1e-3}, ValueError, "learning_rate` must be a finite number > 0"),
        ({"max_steps": 0}, ValueError, "max_steps` must be a positive number of steps"),
        ({"max_steps": -7}, ValueError, "max_steps"),
        ({"eval_steps": 0}, ValueError, "eval_steps` must be a finite number > 0, got 0"),
        ({"sentences_per_gradient": 0}, ValueError, "sentences_per_gradient` must be an integer >= 1"),
        ({"num_train_epochs": 0}, ValueError, "num_train_epochs"),
        ({"weight_decay": float("nan")}, NonFiniteError, "weight_decay"),
        ({"normalize_threshold": 0.5}, ValueError, r"normalize_threshold` must be a number in \[-1, 0\]"),
    ],
)
def test_absurd_settings_are_refused(overrides, error, message, tmp_path):
    with pytest.raises(error, match=message):
        GradiendTrainingArguments(str(tmp_path / "out"), **overrides)


def test_an_output_dir_that_is_a_file_is_refused(tmp_path):
    (tmp_path / "out").write_text("my notes")
    with pytest.raises(GradiendSaveError, match="it is a file"):
        GradiendTrainingArguments(str(tmp_path / "out"))
    assert (tmp_path / "out").read_text() == "my notes"


# --------------------------------------------------------------------------- non-finite values during training


def test_a_diverging_run_stops_naming_the_step(gender, tmp_path):
    trainer = make_trainer(tmp_path / "out", gender, max_steps=6, eval_strategy="no", learning_rate=1e30)
    with pytest.raises(NonFiniteError, match="at step [1-6]|after step [1-6]"):
        trainer.train()
    assert not (tmp_path / "out" / "config.json").exists()


def test_non_finite_gradients_stop_at_the_first_step(gender, tmp_path, monkeypatch):
    import gradiend_hf.trainer as trainer_module

    original = trainer_module.group_gradients

    def poisoned(*args, **kwargs):
        grads = original(*args, **kwargs)
        for kind in grads.values():
            for value in kind.values():
                value.fill_(float("inf"))
        return grads

    monkeypatch.setattr(trainer_module, "group_gradients", poisoned)
    trainer = make_trainer(tmp_path / "out", gender, max_steps=4, eval_strategy="no")
    with pytest.raises(NonFiniteError, match="loss is (inf|nan) at step 1"):
        trainer.train()


# --------------------------------------------------------------------------- resume


def checkpoint_hashes(folder) -> dict[str, str]:
    hashes = {}
    for root, _, files in os.walk(folder):
        for name in files:
            path = os.path.join(root, name)
            with open(path, "rb") as file:
                hashes[os.path.relpath(path, folder)] = hashlib.sha256(file.read()).hexdigest()
    return hashes


@pytest.fixture(scope="module")
def interrupted(gender, tmp_path_factory):
    """A run of 6 steps (checkpoints at 3 and 6) and one killed right after its checkpoint at step 3."""
    from transformers import TrainerCallback

    class Kill(TrainerCallback):
        def on_step_begin(self, args, state, control, **kwargs):
            if state.global_step == 3:
                raise KeyboardInterrupt  # like a kill: no evaluation, no saving at the end

    root = tmp_path_factory.mktemp("resume")
    options = dict(max_steps=6, save_strategy="steps", save_steps=3, eval_steps=2)
    full = make_trainer(root / "full", gender, **options)
    full.train()
    full.save_model()
    with pytest.raises(KeyboardInterrupt):
        make_trainer(root / "stopped", gender, callbacks=[Kill()], **options).train()
    return root, options, full.model


def fresh_copy(interrupted, tmp_path):
    root, options, _ = interrupted
    shutil.copytree(root / "stopped", tmp_path / "run")
    return tmp_path / "run", options


def test_resume_continues_at_the_checkpoint_and_leaves_it_unchanged(interrupted, gender, tmp_path):
    run, options = fresh_copy(interrupted, tmp_path)
    before = checkpoint_hashes(run / "checkpoint-3")
    trainer = make_trainer(run, gender, seed=99, **options)
    trainer.train(resume_from_checkpoint=True)
    assert trainer.state.global_step == 6
    for key, value in interrupted[2].state_dict().items():
        torch.testing.assert_close(trainer.model.state_dict()[key], value, rtol=0, atol=1e-7)
    assert checkpoint_hashes(run / "checkpoint-3") == before


def test_resume_from_a_missing_checkpoint_is_an_error(interrupted, gender, tmp_path):
    run, options = fresh_copy(interrupted, tmp_path)
    trainer = make_trainer(run, gender, **options)
    with pytest.raises(GradiendTrainingError, match="checkpoint-9.*does not exist"):
        trainer.train(resume_from_checkpoint=str(run / "checkpoint-9"))
    with pytest.raises(GradiendTrainingError, match="no checkpoint in"):
        make_trainer(tmp_path / "empty", gender, **options).train(resume_from_checkpoint=True)


def test_a_fresh_run_never_overwrites_an_earlier_runs_checkpoints(interrupted, gender, tmp_path):
    run, options = fresh_copy(interrupted, tmp_path)
    before = checkpoint_hashes(run / "checkpoint-3")
    with pytest.raises(GradiendTrainingError, match="holds checkpoints of an earlier run"):
        make_trainer(run, gender, **options).train()
    assert checkpoint_hashes(run / "checkpoint-3") == before


def test_an_incomplete_checkpoint_is_refused(interrupted, gender, tmp_path):
    run, options = fresh_copy(interrupted, tmp_path)
    os.remove(run / "checkpoint-3" / "trainer_state.json")
    with pytest.raises(GradiendTrainingError, match="not a whole training checkpoint"):
        make_trainer(run, gender, **options).train(resume_from_checkpoint=str(run / "checkpoint-3"))


@pytest.mark.parametrize("damage", ["missing", "corrupt", "other step"])
def test_a_bad_best_snapshot_is_an_error_at_the_start_of_the_resumed_run(damage, interrupted, gender, tmp_path):
    run, options = fresh_copy(interrupted, tmp_path)
    for snapshot in (run / BEST_DIR, run / "checkpoint-3" / BEST_DIR):
        if damage == "missing":
            shutil.rmtree(snapshot)
        elif damage == "corrupt":
            (snapshot / "model.safetensors").write_bytes(b"truncated")
        else:
            record = json.loads((snapshot / "snapshot.json").read_text())
            (snapshot / "snapshot.json").write_text(json.dumps({**record, "global_step": 1}))
    steps = []
    trainer = make_trainer(run, gender, **options)
    trainer.compute_loss = lambda *a, **k: steps.append(1)  # no step may run before the check
    with pytest.raises(GradiendTrainingError, match="best-GRADIEND snapshot"):
        trainer.train(resume_from_checkpoint=True)
    assert steps == []


def test_training_writes_json_arguments_and_no_pickle(interrupted):
    root = interrupted[0]
    for folder in (root / "full", root / "full" / "checkpoint-3"):
        trainer_files = [n for n in os.listdir(folder) if n.startswith("training_args")]
        assert trainer_files == ["training_args.json"], folder
        assert json.loads((folder / "training_args.json").read_text())["max_steps"] == 6


# --------------------------------------------------------------------------- bad feature rows


def rows(**changes):
    base = {
        "masked": ["He said that [MASK] was late."] * 4,
        "factual": ["he", "he", "she", "she"],
        "alternative": ["she", "she", "he", "he"],
        "factual_class": ["M", "M", "F", "F"],
        "alternative_class": ["F", "F", "M", "M"],
    }
    for column, (index, value) in changes.items():
        base[column][index] = value
    return Dataset.from_dict(base)


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"masked": (1, None)}, r"row 1: `masked` is NoneType, not text"),
        ({"masked": (2, "   ")}, r"row 2: `masked` is empty"),
        ({"masked": (0, "He said that she was late.")}, r"row 0: `masked` has no \[MASK\]"),
        ({"masked": (3, "[MASK] said that [MASK] was late.")}, r"row 3: `masked` has 2 \[MASK\]s"),
        ({"factual": (2, None)}, r"row 2: `factual` is NoneType"),
        ({"alternative": (0, "")}, r"row 0: `alternative` is empty"),
    ],
)
def test_each_kind_of_bad_row_has_its_own_message(changes, message, tmp_path):
    with pytest.raises(InvalidRowError, match=message):
        make_trainer(tmp_path / "out", DatasetDict({"train": rows(**changes), "validation": rows()}))
