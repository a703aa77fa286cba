"""Masked LMs (BERT, RoBERTa, DistilBERT, …): the sentence is tokenized with the word filled in and the word's k
tokens are replaced by k mask tokens, so the input is exactly what the model saw in pre-training whatever the
tokenizer's spacing rules around its mask token; the logits at the i-th mask predict the word's i-th token.

- Loss of a word: the SUM of the cross-entropies of its k tokens at their k masks, for the factual and the
  alternative word alike.
- Probability of a word (class probabilities): the product of the per-position probabilities of its tokens with all
  k positions masked, as the reference package defines it; it is `exp(-loss)`.
- A factual and an alternative word with different token counts give two inputs of different lengths (one with k_f,
  one with k_a masks); rows whose counts agree (every single-token row) have one input, and every input of a batch
  goes through one forward pass.
"""

from __future__ import annotations

import torch
from torch import nn

from .argmax import predicted_targets, projection_input, split_projection
from .base import IGNORE_INDEX, Located, Objective, check_shared_context
from .batch import BatchBuilder
from .logits import hidden_at_reads, logits_at
from .words import ObjectiveError


class MaskedLMObjective(Objective):
    """The word's k tokens are replaced by k mask tokens; the logits at the masks predict them."""

    name = "masked_lm"
    auto_class = "AutoModelForMaskedLM"
    pipeline_tag = "fill-mask"
    peft_task_type = None  # PEFT has no masked-LM task type; such adapters load as a plain PeftModel
    reads_right_context = True
    default_left_context_words = 0
    min_left_context_words = 0
    class_tokens_per_row = False
    description = "masked LM (the blank is the mask token)"
    lms_description = "accuracy on randomly masked tokens"

    def __init__(self, tokenizer, max_length: int | None = None):
        super().__init__(tokenizer, max_length)
        if tokenizer.mask_token_id is None:
            raise ObjectiveError("This tokenizer has no mask token, so it cannot serve a masked LM objective.")

    def _add_row(
        self, builder: BatchBuilder, row: int, text: str, slots: list[Located], for_loss: bool = False
    ) -> None:
        """One sequence per distinct token count of the row's words: the sentence with that many mask tokens where
        the word stood. Words of equal count (e.g. two single-token words) share their sequence and its logits."""
        reference, first, stop, _ = slots[0]
        check_shared_context(text, slots)
        by_count: dict[int, tuple[int, int]] = {}
        for slot, (ids, word_first, word_stop, _) in enumerate(slots):
            count = word_stop - word_first
            if count not in by_count:
                sequence = reference[:first] + [self.tokenizer.mask_token_id] * count + reference[stop:]
                sequence, position = self._window(sequence, first, count)
                by_count[count] = (builder.add_sequence(sequence, row), position)
            sequence_index, position = by_count[count]
            builder.add_word(row, slot, sequence_index, position, ids[word_first:word_stop])

    def _window(self, sequence: list[int], position: int, count: int = 1) -> tuple[list[int], int]:
        """[`window`] with this objective's `max_length` and the tokenizer's special tokens."""
        return window(sequence, position, count, self.max_length, set(self.tokenizer.all_special_ids))

    def _padding_side(self, requested: str | None) -> str:
        # Bidirectional models derive absolute positions from the start of the row (RoBERTa from the padding
        # itself), so they are only correct with right padding; the target position says where to read.
        return "right"

    def lms_example(self, ids: list[int], ordinary: list[int], rng, mask_rate: float):
        """Masks `mask_rate` of the ordinary tokens (at least one); the targets are the masked tokens."""
        if not ordinary:
            return None
        chosen = sorted(rng.sample(ordinary, max(1, round(mask_rate * len(ordinary)))))
        inputs, targets = list(ids), [IGNORE_INDEX] * len(ids)
        for i in chosen:
            targets[i], inputs[i] = ids[i], self.tokenizer.mask_token_id
        return inputs, targets

    lms_statistic = "correct"

    @torch.no_grad()
    def lms_batch_totals(self, model: nn.Module, batch) -> tuple[int, int]:
        """Correct predictions of the batch's masked tokens, and their number."""
        ids, mask, target = batch
        scored = target != IGNORE_INDEX
        sequences, positions = scored.nonzero(as_tuple=True)
        inputs = {"input_ids": ids, "attention_mask": mask}
        read = hidden_at_reads(model, inputs, sequences, positions)
        if read is None:
            picked = logits_at(model, inputs, sequences, positions).float()
        else:
            hidden, head = read
            projection = split_projection(model, head, hidden)
            if projection is not None:
                # The vocabulary in chunks, each masked token dropped once another token beats it (same counts).
                features = projection_input(head, projection, hidden)
                hit = predicted_targets(features, projection.weight, projection.bias, target[scored].to(hidden.device))
                return int(hit.sum()), int(scored.sum())
            picked = head(hidden).float()
        # A position whose logits are not finite cannot count as a correct prediction. `max` gives the argmax (the
        # first maximal index, as `argmax`) and, with `amin`, finiteness: NaN propagates into the max, +inf is the
        # max, -inf the min; two reductions instead of a `(reads, vocab)` `isfinite` mask (5x faster on CPU).
        largest, predicted = picked.max(-1)
        finite = torch.isfinite(largest) & torch.isfinite(picked.amin(-1))
        hit = (predicted == target[scored]) & finite
        return int(hit.sum()), int(scored.sum())


def window(
    sequence: list[int], position: int, count: int, max_length: int, special: set[int]
) -> tuple[list[int], int]:
    """Cuts a too-long row to `max_length` tokens around its `count` masks at `position`, keeping its special
    first/last tokens; returns the row and the masks' new position.

    Raises:
        ObjectiveError: when the masks alone do not fit.
    """
    if len(sequence) <= max_length:
        return sequence, position
    head = sequence[:1] if sequence[0] in special else []
    tail = sequence[-1:] if sequence[-1] in special else []
    body = sequence[len(head) : len(sequence) - len(tail)]
    size = max_length - len(head) - len(tail)
    if size < count:
        raise ObjectiveError(f"A word of {count} tokens does not fit into {max_length} tokens.")
    centre = position - len(head)
    start = max(0, min(centre + count // 2 - size // 2, len(body) - size))
    start = max(min(start, centre), centre + count - size)  # every mask stays inside the window
    return head + body[start : start + size] + tail, len(head) + centre - start
