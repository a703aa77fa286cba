"""Sequence cloze for causal LMs (GPT-2, Llama, …): the blank is filled with the word and the model reads the whole
sentence, so what it makes of the text AFTER the word counts too, not only its prediction of the word.

- Loss of a word: the summed negative log-likelihood of the word's tokens after the prefix PLUS that of the first
  `right_window` tokens after the word (`None` or -1, the default: all of the rest of the row), teacher-forced. The
  factual and the alternative sentence differ in the word, so each is its own sequence with its own right-hand
  targets (the tokens after the word as the tokenizer writes them there; an end token a tokenizer appends is not
  text and is not a target). With `right_window=0` it is the loss of `causal_lm`.
- Probability of a word (decoder class probabilities): the chain-rule probability of the word given the prefix,
  `P(w_1 | prefix) · P(w_2 | prefix, w_1) · …`, the same as `causal_lm`. The class probabilities compare the
  classes at one blank; the text after it is a property of the sentence, not of a class, and scoring it would make a
  class likelier because the rest of the sentence happens to suit its word (it was written for the factual one), so
  the right context enters the loss (what the gradients see) but not the class probability.
- LMS: as for `causal_lm`, from the mean next-token NLL of the whole neutral text (`1 / (1 + NLL)`), i.e. the NLL of
  every token of the filled-in text read left to right.

The base model is still a causal LM: its prediction at the blank sees only the text before it, so
`reads_right_context` stays `False` (the benchmarks, perplexity and the app score it left to right) and the feature
data are the same rows as for `causal_lm` (they keep the text after the blank). It is never detected: a causal LM
defaults to `causal_lm`; choose it with `objective="causal_lm_cloze"` (a GRADIEND's config records it and its
`right_window` in `objective_options`).
"""

from __future__ import annotations

from .base import MASK, Located, split_masked
from .causal_lm import CausalLMObjective
from .words import ObjectiveError


def check_right_window(value) -> int | None:
    """`right_window` as the objective keeps it: an integer >= 0, or `None` for all of the rest (also given as -1).

    Raises:
        ObjectiveError: for anything else (a negative number other than -1, a fraction, a string, a bool).
    """
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if value is None or (isinstance(value, int) and not isinstance(value, bool) and value == -1):
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ObjectiveError(
            f"`right_window` must be a whole number of tokens >= 0, or -1 (or None) for all of the text after the "
            f"word; got {value!r}."
        )
    return value


class CausalLMClozeObjective(CausalLMObjective):
    """The sentence with the word in the blank; the loss reads the word's tokens and a window of the tokens after it.

    Args:
        tokenizer: The base model's (fast) tokenizer.
        max_length (`int`, *optional*): The most tokens a sequence may have; a too-long row keeps the end of its
            prefix and the word, and its right-hand window is cut to what fits.
        right_window (`int`, *optional*): Tokens after the word that count in the loss; `None` or -1 (default) for
            all of the rest, 0 for none (the loss of `causal_lm`).

    Raises:
        ObjectiveError: for an invalid `right_window`.
    """

    name = "causal_lm_cloze"
    option_names = ("right_window",)
    description = "causal LM sequence cloze (the word in the blank; loss on the word and the text after it)"

    def __init__(self, tokenizer, max_length: int | None = None, right_window: int | None = None):
        super().__init__(tokenizer, max_length)
        self.right_window = check_right_window(right_window)

    @classmethod
    def check_options(cls, options: dict | None) -> dict:
        """The options with `right_window` checked and always recorded (-1: all of the rest).

        Raises:
            ObjectiveError: for an unknown option or an invalid `right_window`.
        """
        options = super().check_options(options)
        window = check_right_window(options.get("right_window"))
        return {"right_window": -1 if window is None else window}

    @classmethod
    def describe(cls, options: dict | None = None) -> str:
        window = check_right_window((options or {}).get("right_window"))
        after = "all tokens after it" if window is None else f"{window} token{'s' * (window != 1)} after it"
        return f"causal LM sequence cloze (the word in the blank; loss on the word and {after})"

    def options(self) -> dict:
        """`{"right_window": n}`, -1 for all of the rest (what a config records)."""
        return {"right_window": -1 if self.right_window is None else self.right_window}

    def _contexts(self, masked):
        # The prefix is checked as for causal_lm; the text after the blank is kept, it holds the right-hand targets.
        prefixes = super()._contexts(masked)
        return [(prefix, split_masked(text)[1]) for (prefix, _), text in zip(prefixes, masked)]

    def _targets(self, slot: Located, room: int, for_loss: bool) -> list[int]:
        """The word's tokens, and for the loss the window of tokens after it (as many as fit into `room`)."""
        ids, first, stop, _ = slot
        word = ids[first:stop]
        if not for_loss:
            return word
        after = list(ids[stop:])
        special = set(self.tokenizer.all_special_ids)
        while after and after[-1] in special:  # an appended end token is not text after the word
            after.pop()
        limit = room - len(word)
        if self.right_window is not None:
            limit = min(limit, self.right_window)
        return word + after[: max(0, limit)]

    def row_from_text(self, text: str) -> str:
        """The text as typed, with its `[MASK]` and the words after it; a text without `[MASK]` is read whole as the
        prefix (as for `causal_lm`).

        Raises:
            ObjectiveError: for several `[MASK]` or none of the text before it.
        """
        if MASK not in text:
            return super().row_from_text(text)
        if text.count(MASK) > 1:
            raise ObjectiveError(f"The text has {text.count(MASK)} {MASK}; put one {MASK} where a word would go.")
        if not text.split(MASK)[0].strip():
            raise ObjectiveError(f"A causal LM reads the text before {MASK}; write some words before it.")
        return text
