"""Gradients of the base model for GRADIEND, and per-example encodings.

Two computations:

- **Group gradients** (training): for a group of rows that share one transition (e.g. 32 sentences whose factual
  word is "he" and alternative "she"), the gradients of the mean factual loss, the mean alternative loss or their
  difference with respect to the selected parameters. The two losses share ONE forward pass (they read the same
  logits); each requested kind costs one backward pass through `torch.autograd.grad`, which returns fresh tensors
  and never touches `.grad`.
- **Per-example encodings** (evaluation): the encoder needs only `W_e · ∇ℓ_i`, the directional derivative of the
  loss `ℓ_i` of row `i` along `W_e`. Forward-mode AD (`torch.func.jvp`) gives it for a whole batch in one pass,
  instead of one backward pass per row. [`encode_rows_loop`] is the plain per-example reference path.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.func import functional_call, jvp
from torch.nn.attention import SDPBackend, sdpa_kernel

from .batching import cheapest_parts, length_batches
from .errors import GradiendError
from .objectives import Objective, ObjectiveBatch
from .objectives.shared_prefixes import prefix_groups
from .params import get_parameters, requires_grad_only


GradientDict = dict[str, torch.Tensor]


def _kind_loss(kind: str, factual: torch.Tensor, alternative: torch.Tensor) -> torch.Tensor:
    if kind == "factual":
        return factual
    if kind == "alternative":
        return alternative
    if kind == "diff":
        return factual - alternative
    raise GradiendError(f"Unknown gradient kind {kind!r}; choose 'factual', 'alternative' or 'diff'.")


def group_gradients(
    base_model: nn.Module,
    objective: Objective,
    batch: ObjectiveBatch,
    param_names: Sequence[str],
    kinds: Sequence[str] = ("alternative", "diff"),
) -> dict[str, GradientDict]:
    """Gradients of the mean loss of a row group with respect to the selected parameters.

    Args:
        base_model (`nn.Module`):
            The base language model, in eval mode. Its `requires_grad` flags are restored and its `.grad` fields
            are never written.
        objective ([`Objective`]):
            How to score the model on `batch`.
        batch ([`ObjectiveBatch`]):
            The rows of the group (one transition).
        param_names (`Sequence[str]`):
            The selected parameters.
        kinds (`Sequence[str]`, *optional*, defaults to `("alternative", "diff")`):
            Which gradients to return: `"factual"` (∇ mean CE of the factual word), `"alternative"` or `"diff"`
            (factual minus alternative).

    Returns:
        `dict[str, dict[str, torch.Tensor]]`: kind → parameter name → gradient in the parameter's shape.
    """
    kinds = list(dict.fromkeys(kinds))
    params = get_parameters(base_model, param_names)
    device = params[0].device
    with torch.enable_grad(), requires_grad_only(base_model, params):
        factual, alternative = _summed_losses(base_model, objective, batch.to(device))
        factual, alternative = factual / len(batch), alternative / len(batch)
        result = {}
        for i, kind in enumerate(kinds):
            grads = torch.autograd.grad(
                _kind_loss(kind, factual, alternative),
                params,
                retain_graph=i < len(kinds) - 1,
                allow_unused=True,
            )
            result[kind] = {
                name: (g if g is not None else torch.zeros_like(p)) for name, g, p in zip(param_names, grads, params)
            }
    return result


# The fixed cost of one more pass, in positions: on 2 CPU cores a SmolLM2 forward pass costs about 60 ms plus 1.5 ms
# per position, so another part must save more padding than ~40 positions (benchmarks/bench_group_parts.py).
_PASS_OVERHEAD_POSITIONS = 48


def _summed_losses(base_model: nn.Module, objective: Objective, batch: ObjectiveBatch) -> tuple[torch.Tensor, ...]:
    """Sums of the rows' factual and alternative losses, one forward pass per part of similar-length rows.

    A group's sentences vary widely in length: padded to the longest in one pass, nearly half of the positions of a
    training group are padding. Each part is trimmed to its own longest row; the graphs of all parts feed the same
    backward pass, so the gradient is the one of the whole group (up to float rounding). A group is split only
    where the padding saved outweighs the fixed cost of another pass.
    """
    parts = cheapest_parts(batch.row_lengths(), _PASS_OVERHEAD_POSITIONS)
    factual = alternative = 0
    for rows in parts:
        part = batch.trimmed() if len(parts) == 1 else batch.select(rows).trimmed()
        part_factual, part_alternative = objective.losses(base_model, part)
        factual, alternative = factual + part_factual.sum(), alternative + part_alternative.sum()
    return factual, alternative


def _math_attention():
    """SDPA's fused CPU/GPU kernels have no forward-mode AD; the math backend has."""
    return sdpa_kernel(SDPBackend.MATH)


@torch.no_grad()
def encode_rows(
    gradiend: nn.Module,
    base_model: nn.Module,
    objective: Objective,
    batch: ObjectiveBatch,
    source: str | None = None,
) -> torch.Tensor:
    """Per-example encodings `h_i = act(W_e · ∇ℓ_i + b_e)` of a batch, with batched forward-mode AD.

    Each latent dimension costs one `jvp` over the whole batch: the tangent is the encoder's weight row reshaped to
    the base parameters, so the directional derivative of every row's loss is that row's `W_e · ∇ℓ_i`.

    Args:
        gradiend ([`GradiendModel`]): The GRADIEND.
        base_model (`nn.Module`): The base model, in eval mode (dropout would make rows depend on the batch).
        objective ([`Objective`]): How to score the model.
        batch ([`ObjectiveBatch`]): The rows (any mix of transitions).
        source (`str`, *optional*): Gradient kind the encoder reads; defaults to `gradiend.config.source`.

    Returns:
        `torch.Tensor` of shape `(batch, latent_dim)`, on the GRADIEND's device.
    """
    source = source or gradiend.config.source
    names = gradiend.param_names
    params = get_parameters(base_model, names)
    device = params[0].device
    batch = batch.to(device)
    primals = {_Scoring.prefix + name: p.detach() for name, p in zip(names, params)}
    scoring = _Scoring(base_model, objective, batch, source)

    def row_losses(overrides: dict[str, torch.Tensor]) -> torch.Tensor:
        with _math_attention():
            return functional_call(scoring, overrides, args=(), tie_weights=True, strict=False)

    columns = []
    for j in range(gradiend.config.latent_dim):
        # A pruned GRADIEND's row covers only its kept entries: scattered into zeros, the others add nothing.
        tangents = {
            _Scoring.prefix + name: gradiend.scatter_kept(name, gradiend.encoder.weight[key][j])
            .reshape(shape)
            .to(device=p.device, dtype=p.dtype)
            for name, key, shape, p in zip(names, gradiend.param_keys, gradiend.param_shapes, params)
        }
        _, directional = jvp(row_losses, (primals,), (tangents,))
        columns.append(directional)
    pre = torch.stack(columns, dim=-1).to(device=gradiend.encoder.bias.device, dtype=gradiend.dtype)
    return gradiend._activation("encoder")(pre + gradiend.encoder.bias)


class _Scoring(nn.Module):
    """The loss of each row of one batch, as a module whose only submodule is the base model.

    `functional_call` on it swaps the covered parameters (named `base_model.<name>`) inside the base model itself, so
    the objective scores the model's own class: the LM head then runs on the read positions alone, as a plain
    matrix product (see [`gradiend_hf.objectives.logits`]). Through a wrapper class the model's own forward would
    apply the head, and forward-mode AD would expand the vocabulary-sized head weight once per row of the batch.
    """

    prefix = "base_model."

    def __init__(self, base_model: nn.Module, objective: Objective, batch: ObjectiveBatch, source: str):
        super().__init__()
        self.base_model = base_model
        self.objective = objective
        self.batch = batch
        self.source = source

    def forward(self) -> torch.Tensor:
        factual, alternative = self.objective.losses(self.base_model, self.batch)
        return _kind_loss(self.source, factual, alternative)


def encode_rows_loop(gradiend, base_model, objective: Objective, batch: ObjectiveBatch, source=None) -> torch.Tensor:
    """Reference path for [`encode_rows`]: one backward pass per row, then `gradiend.encode`."""
    source = source or gradiend.config.source
    encodings = []
    for i in range(len(batch)):
        grads = group_gradients(base_model, objective, batch.select(i), gradiend.param_names, kinds=(source,))
        with torch.no_grad():
            encodings.append(gradiend.encode(grads[source]))
    return torch.stack(encodings)


def encode_texts(
    gradiend: nn.Module,
    base_model: nn.Module,
    objective: Objective,
    masked: Sequence[str],
    factual: Sequence[str],
    alternative: Sequence[str],
    batch_size: int = 32,
) -> torch.Tensor:
    """Encodings `(rows, latent_dim)` (float64, CPU) of many rows: the one batching loop over [`encode_rows`].

    Rows of similar length share a batch (less padding); the base model is in eval mode while they are encoded and
    the result follows the order of the rows. Where the objective lets a sequence that begins another run inside it
    (causal LMs), rows sharing sequences go into one batch and such a sequence runs once (see
    [`gradiend_hf.objectives.shared_prefixes`]): an encoder evaluation's neutral re-blankings of its test rows.

    Args:
        gradiend (`nn.Module`): The GRADIEND.
        base_model (`nn.Module`): Its base model.
        objective ([`Objective`]): How the rows become model inputs.
        masked, factual, alternative (`Sequence[str]`): The rows' texts (one `[MASK]` each) and words.
        batch_size (`int`, *optional*, defaults to 32): Rows per forward-mode pass (a row whose sequences all run
            inside another row's does not count).

    Returns:
        `torch.Tensor`: one row of feature values per input row.
    """
    out = torch.empty(len(masked), gradiend.config.latent_dim, dtype=torch.float64)
    if not len(masked):
        return out
    was_training = base_model.training
    base_model.eval()
    try:
        groups, lengths, sizes = _row_groups(objective, masked, factual, alternative)
        for chunk in length_batches(lengths, batch_size, sizes=sizes):
            rows = [row for group in chunk for row in groups[group]]
            batch = objective.prepare(
                [masked[i] for i in rows], [factual[i] for i in rows], [alternative[i] for i in rows]
            )
            out[rows] = encode_rows(gradiend, base_model, objective, batch).detach().double().cpu()
    finally:
        base_model.train(was_training)
    return out


def _row_groups(objective: Objective, masked, factual, alternative) -> tuple[list[list[int]], list[int], list[int]]:
    """The rows in groups that must share a batch, the length of each group and what it counts towards a batch
    (see [`prefix_groups`]); one row per group where the objective shares no sequences."""
    if not objective.shares_prefix_sequences:
        return [[row] for row in range(len(masked))], objective.read_lengths(masked), [1] * len(masked)
    sequences, sequence_rows = objective.row_sequences(masked, factual, alternative)
    return prefix_groups(sequences, sequence_rows, len(masked))


def stack_gradients(per_group: dict[str, list[torch.Tensor]]) -> dict[str, torch.Tensor]:
    """One `(groups, *shape)` tensor per parameter from the gradients of each group (a view for a single group)."""
    return {
        name: (values[0].unsqueeze(0) if len(values) == 1 else torch.stack(values))
        for name, values in per_group.items()
    }


def share_no_memory(tensors: Sequence[torch.Tensor]) -> bool:
    """Whether no two of `tensors` share memory, so that writing into one cannot change another.

    Autograd may hand two parameters the same gradient tensor (an addition passes its incoming gradient to both
    inputs), and a source and a target of the same kind are the same tensors.
    """
    storages = [t.untyped_storage().data_ptr() for t in tensors if t.numel()]
    return len(set(storages)) == len(storages)
