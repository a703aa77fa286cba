"""Pruning a GRADIEND to its most important input dimensions.

- **Post-pruning** ([`post_prune`], also `GradiendModel.prune`): after training, keep the `k` entries of largest
  importance (method.md §5: `decoder-weight` Σ_j|W_d[i, j]| by default) and slice the encoder columns, decoder rows and
  decoder biases down to them. The trained values are kept as they are.
- **Pre-pruning** ([`pre_prune`]): before training, estimate each entry's importance from a few sample gradients
  (|mean of the per-group source gradients|), keep the top `k` and build a FRESH GRADIEND of the reduced size, which
  then trains like any other and costs a fraction of the memory.

A pruned GRADIEND is a regular [`GradiendModel`]: for every covered parameter it stores the sorted flat positions it
keeps as an int64 buffer `kept.<key>` in its safetensors file (only for parameters it keeps partially), and its config
records `kept_counts`, the selection it was pruned from (`unpruned_param_names`/`unpruned_param_shapes`) and how
(`pruning`). A parameter with no kept entry is dropped from `param_names`. Encodings read only the kept entries,
updates are scattered into the full parameter shapes (other entries get 0) and top-k `global_index` values count in
the unpruned selection, so they agree before and after pruning.

Choosing the top `k` never concatenates the importances of all parameters: [`select_topk`] finds the k-th largest
value by bisection on the float bit patterns (31 counting passes over the per-parameter tensors), which is exact and
needs no memory beyond the importances themselves.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn
from transformers.utils import logging

from .errors import GradiendError
from .modeling_gradiend import GradiendModel, escape_parameter_name


logger = logging.get_logger(__name__)

_POSITIVE_FLOAT_BITS = 2**31  # int32 patterns of non-negative float32 values sort like the values themselves


class PruningError(GradiendError):
    """Raised when a pruning request cannot be met (bad `k`, nothing to keep, no sample gradients)."""


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


# --------------------------------------------------------------------------- building pruned GRADIENDs


def _pruned_config(config, names: Sequence[str], counts: Sequence[int], record: dict[str, Any]):
    """A copy of `config` covering `names` with `counts` kept entries each, pruned from `config`'s selection."""
    values = config.to_dict()
    shapes = dict(zip(config.param_names, config.param_shapes))
    for field in ("param_fingerprint", "pruned", "model_type", "transformers_version"):
        values.pop(field, None)
    values.update(
        param_names=list(names),
        param_shapes=[shapes[name] for name in names],
        kept_counts=[int(c) for c in counts],
        unpruned_param_names=list(config.selection_names),
        unpruned_param_shapes=[list(s) for s in config.selection_shapes],
        pruning=record,
    )
    return type(config)(**values)


def _set_kept_positions(gradiend: GradiendModel, kept: Mapping[str, torch.Tensor]) -> None:
    for name, positions in kept.items():
        buffer = gradiend.kept.get(escape_parameter_name(name))
        if buffer is not None:  # no buffer: the parameter is kept in full
            buffer.copy_(positions)


@torch.no_grad()
def post_prune(gradiend: GradiendModel, k: int | float, part: str = "decoder-weight") -> GradiendModel:
    """A copy of a (trained) GRADIEND that keeps only its `k` most important input dimensions.

    The encoder columns, decoder rows and decoder-bias entries of the kept dimensions are copied unchanged (the
    encoder bias too), so the pruned GRADIEND computes exactly what the full one computes with all other encoder and
    decoder weights set to zero. Pruning an already pruned GRADIEND selects among its kept entries.

    Args:
        gradiend ([`GradiendModel`]): The GRADIEND to prune; it is not changed.
        k (`int` or `float`): Entries to keep: a count, or a share of the GRADIEND's input dimensions in (0, 1]
            (rounded up).
        part (`str`, *optional*, defaults to `"decoder-weight"`): Importance definition, see
            [`GradiendModel.get_weight_importance`].

    Returns:
        [`GradiendModel`]: The pruned GRADIEND, on the same device and in the same dtype, in the same train/eval mode.

    Example:

    ```python
    >>> small = gradiend.prune(0.01)  # keep the top 1 % by decoder-weight importance
    >>> small.save_pretrained("gradiend-top1pct")
    ```
    """
    total = gradiend.config.num_base_parameters
    keep = resolve_k(k, total)
    importance = dict(gradiend.iter_kept_importance(part))
    selected = select_topk(importance, keep)
    del importance
    names = [name for name in gradiend.param_names if name in selected]
    record = {"method": "post", "k": k, "kept": keep, "part": part, "from_dims": total}
    config = _pruned_config(gradiend.config, names, [selected[n].numel() for n in names], record)
    pruned = type(gradiend)(config).to(device=gradiend.device, dtype=gradiend.dtype)
    pruned.encoder.bias.copy_(gradiend.encoder.bias)
    base_positions = {}
    for name in names:
        key, index = escape_parameter_name(name), selected[name].to(gradiend.device)
        pruned.encoder.weight[key].copy_(gradiend.encoder.weight[key][:, index])
        pruned.decoder.weight[key].copy_(gradiend.decoder.weight[key][index])
        if gradiend.decoder.bias is not None:
            pruned.decoder.bias[key].copy_(gradiend.decoder.bias[key][index])
        previous = gradiend.kept_positions(name)
        base_positions[name] = index if previous is None else previous[index]
    _set_kept_positions(pruned, base_positions)
    pruned.train(gradiend.training)
    logger.info(f"Pruned the GRADIEND from {total:,} to {keep:,} input dimensions ({part} importance).")
    return pruned


@torch.no_grad()
def sample_gradient_importance(
    base_model: nn.Module,
    tokenizer,
    dataset,
    param_names: Sequence[str],
    n_samples: int = 8,
    sentences_per_gradient: int = 8,
    source: str = "alternative",
    seed: int = 0,
) -> dict[str, torch.Tensor]:
    """|Mean of the source gradients of `n_samples` row groups| for every entry of the named parameters.

    The groups are the first `n_samples` training groups of [`GradiendTrainer`] (one transition each, transitions
    alternating, rows shuffled with `seed`), so both directions of the feature are sampled equally. Only one running
    sum per parameter is kept besides the gradients of the current group.

    Args:
        base_model (`PreTrainedModel`): The base model (its flags and `.grad` are left as they were).
        tokenizer: Its tokenizer.
        dataset (`datasets.Dataset` or `datasets.DatasetDict`): Feature rows; a `DatasetDict` gives its `train` split.
        param_names (`Sequence[str]`): The parameters to score.
        n_samples (`int`, *optional*, defaults to 8): Row groups (gradients) to average.
        sentences_per_gradient (`int`, *optional*, defaults to 8): Rows per group.
        source (`str`, *optional*, defaults to `"alternative"`): Gradient kind (`"factual"`, `"alternative"`,
            `"diff"`).
        seed (`int`, *optional*, defaults to 0): Shuffles the rows before grouping.

    Returns:
        `dict[str, torch.Tensor]`: name → importance in the parameter's shape (float32, on the base model's device).
    """
    from .gradients import group_gradients
    from .objectives import get_objective
    from .trainer import drop_unusable_rows
    from .training_data import GroupedFeatureDataset, check_feature_rows

    if n_samples < 1:
        raise PruningError(f"`n_samples` must be at least 1, got {n_samples}.")
    rows = dataset["train"] if hasattr(dataset, "keys") and "train" in dataset else dataset
    check_feature_rows(rows)
    objective = get_objective(base_model, tokenizer)
    groups = GroupedFeatureDataset(drop_unusable_rows(rows, objective, "pre-pruning"), sentences_per_gradient, seed)
    if n_samples > len(groups):
        logger.warning(f"Only {len(groups)} row groups exist; pre-pruning averages those instead of {n_samples}.")
        n_samples = len(groups)
    was_training = base_model.training
    base_model.eval()
    sums: dict[str, torch.Tensor] = {}
    try:
        for index in range(n_samples):
            item = groups[index]
            batch = objective.prepare(item["masked"], item["factual"], item["alternative"])
            gradients = group_gradients(base_model, objective, batch, param_names, kinds=(source,))[source]
            for name in param_names:
                gradient = gradients.pop(name)  # drop each gradient as soon as it is added
                if name in sums:
                    sums[name].add_(gradient)
                else:
                    sums[name] = gradient.float().clone()
    finally:
        base_model.train(was_training)
    return {name: value.div_(n_samples).abs_() for name, value in sums.items()}


def pre_prune(
    base_model: nn.Module,
    tokenizer,
    dataset,
    k: int | float = 0.1,
    params: str | Sequence[str] | None = None,
    n_samples: int = 8,
    sentences_per_gradient: int = 8,
    seed: int = 0,
    latent_dim: int = 1,
    **config_kwargs: Any,
) -> GradiendModel:
    """A fresh (untrained) GRADIEND covering only the `k` base-parameter entries with the largest sample gradients.

    Importance of an entry = |mean over `n_samples` row groups of its source gradient| (see
    [`sample_gradient_importance`]); the top `k` are kept and a new GRADIEND of that size is initialised (the
    encoder like `nn.Linear(k, latent_dim)`, the decoder within ± its largest weight), so training needs about
    `k / n` of the memory of the full GRADIEND. Its initialisation follows the current torch seed.

    Args:
        base_model (`PreTrainedModel`): The base model the GRADIEND will read.
        tokenizer: Its tokenizer.
        dataset (`datasets.Dataset` or `datasets.DatasetDict`): Feature rows (the `train` split of a `DatasetDict`).
        k (`int` or `float`, *optional*, defaults to 0.1): Entries to keep: a count, or a share in (0, 1] of the
            selected entries.
        params (`str` or `Sequence[str]`, *optional*): Parameter selection before pruning (as in
            [`GradiendModel.from_base_model`]); the backbone by default.
        n_samples (`int`, *optional*, defaults to 8): Sample gradients to average.
        sentences_per_gradient (`int`, *optional*, defaults to 8): Rows per sample gradient.
        seed (`int`, *optional*, defaults to 0): Seed of the row sampling.
        latent_dim (`int`, *optional*, defaults to 1): Feature values of the GRADIEND.
        config_kwargs: Further [`GradiendConfig`] fields; `source` (default `"alternative"`) is also the gradient
            kind that is sampled.

    Returns:
        [`GradiendModel`]: A pruned, freshly initialised GRADIEND on the CPU.

    Example:

    ```python
    >>> gradiend = pre_prune(base, tokenizer, load_builtin("gender-en"), k=0.05, params=["model.layers.2*.mlp.*"])
    >>> trainer = GradiendTrainer(model=gradiend, base_model=base, processing_class=tokenizer, args=args,
    ...                           train_dataset=load_builtin("gender-en"))
    ```
    """
    from .params import parameter_shapes, select_parameters

    source = config_kwargs.setdefault("source", "alternative")
    names = select_parameters(base_model, params)
    shapes = parameter_shapes(base_model, names)
    importance = sample_gradient_importance(
        base_model, tokenizer, dataset, names, n_samples, sentences_per_gradient, source, seed
    )
    total = sum(math.prod(shape) for shape in shapes)
    keep = resolve_k(k, total)
    selected = {name: positions.cpu() for name, positions in select_topk(importance, keep).items()}
    del importance
    kept_names = [name for name in names if name in selected]
    record = {
        "method": "pre",
        "k": k,
        "kept": keep,
        "from_dims": total,
        "n_samples": n_samples,
        "sentences_per_gradient": sentences_per_gradient,
        "source": source,
        "seed": seed,
    }
    gradiend = GradiendModel.from_base_model(
        base_model,
        params=kept_names,
        latent_dim=latent_dim,
        kept_counts=[selected[name].numel() for name in kept_names],
        unpruned_param_names=names,
        unpruned_param_shapes=shapes,
        pruning=record,
        **config_kwargs,
    )
    _set_kept_positions(gradiend, selected)
    logger.info(f"Pre-pruned the GRADIEND to {keep:,} of {total:,} entries in {len(kept_names)} parameters.")
    return gradiend
