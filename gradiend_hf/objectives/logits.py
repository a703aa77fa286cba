"""Logits only where they are read.

A language model's head maps every position's hidden state to a vocabulary-sized row of logits; for a model with a
small backbone and a large vocabulary (tiny BERT: hidden 64, vocabulary 30522) the head is most of the forward
pass. GRADIEND reads the logits at a few positions only (the masks of a row, the masked tokens of an LMS text, the
positions before a causal LM's target), so the head runs on those alone:

- a masked LM whose head is one module applied to the backbone's last hidden state (`cls` of BERT, `lm_head` of
  RoBERTa, `predictions` of ALBERT): the backbone runs on the whole input, the head on the read positions;
- a causal LM scored without gradients whose logits are `lm_head(backbone(...)[0])` (Llama, GPT-2, …; checked once per model
  against its own forward, so a model that scales or caps its logits after the head keeps its forward): the backbone
  on the whole input, the head on the read positions (the language-modelling score reads every real token but
  none of the padding);
- any other causal LM whose forward takes `logits_to_keep`: only the last positions from the first one read on;
- any other model: the whole forward, the read positions picked afterwards.

Without autograd, the last layer's MLP also runs on the read positions alone when the model has one (`mlp`, as
Llama and GPT-2 do): nothing after the last layer mixes positions, so what it computes elsewhere is never read.
That is checked once per model against the whole MLP (a model that mixes positions afterwards keeps it whole).

The logits of the read positions are the same in every case (the head is applied row by row); tests compare each
route with the model's own forward.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import weakref

import torch
from torch import nn

from ..model_layers import last_layer_mlp


# Attribute names of a masked LM's head that `forward` applies to the backbone's last hidden state and nothing else.
# A head taking more than the hidden states (XLM's `pred_layer`, DeBERTa-v2's `lm_predictions`) is not one of them.
SEPARABLE_HEAD_NAMES = ("cls", "lm_head", "predictions")


def accepts(model: nn.Module, argument: str) -> bool:
    """Whether the model's `forward` takes `argument` (looked up once per model class: this runs every forward)."""
    return _forward_accepts(type(model), argument)


@functools.cache
def _forward_accepts(model_class: type, argument: str) -> bool:
    try:
        return argument in inspect.signature(model_class.forward).parameters
    except (TypeError, ValueError):  # pragma: no cover
        return True


def separable_head(model: nn.Module) -> tuple[nn.Module, nn.Module] | None:
    """`(backbone, head)` of a masked LM whose logits are `head(backbone(...)[0])`, else `None`.

    Only a `...ForMaskedLM` whose parameters live in exactly two children, its backbone (`base_model_prefix`) and one
    head named in `SEPARABLE_HEAD_NAMES`, qualifies: a head split into several modules (DistilBERT), a wrapper
    (PEFT, steering) or any other model class keeps its own forward.
    """
    if not type(model).__name__.endswith("ForMaskedLM"):
        return None
    backbone = getattr(model, getattr(model, "base_model_prefix", "") or "", None)
    if not isinstance(backbone, nn.Module):
        return None
    with_parameters = [
        (name, child) for name, child in model.named_children() if next(child.parameters(), None) is not None
    ]
    heads = [(name, child) for name, child in with_parameters if child is not backbone]
    if len(with_parameters) != 2 or len(heads) != 1 or heads[0][0] not in SEPARABLE_HEAD_NAMES:
        return None
    return backbone, heads[0][1]


# Causal LMs whose separated head was checked against their own forward: model -> whether it gave the same logits.
_CAUSAL_HEAD_CHECKED: weakref.WeakKeyDictionary[nn.Module, bool] = weakref.WeakKeyDictionary()
_checking = False  # True during the check's own passes


def in_check_pass() -> bool:
    """Whether the model now runs for a one-time check (of its separated head, of packed prefixes), not for the
    caller's batch (hooks that remember batches, as `FrozenPrefix` does, leave these passes alone)."""
    return _checking


@contextlib.contextmanager
def check_pass():
    """Marks the passes inside as check passes (see [`in_check_pass`])."""
    global _checking
    outer, _checking = _checking, True
    try:
        yield
    finally:
        _checking = outer


def causal_head(model: nn.Module) -> tuple[nn.Module, nn.Module] | None:
    """`(backbone, lm_head)` of a causal LM made of exactly those two modules with parameters, else `None`.

    The structure alone does not say that `forward` applies nothing after the head (Gemma 2 caps its logits, Cohere
    scales them): [`logits_at`] uses the pair only after checking it once against the model's own forward.
    """
    name = type(model).__name__
    if not (name.endswith("ForCausalLM") or name.endswith("LMHeadModel")):
        return None
    backbone = getattr(model, getattr(model, "base_model_prefix", "") or "", None)
    head = getattr(model, "lm_head", None)
    if not isinstance(backbone, nn.Module) or not isinstance(head, nn.Module) or backbone is head:
        return None
    with_parameters = [child for child in model.children() if next(child.parameters(), None) is not None]
    if len(with_parameters) != 2 or not any(c is backbone for c in with_parameters):
        return None
    if not any(c is head for c in with_parameters) or model.get_output_embeddings() is not head:
        return None
    return backbone, head


def _row_of(inputs: dict[str, torch.Tensor], index: int) -> dict:
    """A copy of one row of a batch's inputs (a check's own input, never the caller's batch)."""
    return {
        key: value[index : index + 1].clone() if isinstance(value, torch.Tensor) else value
        for key, value in inputs.items()
    }


def _checked_causal_head(model: nn.Module, inputs: dict[str, torch.Tensor]) -> tuple[nn.Module, nn.Module] | None:
    """[`causal_head`] once its logits on the batch's first row equal the model's own (checked once per model, in
    eval mode: dropout would make two passes differ). Only without autograd: a gradient through the picked
    positions costs more than the `logits_to_keep` slice saves."""
    if model.training or torch.is_grad_enabled():
        return None
    split = causal_head(model)
    if split is None:
        return None
    verdict = _CAUSAL_HEAD_CHECKED.get(model)
    if verdict is None:
        backbone, head = split
        # A copy of the first row, run as a check pass (see `in_check_pass`): not the caller's batch.
        row = _row_of(inputs, 0)
        try:
            with check_pass(), torch.no_grad():
                own = model(**row).logits
                separated = head(backbone(**row)[0])
        except TypeError:  # the backbone does not take an input the model does
            verdict = False
        else:
            verdict = own.shape == separated.shape and torch.allclose(own, separated, rtol=1e-4, atol=1e-4)
        _CAUSAL_HEAD_CHECKED[model] = bool(verdict)
    return split if verdict else None


def hidden_at_reads(
    model: nn.Module, inputs: dict[str, torch.Tensor], sequences: torch.Tensor, positions: torch.Tensor
) -> tuple[torch.Tensor, nn.Module] | None:
    """The backbone's last hidden states at the reads and the head that turns them into logits, for a model whose
    head can run on the read positions alone (see the module docstring); `None` for any other model.

    Returns:
        `(hidden, head)`: `hidden` of shape `(reads, hidden_size)`, `head(hidden)` the logits at the reads.
    """
    split = separable_head(model) or _checked_causal_head(model, inputs)
    if split is None:
        return None
    backbone, head = split
    device = inputs["input_ids"].device
    sequences, positions = sequences.to(device), positions.to(device)
    mlp = _checked_last_mlp(model, backbone, inputs, sequences, positions)
    if mlp is None:
        hidden = backbone(**inputs)[0]
    else:
        with _mlp_at(mlp, sequences, positions, inputs["input_ids"].shape):
            hidden = backbone(**inputs)[0]
    return hidden[sequences, positions], head


# Models whose last layer's MLP was checked to be needed at the read positions only: model -> verdict.
_LAST_MLP_CHECKED: weakref.WeakKeyDictionary[nn.Module, bool] = weakref.WeakKeyDictionary()


@contextlib.contextmanager
def _mlp_at(mlp: nn.Module, sequences: torch.Tensor, positions: torch.Tensor, shape: torch.Size):
    """Runs `mlp` (the last layer's) on the read positions of a `shape` batch only; its output is 0 at the others.

    Nothing after the last layer mixes positions (checked), so the positions nobody reads need no MLP: for a
    causal LM's class probabilities (one read per row) that is most of the last layer's cost.
    """
    saved = mlp.__dict__.get("forward")
    own = mlp.forward

    def at_reads(hidden, *args, **kwargs):
        if tuple(hidden.shape[:2]) != tuple(shape):  # not the batch being read
            return own(hidden, *args, **kwargs)
        picked = own(hidden[sequences, positions].unsqueeze(0), *args, **kwargs).squeeze(0)
        return torch.zeros_like(hidden).index_put((sequences, positions), picked)

    mlp.forward = at_reads
    try:
        yield
    finally:
        if saved is None:
            del mlp.forward
        else:
            mlp.forward = saved


def _checked_last_mlp(model, backbone, inputs, sequences, positions) -> nn.Module | None:
    """The last layer's MLP once running it at the reads alone has given the backbone's own hidden states there (on
    the first read row of the first batch, once per model, without autograd); `None` for a model without one or
    that failed the check."""
    if torch.is_grad_enabled() or not len(sequences):
        return None
    mlp = last_layer_mlp(backbone)
    if mlp is None:
        return None
    verdict = _LAST_MLP_CHECKED.get(model)
    if verdict is None:
        row_index = int(sequences[0])
        row = _row_of(inputs, row_index)
        at = positions[sequences == row_index]
        first = torch.zeros_like(at)
        with check_pass(), torch.no_grad():
            own = backbone(**row)[0][first, at]
            with _mlp_at(mlp, first, at, row["input_ids"].shape):
                restricted = backbone(**row)[0][first, at]
        verdict = own.shape == restricted.shape and torch.allclose(own, restricted, rtol=1e-5, atol=1e-5)
        _LAST_MLP_CHECKED[model] = bool(verdict)
    return mlp if verdict else None


def logits_at(
    model: nn.Module, inputs: dict[str, torch.Tensor], sequences: torch.Tensor, positions: torch.Tensor
) -> torch.Tensor:
    """The logits of `model` at the positions `(sequences[i], positions[i])` of its input batch.

    Args:
        model (`nn.Module`): The language model.
        inputs (`dict[str, torch.Tensor]`): Its forward's inputs (`input_ids`, `attention_mask`, …), shape
            `(batch, length)` each.
        sequences (`torch.LongTensor` of shape `(reads,)`), positions (`torch.LongTensor` of shape `(reads,)`): The
            row and position of each read.

    Returns:
        `torch.Tensor` of shape `(reads, vocab)`: the logits, in the model's dtype.
    """
    read = hidden_at_reads(model, inputs, sequences, positions)
    if read is not None:
        hidden, head = read
        return head(hidden)
    first = int(positions.min()) if positions.numel() else 0
    if first > 0 and accepts(model, "logits_to_keep"):
        # Left-padded causal rows read only their last positions: the LM head (vocab × hidden) runs on those
        # instead of on every token, in the forward and the backward pass (one position for single tokens).
        logits = model(**inputs, logits_to_keep=inputs["input_ids"].shape[1] - first).logits
        positions = positions - first
    else:
        logits = model(**inputs).logits
    device = logits.device
    return logits[sequences.to(device), positions.to(device)]
