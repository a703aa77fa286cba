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

Choosing the top `k` never concatenates the importances of all parameters ([`gradiend_hf.topk.select_topk`]).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn
from transformers.utils import logging

from .gradients import group_gradients
from .modeling_gradiend import GradiendModel
from .objectives import get_objective
from .params import parameter_shapes, select_parameters
from .topk import PruningError, resolve_k, select_topk
from .training_data import GroupedFeatureDataset, check_feature_rows, check_usable_rows


logger = logging.get_logger(__name__)

# --------------------------------------------------------------------------- building pruned GRADIENDs


def post_prune(gradiend: GradiendModel, k: int | float, part: str = "decoder-weight") -> GradiendModel:
    """A copy of a (trained) GRADIEND that keeps only its `k` most important input dimensions; see
    [`GradiendModel.prune`], which does the slicing."""
    return gradiend.prune(k, part=part)


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
    if n_samples < 1:
        raise PruningError(f"`n_samples` must be at least 1, got {n_samples}.")
    rows = dataset["train"] if hasattr(dataset, "keys") and "train" in dataset else dataset
    check_feature_rows(rows)
    objective = get_objective(base_model, tokenizer)
    check_usable_rows(rows, objective, "pre-pruning")
    groups = GroupedFeatureDataset(rows, sentences_per_gradient, seed)
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
    gradiend.set_kept_positions(selected)
    logger.info(f"Pre-pruned the GRADIEND to {keep:,} of {total:,} entries in {len(kept_names)} parameters.")
    return gradiend
