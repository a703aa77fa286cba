"""Exact top-k selection over per-parameter tensors, never concatenating them: the math behind
`GradiendModel.topk`, pruning ([`gradiend_hf.pruning`]) and top-k comparisons ([`gradiend_hf.comparison`]).

[`select_topk`] finds the k-th largest value by bisection on the float bit patterns (31 counting passes over the
per-parameter tensors), which is exact and needs no memory beyond the scores themselves.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import torch

from .errors import GradiendError


_POSITIVE_FLOAT_BITS = 2**31  # int32 patterns of non-negative float32 values sort like the values themselves


class PruningError(GradiendError):
    """Raised when a pruning or top-k request cannot be met (bad `k`, nothing to keep, no sample gradients)."""


def resolve_k(k: int | float, total: int) -> int:
    """Turns a count or a share into a number of entries to keep.

    Args:
        k (`int` or `float`): A count (`int` ≥ 1, clipped to `total`) or a share of `total` in (0, 1] (rounded up, at
            least 1; `1.0` keeps everything).
        total (`int`): Number of entries to choose from.

    Returns:
        `int`: between 1 and `total`.

    Raises:
        PruningError: for a non-positive count, a share outside (0, 1] or a boolean.
    """
    if isinstance(k, bool) or not isinstance(k, (int, float)):
        raise PruningError(f"`k` must be a count (int) or a share in (0, 1] (float), got {k!r}.")
    if isinstance(k, float):
        if not 0.0 < k <= 1.0:
            raise PruningError(f"A share `k` must lie in (0, 1], got {k}; pass an int to keep a fixed count.")
        return max(1, min(total, math.ceil(k * total)))
    if k < 1:
        raise PruningError(f"`k` must keep at least 1 entry, got {k}.")
    return min(int(k), total)


@torch.no_grad()
def select_topk(scores: Mapping[str, torch.Tensor], k: int) -> dict[str, torch.Tensor]:
    """The `k` largest entries of several non-negative score tensors, exactly and without concatenating them.

    The k-th largest value is found by bisection over the int32 bit patterns of the float32 scores (for non-negative
    floats the patterns are ordered like the values), counting per tensor at each of the 31 steps. Entries strictly
    above it are kept, and ties at it are broken in favour of the earlier tensor (in `scores` order) and the lower
    flat position, so the result is deterministic.

    Args:
        scores (`Mapping[str, torch.Tensor]`): name → non-negative scores of any shape (read flat). NaNs are not
            allowed.
        k (`int`): How many entries to keep in total (clipped to the number of entries).

    Returns:
        `dict[str, torch.LongTensor]`: name → sorted flat positions of its kept entries, for the names that keep at
        least one entry, in `scores` order.
    """
    bits = {}
    for name, value in scores.items():
        value = value.detach().reshape(-1).float().abs()  # abs() also turns -0.0 into +0.0
        if torch.isnan(value).any():
            raise PruningError(f"The importance of {name!r} contains NaN; the GRADIEND's weights are broken.")
        bits[name] = value.view(torch.int32)
    total = sum(b.numel() for b in bits.values())
    if total == 0:
        raise PruningError("There is nothing to select from: no entries were scored.")
    k = min(k, total)

    def count_at_least(threshold: int) -> int:
        return sum(int((b >= threshold).sum()) for b in bits.values())

    low, high = 0, _POSITIVE_FLOAT_BITS  # count(≥ low) ≥ k holds, count(≥ high) = 0 < k
    while high - low > 1:
        middle = (low + high) // 2
        if count_at_least(middle) >= k:
            low = middle
        else:
            high = middle
    ties_left = k - count_at_least(low + 1)
    kept = {}
    for name, b in bits.items():
        mask = b > low
        if ties_left > 0:
            ties = (b == low).nonzero().reshape(-1)[:ties_left]
            mask[ties] = True
            ties_left -= ties.numel()
        positions = mask.nonzero().reshape(-1)
        if positions.numel():
            kept[name] = positions
    return kept


@torch.no_grad()
def topk_entries(
    importances: Iterable[tuple[str, torch.Tensor]],
    k: int,
    shapes: Sequence[Sequence[int]],
    offsets: Sequence[int],
    kept_positions: Mapping[str, torch.Tensor | None],
) -> list[dict[str, Any]]:
    """The `k` most important entries over several parameters: per-parameter candidates, then one merge.

    Args:
        importances (`Iterable[tuple[str, torch.Tensor]]`): `(name, importance)` per covered parameter, one value per
            GRADIEND input dimension, in GRADIEND order.
        k (`int`): How many entries to return (at least 1).
        shapes (`Sequence[Sequence[int]]`): The shape of each parameter, in the same order.
        offsets (`Sequence[int]`): Where each parameter starts in the flat selection global indices count in.
        kept_positions (`Mapping[str, torch.Tensor | None]`): name → the flat positions a pruned GRADIEND keeps
            (`None` when it covers the parameter in full), so indices refer to base-parameter positions.

    Returns:
        `list[dict]`: most important first, each with `parameter`, `position` (index tuple), `global_index` and
        `importance`.
    """
    if k < 1:
        raise PruningError(f"`k` must be at least 1, got {k}.")
    names, values, params, locals_ = [], [], [], []
    for position, (name, value) in enumerate(importances):
        flat = value.reshape(-1).float().cpu()
        top = torch.topk(flat, min(k, flat.numel()))
        kept = kept_positions.get(name)
        names.append(name)
        values.append(top.values)
        params.append(torch.full_like(top.indices, position))
        locals_.append(top.indices if kept is None else kept.cpu()[top.indices])
    merged = torch.cat(values)
    best = torch.topk(merged, min(k, merged.numel()))
    results = []
    for value, param, local in zip(
        best.values.tolist(), torch.cat(params)[best.indices].tolist(), torch.cat(locals_)[best.indices].tolist()
    ):
        shape = shapes[param]
        index = tuple(int(i) for i in torch.unravel_index(torch.tensor(local), tuple(shape))) if shape else ()
        results.append(
            {
                "parameter": names[param],
                "position": index,
                "global_index": int(offsets[param] + local),
                "importance": float(value),
            }
        )
    return results
