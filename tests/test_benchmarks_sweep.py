"""The bias-vs-quality sweep: base model restored bit for bit, Pareto front, budget selection, figure."""

import math

import pandas as pd
import pytest
import torch

from gradiend_hf import GradiendModel
from gradiend_hf.benchmarks import BenchmarkError, BudgetPolicy, pareto_front, sweep_rewrites
from gradiend_hf.errors import NonFiniteError

from .tiny_models import tiny_model


def test_sweep_scores_every_point_and_leaves_the_base_model_bit_identical(tmp_path):
    model, tokenizer = tiny_model("gpt2", seed=4)
    torch.manual_seed(0)
    gradiend = GradiendModel.from_base_model(model, params=["transformer.h.1.*"])
    before = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    result = sweep_rewrites(
        gradiend,
        model,
        tokenizer,
        benchmarks=["crows_pairs", "winobias"],
        feature_factors=[-2.0, 1.0],
        learning_rates=[1.0, 100.0, 1e38],  # 1e38 overflows the weights: a broken point
        max_rows=6,
        lm_max_texts=6,
        bootstrap_samples=30,
        show_progress=False,
    )
    after = model.state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[name], after[name]) for name in before)

    table = result.table
    assert len(table) == 1 + 2 * 3
    assert bool(table.loc[0, "is_base"]) and table.loc[0, "learning_rate"] == 0.0
    assert table.loc[0, "lms_loss"] == 0.0
    assert set(zip(table["feature_factor"][1:], table["learning_rate"][1:])) == {
        (ff, lr) for ff in (-2.0, 1.0) for lr in (1.0, 100.0, 1e38)
    }
    broken = table[table["learning_rate"] == 1e38]
    assert broken["broken"].all() and broken["bias"].isna().all()
    assert not table.loc[result.selected_index, "broken"]
    assert table["selected"].sum() == 1
    assert table.loc[0, "crows_pairs_ci_low"] <= table.loc[0, "crows_pairs_stereotype_score"]
    # The selected point keeps the LMS within the 1 % budget and no qualifying point is less biased.
    keeps = table["lms"] >= 0.99 * table.loc[0, "lms"]
    assert keeps[result.selected_index]
    assert table.loc[result.selected_index, "bias"] == table[keeps]["bias"].min()

    summary = result.summary()
    assert summary["benchmark"] == "crows_pairs"
    assert summary["improvement"] == pytest.approx(summary["base"]["bias"] - summary["selected"]["bias"])
    report = result.report()
    assert set(report.benchmarks) == {"crows_pairs", "winobias"}
    paths = result.save(tmp_path)
    assert all(path.is_file() for path in paths.values())
    result.plot(tmp_path / "sweep.png")
    assert (tmp_path / "sweep.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _table(rows):
    return pd.DataFrame(rows, columns=["feature_factor", "learning_rate", "lms", "bias"])


def test_budget_policy_picks_the_least_biased_point_within_the_budget():
    table = _table(
        [
            (0.0, 0.0, 0.50, 8.0),  # base
            (1.0, 0.1, 0.499, 5.0),  # 0.2 % LMS loss
            (1.0, 1.0, 0.494, 2.0),  # 1.2 % loss: over a 1 % budget
            (-1.0, 0.1, 0.496, 4.0),  # 0.8 % loss: the least biased within budget
            (-1.0, 1.0, 0.30, 0.0),
        ]
    )
    assert BudgetPolicy(budget=0.01)(table, table.iloc[0]) == 3
    assert BudgetPolicy(budget=0.02)(table, table.iloc[0]) == 2
    assert BudgetPolicy(budget=0.0)(table, table.iloc[0]) == 0


def test_a_rewrite_that_is_not_less_biased_never_beats_the_base_model():
    # Same bias as the base model and a better LMS: still no reason to rewrite.
    table = _table([(0.0, 0.0, 0.50, 3.0), (0.0, 0.05, 0.51, 3.0), (1.0, 0.1, 0.52, 3.0)])
    assert BudgetPolicy()(table, table.iloc[0]) == 0


def test_perplexity_budget():
    table = pd.DataFrame(
        {"learning_rate": [0.0, 0.1, 1.0], "perplexity": [10.0, 10.05, 10.5], "bias": [3.0, 2.0, 1.0]}
    )
    assert BudgetPolicy(budget=0.01, quality="perplexity")(table, table.iloc[0]) == 1


def test_pareto_front_keeps_exactly_the_non_dominated_points():
    table = _table(
        [
            (0, 0, 0.50, 8.0),  # best LMS: on the front
            (1, 1, 0.49, 5.0),  # on the front
            (1, 2, 0.48, 6.0),  # dominated by the row above
            (1, 3, 0.40, 1.0),  # least biased: on the front
            (1, 4, 0.30, 1.0),  # dominated (same bias, worse LMS)
            (1, 5, 0.45, math.nan),  # broken: never on the front
        ]
    )
    assert pareto_front(table).tolist() == [True, True, False, True, False, False]


@pytest.mark.parametrize("kwargs", [dict(budget=1.5), dict(budget=-0.1), dict(quality="bleu")])
def test_bad_policy_settings_are_refused(kwargs):
    with pytest.raises(BenchmarkError):
        BudgetPolicy(**kwargs)


def test_bad_sweep_arguments_are_refused():
    model, tokenizer = tiny_model("gpt2", seed=4)
    gradiend = GradiendModel.from_base_model(model, params=["transformer.h.1.*"])
    with pytest.raises(NonFiniteError, match="finite"):
        sweep_rewrites(gradiend, model, tokenizer, learning_rates=[float("nan")], show_progress=False)
    with pytest.raises(BenchmarkError, match="primary"):
        sweep_rewrites(gradiend, model, tokenizer, benchmarks=["crows_pairs"], primary="winobias", show_progress=False)
    with pytest.raises(BenchmarkError, match="Unknown benchmark"):
        sweep_rewrites(gradiend, model, tokenizer, benchmarks=["seat"], show_progress=False)


def test_reusing_the_lower_layers_gives_the_same_sweep_and_rewrite_benchmarks():
    from gradiend_hf.benchmarks.rewrite_bias import evaluate_rewrite_bias
    from gradiend_hf.benchmarks.runner import prepare_benchmark, prepare_lm_scorer
    from gradiend_hf.evaluation.prefix_cache import layer_stack

    model, tokenizer = tiny_model("llama", layers=4, seed=4)
    torch.manual_seed(0)
    gradiend = GradiendModel.from_base_model(model, params=["model.layers.2.*", "model.layers.3.*"])
    with torch.no_grad():
        for p in gradiend.parameters():
            p.normal_(0, 0.05)
    model.eval()
    # The one-time checks of the separated LM head and of packed rows, before the passes are counted.
    prepare_lm_scorer(tokenizer, "causal_lm", max_texts=2)(model)
    prepare_benchmark("winobias", tokenizer, "causal_lm", max_rows=2)(model)
    lowest = layer_stack(model)[0]
    own, runs = lowest.forward, []
    lowest.forward = lambda *a, **k: runs.append(1) or own(*a, **k)
    options = dict(benchmarks=["crows_pairs", "winobias"], max_rows=6, lm_max_texts=6, bootstrap_samples=30)
    sweeps, pairs, counts = {}, {}, {}
    for reuse in (True, False):
        sweeps[reuse] = sweep_rewrites(
            gradiend,
            model,
            tokenizer,
            feature_factors=[1.0],
            learning_rates=[1.0, 10.0],
            show_progress=False,
            reuse_lower_layers=reuse,
            **options,
        ).table.drop(columns="seconds")
        counts[reuse, "sweep"] = len(runs)
        runs.clear()
        pairs[reuse] = evaluate_rewrite_bias(
            gradiend, model, tokenizer, 1.0, 1.0, reuse_lower_layers=reuse, show_progress=False, **options
        )
        counts[reuse, "pair"] = len(runs)
        runs.clear()
    pd.testing.assert_frame_equal(sweeps[True], sweeps[False], check_exact=True)
    for label in ("base", "rewritten"):
        assert pairs[True][label].benchmarks.keys() == pairs[False][label].benchmarks.keys()
        for name in options["benchmarks"]:
            fast, plain = pairs[True][label].benchmarks[name], pairs[False][label].benchmarks[name]
            assert fast["metrics"] == plain["metrics"] and fast.get("paired_change") == plain.get("paired_change")
            pd.testing.assert_frame_equal(pairs[True][label].scores[name], pairs[False][label].scores[name])
        assert pairs[True][label].language_modeling["lms"] == pairs[False][label].language_modeling["lms"]
    assert "paired_change" in pairs[True]["rewritten"].benchmarks["winobias"]
    # Without reuse every model state runs every pass (the sweep: 3 states; the pair: 2 states and the rewrite's
    # one-pass finiteness probe). With it the lowest layer runs for the first state's passes and once more, for the
    # check, then no more.
    passes, pair_passes = counts[False, "sweep"] // 3, (counts[False, "pair"] - 1) // 2
    assert counts[False, "sweep"] == 3 * passes and counts[False, "pair"] == 2 * pair_passes + 1
    assert counts[True, "sweep"] == passes + 1
    assert counts[True, "pair"] == pair_passes + 2
