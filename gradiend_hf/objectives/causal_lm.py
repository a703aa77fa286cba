"""Causal LMs (GPT-2, Llama, …): only the text before the blank is read; the target is the word's whole token
sequence as the tokenizer writes it after that prefix (with its leading space, e.g. `" she"`, `" S" "HE"`), read by
teacher forcing: the logits at the last prefix token predict the word's first token, those at its i-th token the
(i+1)-th.

- Loss of a word: the summed negative log-likelihood of its tokens, for the factual and the alternative word alike.
- Probability of a word: the exact chain-rule probability `P(w_1 | prefix) · P(w_2 | prefix, w_1) · …`, i.e.
  `exp(-loss)`.
- The factual and the alternative continuation of a row are two sequences of one batch (one forward pass); a
  single-token word reads the prefix alone, so single-token rows are one sequence, the prefix, as for next-token
  prediction.

Position ids are derived from the attention mask, so the log-probs are the same under left and right padding (the
reference package gets both wrong).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .base import IGNORE_INDEX, MASK, Located, Objective, split_masked
from .batch import BatchBuilder
from .logits import logits_at
from .words import ObjectiveError


class CausalLMObjective(Objective):
    """The text before the blank, continued by the word (teacher forcing); the logits before each of the word's
    tokens predict it."""

    name = "causal_lm"
    auto_class = "AutoModelForCausalLM"
    pipeline_tag = "text-generation"
    peft_task_type = "CAUSAL_LM"
    # Every row then reads the last position (see `target_log_probs`); explicit position ids make the result the
    # same for either side.
    padding_side = "left"
    reads_right_context = False
    # The logits at a position come from the tokens up to it: a row whose sequence begins another's runs inside it.
    shares_prefix_sequences = True
    default_left_context_words = 10
    min_left_context_words = 1
    class_tokens_per_row = True
    description = "causal LM (next token after the text before the blank)"
    lms_description = "1 / (1 + mean next-token NLL)"

    def _contexts(self, masked):
        contexts = []
        for text in masked:
            prefix, _ = split_masked(text)
            if not prefix.strip():
                raise ObjectiveError(
                    f"The row {text[:80]!r} has no text before {MASK}; a causal LM only sees the left context. "
                    "Build the data with `min_left_context_words` > 0."
                )
            contexts.append((prefix, ""))
        return contexts

    def _add_row(
        self, builder: BatchBuilder, row: int, text: str, slots: list[Located], for_loss: bool = False
    ) -> None:
        """The prefix, continued by each word's tokens but its last (teacher forcing). A word whose continuation
        begins another's reads that sequence: a single-token word needs the prefix alone, so a row of two
        single-token words is the prefix once, and its two targets are read at the same position."""
        reference, first, _, word = slots[0]
        for ids, other_first, _, other in slots[1:]:
            # Tokenizers that append an end token (rare for causal LMs) put it after the word; it is never read.
            if ids[:other_first] != reference[:first]:
                raise ObjectiveError(
                    f"The prefix {text.split(MASK)[0][-60:]!r} tokenizes differently before {word!r} and {other!r}; "
                    "the words must share their context."
                )
        if first == 0:
            raise ObjectiveError(f"The row {text[:80]!r} leaves no token before the word to predict it from.")
        words = [ids[word_first:word_stop] for ids, word_first, word_stop, _ in slots]
        # Too long a prefix keeps its end: that is what predicts the word.
        context = reference[:first][-max(1, self.max_length - max(len(w) for w in words) + 1) :]
        # A sequence is the context and every target but the last, so at most this many targets fit.
        room = self.max_length + 1 - len(context)
        tokens = [self._targets(slot, room, for_loss) for slot in slots]
        builder.add_continuations(
            row, tokens, len(context), lambda needed: builder.add_sequence(context + needed, row)
        )

    def _targets(self, slot: Located, room: int, for_loss: bool) -> list[int]:
        """The target tokens of one located word read after the prefix: its own tokens (`room`, the most targets
        that fit after the context, is never less than the word's tokens)."""
        ids, first, stop, _ = slot
        return ids[first:stop]

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

    lms_statistic = "nll"

    @torch.no_grad()
    def lms_batch_totals(self, model: nn.Module, batch) -> tuple[float, int]:
        """Summed negative log-likelihood of the batch's scored tokens (the logits at t score token t + 1), and their
        number."""
        ids, mask, target = batch
        # The logits at t score token t + 1: read them only where that token is scored (never at padding).
        following = target[:, 1:]
        sequences, positions = (following != IGNORE_INDEX).nonzero(as_tuple=True)
        logits = logits_at(model, {"input_ids": ids, "attention_mask": mask}, sequences, positions).float()
        nll = F.cross_entropy(logits, following[sequences, positions], reduction="sum")
        return float(nll), int(sequences.numel())
