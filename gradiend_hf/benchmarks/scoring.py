"""Batched log-probabilities of the tokens the benchmarks score, for masked and causal language models.

Two primitives, both batched on the model's device (several sentences, and for masked LMs several masked positions
of one sentence, per forward pass; never one forward per token):

- [`masked_log_probs`]: for each *probe* `(token ids, positions)`, the positions are replaced by the mask token
  together and the log-probability of each original token there is read. CrowS-Pairs' pseudo-log-likelihood masks
  one shared token per probe; WinoBias masks the words that differ between its two sentences in one probe;
  StereoSet masks one token of the blank's word per probe.
- [`causal_log_probs`]: for each token sequence, `log p(token_t | tokens_<t)` for every `t ≥ 1` (the logits at
  `t - 1` score token `t`; padding is ignored). A sentence is scored after the tokenizer's BOS token (EOS when it
  has none), as lm-evaluation-harness scores a continuation of an empty context.

[`shared_positions`] aligns two tokenized sentences as the CrowS-Pairs paper does (`difflib` matching blocks).
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from ..evaluation.runtime import eval_mode, model_device
from ..objectives import detect_objective
from .errors import BenchmarkError


class NonFiniteScoresError(BenchmarkError):
    """The model gave `nan` or infinite log-probabilities: its weights are broken (for example a rewrite with too large
    a learning rate). Score a smaller learning rate, or check the model in float32."""


def objective_of(model: nn.Module, objective: str | None = None) -> str:
    """`"masked_lm"` or `"causal_lm"`: `objective` when given, else detected from the model's class."""
    if objective is not None:
        if objective not in ("masked_lm", "causal_lm"):
            raise BenchmarkError(f"Unknown objective {objective!r}; choose 'masked_lm' or 'causal_lm'.")
        return objective
    return detect_objective(model)


def encode(tokenizer, texts: Sequence[str], objective: str, max_length: int = 256) -> list[list[int]]:
    """Token ids of `texts` as each family scores them.

    Masked LMs get the tokenizer's own special tokens ([CLS] … [SEP]). Causal LMs get the text without special tokens
    after one prefix token (BOS, else EOS), so that the first word is scored too.

    Raises:
        BenchmarkError: for a masked LM tokenizer without a mask token, or a causal one without BOS and EOS.
    """
    if objective == "masked_lm":
        if tokenizer.mask_token_id is None:
            raise BenchmarkError("This tokenizer has no mask token, so a masked LM cannot be scored with it.")
        encoded = tokenizer(list(texts), truncation=True, max_length=max_length)["input_ids"]
        return [list(ids) for ids in encoded]
    prefix = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
    if prefix is None:
        raise BenchmarkError(
            "This tokenizer has neither a BOS nor an EOS token, so the first word of a sentence cannot be scored; "
            "set `tokenizer.bos_token`."
        )
    encoded = tokenizer(list(texts), add_special_tokens=False, truncation=True, max_length=max_length - 1)
    return [[prefix, *ids] for ids in encoded["input_ids"]]


def special_ids(tokenizer) -> set[int]:
    """Ids of the tokenizer's special tokens (never scored)."""
    return {int(i) for i in tokenizer.all_special_ids}


def shared_positions(ids_a: Sequence[int], ids_b: Sequence[int], skip: set[int] = frozenset()):
    """Positions of the tokens two sentences share, as the CrowS-Pairs paper aligns them (`difflib` equal blocks).

    Returns:
        `(positions_a, positions_b)`: equally long lists; tokens in `skip` (special tokens) are left out.
    """
    matcher = difflib.SequenceMatcher(None, list(ids_a), list(ids_b), autojunk=False)
    pos_a, pos_b = [], []
    for tag, a0, a1, b0, b1 in matcher.get_opcodes():
        if tag == "equal":
            for i, j in zip(range(a0, a1), range(b0, b1)):
                if ids_a[i] not in skip:
                    pos_a.append(i)
                    pos_b.append(j)
    return pos_a, pos_b


def differing_positions(ids: Sequence[int], shared: Sequence[int], skip: set[int] = frozenset()) -> list[int]:
    """Positions of `ids` that are neither shared with the other sentence nor special tokens."""
    shared = set(shared)
    return [i for i, token in enumerate(ids) if i not in shared and token not in skip]


def _batches(lengths: Sequence[int], batch_size: int) -> list[list[int]]:
    if batch_size < 1:
        raise BenchmarkError(f"`batch_size` must be at least 1, got {batch_size}.")
    # Similar lengths together: less padding, fewer wasted positions per forward pass.
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    return [order[start : start + batch_size] for start in range(0, len(order), batch_size)]


def _pad(sequences: list[list[int]], pad_id: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    length = max(len(s) for s in sequences)
    ids = torch.full((len(sequences), length), pad_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), length), dtype=torch.long)
    for row, sequence in enumerate(sequences):
        ids[row, : len(sequence)] = torch.tensor(sequence, dtype=torch.long)
        mask[row, : len(sequence)] = 1
    return ids.to(device), mask.to(device)


def _pad_id(tokenizer) -> int:
    for candidate in (tokenizer.pad_token_id, tokenizer.eos_token_id, 0):
        if candidate is not None:
            return int(candidate)
    return 0  # pragma: no cover - the loop always returns


def _gathered(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    logits = logits.float()
    chosen = logits.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    return chosen - torch.logsumexp(logits, dim=-1)


def _check_finite(values: torch.Tensor) -> None:
    if not bool(torch.isfinite(values).all()):
        raise NonFiniteScoresError(
            "The model's log-probabilities are not finite (nan or inf): its weights are broken, for example by a "
            "rewrite with too large a learning rate. Use a smaller learning rate, or load the model in float32."
        )


@torch.no_grad()
def masked_log_probs(
    model: nn.Module,
    tokenizer,
    probes: Sequence[tuple[Sequence[int], Sequence[int]]],
    batch_size: int = 32,
    desc: str | None = None,
    show_progress: bool = False,
) -> list[np.ndarray]:
    """Log-probabilities of the original tokens at masked positions, many probes per forward pass.

    Args:
        model (`nn.Module`): A masked LM (eval mode is set for the call).
        tokenizer: Its tokenizer (mask and pad token).
        probes (`Sequence[(token ids, positions)]`): The positions of each probe are masked together.
        batch_size (`int`, *optional*, defaults to 32): Probes per forward pass.
        desc (`str`, *optional*): Progress-bar label.
        show_progress (`bool`, *optional*, defaults to `False`): Show a progress bar.

    Returns:
        `list[np.ndarray]`: per probe, one float64 log-probability per position (in the order given).

    Raises:
        NonFiniteScoresError: when a log-probability is `nan` or infinite.
    """
    device, pad_id, mask_id = model_device(model), _pad_id(tokenizer), tokenizer.mask_token_id
    results: list[np.ndarray | None] = [None] * len(probes)
    batches = _batches([len(ids) for ids, _ in probes], batch_size)
    with eval_mode(model):
        for chunk in tqdm(batches, desc=desc, disable=not show_progress, leave=False):
            masked = []
            for i in chunk:
                ids = list(probes[i][0])
                for position in probes[i][1]:
                    ids[position] = mask_id
                masked.append(ids)
            input_ids, attention_mask = _pad(masked, pad_id, device)
            logits = model(input_ids=input_ids, attention_mask=attention_mask).logits
            rows = torch.tensor([r for r, i in enumerate(chunk) for _ in probes[i][1]], device=device)
            cols = torch.tensor([p for i in chunk for p in probes[i][1]], device=device, dtype=torch.long)
            targets = torch.tensor([probes[i][0][p] for i in chunk for p in probes[i][1]], device=device)
            values = _gathered(logits[rows, cols], targets)
            _check_finite(values)
            values = values.double().cpu().numpy()
            start = 0
            for i in chunk:
                count = len(probes[i][1])
                results[i] = values[start : start + count]
                start += count
    return results


@torch.no_grad()
def causal_log_probs(
    model: nn.Module,
    tokenizer,
    sequences: Sequence[Sequence[int]],
    batch_size: int = 32,
    desc: str | None = None,
    show_progress: bool = False,
) -> list[np.ndarray]:
    """`log p(token_t | tokens_<t)` for every token after the first, many sequences per forward pass.

    Args:
        model (`nn.Module`): A causal LM (eval mode is set for the call).
        tokenizer: Its tokenizer (pad token).
        sequences (`Sequence[Sequence[int]]`): Token ids, each starting with its prefix token (see [`encode`]).
        batch_size (`int`, *optional*, defaults to 32): Sequences per forward pass.
        desc (`str`, *optional*): Progress-bar label.
        show_progress (`bool`, *optional*, defaults to `False`): Show a progress bar.

    Returns:
        `list[np.ndarray]`: per sequence, `len(sequence) - 1` float64 log-probabilities.

    Raises:
        NonFiniteScoresError: when a log-probability is `nan` or infinite.
    """
    device, pad_id = model_device(model), _pad_id(tokenizer)
    results: list[np.ndarray | None] = [None] * len(sequences)
    with eval_mode(model):
        for chunk in tqdm(
            _batches([len(s) for s in sequences], batch_size), desc=desc, disable=not show_progress, leave=False
        ):
            batch = [list(sequences[i]) for i in chunk]
            input_ids, attention_mask = _pad(batch, pad_id, device)
            # Right padding: real tokens keep positions 0..n-1, so no position ids are needed.
            logits = model(input_ids=input_ids, attention_mask=attention_mask).logits[:, :-1]
            values = _gathered(logits, input_ids[:, 1:])
            real = attention_mask[:, 1:].bool()
            _check_finite(values[real])
            values = values.double().cpu().numpy()
            for row, i in enumerate(chunk):
                results[i] = values[row, : len(sequences[i]) - 1]
    return results
