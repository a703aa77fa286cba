"""WinoBias scoring, masked-pronoun form (Zhao et al., 2018).

Each row's pro- and anti-stereotypical sentences differ only in the pronoun (and, in two rows, a reflexive).

- Masked LMs: the tokens that differ are masked together in each sentence and the log-probabilities of that
  sentence's own tokens there are summed (for a one-token pronoun: the fill-mask log-probability of the pronoun).
- Causal LMs: the log-likelihood of the whole sentence after the BOS token (the words after the pronoun count too).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .metrics import winobias_metrics
from .scoring import differing_positions, shared_positions, special_ids
from .task import BenchmarkTask


class WinoBiasTask(BenchmarkTask):
    name = "winobias"

    def prepare(self) -> None:
        self.pro = self.encode(self.rows["pro_sentence"])
        self.anti = self.encode(self.rows["anti_sentence"])
        if self.objective == "masked_lm":
            skip = special_ids(self.tokenizer)
            self.probes = []
            for pro, anti in zip(self.pro, self.anti):
                shared_pro, shared_anti = shared_positions(pro, anti, skip)
                self.probes.append((pro, differing_positions(pro, shared_pro, skip)))
                self.probes.append((anti, differing_positions(anti, shared_anti, skip)))

    def __call__(self, model, show_progress: bool = False) -> pd.DataFrame:
        if self.objective == "masked_lm":
            sums = self.probe_sums(model, self.probes, range(len(self.probes)), len(self.probes), show_progress)
            pro, anti = sums[0::2], sums[1::2]
        else:
            sums = self.sentence_log_likelihoods(model, self.pro + self.anti, show_progress)
            pro, anti = sums[: len(self)], sums[len(self) :]
        return pd.DataFrame(
            {
                "id": self.rows["id"],
                "pro_gender": self.rows["pro_gender"],
                "pro_score": np.asarray(pro, dtype=np.float64),
                "anti_score": np.asarray(anti, dtype=np.float64),
            }
        )

    def metrics(self, scores, bootstrap_samples=1000, confidence=0.95, seed=0) -> dict:
        return winobias_metrics(
            scores["pro_score"],
            scores["anti_score"],
            scores["pro_gender"],
            bootstrap_samples=bootstrap_samples,
            confidence=confidence,
            seed=seed,
        )
