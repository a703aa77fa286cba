"""Masked LMs (BERT, RoBERTa, DistilBERT, …): the sentence is tokenized with the word filled in and the word's token
is replaced by the tokenizer's mask token, so the input is exactly what the model saw in pre-training whatever the
tokenizer's spacing rules around its mask token; the logits at that position predict the word.
"""

from __future__ import annotations

import torch
from torch import nn

from .base import IGNORE_INDEX, Objective, ObjectiveError, split_masked


class MaskedLMObjective(Objective):
    """The word's token is replaced by the tokenizer's mask token; the logits at that position predict it."""

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

    def _rows(self, masked, factual, alternative):
        parts = [split_masked(text) for text in masked]
        prefixes, suffixes = [p for p, _ in parts], [x for _, x in parts]
        sequences, positions, fac_ids, alt_ids = [], [], [], []
        rows = self._fill_both(prefixes, suffixes, list(factual), list(alternative))
        for row, (fw, aw, (ids_f, ids_a, i_f, i_a)) in enumerate(zip(factual, alternative, rows)):
            if i_f != i_a or ids_f[:i_f] != ids_a[:i_a] or ids_f[i_f + 1 :] != ids_a[i_a + 1 :]:
                raise ObjectiveError(
                    f"Filling the blank with {fw!r} or {aw!r} changes the tokens around it in {masked[row][:80]!r}; "
                    "the two words must share their context."
                )
            sequence = list(ids_f)
            sequence[i_f] = self.tokenizer.mask_token_id
            sequence, position = self._window(sequence, i_f)
            sequences.append(sequence)
            positions.append(position)
            fac_ids.append(ids_f[i_f])
            alt_ids.append(ids_a[i_a])
        return sequences, positions, fac_ids, alt_ids

    def _window(self, sequence: list[int], position: int) -> tuple[list[int], int]:
        """Cuts a too-long row to `max_length` tokens around the blank, keeping its special first/last tokens."""
        if len(sequence) <= self.max_length:
            return sequence, position
        special = set(self.tokenizer.all_special_ids)
        head = sequence[:1] if sequence[0] in special else []
        tail = sequence[-1:] if sequence[-1] in special else []
        body = sequence[len(head) : len(sequence) - len(tail)]
        size = self.max_length - len(head) - len(tail)
        centre = position - len(head)
        start = max(0, min(centre - size // 2, len(body) - size))
        return head + body[start : start + size] + tail, len(head) + centre - start

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

    @torch.no_grad()
    def score_lms(self, model: nn.Module, batches) -> dict[str, float]:
        """`{"lms": accuracy}` of predicting the masked tokens."""
        correct = total = 0
        for ids, mask, target in batches:
            logits = model(input_ids=ids, attention_mask=mask).logits
            scored = target != IGNORE_INDEX
            picked = logits[scored].float()
            # A position whose logits are not finite cannot count as a correct prediction.
            hit = (picked.argmax(-1) == target[scored]) & torch.isfinite(picked).all(-1)
            correct += int(hit.sum())
            total += int(scored.sum())
        return {"lms": correct / total}
