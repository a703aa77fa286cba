"""The shape every benchmark shares: rows tokenized once for one tokenizer and model family, scored for any state of
a model (the base model, or each rewrite of a sweep), and turned into metrics."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from datasets import Dataset
from torch import nn

from .errors import BenchmarkError
from .scoring import causal_log_probs, encode, masked_log_probs


class BenchmarkTask:
    """A benchmark prepared for one tokenizer and model family.

    Args:
        tokenizer: The model's (fast) tokenizer.
        objective (`str`): `"masked_lm"` or `"causal_lm"`.
        rows (`datasets.Dataset`): The benchmark's rows (see [`load_benchmark`]).
        batch_size (`int`, *optional*, defaults to 32): Sequences per forward pass.
        max_length (`int`, *optional*, defaults to 256): Longest tokenized sentence.
    """

    name: str = ""

    def __init__(self, tokenizer, objective: str, rows: Dataset, batch_size: int = 32, max_length: int = 256):
        if objective not in ("masked_lm", "causal_lm"):
            raise BenchmarkError(f"Unknown objective {objective!r}; choose 'masked_lm' or 'causal_lm'.")
        if len(rows) == 0:
            raise BenchmarkError(f"{self.name} has no rows to score; check the bias types and `max_rows`.")
        self.tokenizer = tokenizer
        self.objective = objective
        self.rows = rows
        self.batch_size = batch_size
        self.max_length = max_length
        self.bias_types = sorted(set(rows["bias_type"])) if "bias_type" in rows.column_names else ["gender"]
        self.prepare()

    def __len__(self) -> int:
        return len(self.rows)

    def prepare(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def __call__(self, model: nn.Module, show_progress: bool = False) -> pd.DataFrame:  # pragma: no cover
        """Per-row scores of `model` (higher = more likely), one row per benchmark row."""
        raise NotImplementedError

    def metrics(self, scores: pd.DataFrame, bootstrap_samples: int = 1000, confidence: float = 0.95, seed: int = 0):
        """The benchmark's metrics of per-row `scores` (see [`gradiend_hf.benchmarks.metrics`])."""
        raise NotImplementedError  # pragma: no cover

    # --- helpers shared by the benchmarks ---------------------------------------------------------------------

    def encode(self, texts: Sequence[str]) -> list[list[int]]:
        return encode(self.tokenizer, texts, self.objective, self.max_length)

    def sentence_log_likelihoods(self, model, sequences, show_progress: bool, mean: bool = False) -> np.ndarray:
        """Sum (or mean) over each causal sequence of the log-probabilities of its tokens after the prefix."""
        values = causal_log_probs(model, self.tokenizer, sequences, self.batch_size, self.name, show_progress)
        return np.array([v.mean() if mean else v.sum() for v in values])

    def probe_sums(self, model, probes, owners: Sequence[int], count: int, show_progress: bool, reduce=np.sum):
        """Scores each of `count` sentences by reducing the log-probabilities of its masked-LM probes.

        `owners[k]` is the sentence probe `k` belongs to; `reduce` turns the sentence's per-position log-probabilities
        into its score.
        """
        values = masked_log_probs(model, self.tokenizer, probes, self.batch_size, self.name, show_progress)
        grouped: list[list[float]] = [[] for _ in range(count)]
        for owner, value in zip(owners, values):
            grouped[owner].extend(value.tolist())
        if any(not group for group in grouped):
            raise BenchmarkError(f"A {self.name} sentence has no token to score; its words tokenize to nothing.")
        return np.array([reduce(np.asarray(group)) for group in grouped])
