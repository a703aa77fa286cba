"""The objective interface: how a masked row becomes model inputs, a target position and target token ids, and how
the base model is scored on them. The model families implement it in their own modules (`masked_lm.py`,
`causal_lm.py`); everything else in gradiend-hf asks an objective, never "is this BERT or Llama".

A row is `masked` text with one literal `[MASK]`, a `factual` word and an `alternative` word.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
import transformers
from torch import nn

from ..data.schema import MASK
from ..errors import GradiendError


IGNORE_INDEX = -100
"""Target id of the positions a loss or score skips (as in transformers)."""


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
    """Turns masked rows into an [`ObjectiveBatch`] and scores the base model on it.

    A subclass is one model family. Besides the tokenization of rows (`_rows`) and the language-modelling score
    (`lms_example`, `score_lms`) it declares what the rest of gradiend-hf needs to know about the family:

    Attributes:
        name (`str`): What a GRADIEND's config records (`"masked_lm"`, `"causal_lm"`).
        auto_class (`str`): The transformers Auto class that loads such a model (also used in cards).
        pipeline_tag (`str`): The Hub pipeline tag of a rewritten model.
        peft_task_type (`str` or `None`): PEFT's `task_type` for adapters of this family.
        padding_side (`str`): How rows are padded by default.
        reads_right_context (`bool`): Whether the model sees the text after the blank.
        default_left_context_words (`int`): Words before the blank to ask of feature data built for this family.
        min_left_context_words (`int`): Words a blank needs before it at the very least (e.g. neutral rows).
        class_tokens_per_row (`bool`): Whether the tokens that spell a class's word at the blank depend on the row
            (a causal LM reads the word's first token after each row's prefix) or are the same for every row.
        description (`str`), lms_description (`str`): How model cards describe the objective and its LMS.
    """

    name: str = ""
    auto_class: str = "AutoModel"
    pipeline_tag: str | None = None
    peft_task_type: str | None = None
    padding_side: str = "right"
    reads_right_context: bool = True
    default_left_context_words: int = 0
    min_left_context_words: int = 0
    class_tokens_per_row: bool = False
    description: str = ""
    lms_description: str = ""

    @classmethod
    def auto_model_class(cls):
        """The transformers Auto class (e.g. `AutoModelForCausalLM`) named by `auto_class`."""
        return getattr(transformers, cls.auto_class)

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
        sequences, positions, fac_ids, alt_ids = self._rows(list(masked), list(factual), alternative)
        ids, mask, shifts = self._pad(sequences, self._padding_side(padding_side))
        target_positions = torch.tensor([p + s for p, s in zip(positions, shifts)], dtype=torch.long)
        return ObjectiveBatch(
            input_ids=ids,
            attention_mask=mask,
            target_positions=target_positions,
            factual_ids=torch.tensor(fac_ids, dtype=torch.long),
            alternative_ids=torch.tensor(alt_ids, dtype=torch.long),
            position_ids=self._position_ids(mask),
        )

    def _padding_side(self, requested: str | None) -> str:
        return requested or self.padding_side

    def _position_ids(self, attention_mask: torch.Tensor) -> torch.Tensor | None:
        """Explicit position ids for the model, or `None` to let it derive them."""
        return None

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

    def row_from_text(self, text: str) -> str:
        """The row text for what a user typed (the app): one `[MASK]` where the model should fill in a word.

        Raises:
            ObjectiveError: when the text cannot become a row of this objective.
        """
        count = text.count(MASK)
        if count != 1:
            raise ObjectiveError(
                f"The text has {'no' if count == 0 else count} {MASK}. Put one {MASK} where a word would go, e.g. "
                f"'My friend said that {MASK} would come.'"
            )
        return text

    # -- language-modelling score (see gradiend_hf.evaluation.lms)

    def lms_example(self, ids: list[int], ordinary: list[int], rng, mask_rate: float):  # pragma: no cover
        """`(inputs, targets)` of one neutral text for the language-modelling score, or `None` when it has nothing
        to score; `targets` holds -100 where nothing is scored. `ordinary` are the positions that may be scored."""
        raise NotImplementedError

    def score_lms(self, model: nn.Module, batches) -> dict[str, float]:  # pragma: no cover - abstract
        """The language-modelling score of `model` on padded `(input_ids, attention_mask, targets)` batches."""
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


def _accepts(model: nn.Module, argument: str) -> bool:
    """Whether the model's `forward` takes `argument` (looked up once per model class: this runs every forward)."""
    return _forward_accepts(type(getattr(model, "wrapped_model", model)), argument)


@functools.cache
def _forward_accepts(model_class: type, argument: str) -> bool:
    try:
        return argument in inspect.signature(model_class.forward).parameters
    except (TypeError, ValueError):  # pragma: no cover
        return True
