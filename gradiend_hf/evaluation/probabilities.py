"""Probability of each feature class at the blank of masked rows.

The probability of a class is the sum of the probabilities of its words' spellings at the blank, and the probability
of a word of several tokens is the objective's (see `objectives/masked_lm.py`, `objectives/causal_lm.py`):

- Masked LM: a single-token spelling counts through its surface variants, i.e. every vocabulary entry that equals one
  of the class's words after removing a leading word-boundary marker (`Ġ`, `▁`) and lower-casing ("he", "He", "Ġhe"
  and "ĠHe" all count for "he"), read at the blank with one mask token. A word that has no such single-token variant counts
  through its spellings at the row (its lower-case, capitalised and upper-case forms, as the tokenizer writes them at
  that blank), a spelling of k tokens with the product of its per-position probabilities with all k positions masked
  (the reference package's definition).
- Causal LM: each of the class's words as the objective tokenizes it after the text before the blank (with its
  leading space, e.g. `" he"`), with its exact chain-rule probability `P(w_1 | prefix) · P(w_2 | prefix, w_1) · …`.

A row's spellings are one batch of the objective (a sequence per token count or continuation, one forward pass). The
rows are tokenized once ([`ClassProbabilityScorer`]) and scored for every rewrite of the model.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import nn

from ..batching import length_batches
from ..objectives import Objective, ObjectiveBatch, ObjectiveError, UnrepresentableWordError
from .metrics import EvaluationError


_BOUNDARY_MARKERS = "Ġ▁ "


def surface_variant_ids(tokenizer, word: str) -> list[int]:
    """Ids of the vocabulary entries that spell `word` up to case and a leading word-boundary marker.

    Continuation pieces (`##he`) are not variants: they never start a word.
    """
    return surface_variant_ids_of(tokenizer, [word])[word]


def surface_variant_ids_of(tokenizer, words: Sequence[str]) -> dict[str, list[int]]:
    """[`surface_variant_ids`] of every word, in one pass over the vocabulary (large vocabularies make a pass per
    word the slow part of setting up an evaluation)."""
    keys: dict[str, list[str]] = {}
    for word in words:
        keys.setdefault(word.strip().lower(), []).append(word)
    found: dict[str, list[int]] = {word: [] for word in words}
    for token, index in tokenizer.get_vocab().items():
        if token.startswith("##"):
            continue
        for word in keys.get(token.lstrip(_BOUNDARY_MARKERS).lower(), ()):
            found[word].append(index)
    return {word: sorted(ids) for word, ids in found.items()}


def class_token_ids(word_ids: Mapping[str, Sequence[int]], words: Mapping[str, Sequence[str]]) -> dict[str, list[int]]:
    """Single-token surface-variant ids of every class (masked LMs) from each word's ids
    ([`surface_variant_ids_of`]); a class whose words are all several tokens has none (its probability comes from
    its multi-token spellings).

    Raises:
        EvaluationError: when two classes share a token.
    """
    ids = {name: sorted({i for word in class_words for i in word_ids[word]}) for name, class_words in words.items()}
    names = list(ids)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            shared = set(ids[a]) & set(ids[b])
            if shared:
                raise EvaluationError(
                    f"Classes {a!r} and {b!r} share the token(s) {sorted(shared)[:5]}; their probabilities would "
                    "overlap. Give the classes disjoint words."
                )
    return ids


def spellings(word: str, surface_variants: bool) -> list[str]:
    """The spellings of a class word that count for its class: with surface variants (masked LMs) the word as given
    and its lower-case, capitalised and upper-case forms; otherwise the word as given."""
    if not surface_variants:
        return [word]
    capitalised = " ".join(part[:1].upper() + part[1:] for part in word.lower().split(" "))
    return list(dict.fromkeys([word, word.lower(), capitalised, word.upper()]))


class _Chunk:
    """One batch of rows: the objective's batch of their spellings and what each slot counts for.

    Attributes:
        batch ([`ObjectiveBatch`]): The rows with their spellings as words.
        slot_class (`torch.LongTensor` of shape `(rows, slots)`): The class index each slot counts for (-1: none,
            e.g. the one-mask input of the surface variants).
        anchor_reads (`torch.LongTensor` of shape `(rows,)`, *optional*): Per row, the read with one mask token
            whose distribution the surface variants are summed over (masked LMs).
    """

    def __init__(self, batch: ObjectiveBatch, slot_class: torch.Tensor, anchor_reads: torch.Tensor | None):
        self.batch, self.slot_class, self.anchor_reads = batch, slot_class, anchor_reads


class ClassProbabilityScorer:
    """Tokenizes rows once and returns each class's probability on every row for any state of the model.

    Args:
        objective ([`Objective`]): The base model's objective.
        masked (`Sequence[str]`): Row texts with one `[MASK]`.
        factual (`Sequence[str]`): The word of each row (it fixes the tokenization around the blank).
        words (`Mapping[str, Sequence[str]]`): Class name → the class's words (or phrases).
        batch_size (`int`, *optional*, defaults to 32): Rows per forward pass.
        device (`torch.device`, *optional*): Where to keep the tokenized batches (the model's device).

    Raises:
        EvaluationError: when a class word cannot be represented at the rows, a class has no spelling at a row, or
            two classes share a token (sequence).
    """

    def __init__(
        self,
        objective: Objective,
        masked: Sequence[str],
        factual: Sequence[str],
        words: Mapping[str, Sequence[str]],
        batch_size: int = 32,
        device: torch.device | str | None = None,
    ):
        if len(masked) == 0:
            raise EvaluationError("There are no rows to score the class probabilities on.")
        self.objective = objective
        self.classes = list(words)
        self.surface_variants = not objective.class_tokens_per_row
        word_ids = {}
        if self.surface_variants:
            word_ids = surface_variant_ids_of(objective.tokenizer, [w for name in self.classes for w in words[name]])
        variants = class_token_ids(word_ids, words) if self.surface_variants else {}
        self.variant_ids = {name: torch.tensor(variants.get(name, []), dtype=torch.long) for name in self.classes}
        self._variant_class = {int(i): c for c, name in enumerate(self.classes) for i in variants.get(name, [])}
        self._single_words = {word for word, ids in word_ids.items() if ids}
        # Rows of similar length batched together waste less compute on padding.
        batches = length_batches(objective.read_lengths(masked), batch_size)
        self.order = torch.tensor([i for chunk in batches for i in chunk], dtype=torch.long)
        self.chunks: list[_Chunk] = []
        for chunk in batches:
            built = self._chunk([masked[i] for i in chunk], [factual[i] for i in chunk], words)
            if device is not None:
                built.batch = built.batch.to(device)
            self.chunks.append(built)

    def _chunk(self, texts: list[str], factual: list[str], words: Mapping[str, Sequence[str]]) -> _Chunk:
        """The spellings of every class at each row, as the slots of one objective batch."""
        slots: list[list[str]] = [[] for _ in texts]
        classes: list[list[int]] = [[] for _ in texts]
        owner: list[dict[tuple[int, ...], int]] = [{} for _ in texts]  # token sequence -> its class, per row
        singles: list[str] = []  # spellings of single-token words: candidates for the one-mask input
        for index, name in enumerate(self.classes):
            for word in words[name]:
                # A word with single-token surface variants counts through them alone (the one-mask distribution),
                # exactly as before multi-token words were supported, so its spellings need no tokenising here;
                # only a word without any counts its multi-token spellings.
                if word in self._single_words:
                    singles.extend(spellings(word, self.surface_variants))
                    continue
                for spelling in spellings(word, self.surface_variants):
                    for row, ids in enumerate(self._tokens_of(texts, spelling, name, required=spelling == word)):
                        key = tuple(ids)
                        variant = self.surface_variants and len(key) == 1
                        known = self._variant_class.get(key[0]) if variant else None
                        is_new = False  # a surface variant counts through the one-mask distribution
                        if known is None:
                            is_new = key not in owner[row]
                            known = owner[row].setdefault(key, index)
                        if known != index:
                            raise EvaluationError(
                                f"Classes {self.classes[known]!r} and {name!r} share the token(s) {list(key)} at "
                                f"{texts[row][:60]!r}; their probabilities would overlap. Give the classes disjoint "
                                "words."
                            )
                        if is_new:
                            slots[row].append(spelling)
                            classes[row].append(index)
        return self._build(texts, factual, slots, classes, singles)

    def _tokens_of(self, texts: list[str], spelling: str, name: str, required: bool) -> list[list[int]]:
        """The tokens of `spelling` at every row; for a spelling that is not the word as given (a casing of a
        masked LM's surface variants) none when the tokenizer cannot represent it."""
        try:
            return self.objective.word_tokens(texts, [spelling] * len(texts))
        except ObjectiveError as error:
            if not required and isinstance(error, UnrepresentableWordError):
                return []
            raise EvaluationError(f"Cannot read {spelling!r} of class {name!r} at the rows' blank: {error}") from None

    def _build(self, texts, factual, slots, classes, singles) -> _Chunk:
        """The objective batch of the rows' slots; for surface variants a one-mask spelling first in every row."""
        with_variants = {index for index, name in enumerate(self.classes) if len(self.variant_ids[name])}
        anchors = None
        if with_variants:
            anchors = []
            # The row's own word is the anchor almost always: one batched tokenisation checks it on every row.
            factual_is_one = self._are_one_token(texts, factual)
            for row, text in enumerate(texts):
                candidates = [factual[row]] if factual_is_one[row] else singles
                anchor = next((w for w in candidates if factual_is_one[row] or self._is_one_token(text, w)), None)
                if anchor is None:
                    raise EvaluationError(
                        f"No word of the classes is one token at {text[:60]!r}, so the single-token spellings "
                        f"{[self.classes[i] for i in sorted(with_variants)]} cannot be read there."
                    )
                anchors.append(anchor)
            slots = [[anchor, *row_slots] for anchor, row_slots in zip(anchors, slots)]
            classes = [[-1, *row_classes] for row_classes in classes]
        for row, row_classes in enumerate(classes):
            missing = [n for i, n in enumerate(self.classes) if i not in row_classes and i not in with_variants]
            if missing:
                raise EvaluationError(f"No word of the class(es) {missing} can be read at {texts[row][:60]!r}.")
        batch = self.objective.prepare_words(texts, slots)
        slot_class = torch.tensor([c + [-1] * (batch.num_slots - len(c)) for c in classes], dtype=torch.long)
        anchor_reads = None
        if anchors is not None:
            first = (batch.target_slots == 0).nonzero().squeeze(-1)
            anchor_reads = torch.empty(batch.num_rows, dtype=torch.long)
            anchor_reads[batch.target_rows[first]] = batch.target_reads[first]
        return _Chunk(batch, slot_class, anchor_reads)

    def _are_one_token(self, texts: list[str], words: list[str]) -> list[bool]:
        """Whether each row's word is one token there (batched; row by row only when some row cannot take its word)."""
        try:
            return [len(ids) == 1 for ids in self.objective.word_tokens(texts, words)]
        except ObjectiveError:
            return [self._is_one_token(text, word) for text, word in zip(texts, words)]

    def _is_one_token(self, text: str, word: str) -> bool:
        try:
            return len(self.objective.word_tokens([text], [word])[0]) == 1
        except ObjectiveError:
            return False

    def token_ids(self) -> set[int]:
        """Every token id that counts for some class (excluded from the language-modelling score): the surface
        variants and every token of the classes' multi-token spellings."""
        ids = {int(i) for variants in self.variant_ids.values() for i in variants.tolist()}
        for chunk in self.chunks:
            batch = chunk.batch
            counted = chunk.slot_class[batch.target_rows.cpu(), batch.target_slots.cpu()] >= 0
            ids.update(int(i) for i in batch.target_ids.cpu()[counted].tolist())
        return ids

    @torch.no_grad()
    def __call__(self, model: nn.Module) -> dict[str, torch.Tensor]:
        """Class name → probability of the class on every row (in the order the rows were given), on the CPU."""
        columns: dict[str, list[torch.Tensor]] = {name: [] for name in self.classes}
        for chunk in self.chunks:
            batch = chunk.batch
            log_probs = self.objective.target_log_probs(model, batch)
            words = torch.nan_to_num(batch.word_log_probs(log_probs).double().exp(), nan=0.0)
            slot_class = chunk.slot_class.to(words.device)
            anchor = None
            if chunk.anchor_reads is not None:
                anchor = log_probs[chunk.anchor_reads.to(log_probs.device)]
            for index, name in enumerate(self.classes):
                total = (words * (slot_class == index)).sum(1)
                if anchor is not None and len(self.variant_ids[name]):
                    # Only the class's surface variants are exponentiated, not the whole vocabulary.
                    variants = anchor[:, self.variant_ids[name].to(anchor.device)]
                    total = total + torch.nan_to_num(variants.double().exp(), nan=0.0).sum(1)
                columns[name].append(total.cpu())
        out = {}
        for name, parts in columns.items():
            ordered = torch.cat(parts)
            values = torch.empty_like(ordered)
            values[self.order] = ordered
            out[name] = values
        return out
