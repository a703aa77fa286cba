"""Language-modelling score (LMS): how well a (rewritten) model still models ordinary text.

- Masked LM: accuracy of predicting randomly masked tokens of neutral text: 15 % of each text's ordinary tokens
  (at least one), seeded; special tokens ([CLS], [SEP], padding, …) are never masked. The reference package meant
  to skip them too but compared a tensor with a Python list, so it masked them as well.
- Causal LM: the mean negative log-likelihood of every next token (the logits at position t score token t + 1;
  padding ignored), reported as `lms = 1 / (1 + NLL)` (0 when the NLL is not finite) and `perplexity = exp(NLL)`.
  The reference package scored token t with the logits at t, which is not a language-modelling score.

Tokens of the feature classes' words are never scored, so the score measures everything but the feature.
The texts are tokenized and masked once ([`LanguageModelingScorer`]) and scored for every rewrite.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable, Sequence

import torch
from torch import nn

from ..batching import length_batches
from ..objectives import IGNORE_INDEX, Objective, ObjectiveError, get_objective, lms_scores
from .metrics import EvaluationError, lms_from_nll


class LanguageModelingScorer:
    """Tokenized (and, for masked LMs, masked) neutral texts, ready to score any state of a model.

    The objective decides what is scored (see [`Objective.lms_example`] and [`Objective.score_lms`]); this class
    tokenizes once, picks the ordinary tokens (never special tokens, never the feature classes' words) and batches.

    Args:
        tokenizer: The base model's tokenizer.
        texts (`Sequence[str]`): Neutral texts.
        objective (`str` or [`Objective`]): The base model's objective, or its name (`"masked_lm"`, `"causal_lm"`).
        batch_size (`int`, *optional*, defaults to 32): Texts per forward pass.
        mask_rate (`float`, *optional*, defaults to 0.15): Share of the ordinary tokens masked per text (masked LMs).
        seed (`int`, *optional*, defaults to 0): Seed of the masked positions.
        max_length (`int`, *optional*, defaults to 128): Texts are truncated to this many tokens.
        excluded_token_ids (`Iterable[int]`, *optional*): Tokens never scored (the feature classes' words).
        device (`torch.device`, *optional*): Where to keep the batches (the model's device).
    """

    def __init__(
        self,
        tokenizer,
        texts: Sequence[str],
        objective: str | Objective,
        batch_size: int = 32,
        mask_rate: float = 0.15,
        seed: int = 0,
        max_length: int = 128,
        excluded_token_ids: Iterable[int] = (),
        device: torch.device | str | None = None,
    ):
        if isinstance(objective, str):
            try:
                objective = get_objective(objective, tokenizer)
            except ObjectiveError as error:
                raise EvaluationError(str(error)) from None
        self.objective = objective
        excluded = set(int(i) for i in excluded_token_ids)
        # A Python set of ints: the membership test the reference package got wrong.
        special = set(int(i) for i in tokenizer.all_special_ids)
        encoded = tokenizer(list(texts), truncation=True, max_length=max_length, return_special_tokens_mask=True)
        rng = random.Random(seed)
        sequences, labels = [], []
        for ids, special_mask in zip(encoded["input_ids"], encoded["special_tokens_mask"]):
            ordinary = [
                i
                for i, (token, is_special) in enumerate(zip(ids, special_mask))
                if not is_special and token not in special and token not in excluded
            ]
            example = objective.lms_example(ids, ordinary, rng, mask_rate)
            if example is not None:
                sequences.append(example[0])
                labels.append(example[1])
        if not sequences:
            raise EvaluationError(
                "None of the neutral texts has a token to score; pass longer texts (a `text` column of sentences)."
            )
        self.num_texts = len(sequences)
        self._counts: list[int] | None = None  # scored tokens per batch, known after one whole scoring
        self.num_tokens = sum(sum(t != IGNORE_INDEX for t in row) for row in labels)
        pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else (tokenizer.eos_token_id or 0)
        # Longest texts first: batches of similar lengths (little padding), and an early stop (`stop_below`) sees
        # most of the scored tokens after the first batches.
        self.batches = []
        for chunk in length_batches([len(sequence) for sequence in sequences], batch_size):
            length = max(len(sequences[i]) for i in chunk)
            ids = torch.full((len(chunk), length), pad_id, dtype=torch.long)
            mask = torch.zeros((len(chunk), length), dtype=torch.long)
            target = torch.full((len(chunk), length), IGNORE_INDEX, dtype=torch.long)
            for row, i in enumerate(chunk):
                n = len(sequences[i])
                ids[row, :n] = torch.tensor(sequences[i])
                mask[row, :n] = 1
                target[row, :n] = torch.tensor(labels[i])
            batch = (ids, mask, target)
            self.batches.append(tuple(t.to(device) for t in batch) if device is not None else batch)

    @torch.no_grad()
    def __call__(self, model: nn.Module, stop_below: float | None = None) -> dict[str, float]:
        """Scores `model` (in eval mode).

        Args:
            model (`nn.Module`): The model, in its current (rewritten) state.
            stop_below (`float`, *optional*): Stop scoring once the LMS is certainly below this value: after each
                batch, the best the remaining batches could still give (every remaining masked token predicted
                correctly; a remaining NLL of 0, each token's NLL being ≥ 0) is computed exactly as the LMS is, and
                when even that is below `stop_below` the rest is not scored. Needs the token counts of one whole
                scoring first (the unchanged model's) and an objective with an `lms_statistic`; otherwise the LMS is
                scored whole.

        Returns:
            `dict`: `lms` (for masked LMs the accuracy); for scores from a next-token NLL also `nll` (mean per token)
            and `perplexity`. With `stop_below`, also `lms_cut` (whether scoring stopped early) and `lms_bound` (an
            upper bound of the LMS: the LMS itself when scored whole); a cut score has `lms`, `nll` and
            `perplexity` NaN.
        """
        statistic = self.objective.lms_statistic
        if statistic is None:
            scores = dict(self.objective.score_lms(model, self.batches))
        else:
            scores = self._score_batches(model, statistic, stop_below)
        if scores.get("lms_cut"):
            return scores
        if "nll" in scores:
            scores["lms"], scores["perplexity"] = lms_from_nll(scores["nll"])
        if stop_below is not None:
            scores.update(lms_cut=False, lms_bound=scores["lms"])
        return scores

    def _score_batches(self, model: nn.Module, statistic: str, stop_below: float | None) -> dict:
        # Summed exactly as Objective.score_lms sums (same order, same types), so a whole score is the same number.
        value, tokens, counts = 0 if statistic == "correct" else 0.0, 0, []
        all_tokens = sum(self._counts) if self._counts is not None else None
        for index, batch in enumerate(self.batches):
            batch_value, batch_tokens = self.objective.lms_batch_totals(model, batch)
            value, tokens = value + batch_value, tokens + batch_tokens
            counts.append(batch_tokens)
            if stop_below is None or all_tokens is None or index + 1 == len(self.batches):
                continue
            bound = lms_upper_bound(statistic, value, tokens, all_tokens)
            if bound < stop_below:
                cut = {"lms": math.nan, "lms_cut": True, "lms_bound": bound}
                return cut | ({"nll": math.nan, "perplexity": math.nan} if statistic == "nll" else {})
        self._counts = counts
        return lms_scores(statistic, value, tokens)


def lms_upper_bound(statistic: str, value: float, scored_tokens: int, all_tokens: int) -> float:
    """The largest LMS a model can still reach after scoring `scored_tokens` of `all_tokens` with the sum `value`.

    Accuracy: every remaining token correct, `(value + all_tokens - scored_tokens) / all_tokens`; it is computed with
    the same division as the final accuracy, and float division is monotone, so the final LMS never exceeds it. NLL:
    the remaining tokens add 0 (a cross-entropy is never negative), so the final summed NLL is at least `value` (adding
    non-negative floats never decreases a sum), and `lms_from_nll` never increases with the NLL (a non-finite or
    huge NLL gives 0, as the final score would).
    """
    if statistic == "correct":
        return (value + all_tokens - scored_tokens) / all_tokens
    return lms_from_nll(value / all_tokens)[0]
