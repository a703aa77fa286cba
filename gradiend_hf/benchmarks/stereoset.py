"""StereoSet intrasentence scoring (Nadeem et al., 2021), as its authors score each model family.

- Masked LMs: the blank of the context is filled with the candidate word, and the word's tokens are predicted left
  to right: for its i-th token, the tokens before it stay, the i-th is masked and the later ones are removed (one
  probe per token). The sentence's score is the mean probability of its word's tokens. Contexts with two blanks keep
  the word in the earlier one and score the last one.
- Causal LMs: the mean log-probability per token of the whole sentence after the BOS token (the log of the geometric
  mean of the token probabilities StereoSet compares).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .errors import BenchmarkError
from .metrics import stereoset_metrics
from .task import BenchmarkTask


KINDS = ("stereotype", "anti_stereotype", "unrelated")


def filled_context(context: str, word: str) -> tuple[str, int, int]:
    """The context with every `BLANK` replaced by `word`, and the character span of the word in the last blank."""
    head, _, tail = context.rpartition("BLANK")
    head = head.replace("BLANK", word)
    return head + word + tail.replace("BLANK", word), len(head), len(head) + len(word)


class StereoSetTask(BenchmarkTask):
    name = "stereoset"

    def prepare(self) -> None:
        if self.objective == "causal_lm":
            self.sequences = [self.encode(self.rows[kind]) for kind in KINDS]
            return
        if not getattr(self.tokenizer, "is_fast", False):
            raise BenchmarkError("StereoSet scoring of a masked LM needs a fast tokenizer (character offsets).")
        self.probes, self.owners = [], []
        for k, kind in enumerate(KINDS):
            for r, (context, word) in enumerate(zip(self.rows["context"], self.rows[f"{kind}_word"])):
                text, start, end = filled_context(context, word)
                encoded = self.tokenizer(
                    text, return_offsets_mapping=True, truncation=True, max_length=self.max_length
                )
                ids, offsets = encoded["input_ids"], encoded["offset_mapping"]
                span = [i for i, (a, b) in enumerate(offsets) if b > a and a < end and b > start]
                if not span:
                    raise BenchmarkError(f"The StereoSet word {word!r} of {context!r} has no token to score.")
                first, last = span[0], span[-1] + 1
                for i in range(first, last):
                    self.probes.append((ids[: i + 1] + ids[last:], [i]))
                    self.owners.append(k * len(self) + r)

    def __call__(self, model, show_progress: bool = False) -> pd.DataFrame:
        if self.objective == "causal_lm":
            scores = [self.sentence_log_likelihoods(model, seqs, show_progress, mean=True) for seqs in self.sequences]
        else:
            mean_probability = lambda logs: float(np.exp(logs).mean())  # noqa: E731
            flat = self.probe_sums(model, self.probes, self.owners, 3 * len(self), show_progress, mean_probability)
            scores = [flat[k * len(self) : (k + 1) * len(self)] for k in range(3)]
        frame = {"id": self.rows["id"], "target": self.rows["target"], "bias_type": self.rows["bias_type"]}
        frame.update({f"{kind}_score": np.asarray(s, dtype=np.float64) for kind, s in zip(KINDS, scores)})
        return pd.DataFrame(frame)

    def metrics(self, scores, bootstrap_samples=1000, confidence=0.95, seed=0) -> dict:
        return stereoset_metrics(
            scores["stereotype_score"],
            scores["anti_stereotype_score"],
            scores["unrelated_score"],
            scores["target"],
            scores["bias_type"],
            bootstrap_samples=bootstrap_samples,
            confidence=confidence,
            seed=seed,
        )
