"""Decoder-only models read through an auxiliary MLM head (`causal_lm_mlm_head`, the reference's `clm_mlm_head`): the
row's `[MASK]` becomes a mask token in the decoder's input (the whole sentence is read, the text after the blank
too), the decoder's last hidden states at the mask and the `pooling_length - 1` positions after it are averaged,
and the head's linear classifier scores the label words (see `gradiend_hf/mlm_head/`).

- Loss of a word: the cross-entropy of the head's logits for the word's label (one label per word, whatever its
  tokens), for the factual and the alternative word alike. The decoder is frozen; GRADIEND gradients are those of
  the decoder's parameters through the (frozen) head.
- A row is ONE sequence: both words are read at the same pooled position.
- The mask token is an existing single token of the tokenizer (its `mask_token`, else its `eos_token`, … but never
  the model's padding token, whose embedding gets no gradient), so the
  decoder's embedding matrix keeps its shape: a GRADIEND covers exactly the original model's parameters, and its
  rewrites apply to the original model. (The reference adds a new `[MASK]` token and resizes the embeddings.)
- Class probabilities and the language-modelling score of rewrites come from the model's own LM head, as in the
  reference: the evaluation modules read the base model with its detected `causal_lm` objective; this one only
  trains and encodes.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .base import MASK, Objective, split_masked
from .batch import BatchBuilder, ObjectiveBatch
from .causal_lm import CausalLMObjective
from .logits import accepts
from .words import ObjectiveError, UnrepresentableWordError


def padding_index(model: nn.Module | None) -> int | None:
    """The token whose input embedding gets no gradient in `model` (`nn.Embedding.padding_idx`), if any."""
    embeddings = model.get_input_embeddings() if model is not None else None
    return getattr(embeddings, "padding_idx", None)


def default_mask_token(tokenizer, model: nn.Module | None = None) -> str:
    """The token that marks the blank for a decoder: the tokenizer's `mask_token`, else its `eos_token`, `bos_token`
    or `unk_token`, the first that is not the model's padding token (whose embedding `nn.Embedding` leaves without
    gradient, so a GRADIEND could not read the blank's embedding row).

    Raises:
        ObjectiveError: when the tokenizer has none of these.
    """
    padding = padding_index(model)
    for name in ("mask_token", "eos_token", "bos_token", "unk_token"):
        token = getattr(tokenizer, name, None)
        if token and tokenizer.convert_tokens_to_ids(token) != padding:
            return str(token)
    raise ObjectiveError(
        "The tokenizer has no mask, end, start or unknown token (other than the model's padding token) to mark the "
        "blank; pass `mask_token=` (an existing single token of the tokenizer)."
    )


class CausalLMMLMHeadObjective(CausalLMObjective):
    """A decoder-only model read through an MLM head: the word at the mask from mean-pooled hidden states.

    Args:
        tokenizer: The decoder's fast tokenizer.
        max_length (`int`, *optional*): The most tokens a row may have (a longer row keeps the tokens around the
            mask).
        head ([`MLMHeadModel`], *optional*): The head (its labels, pooling length and mask token). Without it the
            objective names its family only (e.g. for a GRADIEND's card) and refuses to tokenize or score rows.
    """

    name = "causal_lm_mlm_head"
    scores_any_word = False  # the head scores its label words only (neutral rows have none)
    shares_prefix_sequences = False  # the head pools the hidden states after the mask too
    description = (
        "decoder-only model with an MLM head (the word at the mask from the mean of the decoder's last hidden states "
        "at the mask and the next positions)"
    )

    def __init__(self, tokenizer, max_length: int | None = None, head: nn.Module | None = None):
        super().__init__(tokenizer, max_length)
        self.head = head
        if head is not None:
            self.mask_id = self._mask_id(head.config.mask_token)

    def _mask_id(self, token: str | None) -> int:
        ids = self.tokenizer(token or "", add_special_tokens=False)["input_ids"] if token else []
        if len(ids) != 1 or ids[0] == self.tokenizer.unk_token_id:
            raise ObjectiveError(
                f"The MLM head's mask token {token!r} is not one token of this tokenizer; train the head for this "
                "tokenizer (its mask token is the tokenizer's mask or end-of-sequence token by default)."
            )
        return int(ids[0])

    def _require_head(self) -> nn.Module:
        if self.head is None:
            raise ObjectiveError(
                f"The objective {self.name!r} needs its MLM head: build it with "
                "`gradiend_hf.mlm_head.mlm_head_objective(head, tokenizer)` (train one with `train_mlm_head`)."
            )
        return self.head

    def config_fields(self) -> dict:
        """`{"mlm_head": …}`: where the head is saved and what it predicts, for the GRADIEND's config."""
        return {"mlm_head": self._require_head().record()} if self.head is not None else {}

    # -- tokenization

    def _labels(self, words: Sequence[str], text: str) -> list[int]:
        config = self._require_head().config
        labels = []
        for word in words:
            index = config.label_index(word) if isinstance(word, str) else None
            if index is None:
                raise UnrepresentableWordError(
                    f"{word!r} at {text[:60]!r} is not a label of the MLM head (labels: {config.labels}); train the "
                    "head on data with this word.",
                    str(word),
                )
            labels.append(index)
        return labels

    def _sequences(self, masked: Sequence[str]) -> list[tuple[list[int], int]]:
        """Each row's token ids with the mask token at the blank, and the mask's position (one batched call)."""
        mask = self._require_head().config.mask_token
        # The mask stands for the word with its leading space, as a causal LM writes it (`" she"`).
        prefixes = [split_masked(text)[0] for text in masked]
        prefixes = [prefix.rstrip() for prefix in prefixes]
        texts = [prefix + mask + text.split(MASK, 1)[1] for prefix, text in zip(prefixes, masked)]
        encoded = self.tokenizer(
            texts, add_special_tokens=True, return_offsets_mapping=True, truncation=False, verbose=False
        )
        rows = []
        for index, (prefix, text) in enumerate(zip(prefixes, masked)):
            ids, offsets = encoded["input_ids"][index], encoded["offset_mapping"][index]
            span = (len(prefix), len(prefix) + len(mask))
            found = [i for i, (token, offset) in enumerate(zip(ids, offsets)) if token == self.mask_id]
            found = [i for i in found if tuple(offsets[i]) == span] or found[:1]
            if not found:
                raise ObjectiveError(f"The mask token {mask!r} is not read as one token in {text[:80]!r}.")
            position = found[0]
            pooled = self.head.config.pooling_length
            if len(ids) > self.max_length:  # keep the mask, the pooled positions and as much prefix as fits
                start = max(0, min(position - (self.max_length - pooled), len(ids) - self.max_length))
                ids, position = ids[start : start + self.max_length], position - start
            rows.append((list(ids), position))
        return rows

    def word_tokens(self, masked: Sequence[str], words: Sequence[str]) -> list[list[int]]:
        """The label index of each word (one "token" per word: the head scores whole words).

        Raises:
            ObjectiveError: for a row without one `[MASK]` or a word that is no label of the head.
        """
        self._sequences(masked)
        return [self._labels([word], text) for text, word in zip(masked, words)]

    def _add_rows(
        self, builder: BatchBuilder, masked: Sequence[str], words: Sequence[Sequence[str]], for_loss: bool = False
    ) -> None:
        """One sequence per row (the sentence with the mask token at the blank); each word is a target read at the
        mask's position, its "token" the word's label index (a word that is no label of the head raises an
        [`UnrepresentableWordError`])."""
        for row, ((ids, position), row_words) in enumerate(zip(self._sequences(masked), words)):
            sequence = builder.add_sequence(ids, row)
            for slot, label in enumerate(self._labels(row_words, masked[row])):
                builder.add_word(row, slot, sequence, position, [label])

    def row_from_text(self, text: str) -> str:
        """The head reads the whole sentence: the text needs one `[MASK]`, as for a masked LM."""
        return Objective.row_from_text(self, text)

    # -- scoring

    def pooled_hidden_states(self, model: nn.Module, batch: ObjectiveBatch) -> torch.Tensor:
        """The decoder's last hidden states averaged over each read's pooled positions, `(reads, hidden)`, in one
        forward pass (the LM head runs on one position only)."""
        head = self._require_head()
        inputs = batch.model_inputs()
        if "position_ids" in inputs and not accepts(model, "position_ids"):
            inputs.pop("position_ids")
        if accepts(model, "logits_to_keep"):
            inputs["logits_to_keep"] = 1
        hidden = model(**inputs, output_hidden_states=True).hidden_states[-1]
        return head.pool(hidden, batch.read_sequences, batch.read_positions, batch.attention_mask)

    def target_log_probs(self, model: nn.Module, batch: ObjectiveBatch) -> torch.Tensor:
        """Log-probabilities over the head's labels at each read, shape `(reads, labels)`."""
        head = self._require_head()
        pooled = self.pooled_hidden_states(model, batch)
        if head.device != pooled.device:
            head.to(pooled.device)
        return head(pooled=pooled).logits.float().log_softmax(-1)
