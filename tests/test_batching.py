"""Batches of rows of similar length (`batching.py`)."""

import random

import pytest

from gradiend_hf.batching import cheapest_parts, length_batches
from gradiend_hf.evaluation import LanguageModelingScorer

from .tiny_models import tiny_model


def test_batches_by_hand():
    # Longest first: 80, 78, 75 fill a batch of three (padding 7 of 240); 20 alone (with 11 the padding would be 9 of
    # 40, over 10 %); 11 and 10 (padding 1 of 22).
    hand = [[1, 4, 3], [2], [5, 0]]
    assert length_batches([10, 80, 20, 75, 78, 11], batch_size=3, max_padding=0.1, min_positions=0) == hand
    # Batches of at most `min_positions` positions are never cut for their padding.
    assert length_batches([10, 80, 20, 75, 78, 11], 3, max_padding=0.1, min_positions=240) == [[1, 4, 3], [2, 5, 0]]
    # Without a padding limit only the batch size cuts; ties keep the order given.
    assert length_batches([5, 5, 7, 5], batch_size=2, max_padding=1.0) == [[2, 0], [1, 3]]
    assert length_batches([], batch_size=4) == []


def test_every_row_once_and_padding_within_the_limit():
    rng = random.Random(0)
    lengths = [rng.randint(1, 120) for _ in range(500)]
    batches = length_batches(lengths, batch_size=32, max_padding=0.2, min_positions=0)
    assert sorted(i for batch in batches for i in batch) == list(range(500))
    previous = float("inf")
    for batch in batches:
        assert 1 <= len(batch) <= 32
        sizes = [lengths[i] for i in batch]
        assert sizes == sorted(sizes, reverse=True) and sizes[0] <= previous
        previous = sizes[-1]
        positions = len(batch) * sizes[0]
        assert positions - sum(sizes) <= 0.2 * positions


def test_sizes_count_towards_the_batch_size():
    # Rows holding 3, 1, 2, 4 and 1 sentences, a budget of 4 sentences per batch; without a padding limit.
    lengths, sizes = [50, 40, 30, 20, 10], [3, 1, 2, 4, 1]
    assert length_batches(lengths, 4, max_padding=1.0, sizes=sizes) == [[0, 1], [2], [3], [4]]
    # A row larger than the budget still gets a batch of its own.
    assert length_batches([9, 8], 2, max_padding=1.0, sizes=[5, 1]) == [[0], [1]]
    rng = random.Random(1)
    lengths = [rng.randint(1, 90) for _ in range(300)]
    sizes = [rng.randint(1, 6) for _ in range(300)]
    batches = length_batches(lengths, 16, sizes=sizes)
    assert sorted(i for batch in batches for i in batch) == list(range(300))
    assert all(sum(sizes[i] for i in batch) <= 16 for batch in batches)


def test_a_batch_size_below_one_is_refused():
    with pytest.raises(ValueError, match="batch_size"):
        length_batches([3, 4], batch_size=0)


def test_lms_batches_of_texts_of_very_different_lengths_waste_little_on_padding():
    _, tokenizer = tiny_model("gpt2")
    long = "It was a long and quiet evening, and the rain kept falling on the old roof of the house. " * 3
    texts = ["Yes."] * 24 + [long] * 8
    scorer = LanguageModelingScorer(tokenizer, texts, "causal_lm", batch_size=32)
    assert scorer.batches[0][0].numel() > 512  # large enough to be cut for its padding
    assert len(scorer.batches) == 2  # one batch of 32 would be mostly padding
    for _, mask, _ in scorer.batches:
        assert mask.float().mean() > 0.9


def all_partitions(items):
    """Every way to split `items` into non-empty parts (the plain enumeration)."""
    if not items:
        yield []
        return
    first, rest = items[0], items[1:]
    for partition in all_partitions(rest):
        yield [[first], *partition]
        for i in range(len(partition)):
            yield partition[:i] + [[first, *partition[i]]] + partition[i + 1 :]


def cost(parts, lengths, overhead):
    return sum(overhead + len(part) * max(lengths[i] for i in part) for part in parts)


@pytest.mark.parametrize("overhead", [0, 5, 20, 1000])
def test_cheapest_parts_cost_no_more_than_any_partition(overhead):
    rng = random.Random(overhead)
    for _ in range(30):
        lengths = [rng.randint(1, 40) for _ in range(rng.randint(1, 7))]
        parts = cheapest_parts(lengths, overhead)
        assert sorted(i for part in parts for i in part) == list(range(len(lengths)))
        best = min(cost(p, lengths, overhead) for p in all_partitions(list(range(len(lengths)))))
        assert cost(parts, lengths, overhead) == best
        assert [lengths[i] for part in parts for i in part] == sorted(lengths, reverse=True)


def test_cheapest_parts_by_hand():
    # One long row alone saves 3 · (30 - 10) = 60 padded positions, more than a pass costs (10).
    assert cheapest_parts([10, 30, 10, 10], 10) == [[1], [0, 2, 3]]
    # A pass costing more than all the padding keeps one part; no overhead puts each length in its own part.
    assert cheapest_parts([10, 30, 10, 10], 100) == [[1, 0, 2, 3]]
    assert cheapest_parts([3, 1, 3, 2], 0) == [[0, 2], [3], [1]]
    assert cheapest_parts([], 5) == []
    with pytest.raises(ValueError, match="overhead_positions"):
        cheapest_parts([1], -1)
