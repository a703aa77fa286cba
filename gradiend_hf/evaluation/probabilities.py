"""Probability of each feature class at the blank of masked rows.

- Masked LM: the probability of a class is the summed probability of its words' surface variants, i.e. every
  vocabulary entry that equals one of its words after removing a leading word-boundary marker (`Ġ`, `▁`) and
  lower-casing ("he", "He", "Ġhe" and "ĠHe" all count for "he").
- Causal LM: the next-token probability, after the text before the blank, of each of the class's words as the
  objective tokenizes it there (with its leading space, e.g. `" he"`).

The rows are tokenized once ([`ClassProbabilityScorer`]) and scored for every rewrite of the model.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import nn

from ..objectives import MultiTokenWordError, Objective, ObjectiveError
from .metrics import EvaluationError


_BOUNDARY_MARKERS = "Ġ▁ "


def surface_variant_ids(tokenizer, word: str) -> list[int]:
    """Ids of the vocabulary entries that spell `word` up to case and a leading word-boundary marker.

    Continuation pieces (`##he`) are not variants: they never start a word.
    """
    key = word.strip().lower()
    return sorted(
        index
        for token, index in tokenizer.get_vocab().items()
        if not token.startswith("##") and token.lstrip(_BOUNDARY_MARKERS).lower() == key
    )


def class_token_ids(tokenizer, words: Mapping[str, Sequence[str]]) -> dict[str, list[int]]:
    """Surface-variant ids of every class (masked LMs).

    Raises:
        EvaluationError: when a word has no single-token spelling or two classes share a token.
    """
    ids = {}
    for name, class_words in words.items():
        found: set[int] = set()
        for word in class_words:
            variants = surface_variant_ids(tokenizer, word)
            if not variants:
                raise EvaluationError(
                    f"The word {word!r} of class {name!r} is not a single token of this tokenizer, so its "
                    "probability cannot be read at one blank. Drop its rows or use another word."
                )
            found.update(variants)
        ids[name] = sorted(found)
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


class ClassProbabilityScorer:
    """Tokenizes rows once and returns each class's probability on every row for any state of the model.

    Args:
        objective ([`Objective`]): The base model's objective.
        masked (`Sequence[str]`): Row texts with one `[MASK]`.
        factual (`Sequence[str]`): The word of each row (it fixes the tokenization around the blank).
        words (`Mapping[str, Sequence[str]]`): Class name → the class's words.
        batch_size (`int`, *optional*, defaults to 32): Rows per forward pass.
        device (`torch.device`, *optional*): Where to keep the tokenized batches (the model's device).
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
        # Shorter rows batched together waste less compute on padding.
        order = sorted(range(len(masked)), key=lambda i: len(masked[i]))
        self.order = torch.tensor(order, dtype=torch.long)
        self.batches = []
        self.class_ids: list[dict[str, torch.Tensor]] = []
        shared_ids = None
        if not objective.class_tokens_per_row:
            shared_ids = class_token_ids(objective.tokenizer, words)
        for start in range(0, len(order), batch_size):
            chunk = order[start : start + batch_size]
            texts = [masked[i] for i in chunk]
            batch = objective.prepare(texts, [factual[i] for i in chunk])
            self.batches.append(batch.to(device) if device is not None else batch)
            if shared_ids is not None:
                self.class_ids.append({n: torch.tensor(ids).expand(len(chunk), -1) for n, ids in shared_ids.items()})
            else:
                self.class_ids.append(self._next_token_ids(texts, words))

    def _next_token_ids(self, texts: list[str], words: Mapping[str, Sequence[str]]) -> dict[str, torch.Tensor]:
        """Per row and class, the ids of the class's words after that row's prefix (-1 pads repeated ids)."""
        per_row: dict[str, list[list[int]]] = {name: [[] for _ in texts] for name in words}
        for name, class_words in words.items():
            for word in class_words:
                try:
                    ids = self.objective.prepare(texts, [word] * len(texts)).factual_ids.tolist()
                except MultiTokenWordError:
                    # A spelling that is several tokens here (e.g. "SHE") cannot be one next token; the class's
                    # other spellings still count. A class left with no spelling at all is an error below.
                    continue
                except ObjectiveError as error:
                    raise EvaluationError(
                        f"Cannot read {word!r} of class {name!r} after the rows' text: {error}"
                    ) from error
                for row, token in enumerate(ids):
                    if token not in per_row[name][row]:
                        per_row[name][row].append(token)
        out = {}
        for name, rows in per_row.items():
            if not all(rows):
                raise EvaluationError(
                    f"No word of class {name!r} is a single token after the rows' text, so its next-token "
                    "probability is undefined. Use single-token words."
                )
            width = max(len(r) for r in rows)
            out[name] = torch.tensor([r + [-1] * (width - len(r)) for r in rows], dtype=torch.long)
        for row in range(len(texts)):
            seen: dict[int, str] = {}
            for name in words:
                for token in per_row[name][row]:
                    if token in seen and seen[token] != name:
                        raise EvaluationError(
                            f"Classes {seen[token]!r} and {name!r} share the token {token} after {texts[row][:60]!r}; "
                            "give the classes disjoint words."
                        )
                    seen[token] = name
        return out

    def token_ids(self) -> set[int]:
        """Every token id that counts for some class (excluded from the language-modelling score)."""
        ids: set[int] = set()
        for per_batch in self.class_ids:
            for tensor in per_batch.values():
                ids.update(int(i) for i in tensor.unique().tolist() if i >= 0)
        return ids

    @torch.no_grad()
    def __call__(self, model: nn.Module) -> dict[str, torch.Tensor]:
        """Class name → probability of the class on every row (in the order the rows were given), on the CPU."""
        columns: dict[str, list[torch.Tensor]] = {name: [] for name in self.classes}
        for batch, ids in zip(self.batches, self.class_ids):
            probs = self.objective.target_log_probs(model, batch).double().exp()
            probs = torch.nan_to_num(probs, nan=0.0)
            for name in self.classes:
                index = ids[name].to(probs.device)
                picked = probs.gather(1, index.clamp(min=0)) * (index >= 0)
                columns[name].append(picked.sum(1).cpu())
        out = {}
        for name, parts in columns.items():
            ordered = torch.cat(parts)
            values = torch.empty_like(ordered)
            values[self.order] = ordered
            out[name] = values
        return out
