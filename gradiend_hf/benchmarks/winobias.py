"""WinoBias scoring, masked-pronoun form (Zhao et al., 2018).

Each row's pro- and anti-stereotypical sentences differ only in the pronoun (and, in two rows, a reflexive).

- Masked LMs: the tokens that differ are masked together in each sentence and the log-probabilities of that
  sentence's own tokens there are summed (for a one-token pronoun: the fill-mask log-probability of the pronoun).
- Causal LMs: the log-likelihood of the whole sentence after the BOS token (the words after the pronoun count too).
"""

from __future__ import annotations

from .scoring import differing_positions
from .task import PairTask


class WinoBiasTask(PairTask):
    name = "winobias"
    sentences = {"pro_sentence": "pro_score", "anti_sentence": "anti_score"}
    labels = ("pro_gender",)

    def probe_positions(self, ids, shared, skip):
        return [differing_positions(ids, shared, skip)]  # the differing tokens masked together
