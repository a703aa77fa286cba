"""Batches of rows of similar length, so that little of a forward pass is spent on padding.

A batch is padded to its longest row; every padded position costs as much as a real token in every layer. Sorting
rows by length and cutting the sorted list into batches of `batch_size` rows still wastes much where lengths spread
widely (neutral sentences of 5 to 80 tokens put half of a batch's positions on padding). [`length_batches`] also
ends a batch before a row that would make its padding more than `max_padding` of its positions, once the batch is
large enough (`min_positions`) for its positions rather than its fixed overhead to cost most.
"""

from __future__ import annotations

from collections.abc import Sequence


def length_batches(
    lengths: Sequence[int],
    batch_size: int,
    max_padding: float = 0.1,
    min_positions: int = 512,
    sizes: Sequence[int] | None = None,
) -> list[list[int]]:
    """Indices of the rows in batches of similar length, the longest rows first.

    Args:
        lengths (`Sequence[int]`): The length of each row (tokens, or any measure that grows with them).
        batch_size (`int`): The most rows of one batch (with `sizes`: the largest sum of their sizes).
        max_padding (`float`, *optional*, defaults to 0.1): The largest share of a batch's positions
            (`rows · longest row`) that may be padding; a batch always holds at least one row.
        min_positions (`int`, *optional*, defaults to 512): A batch of at most this many positions is not cut for
            its padding: a forward pass over a few hundred tokens costs mostly its fixed overhead.
        sizes (`Sequence[int]`, *optional*): What each row counts towards `batch_size` (1 each by default), e.g. the
            sentences packed into it.

    Returns:
        `list[list[int]]`: every index once; within a batch and from batch to batch by non-increasing length (ties
        in the order given).
    """
    if batch_size < 1:
        raise ValueError(f"`batch_size` must be at least 1, got {batch_size}.")
    sizes = [1] * len(lengths) if sizes is None else sizes
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    batches: list[list[int]] = []
    current: list[int] = []
    total = size = 0
    for index in order:
        if current:
            longest = lengths[current[0]]
            positions = (len(current) + 1) * longest
            padding = positions - (total + lengths[index])
            full = size + sizes[index] > batch_size
            if full or (positions > min_positions and padding > max_padding * positions):
                batches.append(current)
                current, total, size = [], 0, 0
        current.append(index)
        total += lengths[index]
        size += sizes[index]
    if current:
        batches.append(current)
    return batches


def cheapest_parts(lengths: Sequence[int], overhead_positions: int) -> list[list[int]]:
    """The split of rows into passes that costs the fewest positions, each pass padded to its own longest row.

    A pass is charged `overhead_positions` (its fixed cost, in positions) plus `rows · longest row`. Some part of
    the optimum is always a run of the rows sorted by length, so a dynamic program over the sorted rows finds it.

    Args:
        lengths (`Sequence[int]`): The length of each row.
        overhead_positions (`int`): The fixed cost of one pass, as the positions that cost as much.

    Returns:
        `list[list[int]]`: every index once, the longest rows first (ties in the order given).
    """
    if overhead_positions < 0:
        raise ValueError(f"`overhead_positions` must not be negative, got {overhead_positions}.")
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    # best[k]: cost of the first k sorted rows (longest first); cut[k]: where the last part of that split begins.
    best = [0] * (len(order) + 1)
    cut = [0] * (len(order) + 1)
    for end in range(1, len(order) + 1):
        best[end], cut[end] = min(
            (best[start] + overhead_positions + (end - start) * lengths[order[start]], start) for start in range(end)
        )
    parts = []
    end = len(order)
    while end:
        parts.append(order[cut[end] : end])
        end = cut[end]
    return parts[::-1]
