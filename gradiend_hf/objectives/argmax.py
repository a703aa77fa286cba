"""Whether a masked LM predicts each masked token, without every logit of every masked token.

The masked-LM language-modelling score counts the masked tokens whose first maximal logit (`argmax`) is the token
itself. A token is missed as soon as one other logit beats it, which for most missed tokens shows in the first part
of the vocabulary. [`predicted_targets`] therefore scores the vocabulary in chunks through the head's output
projection and drops every row as soon as it is beaten; only the rows still unbeaten go on to the next chunk. A row
that is predicted still needs every logit (all must be finite and none larger), so a model that predicts most
tokens saves little, one that misses many (a rewrite that breaks the model, a random model) saves most of the head.

The projection is split off the head (`head(h) = projection(body(h))`, the projection being the model's output
embeddings) only where that holds, checked once per model against the head's own output.
"""

from __future__ import annotations

import weakref

import torch
from torch import nn
from torch.nn import functional as F


# Masked LMs whose head was checked to end in its output embeddings: model -> whether it does.
_PROJECTION_CHECKED: weakref.WeakKeyDictionary[nn.Module, bool] = weakref.WeakKeyDictionary()
CHUNK_SIZE = 2048


def _identity(features: torch.Tensor) -> torch.Tensor:
    return features


def projection_input(head: nn.Module, projection: nn.Module, hidden: torch.Tensor) -> torch.Tensor:
    """What `head` feeds its output projection for the hidden states `hidden`: the head run with the projection
    passing its input through (so the vocabulary-sized product is never formed). Only for a head that ends in its
    projection (see [`split_projection`])."""
    saved = projection.__dict__.get("forward")
    projection.forward = _identity
    try:
        return head(hidden)
    finally:
        if saved is None:
            del projection.forward
        else:
            projection.forward = saved


def split_projection(model: nn.Module, head: nn.Module, hidden: torch.Tensor) -> nn.Linear | None:
    """The output projection ending `head` (an `nn.Linear`, the model's output embeddings), or `None` when the head
    does more after it or has none; checked once per model on the first of `hidden`'s rows, in float32 only (a
    lower precision would round the target's own logit differently from the head's)."""
    projection = model.get_output_embeddings()
    if not isinstance(projection, nn.Linear) or projection.weight.dtype != torch.float32 or hidden.shape[0] == 0:
        return None
    if not any(module is projection for module in head.modules()):
        return None
    verdict = _PROJECTION_CHECKED.get(model)
    if verdict is None:
        sample = hidden[:1]
        own = head(sample)
        try:
            features = projection_input(head, projection, sample)
            split = projection(features)
        except RuntimeError:  # the head does more with the projection's output than return it
            verdict = False
        else:
            verdict = own.shape == split.shape == (1, projection.out_features) and torch.allclose(
                own, split, rtol=1e-5, atol=1e-6
            )
        _PROJECTION_CHECKED[model] = verdict
    return projection if verdict else None


def predicted_targets(
    features: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    targets: torch.Tensor,
    chunk_size: int = CHUNK_SIZE,
) -> torch.Tensor:
    """Whether each row's first maximal logit is its target and all of its logits are finite.

    The logits are `features @ weight.T + bias`; they are computed chunk by chunk of the vocabulary for the rows not
    yet beaten. A row is beaten by a larger logit, by an equal one of a smaller index (`argmax` takes the first), or
    by a non-finite one; the target's own logit is computed once per row.

    Args:
        features (`torch.Tensor` of shape `(rows, hidden)`): The projection's inputs.
        weight (`torch.Tensor` of shape `(vocab, hidden)`), bias (`torch.Tensor` of shape `(vocab,)`, *optional*): The
            output projection.
        targets (`torch.LongTensor` of shape `(rows,)`): Each row's target token.
        chunk_size (`int`, *optional*): Vocabulary entries per chunk.

    Returns:
        `torch.BoolTensor` of shape `(rows,)`.
    """
    own = (features * weight[targets]).sum(-1)
    if bias is not None:
        own = own + bias[targets]
    alive = torch.isfinite(own).nonzero().squeeze(-1)  # the rows not beaten so far
    lowest = torch.finfo(features.dtype).min
    for start in range(0, weight.shape[0], chunk_size):
        if alive.numel() == 0:
            break
        stop = min(start + chunk_size, weight.shape[0])
        logits = F.linear(features[alive], weight[start:stop], None if bias is None else bias[start:stop])
        target, value = targets[alive], own[alive]
        inside = ((target >= start) & (target < stop)).nonzero().squeeze(-1)
        logits[inside, target[inside] - start] = lowest  # the target is compared through its own logit
        largest, where = logits.max(-1)
        beaten = (largest > value) | ((largest == value) & (where + start < target))
        # NaN propagates into the max, +inf is the max, -inf the min (two reductions, no `isfinite` mask).
        beaten |= ~torch.isfinite(largest) | ~torch.isfinite(logits.amin(-1))
        alive = alive[~beaten]
    hits = torch.zeros(targets.shape[0], dtype=torch.bool, device=targets.device)
    hits[alive] = True
    return hits
