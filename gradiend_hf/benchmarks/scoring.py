"""Batched log-probabilities of the tokens the benchmarks score, for both kinds of language model.

A *probe* is `(token ids, positions)`: the log-probability of the original token at each position is read. How it
is read is a fact of the model family ([`Objective.reads_right_context`]):

- A model that reads the text on both sides of a token (a masked LM) sees the probe's positions replaced by the mask
  token together and predicts the original tokens there. CrowS-Pairs' pseudo-log-likelihood masks one shared token
  per probe; WinoBias masks the words that differ between its two sentences in one probe; StereoSet masks one token
  of the blank's word per probe.
- A model that reads only the text before a token (a causal LM) scores token `t` with its logits at `t - 1`; its
  probe is a whole sentence after the tokenizer's BOS token (EOS when it has none), as lm-evaluation-harness scores a
  continuation of an empty context.

[`log_probs`] batches many probes per forward pass on the model's device (never one forward per token); a causal LM's
sentences that begin alike share one row, their beginning computed once ([`gradiend_hf.benchmarks.packing`]).
[`shared_positions`] aligns two tokenized sentences as the CrowS-Pairs paper does (`difflib` matching blocks).
"""

from __future__ import annotations

import difflib
import logging
import weakref
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from ..batching import length_batches
from ..evaluation.runtime import eval_mode, model_device
from ..objectives import Objective, detect_objective, logits_at, objective_class
from ..objectives.logits import check_pass
from .errors import BenchmarkError
from .packing import PackedRow, may_pack, pack_sentences, packed_inputs


logger = logging.getLogger(__name__)

Probe = tuple[Sequence[int], Sequence[int]]


class NonFiniteScoresError(BenchmarkError):
    """The model gave `nan` or infinite log-probabilities: its weights are broken (for example a rewrite with too large
    a learning rate). Score a smaller learning rate, or check the model in float32."""


def family_of(model: nn.Module | None = None, objective: str | type[Objective] | None = None) -> type[Objective]:
    """The objective class a model is scored as: `objective` (a class or its name) when given, else detected.

    Raises:
        ObjectiveError: for an unknown objective name, or a model that is neither a masked nor a causal LM.
        BenchmarkError: for a family the benchmarks cannot score (seq2seq LMs).
    """
    if isinstance(objective, type) and issubclass(objective, Objective):
        family = objective
    else:
        family = objective_class(objective if objective is not None else detect_objective(model))
    if not family.scores_benchmarks:
        raise BenchmarkError(
            f"The bias benchmarks score masked and causal LMs; {family.name} models are not supported yet. Evaluate "
            "the rewrite with `evaluate_decoder` (class probabilities and LMS) instead."
        )
    return family


def check_tokenizer(tokenizer, family: type[Objective]) -> None:
    """Raises `BenchmarkError` when `family` cannot be scored with `tokenizer`: a masked LM's tokenizer needs a mask
    token, a causal LM's a BOS or EOS token (the prefix of every sentence)."""
    if family.reads_right_context and tokenizer.mask_token_id is None:
        raise BenchmarkError("This tokenizer has no mask token, so a masked LM cannot be scored with it.")
    if not family.reads_right_context and tokenizer.bos_token_id is None and tokenizer.eos_token_id is None:
        raise BenchmarkError(
            "This tokenizer has neither a BOS nor an EOS token, so the first word of a sentence cannot be scored; "
            "set `tokenizer.bos_token`."
        )


def encode(tokenizer, texts: Sequence[str], family: str | type[Objective], max_length: int = 256) -> list[list[int]]:
    """Token ids of `texts` as a family (an objective class or name) scores them.

    A model that reads both sides gets the tokenizer's own special tokens ([CLS] … [SEP]); one that reads left to
    right gets the text without special tokens after one prefix token (BOS, else EOS), so the first word is scored.
    """
    family = family_of(objective=family)
    check_tokenizer(tokenizer, family)
    if family.reads_right_context:
        encoded = tokenizer(list(texts), truncation=True, max_length=max_length)["input_ids"]
        return [list(ids) for ids in encoded]
    prefix = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
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


def _batches(lengths: Sequence[int], batch_size: int, sizes: Sequence[int] | None = None) -> list[list[int]]:
    # Similar lengths together: less padding, fewer wasted positions per forward pass.
    return length_batches(lengths, batch_size, sizes=sizes)


def _pad(sequences: list[list[int]], pad_id: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    length = max(len(s) for s in sequences)
    ids = torch.full((len(sequences), length), pad_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), length), dtype=torch.long)
    for row, sequence in enumerate(sequences):
        ids[row, : len(sequence)] = torch.tensor(sequence, dtype=torch.long)
        mask[row, : len(sequence)] = 1
    return ids.to(device), mask.to(device)


def _pad_id(tokenizer) -> int:
    for candidate in (tokenizer.pad_token_id, tokenizer.eos_token_id):
        if candidate is not None:
            return int(candidate)
    return 0


def _check_finite(values: torch.Tensor) -> None:
    if not bool(torch.isfinite(values).all()):
        raise NonFiniteScoresError(
            "The model's log-probabilities are not finite (nan or inf): its weights are broken, for example by a "
            "rewrite with too large a learning rate. Use a smaller learning rate, or load the model in float32."
        )


@torch.no_grad()
def log_probs(
    model: nn.Module,
    tokenizer,
    probes: Sequence[Probe],
    family: type[Objective],
    batch_size: int = 32,
    progress: str | None = None,
    pack_prefixes: bool = True,
) -> list[np.ndarray]:
    """Log-probabilities of each probe's original tokens at its positions, many probes per forward pass.

    Args:
        model (`nn.Module`): The language model (eval mode is set for the call; the weights are not changed).
        tokenizer: Its tokenizer (mask and pad token).
        probes (`Sequence[(token ids, positions)]`): What to score (see the module docstring).
        family (`type[Objective]`): How the model reads a token (see [`family_of`]).
        batch_size (`int`, *optional*, defaults to 32): Probes per forward pass.
        progress (`str`, *optional*): Label of a progress bar (none when not given).
        pack_prefixes (`bool`, *optional*, defaults to `True`): For a causal LM, score sentences that begin alike
            in one row of their prefix tree, the shared beginning once ([`gradiend_hf.benchmarks.packing`]; the
            same log-probabilities up to float rounding, checked once per model against the plain rows, which a
            model that fails the check keeps).

    Returns:
        `list[np.ndarray]`: per probe, one float64 log-probability per position (in the order given).

    Raises:
        NonFiniteScoresError: when a log-probability is `nan` or infinite.
    """
    if batch_size < 1:
        raise BenchmarkError(f"`batch_size` must be at least 1, got {batch_size}.")
    with eval_mode(model):
        if not family.reads_right_context and pack_prefixes and may_pack(model):
            rows = pack_sentences([ids for ids, _ in probes])
            if len(rows) < len(probes) and _packing_holds(model, tokenizer, probes, rows, family):
                return _packed_log_probs(model, tokenizer, probes, rows, batch_size, progress)
        return _plain_log_probs(model, tokenizer, probes, family, batch_size, progress)


def _plain_log_probs(model, tokenizer, probes, family, batch_size, progress) -> list[np.ndarray]:
    """[`log_probs`] with one row per probe."""
    device, pad_id = model_device(model), _pad_id(tokenizer)
    masked = family.reads_right_context
    # A model that reads only the left side predicts token t from the logits at t - 1.
    shift = 0 if masked else 1
    results: list[np.ndarray] = [np.empty(0)] * len(probes)
    batches = _batches([len(ids) for ids, _ in probes], batch_size)
    for chunk in tqdm(batches, desc=progress, disable=progress is None, leave=False):
        inputs = []
        for i in chunk:
            ids = list(probes[i][0])
            for position in probes[i][1] if masked else ():
                ids[position] = tokenizer.mask_token_id
            inputs.append(ids)
        rows = [r for r, i in enumerate(chunk) for _ in probes[i][1]]
        if not rows:
            continue
        cols = [p - shift for i in chunk for p in probes[i][1]]
        targets = [probes[i][0][p] for i in chunk for p in probes[i][1]]
        # Right padding: the real tokens keep positions 0..n-1, so no position ids are needed.
        input_ids, attention_mask = _pad(inputs, pad_id, device)
        inputs = {"input_ids": input_ids, "attention_mask": attention_mask}
        picked = logits_at(model, inputs, torch.tensor(rows), torch.tensor(cols)).float()
        chosen = picked.gather(-1, torch.tensor(targets, device=device).unsqueeze(-1)).squeeze(-1)
        values = chosen - torch.logsumexp(picked, dim=-1)
        _check_finite(values)
        values = values.double().cpu().numpy()
        start = 0
        for i in chunk:
            count = len(probes[i][1])
            results[i] = values[start : start + count]
            start += count
    return results


def _packed_log_probs(model, tokenizer, probes, rows: list[PackedRow], batch_size, progress) -> list[np.ndarray]:
    """[`log_probs`] of a causal LM's probes packed into `rows`: each node's logits computed once, however many
    sentences go through it, and each scored token read at the node of the token before it."""
    device, pad_id = model_device(model), _pad_id(tokenizer)
    dtype = next(model.parameters()).dtype
    results: list[np.ndarray] = [np.empty(0)] * len(probes)
    batches = _batches([len(row) for row in rows], batch_size, sizes=[len(row.members) for row in rows])
    for chunk in tqdm(batches, desc=progress, disable=progress is None, leave=False):
        batch = [rows[k] for k in chunk]
        reads: dict[tuple[int, int], int] = {}  # (row of the batch, node) -> index of its logits
        lookups = []  # per scored token: (index of its logits, the token)
        for b, row in enumerate(batch):
            for member, path in zip(row.members, row.paths):
                ids, positions = probes[member]
                for position in positions:
                    read = reads.setdefault((b, path[position - 1]), len(reads))
                    lookups.append((read, int(ids[position])))
        if not lookups:
            continue
        sequences, nodes = (torch.tensor(column) for column in zip(*reads))
        picked = logits_at(model, packed_inputs(batch, pad_id, dtype, device), sequences, nodes).float()
        at, targets = (torch.tensor(column, device=picked.device) for column in zip(*lookups))
        values = picked[at, targets] - torch.logsumexp(picked, dim=-1)[at]
        _check_finite(values)
        values = values.double().cpu().numpy()
        start = 0
        for row in batch:
            for member in row.members:
                count = len(probes[member][1])
                results[member] = values[start : start + count]
                start += count
    return results


# Causal LMs whose packed rows were checked against their plain rows: model -> (attention implementation, verdict).
_PACKING_CHECKED: weakref.WeakKeyDictionary[nn.Module, tuple[str, bool]] = weakref.WeakKeyDictionary()


def _packing_holds(model: nn.Module, tokenizer, probes: Sequence[Probe], rows: list[PackedRow], family) -> bool:
    """Whether packed rows give `model` the plain rows' log-probabilities, checked once per model (and attention
    implementation) on the packed row of the most sentences, as check passes (`FrozenPrefix` leaves them alone).

    A model that builds its own mask over a given 4D one, or ignores position ids, gives other numbers and keeps the
    plain rows. The tolerance is float rounding: packed and plain rows multiply matrices of other shapes.
    """
    implementation = model.config._attn_implementation
    known = _PACKING_CHECKED.get(model)
    if known is not None and known[0] == implementation:
        return known[1]
    sample = max(rows, key=lambda row: len(row.members))
    size = len(sample.members)
    with check_pass():
        plain = _plain_log_probs(model, tokenizer, [probes[m] for m in sample.members], family, size, None)
        scored = _packed_log_probs(model, tokenizer, probes, [sample], size, None)
    packed = [scored[m] for m in sample.members]
    dtype = next(model.parameters()).dtype
    tolerance = max(1e-4, 16 * torch.finfo(dtype).eps)
    verdict = all(np.allclose(a, b, rtol=tolerance, atol=tolerance) for a, b in zip(plain, packed))
    if not verdict:
        logger.info("%s scores packed rows differently; it keeps one row per sentence.", type(model).__name__)
    _PACKING_CHECKED[model] = (implementation, verdict)
    return verdict
