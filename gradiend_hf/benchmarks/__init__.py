"""Bias benchmarks built in: does a rewrite debias the model, and what does it cost?

CrowS-Pairs, StereoSet (intrasentence) and WinoBias ship with the package (`data/`, offline, with their licences and
attribution in `data/ATTRIBUTION.md`) and are scored for masked and causal language models, with seeded bootstrap
95 % intervals. Each benchmark, and the GRADIEND encoder metrics, is also an `evaluate` module.

```python
from gradiend_hf.benchmarks import evaluate_bias, sweep_rewrites

report = evaluate_bias(model, tokenizer, ["crows_pairs", "winobias"], bias_types=["gender"])
print(report.to_markdown())

sweep = sweep_rewrites(gradiend, model, tokenizer, benchmarks=["crows_pairs"], bias_types=["gender"])
sweep.selected  # the least biased rewrite within 1 % LMS loss
sweep.summary()["paired_verdict"]  # "less biased" when the paired interval of its bias change lies below 0

import evaluate
crows = evaluate.load(gradiend_hf.benchmarks.module_path("crows_pairs"))
crows.compute(sent_more_score=[...], sent_less_score=[...], bias_type=[...])
```
"""

from .bootstrap import Estimate, estimates
from .errors import BenchmarkError
from .loading import BENCHMARKS, benchmark_info, list_benchmarks, load_benchmark
from .metrics import crows_pairs_metrics, headline, stereoset_metrics, winobias_metrics
from .modules import MODULES, module_path
from .paired import attach_paired, paired_change
from .report import BenchmarkReport, comparison_markdown
from .rewrite_bias import evaluate_rewrite_bias
from .runner import evaluate_bias, prepare_benchmark
from .scoring import NonFiniteScoresError
from .sweep import (
    DEFAULT_FEATURE_FACTORS,
    DEFAULT_LEARNING_RATES,
    BudgetPolicy,
    SweepResult,
    pareto_front,
    sweep_rewrites,
)


__all__ = [
    "BENCHMARKS",
    "DEFAULT_FEATURE_FACTORS",
    "DEFAULT_LEARNING_RATES",
    "MODULES",
    "BenchmarkError",
    "BenchmarkReport",
    "Estimate",
    "BudgetPolicy",
    "NonFiniteScoresError",
    "attach_paired",
    "SweepResult",
    "benchmark_info",
    "comparison_markdown",
    "crows_pairs_metrics",
    "estimates",
    "evaluate_bias",
    "evaluate_rewrite_bias",
    "headline",
    "list_benchmarks",
    "load_benchmark",
    "module_path",
    "paired_change",
    "pareto_front",
    "prepare_benchmark",
    "stereoset_metrics",
    "sweep_rewrites",
    "winobias_metrics",
]
