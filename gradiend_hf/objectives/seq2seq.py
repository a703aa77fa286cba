"""Seq2seq LMs (T5, BART): encoder-side masked prediction. The encoder reads the sentence with the blank as the
family's mask, exactly as in pre-training: the word's tokens (tokenized with the word filled in) are replaced by ONE
mask token, T5's first sentinel `<extra_id_0>` or BART's `<mask>`. The decoder writes the word, teacher-forced, in
the family's pre-training target format:

- **T5** (span corruption, the tokenizer has sentinel tokens): the decoder reads `<start> <extra_id_0>` and then the
  word's tokens; its target would be `<extra_id_0> word <extra_id_1>`. The closing sentinel is not scored.
- **BART** (text infilling, the tokenizer has a mask token and no sentinels): the decoder reconstructs the whole
  sentence, so it reads `<start>` and the sentence's tokens up to the blank (`</s> <s> The doctor said`), then the
  word's tokens. The text after the blank is not read: it is still visible to the encoder.

The decoder start token is T5's `<pad>` and BART's `</s>`, as their configs have it (checked against the model's
`decoder_start_token_id` at every forward pass).

- Loss of a word: the summed cross-entropy of the WORD's tokens only (the sentinel and the sentence prefix are
  context), so it is `-log P(word | encoder input, decoder prefix)`, for the factual and the alternative word alike.
- Probability of a word (class probabilities): the exact chain-rule product of the decoder's token probabilities,
  `P(w_1 | ·) · P(w_2 | ·, w_1) · …`, i.e. `exp(-loss)`, for each class word as the objective tokenizes it at the
  row (`class_tokens_per_row`).
- The factual and alternative word of a row share the encoder input; a single-token pair is one sequence (one
  decoder prefix, two targets read at the same position), a multi-token word its own decoder continuation (with a
  copy of the encoder input). Every sequence of a batch goes through one forward pass.
- LMS: 15 % of the ordinary tokens of each neutral text are masked one by one (T5: each by its own sentinel, in
  order, at most as many as the tokenizer has; BART: each by `<mask>`); the decoder predicts them in the family's
  target format (T5: `<extra_id_0> t_0 <extra_id_1> t_1 …`; BART: the whole text) and the score is
  `1 / (1 + mean NLL)` of the masked tokens, as for a causal LM's next-token NLL.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .base import IGNORE_INDEX, Located, Objective, check_shared_context
from .batch import BatchBuilder, ObjectiveBatch
from .masked_lm import window
from .words import ObjectiveError


SENTINEL = "<extra_id_{}>"
"""T5's sentinel tokens: `<extra_id_0>` marks the first masked span."""


class Seq2SeqObjective(Objective):
    """The blank is the encoder's mask (T5 sentinel / BART `<mask>`); the decoder's logits predict the word's
    tokens (teacher forcing)."""

    name = "seq2seq_lm"
    auto_class = "AutoModelForSeq2SeqLM"
    pipeline_tag = "text2text-generation"
    peft_task_type = "SEQ_2_SEQ_LM"
    # Padding side, context words and `reads_right_context` are the interface's defaults (right, 0, 0, True).
    class_tokens_per_row = True
    scores_benchmarks = False  # their probes are masked-LM or causal-LM inputs, with no decoder
    description = "seq2seq LM (the blank is the encoder's sentinel or mask token; the decoder writes the word)"
    lms_description = "1 / (1 + mean NLL of randomly masked tokens, reconstructed by the decoder)"

    def __init__(self, tokenizer, max_length: int | None = None):
        super().__init__(tokenizer, max_length)
        vocab = tokenizer.get_vocab()
        self.sentinels: list[int] = []
        while SENTINEL.format(len(self.sentinels)) in vocab:
            self.sentinels.append(vocab[SENTINEL.format(len(self.sentinels))])
        if self.sentinels:
            # T5: the span's sentinel in the encoder, the decoder starts with <pad> and the sentinel.
            self.style = "span"
            self.mask_id = self.sentinels[0]
            self.decoder_start_token_id = tokenizer.pad_token_id
        elif tokenizer.mask_token_id is not None:
            # BART: <mask> in the encoder, the decoder starts with </s> and rewrites the sentence.
            self.style = "sentence"
            self.mask_id = tokenizer.mask_token_id
            self.decoder_start_token_id = tokenizer.eos_token_id
        else:
            raise ObjectiveError(
                "This tokenizer has neither T5's sentinel tokens (<extra_id_0>, …) nor a mask token, so it cannot "
                "serve a seq2seq objective; load the tokenizer of the T5 or BART model."
            )
        if self.decoder_start_token_id is None:
            raise ObjectiveError("The tokenizer has no pad (T5) or end (BART) token to start the decoder with.")
        self._special = set(tokenizer.all_special_ids)

    def _add_row(
        self, builder: BatchBuilder, row: int, text: str, slots: list[Located], for_loss: bool = False
    ) -> None:
        """One encoder input for the row (the word's tokens replaced by the one mask token); one decoder
        continuation per word that no longer word's continuation contains."""
        reference, first, stop, _ = slots[0]
        check_shared_context(text, slots)
        encoder, _ = window(
            reference[:first] + [self.mask_id] + reference[stop:], first, 1, self.max_length, self._special
        )
        tokens = [ids[word_first:word_stop] for ids, word_first, word_stop, _ in slots]
        if self.style == "span":
            prefix = [self.decoder_start_token_id, self.mask_id]
        else:
            # Too long a sentence keeps the start token and the end of the prefix: that is what predicts the word.
            budget = max(0, self.max_length - max(len(t) for t in tokens))
            prefix = [self.decoder_start_token_id] + (reference[:first][-budget:] if budget else [])
        builder.add_continuations(
            row, tokens, len(prefix), lambda needed: builder.add_sequence(encoder, row, decoder_ids=prefix + needed)
        )

    def _padding_side(self, requested: str | None) -> str:
        # BART's positions are absolute from the start of the row; T5's relative ones do not mind.
        return "right"

    def _check_model(self, model: nn.Module) -> None:
        """A model that starts its decoder with another token was pre-trained on other decoder inputs."""
        start = getattr(getattr(model, "config", None), "decoder_start_token_id", None)
        if start is not None and int(start) != self.decoder_start_token_id:
            raise ObjectiveError(
                f"The model starts its decoder with token {start}, but this seq2seq objective (style {self.style!r}) "
                f"starts it with {self.decoder_start_token_id}; use the tokenizer that belongs to the model."
            )

    def target_log_probs(self, model: nn.Module, batch: ObjectiveBatch) -> torch.Tensor:
        """Log-probabilities at each read (decoder positions), in one encoder-decoder forward pass."""
        if batch.decoder_input_ids is None:
            raise ObjectiveError("This batch has no decoder inputs; prepare it with the seq2seq objective.")
        self._check_model(model)
        return super().target_log_probs(model, batch)

    @classmethod
    def probe_inputs(cls, ids: torch.Tensor) -> dict[str, torch.Tensor]:
        """The ids for the encoder and, as any decoder input does for a probe, for the decoder too."""
        return super().probe_inputs(ids) | {"decoder_input_ids": ids}

    # -- language-modelling score

    def lms_example(self, ids: list[int], ordinary: list[int], rng, mask_rate: float):
        """Masks `mask_rate` of the ordinary tokens (at least one; T5 at most one per sentinel), each by its own
        mask token; the targets are the masked tokens."""
        if not ordinary:
            return None
        count = max(1, round(mask_rate * len(ordinary)))
        if self.style == "span":
            count = min(count, len(self.sentinels))
        chosen = sorted(rng.sample(ordinary, count))
        inputs, targets = list(ids), [IGNORE_INDEX] * len(ids)
        for k, i in enumerate(chosen):
            targets[i] = ids[i]
            inputs[i] = self.sentinels[k] if self.style == "span" else self.mask_id
        return inputs, targets

    def _lms_decoder(self, ids: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Decoder labels `(texts, length)` (-100 where nothing is scored or padding) and the decoder inputs (the
        labels shifted right behind the start token) of masked neutral texts."""
        if self.style == "sentence":
            # BART: the decoder writes the whole original text; only the masked tokens are scored.
            original = torch.where(target != IGNORE_INDEX, target, ids)
            decoder = torch.cat([original.new_full((len(ids), 1), self.decoder_start_token_id), original[:, :-1]], 1)
            return target, decoder
        rows = []
        for row_ids, row_target in zip(ids.tolist(), target.tolist()):
            labels, context = [], []
            for token, gold in zip(row_ids, row_target):
                if gold != IGNORE_INDEX:  # the sentinel is context, the masked token is scored
                    labels += [IGNORE_INDEX, gold]
                    context += [token, gold]
            rows.append((labels, context))
        length = max(len(labels) for labels, _ in rows)
        labels = torch.full((len(rows), length), IGNORE_INDEX, dtype=torch.long)
        decoder = torch.full((len(rows), length), self.tokenizer.pad_token_id, dtype=torch.long)
        for index, (row_labels, context) in enumerate(rows):
            labels[index, : len(row_labels)] = torch.tensor(row_labels)
            decoder[index, : len(context)] = torch.tensor([self.decoder_start_token_id] + context[:-1])
        return labels.to(ids.device), decoder.to(ids.device)

    lms_statistic = "nll"

    @torch.no_grad()
    def lms_batch_totals(self, model: nn.Module, batch) -> tuple[float, int]:
        """Summed negative log-likelihood of the batch's masked tokens, predicted by the decoder (teacher forcing),
        and their number."""
        self._check_model(model)
        ids, mask, target = batch
        labels, decoder = self._lms_decoder(ids, target)
        # The decoder is causal: the padding after a text's last label is never read by a scored position.
        logits = model(input_ids=ids, attention_mask=mask, decoder_input_ids=decoder).logits
        nll = F.cross_entropy(
            logits.float().reshape(-1, logits.shape[-1]),
            labels.reshape(-1),
            ignore_index=IGNORE_INDEX,
            reduction="sum",
        )
        return float(nll), int((labels != IGNORE_INDEX).sum())
