"""The bias-vs-quality sweep ("dose-response"): how biased is each rewrite `θ + lr · u(ff)`, and what does it cost?

[`sweep_rewrites`] applies every (feature factor, learning rate) of a grid to the base model in place
([`RewriteSession`]: the covered parameters are backed up once and restored bit for bit), scores the chosen
benchmarks and the language-modelling score (LMS, and perplexity for causal LMs) at every point, marks the Pareto
front (least biased for its LM quality) and selects the least biased rewrite whose LM quality stays within a budget.
The unchanged model is the first row, so "no rewrite" is always a candidate.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence

import pandas as pd
import torch
from tqdm.auto import tqdm

from ..checks import number_grid
from ..evaluation.prefix_cache import FrozenPrefix
from ..evaluation.runtime import eval_mode, model_device
from ..rewrite import RewriteSession
from .bootstrap import check_bootstrap_settings
from .errors import BenchmarkError
from .loading import check_benchmark_name
from .metrics import headline
from .paired import paired_from_scores
from .runner import prepare_benchmark, prepare_lm_scorer
from .scoring import NonFiniteScoresError, family_of
from .selection import BudgetPolicy, SelectionPolicy, pareto_front
from .sweep_result import SweepResult, headline_metric


# The method paper's decoder grid searched feature factors far beyond ±1 (ORIG `analyze_decoder.py`); since
# u(ff) = ff · W_d + b_d, large |ff| steers along the decoder weight and small |ff| mostly along its bias, and
# |ff| = 10 reaches ten times further than |ff| = 1 at the same learning rate.
DEFAULT_FEATURE_FACTORS = (-10.0, -5.0, -2.0, -1.0, -0.5, 0.0, 0.5, 1.0, 2.0, 5.0, 10.0)
# Around the scale at which the decoder grid's balanced rewrite of the demo acts (lr 0.2 on SmolLM2); for another
# base model run `evaluate_decoder` first and centre `learning_rates` on the rate it selects.
DEFAULT_LEARNING_RATES = (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0)
# The paired bias change of a point: its value and interval, as columns `<name>_bias_change<suffix>`.
PAIRED_COLUMNS = {"value": "", "ci_low": "_ci_low", "ci_high": "_ci_high"}


def sweep_rewrites(
    gradiend,
    base_model,
    tokenizer,
    benchmarks: Sequence[str] = ("crows_pairs",),
    bias_types: Sequence[str] | None = ("gender",),
    feature_factors: Sequence[float] | None = None,
    learning_rates: Sequence[float] | None = None,
    *,
    primary: str | None = None,
    budget: float = 0.01,
    quality: str = "lms",
    policy: SelectionPolicy | None = None,
    lm_texts=None,
    lm_max_texts: int | None = 100,
    max_rows: int | None = None,
    batch_size: int = 32,
    bootstrap_samples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    show_progress: bool = True,
    reuse_lower_layers: bool = True,
) -> SweepResult:
    """Scores bias and LM quality of every rewrite of a grid, in place, and selects one within an LM-quality budget.

    Args:
        gradiend ([`GradiendModel`]): The GRADIEND whose updates `lr · u(ff)` are applied.
        base_model (`PreTrainedModel`): Its base model; rewritten in place during the call and restored bit for bit.
        tokenizer: The base model's fast tokenizer.
        benchmarks (`Sequence[str]`, *optional*, defaults to `("crows_pairs",)`): Benchmarks scored at every point.
        bias_types (`Sequence[str]`, *optional*, defaults to `("gender",)`): Bias types kept (`None`: all).
        feature_factors (`Sequence[float]`, *optional*): Defaults to [`DEFAULT_FEATURE_FACTORS`] (−10 … 10).
        learning_rates (`Sequence[float]`, *optional*): Defaults to [`DEFAULT_LEARNING_RATES`] (0.01 … 1).
        primary (`str`, *optional*): The benchmark whose headline bias is minimised (default: the first).
        budget (`float`, *optional*, defaults to 0.01): Largest relative LM-quality loss of the selection (1 %).
        quality (`str`, *optional*, defaults to `"lms"`): `"lms"` or `"perplexity"` (causal LMs) for the budget.
        policy (callable, *optional*): `policy(table, base) -> index` instead of [`BudgetPolicy`].
        lm_texts (`datasets.Dataset` or `list[str]`, *optional*): Neutral text (built-in `neutral-en` by default).
        lm_max_texts (`int`, *optional*, defaults to 100): Neutral texts scored per point.
        max_rows (`int`, *optional*): First rows per benchmark only.
        batch_size (`int`, *optional*, defaults to 32): Sequences per forward pass.
        bootstrap_samples, confidence, seed: Bootstrap settings of every point's intervals (same seed everywhere).
        show_progress (`bool`, *optional*, defaults to `True`): A progress bar over the grid.
        reuse_lower_layers (`bool`, *optional*, defaults to `True`): When the GRADIEND covers only upper layers,
            compute the hidden states below the first covered layer once, for the unchanged model, and reuse them at
            every point (same scores; see [`gradiend_hf.evaluation.prefix_cache.FrozenPrefix`]).

    Returns:
        [`SweepResult`]: `.table`, `.selected`, `.summary()`, `.plot()`, `.report()`.
    """
    check_bootstrap_settings(bootstrap_samples, confidence)
    names = [check_benchmark_name(n) for n in ([benchmarks] if isinstance(benchmarks, str) else benchmarks)]
    if not names:
        raise BenchmarkError("`benchmarks` is empty; give at least one benchmark to sweep.")
    primary = check_benchmark_name(primary) if primary is not None else names[0]
    if primary not in names:
        raise BenchmarkError(f"`primary` {primary!r} is not one of the swept benchmarks {names}.")
    policy = policy or BudgetPolicy(budget=budget, quality=quality)
    ffs = number_grid(DEFAULT_FEATURE_FACTORS if feature_factors is None else feature_factors, "feature_factors")
    lrs = number_grid(DEFAULT_LEARNING_RATES if learning_rates is None else learning_rates, "learning_rates")
    gradiend.check_base_model(base_model)
    objective = family_of(base_model, getattr(gradiend.config, "objective", None)).name
    if quality == "perplexity" and family_of(objective=objective).reads_right_context:
        raise BenchmarkError("A masked LM has no perplexity; use `quality='lms'` (masked-token accuracy).")
    tasks = {n: prepare_benchmark(n, tokenizer, objective, bias_types, max_rows, batch_size) for n in names}
    lm = prepare_lm_scorer(tokenizer, objective, lm_texts, lm_max_texts, batch_size, seed, model_device(base_model))
    all_metrics, base_scores = [], {}

    def measure(feature_factor: float, learning_rate: float) -> dict:
        started = time.perf_counter()
        row = {"feature_factor": feature_factor, "learning_rate": learning_rate, "broken": False}
        row.update(lm(base_model))
        point = {}
        for name, task in tasks.items():
            try:
                scores = task(base_model)
                point[name] = task.metrics(scores, bootstrap_samples, confidence, seed)
            except NonFiniteScoresError:
                row["broken"] = True
                row.update({f"{name}_{headline_metric(name)}": math.nan, f"{name}_bias": math.nan})
                continue
            top = headline(name, point[name])
            row.update(
                {
                    f"{name}_{top['metric']}": top["value"],
                    f"{name}_ci_low": top["ci_low"],
                    f"{name}_ci_high": top["ci_high"],
                    f"{name}_bias": top["bias"],
                }
            )
            # The change from the base model, with the paired bootstrap (the same resampled rows for both).
            if name not in base_scores:
                base_scores[name] = scores
                change = {"value": 0.0, "ci_low": 0.0, "ci_high": 0.0}
            else:
                change = paired_from_scores(name, base_scores[name], scores, bootstrap_samples, confidence, seed)
                change = change["bias_change"].to_dict()
            row.update({f"{name}_bias_change{suffix}": change[key] for key, suffix in PAIRED_COLUMNS.items()})
        row["bias"] = row[f"{primary}_bias"]
        row["seconds"] = time.perf_counter() - started
        all_metrics.append(point)
        return row

    points = [(ff, lr) for ff in ffs for lr in lrs if lr != 0.0]
    with (
        eval_mode(base_model),
        torch.no_grad(),
        FrozenPrefix(base_model, gradiend.param_names, reuse_lower_layers) as prefix,
    ):
        records = [{**measure(0.0, 0.0), "is_base": True}]
        prefix.stop_recording()
        with RewriteSession(base_model, gradiend) as session:
            for ff, lr in tqdm(points, desc="rewrite sweep", disable=not show_progress):
                session.apply(ff, lr)
                records.append({**measure(ff, lr), "is_base": False})
    table = pd.DataFrame(records)
    table["lms_loss"] = 1.0 - table["lms"] / float(table.loc[0, "lms"]) if table.loc[0, "lms"] else math.nan
    table["pareto"] = pareto_front(table, "bias", quality)
    selected = policy(table, table.iloc[0])
    if selected not in table.index:
        raise BenchmarkError(f"The selection policy returned {selected!r}, which is not a row of the sweep table.")
    table["selected"] = table.index == selected
    settings = {
        "benchmarks": names,
        "bias_types": {n: t.bias_types for n, t in tasks.items()},
        "num_rows": {n: len(t) for n, t in tasks.items()},
        "num_lm_texts": lm.num_texts,
        "feature_factors": ffs,
        "learning_rates": lrs,
        "budget": budget,
        "quality": quality,
        "bootstrap_samples": bootstrap_samples,
        "confidence": confidence,
        "seed": seed,
    }
    return SweepResult(
        table=table,
        primary=primary,
        selected_index=int(selected),
        metrics=all_metrics,
        settings=settings,
        model_name=getattr(base_model, "name_or_path", None),
        objective=objective,
    )
