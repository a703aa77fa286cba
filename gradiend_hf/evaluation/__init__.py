"""Evaluating a GRADIEND: how well its encoder separates the feature classes, and which rewrite of the base model
its decoder gives.

```python
from gradiend_hf.evaluation import evaluate_decoder, evaluate_encoder

encoder = evaluate_encoder(gradiend, base, tokenizer, dataset, neutral=neutral)
encoder.metrics["correlation"]

decoder = evaluate_decoder(gradiend, base, tokenizer, dataset, neutral, target_class="F")
rewritten = gradiend.rewrite(base, decoder.selected.feature_factor, decoder.selected.learning_rate)
```
"""

from .decoder import (
    BALANCE_FEATURE_FACTORS,
    DEFAULT_LEARNING_RATES,
    FEATURE_FACTOR_PRESETS,
    PAPER_FEATURE_FACTORS,
    DecoderReport,
    DecoderSelection,
    evaluate_decoder,
)
from .encoder import EncoderReport, evaluate_encoder, expected_encoding
from .feature_factor import encoding_direction, feature_factor_for
from .grid_search import SEARCHES, GridSearch
from .lms import LanguageModelingScorer
from .metrics import (
    EvaluationError,
    balance_score,
    encoder_metrics,
    lms_from_nll,
    pearson,
    strengthen_score,
    ternary,
    weaken_score,
)
from .probabilities import ClassProbabilityScorer, surface_variant_ids
from .selection import LMSThresholdPolicy, resolve_policy


__all__ = [
    "BALANCE_FEATURE_FACTORS",
    "DEFAULT_LEARNING_RATES",
    "FEATURE_FACTOR_PRESETS",
    "PAPER_FEATURE_FACTORS",
    "SEARCHES",
    "GridSearch",
    "ClassProbabilityScorer",
    "DecoderReport",
    "DecoderSelection",
    "EncoderReport",
    "EvaluationError",
    "LMSThresholdPolicy",
    "LanguageModelingScorer",
    "balance_score",
    "encoder_metrics",
    "encoding_direction",
    "evaluate_decoder",
    "evaluate_encoder",
    "expected_encoding",
    "feature_factor_for",
    "lms_from_nll",
    "pearson",
    "resolve_policy",
    "strengthen_score",
    "surface_variant_ids",
    "ternary",
    "weaken_score",
]
