"""How a masked row becomes model inputs, a target position and target token ids.

This is the only module that knows model families. A row is `masked` text with one literal `[MASK]`, a `factual`
word and an `alternative` word.

- Masked LM (BERT, RoBERTa, DistilBERT, …): the sentence is tokenized with the word filled in and the word's token
  is replaced by the tokenizer's mask token, so the input is exactly what the model saw in pre-training whatever
  the tokenizer's spacing rules around its mask token.
- Causal LM, next token (GPT-2, Llama, …): only the text before the blank is the input; the target is the first
  token of the word as the tokenizer writes it after that prefix (with its leading space, e.g. `" she"`), read from
  the logits at the last real prefix position. Position ids are derived from the attention mask, so the log-probs
  are the same under left and right padding (the reference package gets both wrong).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from .errors import GradiendError


MASK = "[MASK]"


class ObjectiveError(GradiendError):
    """Raised when a row cannot be turned into model inputs (no blank, empty prefix, multi-token word, …)."""


class MultiTokenWordError(ObjectiveError):
    """Raised when a target word is split by the tokenizer into several tokens."""


@dataclass
class ObjectiveBatch:
    """Tokenized rows, ready for the base model.

    Args:
        input_ids (`torch.LongTensor` of shape `(batch, length)`): Token ids, padded.
        attention_mask (`torch.LongTensor` of shape `(batch, length)`): 1 for real tokens.
        target_positions (`torch.LongTensor` of shape `(batch,)`): Position whose logits predict the word.
        factual_ids (`torch.LongTensor` of shape `(batch,)`): Token id of each factual word.
        alternative_ids (`torch.LongTensor` of shape `(batch,)`): Token id of each alternative word.
        position_ids (`torch.LongTensor`, *optional*): Explicit positions (causal LMs, so padding side is irrelevant).
    """

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    target_positions: torch.Tensor
    factual_ids: torch.Tensor
    alternative_ids: torch.Tensor
    position_ids: torch.Tensor | None = None
    extra: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return self.input_ids.shape[0]

    def to(self, device: torch.device | str) -> ObjectiveBatch:
        moved = {
            name: (value.to(device) if isinstance(value, torch.Tensor) else value)
            for name, value in self.__dict__.items()
        }
        return ObjectiveBatch(**moved)

    def select(self, index: int | slice | torch.Tensor) -> ObjectiveBatch:
        """Rows `index` of the batch (padding kept)."""
        if isinstance(index, int):
            index = slice(index, index + 1)
        picked = {
            name: (value[index] if isinstance(value, torch.Tensor) else value) for name, value in self.__dict__.items()
        }
        return ObjectiveBatch(**picked)

    def model_inputs(self) -> dict[str, torch.Tensor]:
        inputs = {"input_ids": self.input_ids, "attention_mask": self.attention_mask}
        if self.position_ids is not None:
            inputs["position_ids"] = self.position_ids
        return inputs


def detect_objective(model: nn.Module) -> str:
    """Returns `"masked_lm"` or `"causal_lm"` for a Hugging Face language model.

    Raises:
        ObjectiveError: when the model is neither (e.g. a bare backbone or a seq2seq model).
    """
    from transformers.models.auto.modeling_auto import (
        MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
        MODEL_FOR_MASKED_LM_MAPPING_NAMES,
    )

    name = type(model).__name__
    config = getattr(model, "config", None)
    if config is not None and getattr(config, "is_encoder_decoder", False):
        raise ObjectiveError(f"{name} is an encoder-decoder model; gradiend-hf supports masked and causal LMs.")
    if name in set(MODEL_FOR_MASKED_LM_MAPPING_NAMES.values()) or name.endswith("ForMaskedLM"):
        return "masked_lm"
    if name in set(MODEL_FOR_CAUSAL_LM_MAPPING_NAMES.values()) or name.endswith(("ForCausalLM", "LMHeadModel")):
        return "causal_lm"
    raise ObjectiveError(
        f"Cannot tell whether {name} is a masked or a causal language model. Load it with AutoModelForMaskedLM or "
        "AutoModelForCausalLM, or pass `objective=` explicitly."
    )


def split_masked(text: str) -> tuple[str, str]:
    """Splits a row's text at its one `[MASK]`.

    Raises:
        ObjectiveError: when the text has no `[MASK]` or several.
    """
    count = text.count(MASK)
    if count != 1:
        raise ObjectiveError(
            f"Each row needs exactly one literal {MASK}, found {count} in {text[:80]!r}. Build rows with "
            "`gradiend_hf.data.make_feature_dataset`, which masks one word per row."
        )
    prefix, suffix = text.split(MASK)
    return prefix, suffix


class Objective:
    """Turns masked rows into an [`ObjectiveBatch`] and scores the base model on it."""

    name: str = ""

    def __init__(self, tokenizer, max_length: int | None = None):
        if not getattr(tokenizer, "is_fast", False):
            raise ObjectiveError(
                "gradiend-hf needs a fast (Rust) tokenizer to locate the target word; load it with "
                "`AutoTokenizer.from_pretrained(..., use_fast=True)`."
            )
        self.tokenizer = tokenizer
        model_max = getattr(tokenizer, "model_max_length", None) or 512
        self.max_length = max_length or min(int(model_max), 512)

    # -- tokenization helpers

    def _tokenize(self, texts: list[str]):
        return self.tokenizer(
            texts,
            add_special_tokens=True,
            return_offsets_mapping=True,
            truncation=False,
            verbose=False,
        )

    @staticmethod
    def _word_token(
        offsets, start: int, end: int, text: str, word: str, token_ids=None, unk_id: int | None = None
    ) -> int:
        """Index of the single token that holds `text[start:end]` (the word), else a clear error."""
        hits = [i for i, (a, b) in enumerate(offsets) if b > a and a < end and b > start]
        if not hits:
            raise ObjectiveError(f"The word {word!r} produced no token in {text[:80]!r}.")
        if len(hits) > 1:
            raise MultiTokenWordError(
                f"The tokenizer splits {word!r} into {len(hits)} tokens; GRADIEND targets must be single tokens. "
                "Use words that are one token for this tokenizer, or drop these rows "
                "(see `gradiend_hf.objectives.is_single_token`)."
            )
        index = hits[0]
        a, b = offsets[index]
        if token_ids is not None and unk_id is not None and token_ids[index] == unk_id:
            raise ObjectiveError(
                f"The tokenizer does not know {word!r} (it becomes the unknown token); use words in its vocabulary."
            )
        # The token may carry the whitespace before the word, but it must not swallow other characters.
        if b > end or text[a:start].strip():
            raise MultiTokenWordError(
                f"The tokenizer merges {word!r} with neighbouring characters ({text[a:b]!r}) in {text[:80]!r}; "
                "its gradient would not be the word's. Put spaces around the word or drop the row."
            )
        return index

    def _fill_both(self, prefixes: list[str], suffixes: list[str], factual: list[str], alternative: list[str]):
        """Tokenizes each row with its factual and with its alternative word in the blank.

        Yields `(ids_f, ids_a, i_f, i_a)` per row: both token-id lists and the index of the word's single token in
        each (see [`_word_token`] for the errors).
        """
        filled_f = [p + w + s for p, w, s in zip(prefixes, factual, suffixes)]
        filled_a = [p + w + s for p, w, s in zip(prefixes, alternative, suffixes)]
        enc_f, enc_a = self._tokenize(filled_f), self._tokenize(filled_a)
        unk = self.tokenizer.unk_token_id
        for row, (prefix, fw, aw) in enumerate(zip(prefixes, factual, alternative)):
            ids_f, ids_a = enc_f["input_ids"][row], enc_a["input_ids"][row]
            start = len(prefix)
            i_f = self._word_token(enc_f["offset_mapping"][row], start, start + len(fw), filled_f[row], fw, ids_f, unk)
            i_a = self._word_token(enc_a["offset_mapping"][row], start, start + len(aw), filled_a[row], aw, ids_a, unk)
            yield ids_f, ids_a, i_f, i_a

    def _pad(self, sequences: list[list[int]], padding_side: str) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
        pad_id = self.tokenizer.pad_token_id
        if pad_id is None:
            pad_id = self.tokenizer.eos_token_id if self.tokenizer.eos_token_id is not None else 0
        length = max(len(s) for s in sequences)
        ids = torch.full((len(sequences), length), pad_id, dtype=torch.long)
        mask = torch.zeros((len(sequences), length), dtype=torch.long)
        shifts = []
        for row, seq in enumerate(sequences):
            shift = length - len(seq) if padding_side == "left" else 0
            ids[row, shift : shift + len(seq)] = torch.tensor(seq, dtype=torch.long)
            mask[row, shift : shift + len(seq)] = 1
            shifts.append(shift)
        return ids, mask, shifts

    def prepare(
        self,
        masked: Sequence[str],
        factual: Sequence[str],
        alternative: Sequence[str] | None = None,
        padding_side: str | None = None,
    ) -> ObjectiveBatch:
        """Tokenizes rows.

        Args:
            masked (`Sequence[str]`): Texts with one literal `[MASK]`.
            factual (`Sequence[str]`): The word that fills each blank.
            alternative (`Sequence[str]`, *optional*): The other class's word for each blank (defaults to factual).
            padding_side (`str`, *optional*): `"left"` (default) or `"right"` for causal LMs; masked LMs are always
                padded on the right.

        Returns:
            [`ObjectiveBatch`]
        """
        if len(masked) == 0:
            raise ObjectiveError("No rows to prepare.")
        alternative = list(alternative) if alternative is not None else list(factual)
        if not (len(masked) == len(factual) == len(alternative)):
            raise ObjectiveError("`masked`, `factual` and `alternative` must have the same length.")
        # Causal rows default to left padding: every row then reads the last position (see `target_log_probs`);
        # explicit position ids make the result the same for either side.
        side = padding_side or ("left" if self.name == "causal_lm" else "right")
        if self.name == "masked_lm":
            # Bidirectional models derive absolute positions from the start of the row (RoBERTa from the padding
            # itself), so they are only correct with right padding; the target position says where to read.
            side = "right"
        sequences, positions, fac_ids, alt_ids = self._rows(list(masked), list(factual), alternative)
        ids, mask, shifts = self._pad(sequences, side)
        target_positions = torch.tensor([p + s for p, s in zip(positions, shifts)], dtype=torch.long)
        position_ids = None
        if self.name == "causal_lm":
            position_ids = (mask.cumsum(-1) - 1).clamp(min=0)
        return ObjectiveBatch(
            input_ids=ids,
            attention_mask=mask,
            target_positions=target_positions,
            factual_ids=torch.tensor(fac_ids, dtype=torch.long),
            alternative_ids=torch.tensor(alt_ids, dtype=torch.long),
            position_ids=position_ids,
        )

    def usable(
        self, masked: Sequence[str], factual: Sequence[str], alternative: Sequence[str], chunk_size: int = 256
    ) -> list[bool]:
        """Which rows this objective can turn into inputs (e.g. not those whose word is several tokens).

        Rows are checked a chunk at a time and one by one only inside a chunk that fails, so the common case costs
        one batched tokenization.
        """
        flags: list[bool] = []
        for start in range(0, len(masked), chunk_size):
            stop = start + chunk_size
            chunk = (list(masked[start:stop]), list(factual[start:stop]), list(alternative[start:stop]))
            try:
                self._rows(*chunk)
                flags.extend([True] * len(chunk[0]))
            except ObjectiveError:
                for row in zip(*chunk):
                    try:
                        self._rows(*([value] for value in row))
                        flags.append(True)
                    except ObjectiveError:
                        flags.append(False)
        return flags

    def _rows(self, masked, factual, alternative):  # pragma: no cover - abstract
        raise NotImplementedError

    # -- scoring

    def target_log_probs(self, model: nn.Module, batch: ObjectiveBatch) -> torch.Tensor:
        """Log-probabilities over the vocabulary at each row's target position, shape `(batch, vocab)`."""
        inputs = batch.model_inputs()
        if "position_ids" in inputs and not _accepts(model, "position_ids"):
            inputs.pop("position_ids")
        last = batch.input_ids.shape[1] - 1
        if bool((batch.target_positions == last).all()) and _accepts(model, "logits_to_keep"):
            # Left-padded causal rows all read the last position: the LM head (vocab × hidden) runs once per row
            # instead of once per token, in the forward and the backward pass.
            return model(**inputs, logits_to_keep=1).logits[:, -1].float().log_softmax(-1)
        logits = model(**inputs).logits
        rows = torch.arange(logits.shape[0], device=logits.device)
        return logits[rows, batch.target_positions.to(logits.device)].float().log_softmax(-1)

    def losses(self, model: nn.Module, batch: ObjectiveBatch) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-row cross-entropy of the factual and of the alternative word, each of shape `(batch,)`."""
        log_probs = self.target_log_probs(model, batch)
        rows = torch.arange(log_probs.shape[0], device=log_probs.device)
        factual = -log_probs[rows, batch.factual_ids.to(log_probs.device)]
        alternative = -log_probs[rows, batch.alternative_ids.to(log_probs.device)]
        return factual, alternative


class MaskedLMObjective(Objective):
    """The word's token is replaced by the tokenizer's mask token; the logits at that position predict it."""

    name = "masked_lm"

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


class CausalLMObjective(Objective):
    """The text before the blank is the input; the logits at its last token predict the word's first token."""

    name = "causal_lm"

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


def get_objective(
    name_or_model: str | nn.Module, tokenizer, max_length: int | None = None, model: nn.Module | None = None
) -> Objective:
    """Returns the objective for `"masked_lm"`, `"causal_lm"` or a model (detected).

    `max_length` defaults to what the model's position embeddings allow (of `name_or_model` or `model`), so a long
    text is windowed (masked LM) or keeps its end (causal LM) instead of crashing the model.
    """
    model = model if model is not None else (None if isinstance(name_or_model, str) else name_or_model)
    name = name_or_model if isinstance(name_or_model, str) else detect_objective(name_or_model)
    if max_length is None and model is not None:
        max_length = max_input_length(model, tokenizer)
    if name == "masked_lm":
        return MaskedLMObjective(tokenizer, max_length)
    if name == "causal_lm":
        return CausalLMObjective(tokenizer, max_length)
    raise ObjectiveError(f"Unknown objective {name!r}; choose 'masked_lm' or 'causal_lm'.")


def max_input_length(model: nn.Module, tokenizer) -> int | None:
    """The most tokens one row may have for `model`: its position embeddings, the tokenizer's limit, and 512."""
    config = getattr(model, "config", None)
    positions = getattr(config, "max_position_embeddings", None) or getattr(config, "n_positions", None)
    if not positions:
        return None
    model_max = getattr(tokenizer, "model_max_length", None) or 512
    # RoBERTa reserves padding_idx + 1 positions before the first token.
    reserved = (getattr(config, "pad_token_id", 0) or 0) + 1 if config.model_type in ("roberta", "xlm-roberta") else 0
    return min(int(model_max), 512, int(positions) - reserved)


def is_single_token(tokenizer, word: str, objective: str = "causal_lm", context: str = "The word") -> bool:
    """Whether `word` is one token for `tokenizer` after `context` (with a space), as the objective would read it."""
    obj = get_objective(objective, tokenizer)
    try:
        if objective == "masked_lm":
            obj.prepare([f"{context} {MASK} ."], [word])
        else:
            obj.prepare([f"{context} {MASK}"], [word])
    except ObjectiveError:
        return False
    return True


def _accepts(model: nn.Module, argument: str) -> bool:
    """Whether the model's `forward` takes `argument` (looked up once per model class: this runs every forward)."""
    return _forward_accepts(type(getattr(model, "wrapped_model", model)), argument)


@functools.cache
def _forward_accepts(model_class: type, argument: str) -> bool:
    try:
        return argument in inspect.signature(model_class.forward).parameters
    except (TypeError, ValueError):  # pragma: no cover
        return True
