"""Causal-LM sentences that begin alike packed into one row (`benchmarks/packing.py`): the trees, the masks, and
log-probabilities equal to one plain forward per sentence, on GPT-2 and Llama with eager and SDPA attention."""

import functools
import random

import numpy as np
import pytest
import torch
from datasets import Dataset

from gradiend_hf.benchmarks import BenchmarkError, scoring
from gradiend_hf.benchmarks.packing import may_pack, pack_sentences, packed_inputs
from gradiend_hf.benchmarks.scoring import family_of, log_probs
from gradiend_hf.benchmarks.winobias import WinoBiasTask
from gradiend_hf.model_layers import layer_stack

from .test_benchmarks_scoring import hand_sentence_ll
from .tiny_models import tiny_model


CAUSAL = family_of(objective="causal_lm")


def sentences(vocab: int, seed: int = 0) -> list[list[int]]:
    """Sentences with long and short shared beginnings, a duplicate, one that is the beginning of another and one
    that shares nothing but its first token."""
    rng = random.Random(seed)

    def words(n):
        return [rng.randrange(5, vocab) for _ in range(n)]

    stem, other = [1, *words(6)], [1, *words(3)]
    out = [stem + words(k) for k in (4, 2, 5, 1)]
    out += [other + words(4), other + words(6), stem[:3] + words(5), stem[:5]]
    out += [list(out[0]), [1, *words(7)], [2, *words(4)]]
    return out


def prefixes_of(sequences):
    return {tuple(ids[: n + 1]) for ids in sequences for n in range(len(ids))}


def test_every_sentence_once_and_one_node_per_distinct_prefix():
    seqs = sentences(200)
    rows = pack_sentences(seqs, max_members=4)
    assert sorted(m for row in rows for m in row.members) == list(range(len(seqs)))
    for row in rows:
        assert 1 <= len(row.members) <= 4
        members = [seqs[m] for m in row.members]
        assert len(row) == len(prefixes_of(members))
        for ids, path in zip(members, row.paths):
            assert [row.tokens[node] for node in path] == ids
            assert [row.depths[node] for node in path] == list(range(len(ids)))
            assert [row.parents[node] for node in path] == [-1, *path[:-1]]
        # Sorted members: each shares at least `min_shared` (2) leading tokens with the one before it.
        for a, b in zip(members, members[1:]):
            assert a <= b and a[:2] == b[:2]
    # The sentence that shares only its first token with the others stays in a row of its own.
    lone = next(row for row in rows if len(seqs) - 1 in row.members)
    assert lone.members == [len(seqs) - 1]


def test_the_mask_lets_each_node_see_exactly_its_prefix():
    seqs = sentences(200)
    rows = pack_sentences(seqs)
    inputs = packed_inputs(rows, pad_id=0, dtype=torch.float32)
    length = max(len(row) for row in rows)
    assert inputs["attention_mask"].shape == (len(rows), 1, length, length)
    for b, row in enumerate(rows):
        prefix = {}
        for ids, path in zip((seqs[m] for m in row.members), row.paths):
            for n, node in enumerate(path):
                prefix[node] = tuple(ids[: n + 1])
        sees = inputs["attention_mask"][b, 0] == 0
        for j in range(length):
            for i in range(length):
                if j < len(row) and i < len(row):
                    expected = prefix[j][: len(prefix[i])] == prefix[i]  # node i's prefix begins node j's
                else:
                    expected = i == j  # padding sees only itself
                assert bool(sees[j, i]) == expected, (b, j, i)
        assert inputs["position_ids"][b, : len(row)].tolist() == row.depths
        assert inputs["input_ids"][b, : len(row)].tolist() == row.tokens


def test_bad_packing_settings_are_refused():
    with pytest.raises(ValueError, match="max_members"):
        pack_sentences([[1, 2]], max_members=0)
    model, tokenizer = tiny_model("gpt2")
    probes = [([1, 5, 6, 7], range(1, 4)), ([1, 5, 6, 8], range(1, 4))]
    for pack in (True, False):
        with pytest.raises(BenchmarkError, match="batch_size"):
            log_probs(model, tokenizer, probes, CAUSAL, batch_size=0, pack_prefixes=pack)


def hand_log_probs(model, ids):
    """One forward per sentence, no padding, no mask: the log-probability of every token after the first."""
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([ids])).logits[0].double()
    return np.array([float(torch.log_softmax(logits[t - 1], -1)[ids[t]]) for t in range(1, len(ids))])


class PositionCounter:
    """Counts the positions that enter the model's first layer."""

    def __init__(self, model):
        self.positions = 0
        self.handle = layer_stack(model)[0].register_forward_pre_hook(self.count)

    def count(self, module, args):
        self.positions += args[0].shape[0] * args[0].shape[1]


@pytest.mark.parametrize("family", ["gpt2", "llama"])
@pytest.mark.parametrize("attn", ["eager", "sdpa"])
def test_packed_log_probs_equal_one_forward_per_sentence(family, attn):
    model, tokenizer = tiny_model(family, seed=3, attn=attn)
    seqs = sentences(len(tokenizer))
    probes = [(ids, range(1, len(ids))) for ids in seqs]
    probes.append((seqs[1], [2, 5]))  # a probe of some positions only
    # A batch size of 3 sentences splits the rows over several forward passes.
    values = log_probs(model, tokenizer, probes, CAUSAL, batch_size=3)
    assert scoring._PACKING_CHECKED[model] == (attn, True)
    counter = PositionCounter(model)  # after the one-time checks
    assert [a.tolist() for a in log_probs(model, tokenizer, probes, CAUSAL, batch_size=3)] == [
        a.tolist() for a in values
    ]
    packed_positions, counter.positions = counter.positions, 0
    plain = log_probs(model, tokenizer, probes, CAUSAL, batch_size=3, pack_prefixes=False)
    assert packed_positions < counter.positions
    for (ids, positions), got, unpacked in zip(probes, values, plain):
        expected = hand_log_probs(model, ids)[np.asarray(positions) - 1]
        np.testing.assert_allclose(got, expected, atol=1e-5)
        np.testing.assert_allclose(unpacked, expected, atol=1e-5)


def _without_packing_inputs(forward, *args, position_ids=None, attention_mask=None, **kwargs):
    """A backbone that ignores position ids and a 4D mask (it keeps a 2D padding mask)."""
    if attention_mask is not None and attention_mask.dim() == 2:
        kwargs["attention_mask"] = attention_mask
    return forward(*args, **kwargs)


def test_a_model_that_ignores_the_packed_inputs_keeps_one_row_per_sentence():
    model, tokenizer = tiny_model("gpt2", seed=4)
    model.transformer.forward = functools.partial(_without_packing_inputs, model.transformer.forward)
    seqs = sentences(len(tokenizer), seed=1)
    probes = [(ids, range(1, len(ids))) for ids in seqs]
    values = log_probs(model, tokenizer, probes, CAUSAL, batch_size=4)
    assert scoring._PACKING_CHECKED[model] == ("eager", False)
    for (ids, _), got in zip(probes, values):
        np.testing.assert_allclose(got, hand_log_probs(model, ids), atol=1e-5)


def test_only_decoders_whose_attention_takes_a_given_mask_are_packed():
    model, _ = tiny_model("llama")
    assert may_pack(model)
    model.config._attn_implementation = "flash_attention_2"
    assert not may_pack(model)
    assert not may_pack(tiny_model("t5")[0])


def test_winobias_rows_packed_and_plain_give_the_same_scores():
    model, tokenizer = tiny_model("llama", seed=5, attn="sdpa")
    pairs = [
        ("the doctor said that he was tired .", "the doctor said that she was tired ."),
        ("the doctor said that he would come .", "the doctor said that she would come ."),
        ("my sister thought that she was right .", "my sister thought that he was right ."),
    ]
    rows = Dataset.from_list(
        [
            {"id": i, "pro_sentence": a, "anti_sentence": b, "pro_gender": "male", "bias_type": "gender"}
            for i, (a, b) in enumerate(pairs)
        ]
    )
    task = WinoBiasTask(tokenizer, "causal_lm", rows, batch_size=4)
    packed = task(model)
    for row, (pro, anti) in zip(packed.itertuples(), pairs):
        assert row.pro_score == pytest.approx(hand_sentence_ll(model, tokenizer, pro), abs=1e-4)
        assert row.anti_score == pytest.approx(hand_sentence_ll(model, tokenizer, anti), abs=1e-4)
