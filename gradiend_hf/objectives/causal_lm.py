"""Causal LMs, next token (GPT-2, Llama, …): only the text before the blank is the input; the target is the first
token of the word as the tokenizer writes it after that prefix (with its leading space, e.g. `" she"`), read from
the logits at the last real prefix position. Position ids are derived from the attention mask, so the log-probs are
the same under left and right padding (the reference package gets both wrong).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .base import IGNORE_INDEX, MASK, Objective, ObjectiveError, split_masked


class CausalLMObjective(Objective):
    """The text before the blank is the input; the logits at its last token predict the word's first token."""

    name = "causal_lm"
    auto_class = "AutoModelForCausalLM"
    pipeline_tag = "text-generation"
    peft_task_type = "CAUSAL_LM"
    # Every row then reads the last position (see `target_log_probs`); explicit position ids make the result the
    # same for either side.
    padding_side = "left"
    reads_right_context = False
    default_left_context_words = 10
    min_left_context_words = 1
    class_tokens_per_row = True
    description = "causal LM (next token after the text before the blank)"
    lms_description = "1 / (1 + mean next-token NLL)"

    def _rows(self, masked, factual, alternative):
        prefixes = []
        for text in masked:
            prefix, _ = split_masked(text)
            if not prefix.strip():
                raise ObjectiveError(
                    f"The row {text[:80]!r} has no text before {MASK}; a causal LM only sees the left context. "
                    "Build the data with `min_left_context_words` > 0."
                )
            prefixes.append(prefix)
        sequences, positions, fac_ids, alt_ids = [], [], [], []
        rows = self._fill_both(prefixes, [""] * len(prefixes), list(factual), list(alternative))
        for row, (prefix, fw, aw, (ids_f, ids_a, i_f, i_a)) in enumerate(zip(prefixes, factual, alternative, rows)):
            # Tokenizers that append an end token (rare for causal LMs) put it after the word; ignore it.
            if i_f != i_a or ids_f[:i_f] != ids_a[:i_a]:
                raise ObjectiveError(
                    f"The prefix {prefix[-60:]!r} tokenizes differently before {fw!r} and {aw!r}; the two words "
                    "must share their context."
                )
            if i_f == 0:
                raise ObjectiveError(
                    f"The row {masked[row][:80]!r} leaves no token before the word to predict it from."
                )
            # Too long a prefix keeps its end: that is what predicts the next token.
            context = list(ids_f[:i_f])[-self.max_length :]
            sequences.append(context)
            positions.append(len(context) - 1)
            fac_ids.append(ids_f[i_f])
            alt_ids.append(ids_a[i_a])
        return sequences, positions, fac_ids, alt_ids

    def _position_ids(self, attention_mask: torch.Tensor) -> torch.Tensor:
        return (attention_mask.cumsum(-1) - 1).clamp(min=0)

    def row_from_text(self, text: str) -> str:
        """A causal LM predicts the blank from the text before it: the text is cut there, or read whole as the
        prefix when it has no `[MASK]`."""
        prefix = text.split(MASK)[0] if MASK in text else text
        if not prefix.strip():
            raise ObjectiveError(f"A causal LM reads the text before {MASK}; write some words before it.")
        return prefix.rstrip() + " " + MASK

    def lms_example(self, ids: list[int], ordinary: list[int], rng, mask_rate: float):
        """Every ordinary token but the first is a target (position t predicts token t + 1); tokens never to be
        scored keep their place as context."""
        scored = set(ordinary) - {0}
        if not scored:
            return None
        return list(ids), [ids[i] if i in scored else IGNORE_INDEX for i in range(len(ids))]

    @torch.no_grad()
    def score_lms(self, model: nn.Module, batches) -> dict[str, float]:
        """`{"nll": mean}` negative log-likelihood per scored token, with the logits at t scoring token t + 1."""
        nll, total = 0.0, 0
        for ids, mask, target in batches:
            logits = model(input_ids=ids, attention_mask=mask).logits
            shifted = logits[:, :-1].float().reshape(-1, logits.shape[-1])
            nll += float(
                F.cross_entropy(shifted, target[:, 1:].reshape(-1), ignore_index=IGNORE_INDEX, reduction="sum")
            )
            total += int((target[:, 1:] != IGNORE_INDEX).sum())
        return {"nll": nll / total if total else math.nan}
