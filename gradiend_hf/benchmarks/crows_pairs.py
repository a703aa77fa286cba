"""CrowS-Pairs scoring (Nangia et al., 2020).

- Masked LMs: the pseudo-log-likelihood of the tokens both sentences share, as in the paper: each shared token is
  masked in turn (one probe per token, many probes per forward pass) and the log-probabilities of the original
  tokens are summed. The words that differ are never scored, so their own frequency does not count.
- Causal LMs: the log-likelihood of the whole sentence after the BOS token, as lm-evaluation-harness scores
  `crows_pairs` (a continuation of an empty context).
"""

from __future__ import annotations

from .task import PairTask


class CrowsPairsTask(PairTask):
    name = "crows_pairs"
    sentences = {"sent_more": "sent_more_score", "sent_less": "sent_less_score"}
    labels = ("bias_type",)

    def probe_positions(self, ids, shared, skip):
        return [[position] for position in shared]  # each shared token masked alone
