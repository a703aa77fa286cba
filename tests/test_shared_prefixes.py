"""Sequences that begin another run inside it (`objectives/shared_prefixes.py`): the same log-probs, gradients and
encodings as every sequence run on its own, with fewer sequences through the model; batches that could be wrong
for it are left alone."""

import random

import pytest
import torch

from gradiend_hf import GradiendModel
from gradiend_hf.gradients import encode_rows_loop, encode_texts, group_gradients
from gradiend_hf.objectives import get_objective, logits
from gradiend_hf.objectives.shared_prefixes import prefix_groups, prefix_hosts, share_prefixes

from .tiny_models import tiny_model


# Rows whose prefixes begin one another ("The doctor said that" begins "The doctor said that she"), an unrelated
# row, a duplicate and rows of two-token words.
MASKED = [
    "The doctor said that [MASK] would come home.",
    "The doctor said that she [MASK] come home.",
    "The doctor [MASK] that she would come home.",
    "Yesterday the old farmer told us that [MASK] was tired.",
    "The doctor said that [MASK] would come home.",
    "The doctor said that she would [MASK] home.",
]
FACTUAL = ["she", "would", "said", "he", "she", "come"]
ALTERNATIVE = ["he", "could", "told", "she", "he", "go"]


class SequenceCounter:
    """Counts the sequences and positions that enter the model's embedding (not those of the one-time checks)."""

    def __init__(self, model):
        self.sequences, self.positions = [], []

        def count(_, args):
            if not logits.in_check_pass():
                self.sequences.append(args[0].shape[0])
                self.positions.append(args[0].numel())

        model.get_input_embeddings().register_forward_pre_hook(count)


def _unshared(objective):
    """The same objective with the sharing turned off (the plain computation)."""
    objective.shares_prefix_sequences = False
    return objective


def _hand_log_probs(objective, model, batch):
    """Log-probs at every read, each sequence run alone without padding (the plain computation)."""
    rows = []
    for sequence, position in zip(batch.read_sequences.tolist(), batch.read_positions.tolist()):
        real = batch.attention_mask[sequence].bool()
        ids = batch.input_ids[sequence][real].unsqueeze(0)
        start = int(real.nonzero()[0])
        with torch.no_grad():
            logits = model(input_ids=ids, position_ids=torch.arange(ids.shape[1]).unsqueeze(0)).logits
        rows.append(logits[0, position - start].float().log_softmax(-1))
    return torch.stack(rows)


def test_every_host_begins_with_its_sequence_and_begins_no_other():
    rng = random.Random(0)
    for _ in range(200):
        sequences = [[rng.randrange(3) for _ in range(rng.randrange(1, 5))] for _ in range(rng.randrange(1, 12))]
        hosts = prefix_hosts(sequences)
        for i, host in enumerate(hosts):
            assert sequences[host][: len(sequences[i])] == sequences[i]
            assert hosts[host] == host
            longer = [j for j, other in enumerate(sequences) if len(other) > len(sequences[host])]
            assert not any(sequences[j][: len(sequences[host])] == sequences[host] for j in longer)
            if not any(j != i and other[: len(sequences[i])] == sequences[i] for j, other in enumerate(sequences)):
                assert host == i


def test_rows_sharing_a_sequence_are_grouped_with_their_longest_sequence_and_one_running_row():
    sequences = [[1, 2], [1, 2, 3], [4], [1, 2, 3, 5], [4], [7, 8], [7, 9]]
    groups, lengths, sizes = prefix_groups(sequences, [0, 1, 2, 3, 4, 5, 5], 6)
    assert groups == [[0, 1, 3], [2, 4], [5]]
    assert lengths == [4, 1, 2]
    assert sizes == [1, 1, 1]
    # A row of two sequences, one of them inside another row's: both rows still run one.
    groups, lengths, sizes = prefix_groups([[5], [1, 2], [1, 2, 3]], [0, 0, 1], 2)
    assert (groups, lengths, sizes) == ([[0, 1]], [3], [2])


@pytest.mark.parametrize("family", ["gpt2", "llama"])
@pytest.mark.parametrize("attn", ["eager", "sdpa"])
@pytest.mark.parametrize("padding_side", ["left", "right"])
def test_log_probs_equal_every_sequence_run_alone_with_fewer_sequences(family, attn, padding_side):
    model, tokenizer = tiny_model(family, attn=attn)
    objective = get_objective(model, tokenizer)
    assert objective.shares_prefix_sequences
    batch = objective.prepare(MASKED, FACTUAL, ALTERNATIVE, padding_side=padding_side)
    counter = SequenceCounter(model)
    with torch.no_grad():
        shared = objective.target_log_probs(model, batch)
    # Rows 0 and 4 are one sequence, inside row 1's, itself inside row 5's; row 2's ("The doctor") is inside them
    # too; row 3 runs alone.
    assert counter.sequences == [2] and len(batch.input_ids) == 6
    torch.testing.assert_close(shared, _hand_log_probs(objective, model, batch), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("family", ["gpt2", "llama"])
def test_gradients_through_shared_sequences_equal_the_plain_ones(family):
    model, tokenizer = tiny_model(family, seed=1)
    objective = get_objective(model, tokenizer)
    batch = objective.prepare(MASKED, FACTUAL, ALTERNATIVE)
    names = [name for name, _ in model.named_parameters() if ".layers." in name or ".h." in name]
    shared = group_gradients(model, objective, batch, names, kinds=("factual", "diff"))
    plain = group_gradients(model, _unshared(get_objective(model, tokenizer)), batch, names, kinds=("factual", "diff"))
    for kind in ("factual", "diff"):
        for name in names:
            torch.testing.assert_close(shared[kind][name], plain[kind][name], rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("family", ["gpt2", "llama"])
def test_encodings_of_rows_and_their_re_blankings_equal_the_plain_ones_with_fewer_positions(family):
    model, tokenizer = tiny_model(family, seed=2)
    torch.manual_seed(0)
    gradiend = GradiendModel.from_base_model(model)
    with torch.no_grad():
        for parameter in gradiend.parameters():
            parameter.normal_(0, 0.05)
    objective = get_objective(model, tokenizer)
    # Each sentence blanked at its class word and again at a later word, the partners far apart in the list.
    sentences = [
        ("The teacher said that {} was late today", "she", "late"),
        ("My old neighbour thinks {} will win the race", "he", "win"),
        ("After the long meeting {} went home early", "she", "home"),
        ("Everyone knew that {} had been right all along", "he", "right"),
    ]
    masked, factual, alternative = [], [], []
    for text, word, _ in sentences:
        masked.append(text.format("[MASK]") + ".")
        factual.append(word), alternative.append("he" if word == "she" else "she")
    for text, word, later in sentences:
        filled = text.format(word) + "."
        masked.append(filled.replace(f" {later} ", " [MASK] ", 1))
        factual.append(later), alternative.append(later)
    counter = SequenceCounter(model)
    shared = encode_texts(gradiend, model, objective, masked, factual, alternative, batch_size=2)
    assert counter.sequences == [2, 2]  # each row with its re-blanking, two pairs per pass
    shared_positions = sum(counter.positions)
    counter.positions.clear()
    plain = encode_texts(gradiend, model, _unshared(objective), masked, factual, alternative, batch_size=2)
    torch.testing.assert_close(shared, plain, rtol=1e-5, atol=1e-7)
    assert shared_positions < sum(counter.positions)
    reference = encode_rows_loop(
        gradiend, model, get_objective(model, tokenizer), objective.prepare(masked, factual, alternative)
    )
    torch.testing.assert_close(shared, reference.double(), rtol=1e-4, atol=1e-6)


def _inputs(model, tokenizer):
    objective = get_objective(model, tokenizer)
    batch = objective.prepare(MASKED[:2], FACTUAL[:2], ALTERNATIVE[:2])
    return batch.model_inputs(), batch.read_sequences, batch.read_positions


def test_batches_that_sharing_could_change_are_left_alone():
    model, tokenizer = tiny_model("llama")
    inputs, sequences, positions = _inputs(model, tokenizer)
    kept, _, _ = share_prefixes(inputs, sequences, positions)
    assert len(kept["input_ids"]) == 1  # the first row's sequence runs inside the second's
    without_positions = {k: v for k, v in inputs.items() if k != "position_ids"}
    assert share_prefixes(without_positions, sequences, positions)[0] is without_positions
    with_types = inputs | {"token_type_ids": torch.zeros_like(inputs["input_ids"])}
    assert share_prefixes(with_types, sequences, positions)[0] is with_types
    holes = dict(inputs)
    holes["attention_mask"] = inputs["attention_mask"].clone()
    holes["attention_mask"][1, -2] = 0  # real tokens in two runs
    assert share_prefixes(holes, sequences, positions)[0] is holes
    on_padding = positions.clone()
    on_padding[0] = 0  # the shorter, left-padded sequence read on a padding position
    assert share_prefixes(inputs, sequences, on_padding)[0] is inputs
    moved = dict(inputs)
    moved["position_ids"] = inputs["position_ids"] + torch.tensor([[1], [0]])  # the same tokens at other positions
    assert share_prefixes(moved, sequences, positions)[0] is moved


@pytest.mark.parametrize("family", ["bert", "t5"])
def test_objectives_that_read_the_right_context_share_nothing(family):
    model, tokenizer = tiny_model(family)
    assert not get_objective(model, tokenizer).shares_prefix_sequences
