"""The shape every benchmark shares: rows tokenized once for one tokenizer and model family, scored for any state of
a model (the base model, or each rewrite of a sweep), and turned into metrics.

A benchmark row holds a few sentences (`sentences`, e.g. the more and the less stereotypical one). Each
sentence is scored from the log-probabilities of its probes (see [`gradiend_hf.benchmarks.scoring`]): a masked LM
gets the probes its benchmark defines (`masked_probes`), a causal LM one probe of every token of the sentence.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from datasets import Dataset
from torch import nn

from ..objectives import Objective
from .errors import BenchmarkError
from .metrics import METRIC_FUNCTIONS
from .scoring import check_tokenizer, encode, family_of, log_probs, shared_positions, special_ids


class BenchmarkTask:
    """A benchmark prepared for one tokenizer and model family.

    Subclasses name their columns and, for masked LMs, their probes.

    Args:
        tokenizer: The model's (fast) tokenizer.
        objective (`str` or `type[Objective]`): The model family (`"masked_lm"`, `"causal_lm"` or its class).
        rows (`datasets.Dataset`): The benchmark's rows (see [`load_benchmark`]).
        batch_size (`int`, *optional*, defaults to 32): Probes per forward pass.
        max_length (`int`, *optional*, defaults to 256): Longest tokenized sentence.
        pack_prefixes (`bool`, *optional*, defaults to `True`): Score a causal LM's sentences that begin alike in one
            row, their beginning once (see [`log_probs`]).

    Raises:
        ObjectiveError: for an unknown objective.
        BenchmarkError: for no rows, or a tokenizer the family cannot be scored with.
    """

    name: str = ""
    sentences: dict[str, str] = {}
    """Column of each sentence a row scores → the column of its score, in order."""
    labels: tuple[str, ...] = ()
    """Row columns kept next to the scores (bias type, target, …)."""

    def __init__(
        self,
        tokenizer,
        objective: str | type[Objective],
        rows: Dataset,
        batch_size: int = 32,
        max_length: int = 256,
        pack_prefixes: bool = True,
    ):
        self.family = family_of(objective=objective)
        check_tokenizer(tokenizer, self.family)
        if len(rows) == 0:
            raise BenchmarkError(f"{self.name} has no rows to score; check the bias types and `max_rows`.")
        self.tokenizer = tokenizer
        self.rows = rows
        self.batch_size = batch_size
        self.max_length = max_length
        self.pack_prefixes = pack_prefixes
        self.bias_types = sorted(set(rows["bias_type"])) if "bias_type" in rows.column_names else ["gender"]
        self.probes: list[tuple[list[int], list[int]]] = []
        self.owners: list[int] = []
        if self.family.reads_right_context:
            self.masked_probes()
        else:
            for k, column in enumerate(self.sentences):
                for r, ids in enumerate(self.encode(self.rows[column])):
                    self.add_probe(k, r, ids, range(1, len(ids)))

    def __len__(self) -> int:
        return len(self.rows)

    def encode(self, texts: Sequence[str]) -> list[list[int]]:
        return encode(self.tokenizer, texts, self.family, self.max_length)

    def add_probe(self, sentence: int, row: int, ids: Sequence[int], positions: Sequence[int]) -> None:
        """Scores `positions` of `ids` for sentence column `sentence` of row `row`."""
        self.probes.append((list(ids), list(positions)))
        self.owners.append(sentence * len(self) + row)

    def masked_probes(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def reduce(self, values: np.ndarray) -> float:
        """A sentence's score from the log-probabilities of all its probes (their sum by default)."""
        return float(values.sum())

    def __call__(self, model: nn.Module, show_progress: bool = False) -> pd.DataFrame:
        """Per-row scores of `model` (higher = more likely), one row per benchmark row."""
        values = log_probs(
            model,
            self.tokenizer,
            self.probes,
            self.family,
            self.batch_size,
            self.name if show_progress else None,
            pack_prefixes=self.pack_prefixes,
        )
        grouped: list[list[float]] = [[] for _ in range(len(self.sentences) * len(self))]
        for owner, value in zip(self.owners, values):
            grouped[owner].extend(value.tolist())
        if any(not group for group in grouped):
            raise BenchmarkError(f"A {self.name} sentence has no token to score; its words tokenize to nothing.")
        flat = np.array([self.reduce(np.asarray(group)) for group in grouped], dtype=np.float64)
        n = len(self)
        frame = {"id": self.rows["id"], **{column: self.rows[column] for column in self.labels}}
        frame.update({column: flat[k * n : (k + 1) * n] for k, column in enumerate(self.sentences.values())})
        return pd.DataFrame(frame)

    @classmethod
    def metric_columns(cls) -> tuple[str, ...]:
        """The per-row score columns its metrics function takes, in order: the score columns, then the labels."""
        return (*cls.sentences.values(), *cls.labels)

    def metrics(self, scores: pd.DataFrame, bootstrap_samples: int = 1000, confidence: float = 0.95, seed: int = 0):
        """The benchmark's metrics of per-row `scores`: its function of [`METRIC_FUNCTIONS`], given the score columns
        and then the label columns, in order."""
        inputs = [scores[column] for column in self.metric_columns()]
        metrics = METRIC_FUNCTIONS[self.name]
        return metrics(*inputs, bootstrap_samples=bootstrap_samples, confidence=confidence, seed=seed)


class PairTask(BenchmarkTask):
    """A benchmark whose rows are two sentences that differ in a few tokens; masked LMs align them
    ([`shared_positions`]) and score what `probe_positions` picks."""

    def masked_probes(self) -> None:
        skip = special_ids(self.tokenizer)
        first, second = (self.encode(self.rows[column]) for column in self.sentences)
        for r, (a, b) in enumerate(zip(first, second)):
            for k, (ids, shared) in enumerate(zip((a, b), shared_positions(a, b, skip))):
                for positions in self.probe_positions(ids, shared, skip):
                    self.add_probe(k, r, ids, positions)

    def probe_positions(self, ids: list[int], shared: list[int], skip: set[int]) -> list[list[int]]:
        """The positions masked together in each probe of one sentence, from the positions it shares with the
        other sentence of its row."""
        raise NotImplementedError  # pragma: no cover - abstract
