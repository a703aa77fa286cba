"""Sequences that begin another sequence: one forward pass over the longer one serves both.

A causal LM computes the logits at a position from the tokens up to it alone. A sequence whose tokens (and position
ids) are the first tokens of another sequence of the same batch therefore has at each of its positions the logits
the longer one has there, and need not run at all. The encoder evaluation meets this at almost every test row: its
neutral re-blanking reads the same sentence up to another word, so one of the two prefixes begins the other (the
demo's 1260 rows: 24714 positions, 17870 once the shorter of each such pair is left out).

- [`share_prefixes`] leaves such sequences out of a batch's model inputs and moves their reads to the sequence they
  begin; [`Objective.target_log_probs`] applies it for the objectives that say it holds (`shares_prefix_sequences`).
- [`prefix_groups`] groups rows so that rows sharing a sequence land in one batch ([`gradiend_hf.gradients.
  encode_texts`]).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


# The model inputs whose meaning the sharing keeps: tokens, padding and explicit positions (any other input, e.g.
# token types, could make two equal token sequences differ).
_SHAREABLE_INPUTS = {"input_ids", "attention_mask", "position_ids"}


def prefix_hosts(sequences: Sequence[Sequence[int]]) -> list[int]:
    """For each sequence, the index of a sequence that begins with it and begins no other (itself when no other
    begins with it; of equal sequences one hosts the rest).

    In lexicographic order a sequence that begins any other begins the one right after it (every sequence between
    the two begins with it too), so one pass from the end finds every host.

    Args:
        sequences (`Sequence[Sequence[int]]`): Token ids (or any comparable items) of each sequence.

    Returns:
        `list[int]`: the host of each sequence.
    """
    keys = [tuple(sequence) for sequence in sequences]
    order = sorted(range(len(keys)), key=keys.__getitem__)
    hosts = list(range(len(keys)))
    for rank in range(len(order) - 2, -1, -1):
        index, following = order[rank], order[rank + 1]
        if keys[following][: len(keys[index])] == keys[index]:
            hosts[index] = hosts[following]
    return hosts


def share_prefixes(
    inputs: dict[str, torch.Tensor], sequences: torch.Tensor, positions: torch.Tensor
) -> tuple[dict[str, torch.Tensor], torch.Tensor, torch.Tensor]:
    """The model inputs without the sequences that begin another one, and the reads moved to the one they begin.

    Only for a causal LM (the caller's objective says so). The batch must give explicit `position_ids` (a model that
    numbers positions by column would read a left-padded sequence's tokens elsewhere in its host) and no input
    besides tokens, attention mask and positions; each sequence's real tokens must be one run, and every read must
    be on a real token. Any other batch comes back unchanged.

    Args:
        inputs (`dict[str, torch.Tensor]`): `input_ids`, `attention_mask` and `position_ids`, `(batch, length)` each.
        sequences (`torch.LongTensor` of shape `(reads,)`), positions (`torch.LongTensor` of shape `(reads,)`): The
            sequence and position of each read.

    Returns:
        `(inputs, sequences, positions)`: the same reads, in the kept sequences.
    """
    unchanged = inputs, sequences, positions
    ids, mask, position_ids = inputs["input_ids"], inputs.get("attention_mask"), inputs.get("position_ids")
    if set(inputs) - _SHAREABLE_INPUTS or mask is None or position_ids is None or len(ids) < 2:
        return unchanged
    lengths = mask.sum(-1)
    starts = mask.argmax(-1)
    columns = torch.arange(ids.shape[1], device=ids.device)
    runs = (columns >= starts[:, None]) & (columns < (starts + lengths)[:, None])
    if bool((lengths == 0).any()) or not torch.equal(runs, mask.bool()):
        return unchanged
    sequences, positions = sequences.to(ids.device), positions.to(ids.device)
    offsets = positions - starts[sequences]
    if bool(((offsets < 0) | (offsets >= lengths[sequences])).any()):
        return unchanged
    tokens, numbers = ids[runs].tolist(), position_ids.to(ids.device)[runs].tolist()
    keys, first = [], 0
    for length in lengths.tolist():
        keys.append(list(zip(tokens[first : first + length], numbers[first : first + length])))
        first += length
    hosts = prefix_hosts(keys)
    kept = sorted(set(hosts))
    if len(kept) == len(hosts):
        return unchanged
    index = torch.tensor(kept, device=ids.device)
    renumber = torch.full((len(hosts),), -1, dtype=torch.long, device=ids.device)
    renumber[index] = torch.arange(len(kept), device=ids.device)
    host_of = torch.tensor(hosts, device=ids.device)[sequences]
    shared = {name: value[index] for name, value in inputs.items()}
    return shared, renumber[host_of], starts[host_of] + offsets


def prefix_groups(
    sequences: Sequence[Sequence[int]], sequence_rows: Sequence[int], num_rows: int
) -> tuple[list[list[int]], list[int], list[int]]:
    """Rows grouped so that any two rows of which one has a sequence beginning a sequence of the other are in one
    group (a batch made of whole groups then runs each shared sequence once).

    Args:
        sequences (`Sequence[Sequence[int]]`): The token ids of every sequence of the rows (no padding).
        sequence_rows (`Sequence[int]`): The row of each sequence.
        num_rows (`int`): The rows.

    Returns:
        `(groups, lengths, sizes)`: the rows of each group (in row order, the groups by their first row), the tokens
        of each group's longest sequence and how many of its rows still run a sequence once the shared ones are left
        out (a batch counted by these holds as many forward-pass rows as one of ungrouped rows).
    """
    parent = list(range(num_rows))

    def root(row: int) -> int:
        while parent[row] != row:
            parent[row] = parent[parent[row]]
            row = parent[row]
        return row

    hosts = prefix_hosts(sequences)
    for sequence, host in enumerate(hosts):
        a, b = root(sequence_rows[sequence]), root(sequence_rows[host])
        if a != b:
            parent[max(a, b)] = min(a, b)
    members: dict[int, list[int]] = {}
    for row in range(num_rows):
        members.setdefault(root(row), []).append(row)
    runs: dict[int, set[int]] = {}
    for host in hosts:
        runs.setdefault(root(sequence_rows[host]), set()).add(host)
    groups = list(members.values())
    lengths = [max((len(sequences[h]) for h in runs.get(group[0], ())), default=0) for group in groups]
    sizes = [max(1, len({sequence_rows[h] for h in runs.get(group[0], ())})) for group in groups]
    return groups, lengths, sizes
