"""Multi-seed training (`gradiend_hf/multi_seed.py`)."""

import json
import math

import pytest
import torch
from datasets import DatasetDict
from safetensors.torch import load_file

from gradiend_hf import GradiendModel, GradiendNotConvergedError, GradiendTrainingArguments
from gradiend_hf.data import load_builtin
from gradiend_hf.multi_seed import SeedRun, select_seed, topk_stability, train_multi_seed

from .tiny_models import tiny_model


PARAMS = ["*.layer.1.*"]


@pytest.fixture(scope="module")
def gender():
    # A slice keeps the per-seed trainer set-up (tokenizing every row) short.
    full = load_builtin("gender-en")
    return DatasetDict(train=full["train"].select(range(0, 3362, 6)), validation=full["validation"].select(range(96)))


def run(seed, converged, correlation):
    return {"seed": seed, "converged": converged, "best_correlation": correlation}


# --------------------------------------------------------------------------- selection rule


def test_converged_run_with_largest_absolute_correlation_wins():
    runs = [run(0, True, 0.71), run(1, True, -0.93), run(2, True, 0.9)]
    assert select_seed(runs) == 1  # |−0.93| is the largest


def test_converged_run_beats_a_better_correlated_non_converged_one():
    runs = [run(0, False, 0.99), run(1, True, 0.55), run(2, False, 0.98)]
    assert select_seed(runs) == 1


def test_ties_go_to_the_lowest_seed():
    runs = [run(5, True, 0.8), run(2, True, -0.8), run(9, True, 0.8)]
    assert select_seed(runs) == 2


def test_non_converged_run_is_picked_only_when_none_converged():
    runs = [run(0, False, 0.3), run(1, False, None), run(2, False, -0.45), run(3, False, math.nan)]
    assert select_seed(runs) == 2
    assert select_seed([SeedRun(seed=7, converged=False)]) == 7
    with pytest.raises(ValueError, match="No seed was trained"):
        select_seed([])


def test_topk_stability_statistics():
    stability = topk_stability({0: [1, 2, 3, 4], 1: [3, 4, 5, 6], 2: [1, 2, 3, 9]}, k=4)
    assert stability["pairs"] == {"0-1": 0.5, "0-2": 0.75, "1-2": 0.25}
    assert stability["mean"] == pytest.approx(0.5) and stability["min"] == 0.25 and stability["max"] == 0.75
    assert stability["intersection"] == 1 and stability["union"] == 7
    assert topk_stability({0: [1]}, k=1)["mean"] is None


# --------------------------------------------------------------------------- real runs on a tiny model


def make_args(output_dir, **overrides):
    defaults = dict(
        max_steps=20,
        learning_rate=1e-3,
        sentences_per_gradient=4,
        eval_steps=10,
        eval_max_rows=48,
        report_to="none",
        disable_tqdm=True,
    )
    defaults.update(overrides)
    return GradiendTrainingArguments(str(output_dir), **defaults)


def test_multi_seed_run_keeps_the_documented_winner(gender, tmp_path):
    model, tokenizer = tiny_model("bert")
    initial = {}

    def model_init():
        gradiend = GradiendModel.from_base_model(model)
        initial[torch.initial_seed()] = gradiend.encoder.bias.detach().clone()
        return gradiend

    result = train_multi_seed(
        model_init,
        model,
        tokenizer,
        gender,
        make_args(tmp_path, max_steps=30),
        seeds=(4, 1, 2),
        min_convergent=2,
        keep="all",
    )
    # Each seed set the initialisation: different seeds, different GRADIENDs.
    assert sorted(initial) == sorted(r.seed for r in result.runs)
    assert len({float(v) for v in initial.values()}) == len(initial)
    report = json.loads((tmp_path / "seed_report.json").read_text())
    assert [r["seed"] for r in report["runs"]] == [r.seed for r in result.runs]
    # Training stopped as soon as two runs converged.
    converged = [r for r in result.runs if r.converged]
    assert len(converged) == 2 and result.runs[-1].converged
    assert report["selected_seed"] == result.selected_seed == select_seed(report["runs"])
    assert sum(r["selected"] for r in report["runs"]) == 1
    for entry in report["runs"]:
        assert set(entry) >= {"seed", "converged", "best_correlation", "best_step", "mean_by_class", "selected"}
    # The winner in output_dir is the selected seed's GRADIEND, bit for bit.
    winner = load_file(tmp_path / "model.safetensors")
    seed_dir = tmp_path / "seeds" / f"seed_{result.selected_seed}"
    assert not (seed_dir / "best-gradiend").exists()
    for key, value in load_file(seed_dir / "model.safetensors").items():
        assert torch.equal(winner[key], value), key
    assert result.model.config.multi_seed["selected_seed"] == result.selected_seed
    assert GradiendModel.from_pretrained(tmp_path).config.multi_seed["selected_seed"] == result.selected_seed
    stability = report["topk_stability"]
    assert stability["k"] == 1000 and len(stability["pairs"]) == 1 and 0 <= stability["mean"] <= 1


def test_no_convergence_tries_every_seed_and_keeps_the_best(gender, tmp_path):
    model, tokenizer = tiny_model("bert")
    args = make_args(tmp_path, max_steps=1, eval_max_rows=16, learning_rate=1e-9, fail_on_non_convergence=True)
    with pytest.raises(GradiendNotConvergedError, match="None of the seeds"):
        train_multi_seed(
            lambda: GradiendModel.from_base_model(model, params=PARAMS),
            model,
            tokenizer,
            gender,
            args,
            seeds=(0, 1, 2),
            keep="best",
        )
    report = json.loads((tmp_path / "seed_report.json").read_text())
    assert [r["seed"] for r in report["runs"]] == [0, 1, 2] and not any(r["converged"] for r in report["runs"])
    best = max(report["runs"], key=lambda r: (abs(r["best_correlation"]), -r["seed"]))
    assert report["selected_seed"] == best["seed"]
    # keep="best": the per-seed folders are gone, the winner is in output_dir.
    assert not (tmp_path / "seeds").exists() and all(r["output_dir"] is None for r in report["runs"])
    assert (tmp_path / "model.safetensors").exists()
    assert report["topk_stability"] is None


def test_bad_arguments(gender, tmp_path):
    model, tokenizer = tiny_model("bert")
    init = lambda: GradiendModel.from_base_model(model, params=PARAMS)  # noqa: E731
    with pytest.raises(ValueError, match="keep"):
        train_multi_seed(init, model, tokenizer, gender, make_args(tmp_path), keep="some")
    with pytest.raises(ValueError, match="distinct"):
        train_multi_seed(init, model, tokenizer, gender, make_args(tmp_path), seeds=(1, 1))
    with pytest.raises(ValueError, match="min_convergent"):
        train_multi_seed(init, model, tokenizer, gender, make_args(tmp_path), seeds=(1,), min_convergent=2)
