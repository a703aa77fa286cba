"""Causal-LM sentences that begin alike, scored together: what they share is computed once.

A causal LM computes each position from the tokens up to it alone, so sentences that begin with the same tokens have
the same hidden states, and the same next-token log-probabilities, along their shared beginning. The two sentences
of a WinoBias row differ only from the pronoun on, and rows often begin alike ("The developer argued with the
designer because …"): scored one sentence per row, half of WinoBias' positions and a fifth of CrowS-Pairs' (gender)
repeat work done for another sentence.

[`pack_sentences`] sorts the sentences (neighbours then share the longest beginnings) and puts runs of up to
`max_members` that share at least `min_shared` leading tokens into one [`PackedRow`]: the nodes of their prefix
tree, one per distinct prefix, in the order first met. [`packed_inputs`] gives every node the position of its depth
(`position_ids`) and lets it attend to itself and its ancestors only (a 4D attention mask), so a node computes
exactly what the last position of its prefix computes in a row of its own, and its logits score the next token of
every sentence through it. Whether a model honours such inputs is checked once per model against the plain rows
(see [`gradiend_hf.benchmarks.scoring.log_probs`]).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from ..objectives.logits import accepts


# Attention implementations that apply a given 4D mask as it is (added to the scores); flash and flex attention
# take no arbitrary mask.
MASKABLE_ATTENTION = ("eager", "sdpa")


@dataclass
class PackedRow:
    """The prefix tree of a few sentences, as one row of a causal LM's input.

    Args:
        tokens (`list[int]`): The token of each node.
        parents (`list[int]`): Each node's parent (-1 for a sentence's first token).
        depths (`list[int]`): Each node's position in its sentences.
        members (`list[int]`): The indices of the sentences packed here (into the sequence given to
            [`pack_sentences`]).
        paths (`list[list[int]]`): Per member, the node of each of its tokens.
    """

    tokens: list[int] = field(default_factory=list)
    parents: list[int] = field(default_factory=list)
    depths: list[int] = field(default_factory=list)
    members: list[int] = field(default_factory=list)
    paths: list[list[int]] = field(default_factory=list)
    _children: dict[tuple[int, int], int] = field(default_factory=dict, repr=False)  # (parent, token) -> node

    def __len__(self) -> int:
        return len(self.tokens)

    def add(self, member: int, ids: Sequence[int]) -> None:
        """Adds a sentence: the nodes of its prefixes not in the tree yet."""
        parent, path = -1, []
        for depth, token in enumerate(ids):
            node = self._children.get((parent, token))
            if node is None:
                node = self._children[(parent, token)] = len(self.tokens)
                self.tokens.append(int(token))
                self.parents.append(parent)
                self.depths.append(depth)
            path.append(node)
            parent = node
        self.members.append(member)
        self.paths.append(path)


def shared_length(a: Sequence[int], b: Sequence[int]) -> int:
    """How many leading tokens two sentences share."""
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def pack_sentences(sequences: Sequence[Sequence[int]], max_members: int = 8, min_shared: int = 2) -> list[PackedRow]:
    """Packs sentences into rows of their prefix trees (see the module docstring).

    Args:
        sequences (`Sequence[Sequence[int]]`): Token ids of every sentence.
        max_members (`int`, *optional*, defaults to 8): The most sentences of one row.
        min_shared (`int`, *optional*, defaults to 2): Sentences join a row only when they share at least this many
            leading tokens with the one before them in sorted order (a shared first token, BOS, saves one position).

    Returns:
        `list[PackedRow]`: every sentence in exactly one row.
    """
    if max_members < 1 or min_shared < 1:
        raise ValueError(f"`max_members` and `min_shared` must be at least 1, got {max_members} and {min_shared}.")
    order = sorted(range(len(sequences)), key=lambda i: list(sequences[i]))
    rows: list[PackedRow] = []
    previous = None
    for index in order:
        ids = sequences[index]
        fits = rows and len(rows[-1].members) < max_members
        if not (fits and shared_length(sequences[previous], ids) >= min_shared):
            rows.append(PackedRow())
        rows[-1].add(index, ids)
        previous = index
    return rows


def packed_inputs(rows: Sequence[PackedRow], pad_id: int, dtype: torch.dtype, device=None) -> dict[str, torch.Tensor]:
    """A causal LM's inputs for a batch of packed rows: `input_ids`, `position_ids` and a 4D additive
    `attention_mask` of shape `(rows, 1, length, length)` (0 where a node sees another, the dtype's minimum
    elsewhere). A padding position sees only itself, so no row of the mask is empty."""
    length = max(len(row) for row in rows)
    ids = np.full((len(rows), length), pad_id, dtype=np.int64)
    positions = np.zeros((len(rows), length), dtype=np.int64)
    allowed = np.zeros((len(rows), length, length), dtype=bool)
    for b, row in enumerate(rows):
        n = len(row)
        ids[b, :n] = row.tokens
        positions[b, :n] = row.depths
        seen = allowed[b]
        for node, parent in enumerate(row.parents):
            if parent >= 0:
                seen[node] = seen[parent]  # a parent's ancestors (and the parent) are the node's ancestors
            seen[node, node] = True
        seen[np.arange(n, length), np.arange(n, length)] = True
    mask = torch.zeros(allowed.shape, dtype=dtype)
    mask.masked_fill_(~torch.from_numpy(allowed), torch.finfo(dtype).min)
    inputs = {
        "input_ids": torch.from_numpy(ids),
        "attention_mask": mask.unsqueeze(1),
        "position_ids": torch.from_numpy(positions),
    }
    return {key: value.to(device) for key, value in inputs.items()}


def may_pack(model: nn.Module) -> bool:
    """Whether packed rows can be tried on `model`: a decoder whose forward takes position ids, with an attention
    implementation that applies a given 4D mask. (Whether it gives the plain rows' scores is checked separately.)"""
    config = getattr(model, "config", None)
    if config is None or getattr(config, "is_encoder_decoder", False):
        return False
    return getattr(config, "_attn_implementation", None) in MASKABLE_ATTENTION and accepts(model, "position_ids")
