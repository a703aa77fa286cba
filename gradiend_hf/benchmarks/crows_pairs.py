"""CrowS-Pairs scoring (Nangia et al., 2020).

- Masked LMs: the pseudo-log-likelihood of the tokens both sentences share, as in the paper: each shared token is
  masked in turn (one probe per token, many probes per forward pass) and the log-probabilities of the original
  tokens are summed. The words that differ are never scored, so their own frequency does not count.
- Causal LMs: the log-likelihood of the whole sentence after the BOS token, as lm-evaluation-harness scores
  `crows_pairs` (a continuation of an empty context).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .metrics import crows_pairs_metrics
from .scoring import shared_positions, special_ids
from .task import BenchmarkTask


class CrowsPairsTask(BenchmarkTask):
    name = "crows_pairs"

    def prepare(self) -> None:
        self.more = self.encode(self.rows["sent_more"])
        self.less = self.encode(self.rows["sent_less"])
        if self.objective == "masked_lm":
            skip = special_ids(self.tokenizer)
            self.probes, self.owners = [], []
            for k, (more, less) in enumerate(zip(self.more, self.less)):
                pos_more, pos_less = shared_positions(more, less, skip)
                # Sentence 2k is the more stereotypical one of pair k, 2k + 1 the less stereotypical one.
                self.probes += [(more, [p]) for p in pos_more] + [(less, [p]) for p in pos_less]
                self.owners += [2 * k] * len(pos_more) + [2 * k + 1] * len(pos_less)

    def __call__(self, model, show_progress: bool = False) -> pd.DataFrame:
        if self.objective == "masked_lm":
            sums = self.probe_sums(model, self.probes, self.owners, 2 * len(self), show_progress)
            more, less = sums[0::2], sums[1::2]
        else:
            sums = self.sentence_log_likelihoods(model, self.more + self.less, show_progress)
            more, less = sums[: len(self)], sums[len(self) :]
        return pd.DataFrame(
            {
                "id": self.rows["id"],
                "bias_type": self.rows["bias_type"],
                "sent_more_score": np.asarray(more, dtype=np.float64),
                "sent_less_score": np.asarray(less, dtype=np.float64),
            }
        )

    def metrics(self, scores, bootstrap_samples=1000, confidence=0.95, seed=0) -> dict:
        return crows_pairs_metrics(
            scores["sent_more_score"],
            scores["sent_less_score"],
            scores["bias_type"],
            bootstrap_samples=bootstrap_samples,
            confidence=confidence,
            seed=seed,
        )
