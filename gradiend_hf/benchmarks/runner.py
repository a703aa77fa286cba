"""Scoring a model on the bias benchmarks and on neutral text in one call: [`evaluate_bias`]."""

from __future__ import annotations

import time
from collections.abc import Sequence

from torch import nn

from ..data import load_builtin
from ..evaluation.lms import LanguageModelingScorer
from ..evaluation.rows import neutral_texts, sample_texts
from ..evaluation.runtime import model_device
from .bootstrap import check_bootstrap_settings
from .crows_pairs import CrowsPairsTask
from .errors import BenchmarkError
from .loading import BENCHMARKS, bias_types_of, check_benchmark_name, load_benchmark
from .metrics import headline
from .report import BenchmarkReport
from .scoring import family_of
from .stereoset import StereoSetTask
from .task import BenchmarkTask
from .winobias import WinoBiasTask


TASKS: dict[str, type[BenchmarkTask]] = {
    "crows_pairs": CrowsPairsTask,
    "stereoset": StereoSetTask,
    "winobias": WinoBiasTask,
}


def applicable_bias_types(name: str, bias_types: Sequence[str] | None) -> list[str] | None:
    """The requested bias types a benchmark has (`None`: all of them).

    Raises:
        BenchmarkError: when the benchmark has none of them.
    """
    if bias_types is None:
        return None
    wanted = [bias_types] if isinstance(bias_types, str) else list(bias_types)
    available = bias_types_of(name)
    kept = [kind for kind in wanted if kind in available]
    if not kept:
        raise BenchmarkError(
            f"{name} has none of the bias types {wanted}; it has {', '.join(available)}. Drop it from `benchmarks` "
            "or add one of its bias types."
        )
    return kept


def prepare_benchmark(
    name: str,
    tokenizer,
    objective: str,
    bias_types: Sequence[str] | None = None,
    max_rows: int | None = None,
    batch_size: int = 32,
) -> BenchmarkTask:
    """Loads a benchmark's rows and tokenizes them once for `tokenizer` and the model family `objective`.

    The returned task scores any state of a model: `scores = task(model)`, `task.metrics(scores)`.
    """
    name = check_benchmark_name(name)
    rows = load_benchmark(name, applicable_bias_types(name, bias_types), max_rows)
    return TASKS[name](tokenizer, objective, rows, batch_size=batch_size)


def prepare_lm_scorer(
    tokenizer,
    objective: str,
    texts=None,
    max_texts: int | None = 200,
    batch_size: int = 32,
    seed: int = 0,
    device=None,
) -> LanguageModelingScorer:
    """The language-modelling scorer of [`gradiend_hf.evaluation.lms`] on neutral text (built-in `neutral-en` by
    default, a seeded sample of `max_texts`)."""
    texts = neutral_texts(load_builtin("neutral-en") if texts is None else texts)
    return LanguageModelingScorer(
        tokenizer, sample_texts(texts, max_texts, seed), objective, batch_size=batch_size, seed=seed, device=device
    )


def evaluate_bias(
    model: nn.Module,
    tokenizer,
    benchmarks: Sequence[str] = BENCHMARKS,
    bias_types: Sequence[str] | None = None,
    *,
    objective: str | None = None,
    max_rows: int | None = None,
    batch_size: int = 32,
    bootstrap_samples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    lm_texts=None,
    lm_max_texts: int | None = 200,
    model_name: str | None = None,
    show_progress: bool = True,
) -> BenchmarkReport:
    """Scores a (base or rewritten) model on bias benchmarks, with bootstrap intervals, and on neutral text.

    Args:
        model (`nn.Module`): A masked or causal LM (any device; evaluated in eval mode, unchanged).
        tokenizer: Its fast tokenizer.
        benchmarks (`Sequence[str]`, *optional*): Any of `"crows_pairs"`, `"stereoset"`, `"winobias"` (all by default).
        bias_types (`Sequence[str]`, *optional*): Only rows of these bias types, in the benchmarks that have them
            (e.g. `["gender"]`); all by default.
        objective (`str`, *optional*): `"masked_lm"` or `"causal_lm"`; detected from the model by default.
        max_rows (`int`, *optional*): First rows per benchmark only (quick runs).
        batch_size (`int`, *optional*, defaults to 32): Sequences per forward pass.
        bootstrap_samples (`int`, *optional*, defaults to 1000): Bootstrap resamples per score (0: no intervals).
        confidence (`float`, *optional*, defaults to 0.95): Coverage of the intervals.
        seed (`int`, *optional*, defaults to 0): Seed of the bootstrap and of the neutral-text sample.
        lm_texts (`datasets.Dataset` or `list[str]`, *optional*): Neutral text for LMS and perplexity (built-in
            `neutral-en` by default); `False` to skip them.
        lm_max_texts (`int`, *optional*, defaults to 200): Neutral texts scored.
        model_name (`str`, *optional*): Name recorded in the report (default: the model's `name_or_path`).
        show_progress (`bool`, *optional*, defaults to `True`): Progress bars.

    Returns:
        [`BenchmarkReport`]: metrics with intervals and wall times per benchmark, LMS / perplexity, settings; the
        per-row scores in `.scores`.

    Raises:
        BenchmarkError: for unknown benchmarks or bias types, bad bootstrap settings or non-finite model scores.
    """
    check_bootstrap_settings(bootstrap_samples, confidence)
    names = [check_benchmark_name(name) for name in ([benchmarks] if isinstance(benchmarks, str) else benchmarks)]
    if not names:
        raise BenchmarkError(f"`benchmarks` is empty; choose from {', '.join(BENCHMARKS)}.")
    objective = family_of(model, objective).name
    results, scores = {}, {}
    for name in dict.fromkeys(names):
        started = time.perf_counter()
        task = prepare_benchmark(name, tokenizer, objective, bias_types, max_rows, batch_size)
        scores[name] = task(model, show_progress=show_progress)
        metrics = task.metrics(scores[name], bootstrap_samples, confidence, seed)
        results[name] = {
            "metrics": metrics,
            "headline": headline(name, metrics),
            "bias_types": task.bias_types,
            "num_rows": len(task),
            "seconds": time.perf_counter() - started,
        }
    language_modeling = None
    if lm_texts is not False:
        started = time.perf_counter()
        scorer = prepare_lm_scorer(tokenizer, objective, lm_texts, lm_max_texts, batch_size, seed, model_device(model))
        language_modeling = {**scorer(model), "num_texts": scorer.num_texts, "seconds": time.perf_counter() - started}
    return BenchmarkReport(
        model_name=model_name or getattr(model, "name_or_path", None) or type(model).__name__,
        objective=objective,
        benchmarks=results,
        language_modeling=language_modeling,
        settings={
            "bootstrap_samples": bootstrap_samples,
            "confidence": confidence,
            "seed": seed,
            "batch_size": batch_size,
            "max_rows": max_rows,
            "bias_types": None if bias_types is None else list(bias_types),
        },
        scores=scores,
    )
