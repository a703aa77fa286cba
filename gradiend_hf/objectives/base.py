"""The objective interface: how masked rows become the sequences a base model reads and the target tokens of their
words, and how the model is scored on them. The model families implement it in their own modules (`masked_lm.py`,
`causal_lm.py`); everything else in gradiend-hf asks an objective, never "is this BERT or Llama".

A row is `masked` text with one literal `[MASK]` and its words: the `factual` and the `alternative` word of a
training row, or any number of words to score. A word (or phrase) may be several tokens:

- the **loss** of a word is the **sum** of the cross-entropies of its tokens, for every word alike, so it is the
  negative log-probability of the whole word (see each family's module for that probability);
- a row's words go into as few sequences as they need (see [`ObjectiveBatch`]), and all sequences of a batch into
  ONE forward pass.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import transformers
from torch import nn

from ..data.schema import MASK
from .batch import BatchBuilder, ObjectiveBatch
from .logits import accepts, logits_at
from .shared_prefixes import share_prefixes
from .words import ObjectiveError, UnrepresentableWordError, word_span


IGNORE_INDEX = -100
"""Target id of the positions a loss or score skips (as in transformers)."""


def split_masked(text: str) -> tuple[str, str]:
    """Splits a row's text at its one `[MASK]`.

    Raises:
        ObjectiveError: when the text has no `[MASK]` or several.
    """
    count = text.count(MASK) if isinstance(text, str) else 0
    if count != 1:
        raise ObjectiveError(
            f"Each row needs exactly one literal {MASK}, found {count} in {str(text)[:80]!r}. Build rows with "
            "`gradiend_hf.data.make_feature_dataset`, which masks one word per row."
        )
    prefix, suffix = text.split(MASK)
    return prefix, suffix


# One located word of a row: the token ids of the filled-in text, the word's tokens `first … stop - 1`, the word.
Located = tuple[list[int], int, int, str]


def check_shared_context(text: str, slots: Sequence[Located]) -> None:
    """Checks that every word of a row leaves the tokens before and after the blank as the first word does (a
    bidirectional model reads them once for all words).

    Raises:
        ObjectiveError: naming the two words and the row.
    """
    reference, first, stop, word = slots[0]
    for ids, other_first, other_stop, other in slots[1:]:
        if ids[:other_first] != reference[:first] or ids[other_stop:] != reference[stop:]:
            raise ObjectiveError(
                f"Filling the blank with {word!r} or {other!r} changes the tokens around it in {text[:80]!r}; "
                "the words must share their context."
            )


class Objective:
    """Turns masked rows into an [`ObjectiveBatch`] and scores the base model on it.

    A subclass is one model family. Besides how a row's words become sequences and targets (`_add_row`) and the
    language-modelling score (`lms_example`, `lms_batch_totals` with `lms_statistic`, or `score_lms`) it declares
    what the rest of gradiend-hf needs to know about the family:

    Attributes:
        name (`str`): What a GRADIEND's config records (`"masked_lm"`, `"causal_lm"`, `"causal_lm_cloze"`).
        option_names (`tuple[str, ...]`): The constructor's own options a config records in `objective_options`
            (e.g. `right_window`); see [`check_options`], [`options`] and [`describe`].
        auto_class (`str`): The transformers Auto class that loads such a model (also used in cards).
        pipeline_tag (`str`): The Hub pipeline tag of a rewritten model.
        peft_task_type (`str` or `None`): PEFT's `task_type` for adapters of this family.
        padding_side (`str`): How rows are padded by default.
        reads_right_context (`bool`): Whether the model's prediction at the blank sees the text after it (a
            bidirectional model); the bias benchmarks, perplexity and the app score such a family with mask tokens.
        default_left_context_words (`int`): Words before the blank to ask of feature data built for this family.
        min_left_context_words (`int`): Words a blank needs before it at the very least (e.g. neutral rows).
        class_tokens_per_row (`bool`): Whether the tokens that spell a class's word at the blank depend on the row
            (a causal LM reads the word after each row's prefix) or the single-token spellings are the same for every
            row (a masked LM's surface variants).
        scores_any_word (`bool`): Whether any word can fill a blank (an MLM head scores only its labels).
        description (`str`), lms_description (`str`): How model cards describe the objective and its LMS.
        scores_benchmarks (`bool`): Whether the bias benchmarks (`gradiend_hf.benchmarks`) can score the family.
        shares_prefix_sequences (`bool`): Whether the logits at a position of a sequence depend on the tokens up to
            it alone, and the objective reads nothing but those logits, so that a sequence beginning another one of
            the batch runs as part of it (see [`gradiend_hf.objectives.shared_prefixes`]).
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
    scores_any_word: bool = True
    description: str = ""
    lms_description: str = ""
    scores_benchmarks: bool = True
    shares_prefix_sequences: bool = False

    option_names: tuple[str, ...] = ()
    """The keyword arguments of the constructor that a GRADIEND's config records (`objective_options`)."""

    @classmethod
    def check_options(cls, options: dict | None) -> dict:
        """The options as the constructor takes them, checked by name (their values are checked by the constructor).

        Raises:
            ObjectiveError: for an option this objective does not have.
        """
        options = dict(options or {})
        unknown = sorted(set(options) - set(cls.option_names))
        if unknown:
            takes = f"takes only {', '.join(cls.option_names)}" if cls.option_names else "takes no options"
            raise ObjectiveError(f"The objective {cls.name!r} {takes}; got {', '.join(unknown)}.")
        return options

    @classmethod
    def describe(cls, options: dict | None = None) -> str:
        """How a model card describes the objective with these recorded options."""
        return cls.description

    def options(self) -> dict:
        """The recorded options of this instance (`{}` for an objective without any)."""
        return {}

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

    # -- tokenization

    def _contexts(self, masked: Sequence[str]) -> list[tuple[str, str]]:
        """`(prefix, suffix)` of every row: the text the model reads around the blank."""
        return [split_masked(text) for text in masked]

    def read_lengths(self, masked: Sequence[str]) -> list[int]:
        """About how many tokens of each row the model reads: the text around the blank that [`prepare`] tokenizes
        (a causal LM only the text before it), without the word. Rows sorted by it share batches with little
        padding; a row the objective cannot read counts with its whole text (its batch raises the error)."""
        texts = []
        for text in masked:
            try:
                ((prefix, suffix),) = self._contexts([text])
            except ObjectiveError:
                texts.append(str(text))
            else:
                texts.append(prefix + suffix)
        encoded = self.tokenizer(texts, add_special_tokens=True, truncation=False, verbose=False)
        return [len(ids) for ids in encoded["input_ids"]]

    def _locate(self, masked: Sequence[str], words: Sequence[Sequence[str]]) -> list[list[Located]]:
        """Tokenizes each row with each of its words in the blank (one batched call) and finds the word's tokens."""
        contexts = self._contexts(masked)
        items = [(row, word) for row, row_words in enumerate(words) for word in row_words]
        texts = [contexts[row][0] + word + contexts[row][1] for row, word in items]
        encoded = self.tokenizer(
            texts, add_special_tokens=True, return_offsets_mapping=True, truncation=False, verbose=False
        )
        unk = self.tokenizer.unk_token_id
        located: list[list[Located]] = [[] for _ in masked]
        for index, (row, word) in enumerate(items):
            if not isinstance(word, str) or not word.strip():
                raise UnrepresentableWordError(f"The word {word!r} of row {masked[row][:80]!r} is empty.", str(word))
            ids = encoded["input_ids"][index]
            start = len(contexts[row][0])
            first, stop = word_span(
                encoded["offset_mapping"][index], start, start + len(word), texts[index], word, ids, unk
            )
            located[row].append((list(ids), first, stop, word))
        return located

    def word_tokens(self, masked: Sequence[str], words: Sequence[str]) -> list[list[int]]:
        """The target tokens of `words[i]` in the blank of `masked[i]`, as this objective reads them (a causal LM
        writes the word with its leading space, e.g. `" she"`).

        Raises:
            ObjectiveError: for a row without one `[MASK]` or a word no token sequence represents.
        """
        located = self._locate(masked, [[word] for word in words])
        return [ids[first:stop] for ((ids, first, stop, _),) in located]

    def prepare(
        self,
        masked: Sequence[str],
        factual: Sequence[str],
        alternative: Sequence[str] | None = None,
        padding_side: str | None = None,
    ) -> ObjectiveBatch:
        """Tokenizes training or evaluation rows: slot 0 of each row is its factual word, slot 1 its alternative.

        Args:
            masked (`Sequence[str]`): Texts with one literal `[MASK]`.
            factual (`Sequence[str]`): The word (or phrase) that fills each blank.
            alternative (`Sequence[str]`, *optional*): The other class's word for each blank (defaults to factual).
            padding_side (`str`, *optional*): `"left"` (default) or `"right"` for causal LMs; masked LMs are always
                padded on the right.

        Returns:
            [`ObjectiveBatch`]
        """
        alternative = list(alternative) if alternative is not None else list(factual)
        if not (len(masked) == len(factual) == len(alternative)):
            raise ObjectiveError("`masked`, `factual` and `alternative` must have the same length.")
        return self._prepare_rows(masked, [[f, a] for f, a in zip(factual, alternative)], padding_side, for_loss=True)

    def prepare_words(
        self, masked: Sequence[str], words: Sequence[Sequence[str]], padding_side: str | None = None
    ) -> ObjectiveBatch:
        """Tokenizes rows with any number of words each (slot `j` of row `i` is `words[i][j]`), e.g. every spelling
        of every class word to score at a blank.

        The targets are the words' tokens alone, so `word_log_probs` of the batch is each word's probability at the
        blank; a batch from [`prepare`] holds the targets of the loss instead, which for most objectives are the same
        tokens (see `causal_lm_cloze.py` for one whose loss also reads the text after the word).

        Raises:
            ObjectiveError: for a row without one `[MASK]`, a row without words, a word no token sequence represents
                ([`UnrepresentableWordError`]) or words that change the tokens around the blank.
        """
        return self._prepare_rows(masked, words, padding_side, for_loss=False)

    def _prepare_rows(
        self, masked: Sequence[str], words: Sequence[Sequence[str]], padding_side: str | None, for_loss: bool
    ) -> ObjectiveBatch:
        """The batch of [`prepare`] (`for_loss=True`: the targets of the loss) or [`prepare_words`] (the words)."""
        if len(masked) == 0:
            raise ObjectiveError("No rows to prepare.")
        if len(words) != len(masked):
            raise ObjectiveError("`masked` and `words` must have the same length.")
        if not all(len(row_words) for row_words in words):
            raise ObjectiveError("Every row needs at least one word.")
        builder = BatchBuilder()
        self._add_rows(builder, masked, words, for_loss)
        pad_id = self.tokenizer.pad_token_id
        if pad_id is None:
            pad_id = self.tokenizer.eos_token_id if self.tokenizer.eos_token_id is not None else 0
        batch, _ = builder.build(pad_id, self._padding_side(padding_side))
        batch.position_ids = self._position_ids(batch.attention_mask)
        return batch

    def row_sequences(
        self, masked: Sequence[str], factual: Sequence[str], alternative: Sequence[str] | None = None
    ) -> tuple[list[list[int]], list[int]]:
        """The token ids of every sequence [`prepare`] gives these rows (without padding) and the row of each: what
        decides, before batching, which rows share sequences (see [`gradiend_hf.objectives.shared_prefixes`])."""
        alternative = list(alternative) if alternative is not None else list(factual)
        builder = BatchBuilder()
        self._add_rows(builder, masked, [[f, a] for f, a in zip(factual, alternative)], for_loss=True)
        return builder.sequences, builder.sequence_rows

    def _add_rows(
        self, builder: BatchBuilder, masked: Sequence[str], words: Sequence[Sequence[str]], for_loss: bool = False
    ) -> None:
        """Adds the sequences and targets of every row to `builder`: each row's words located in it, then
        [`_add_row`]."""
        for row, slots in enumerate(self._locate(masked, words)):
            self._add_row(builder, row, masked[row], slots, for_loss)

    def _add_row(
        self, builder: BatchBuilder, row: int, text: str, slots: list[Located], for_loss: bool = False
    ) -> None:  # pragma: no cover
        """Adds the sequences and targets of one row's located words to `builder` (`for_loss`: the targets of the
        loss, which may be more tokens than the word's)."""
        raise NotImplementedError

    def _padding_side(self, requested: str | None) -> str:
        return requested or self.padding_side

    def _position_ids(self, attention_mask: torch.Tensor) -> torch.Tensor | None:
        """Explicit position ids for the model, or `None` to let it derive them."""
        return None

    def check_rows(
        self,
        masked: Sequence[str],
        factual: Sequence[str],
        alternative: Sequence[str],
        what: str = "rows",
        chunk_size: int = 256,
    ) -> None:
        """Checks that every row can be turned into model inputs, before anything is trained or evaluated.

        Rows are tokenized a chunk at a time, and one by one only inside a chunk that fails, so the common case costs
        one batched tokenization per chunk. Nothing is dropped: a row that cannot be used is an error.

        Raises:
            [`UnrepresentableWordError`]: naming every word no token sequence represents (e.g. it becomes the
                unknown token) and how many rows have it.
            ObjectiveError: for other unusable rows (e.g. no text before the blank of a causal LM's row).
        """
        words: dict[str, int] = {}
        other: list[ObjectiveError] = []
        for start in range(0, len(masked), chunk_size):
            stop = start + chunk_size
            chunk = (list(masked[start:stop]), list(factual[start:stop]), list(alternative[start:stop]))
            try:
                self.prepare(*chunk)
                continue
            except ObjectiveError:
                pass
            for row in zip(*chunk):
                try:
                    self.prepare(*([value] for value in row))
                except UnrepresentableWordError as error:
                    words[error.word] = words.get(error.word, 0) + 1
                    other.append(error)
                except ObjectiveError as error:
                    other.append(error)
        if words:
            named = ", ".join(f"{word!r} ({count} row{'s' * (count != 1)})" for word, count in list(words.items())[:8])
            raise UnrepresentableWordError(
                f"{sum(words.values())} of {len(masked)} {what} have a word this tokenizer cannot represent: {named}. "
                f"{other[0]} Replace or remove these words in the data; no row is dropped silently.",
                next(iter(words)),
            )
        if other:
            raise ObjectiveError(f"{len(other)} of {len(masked)} {what} cannot be used. The first: {other[0]}")

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

    @classmethod
    def probe_inputs(cls, ids: torch.Tensor) -> dict[str, torch.Tensor]:
        """Model inputs that run a model of this family on the token ids `ids` `(batch, length)`, e.g. to check that
        a rewritten model's logits are finite."""
        return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}

    def config_fields(self) -> dict:
        """Further fields a GRADIEND's config records to rebuild this objective (e.g. where its MLM head is); none
        for the plain families."""
        return {}

    # -- language-modelling score (see gradiend_hf.evaluation.lms)

    def lms_example(self, ids: list[int], ordinary: list[int], rng, mask_rate: float):  # pragma: no cover
        """`(inputs, targets)` of one neutral text for the language-modelling score, or `None` when it has nothing
        to score; `targets` holds -100 where nothing is scored. `ordinary` are the positions that may be scored."""
        raise NotImplementedError

    lms_statistic: str | None = None
    """What [`lms_batch_totals`] sums over a batch's scored tokens: `"correct"` (the LMS is the accuracy, correct /
    tokens) or `"nll"` (the LMS is `1 / (1 + nll / tokens)`, see [`lms_from_nll`]). A subclass that only overrides
    [`score_lms`] leaves it `None`; its LMS is then always scored whole (the decoder grid cannot stop it early)."""

    def lms_batch_totals(self, model: nn.Module, batch) -> tuple[float, int]:  # pragma: no cover - abstract
        """`(sum, tokens)`: the sum of `lms_statistic` over the scored tokens of one padded `(input_ids,
        attention_mask, targets)` batch (each token's term is ≥ 0) and the number of those tokens."""
        raise NotImplementedError

    def score_lms(self, model: nn.Module, batches) -> dict[str, float]:
        """The language-modelling score of `model` on padded `(input_ids, attention_mask, targets)` batches:
        `{"lms": accuracy}` or `{"nll": mean}`, from [`lms_batch_totals`] summed batch by batch."""
        if self.lms_statistic is None:  # pragma: no cover - abstract
            raise NotImplementedError
        value, tokens = 0 if self.lms_statistic == "correct" else 0.0, 0
        for batch in batches:
            batch_value, batch_tokens = self.lms_batch_totals(model, batch)
            value, tokens = value + batch_value, tokens + batch_tokens
        return lms_scores(self.lms_statistic, value, tokens)

    # -- scoring

    def target_log_probs(self, model: nn.Module, batch: ObjectiveBatch) -> torch.Tensor:
        """Log-probabilities over the vocabulary at each read of the batch, shape `(reads, vocab)`, in one forward
        pass over all its sequences."""
        inputs = batch.model_inputs()
        if "position_ids" in inputs and not accepts(model, "position_ids"):
            inputs.pop("position_ids")
        sequences, positions = batch.read_sequences, batch.read_positions
        if self.shares_prefix_sequences:
            inputs, sequences, positions = share_prefixes(inputs, sequences, positions)
        return logits_at(model, inputs, sequences, positions).float().log_softmax(-1)

    def word_log_probs(self, model: nn.Module, batch: ObjectiveBatch) -> torch.Tensor:
        """Log-probability of every word of every row, shape `(rows, slots)`: the sum of its tokens' log-probs
        (`-inf` for a slot the row does not have). What that probability is depends on the family (see its
        module)."""
        return batch.word_log_probs(self.target_log_probs(model, batch))

    def losses(self, model: nn.Module, batch: ObjectiveBatch) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-row loss of the factual and of the alternative word, each of shape `(batch,)`: the summed
        cross-entropy of the word's tokens (the negative log-probability of the whole word)."""
        log_probs = self.word_log_probs(model, batch)
        return -log_probs[:, 0], -log_probs[:, 1]


def lms_scores(statistic: str, value: float, tokens: int) -> dict[str, float]:
    """`{"lms": accuracy}` (statistic `"correct"`) or `{"nll": mean}` (`"nll"`) from a sum over `tokens` tokens."""
    if statistic == "correct":
        return {"lms": value / tokens}
    return {"nll": value / tokens if tokens else math.nan}
