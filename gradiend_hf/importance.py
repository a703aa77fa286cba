"""Which base-parameter entries a GRADIEND covers and how important each is: the kept positions of a pruned
GRADIEND, importance, top-k entries and post-pruning, as a mixin of [`GradiendModel`] (it works on the model's
encoder, decoder and `kept` buffers).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
from transformers.utils import logging

from .errors import GradiendError
from .gradiend_modules import escape_parameter_name
from .topk import resolve_k, select_topk, topk_entries


IMPORTANCE_PARTS = ("decoder-weight", "encoder-weight", "decoder-bias", "decoder-sum")

logger = logging.get_logger(__name__)


class GradiendImportanceMixin:
    """Kept positions, importance, top-k and pruning of a [`GradiendModel`]."""

    @torch.no_grad()
    def check_kept_positions(self) -> None:
        """Raises a clear error unless every kept-position buffer is strictly increasing and inside its parameter."""
        for name, shape in zip(self.param_names, self.param_shapes):
            kept = self.kept_positions(name)
            if kept is None or kept.is_meta:
                continue
            numel = math.prod(shape)
            if kept.numel() and (kept[0] < 0 or kept[-1] >= numel or (kept.numel() > 1 and (kept.diff() <= 0).any())):
                raise GradiendError(
                    f"The kept positions of {name!r} are missing or corrupt (they must be increasing flat positions "
                    f"below {numel}); the checkpoint lacks `kept.{escape_parameter_name(name)}` or was edited. "
                    "Re-save the pruned GRADIEND, or prune the full GRADIEND again."
                )

    def kept_positions(self, name: str) -> torch.Tensor | None:
        """The sorted flat positions of base parameter `name` that this (pruned) GRADIEND reads and writes.

        Returns:
            `torch.LongTensor` or `None`: `None` when every entry of the parameter is covered (always for an unpruned
            GRADIEND).
        """
        return self.kept.get(escape_parameter_name(name))

    def gather_kept(self, name: str, flat: torch.Tensor) -> torch.Tensor:
        """Restricts `(batch, numel)` values of base parameter `name` to the GRADIEND's kept entries."""
        kept = self.kept_positions(name)
        return flat if kept is None else flat.index_select(-1, kept.to(flat.device))

    def scatter_kept(self, name: str, values: torch.Tensor) -> torch.Tensor:
        """Places `(..., kept)` values of base parameter `name` into zeros of `(..., numel)` (the identity unpruned).

        Entries the GRADIEND does not cover get 0: a pruned GRADIEND never moves them.
        """
        kept = self.kept_positions(name)
        if kept is None:
            return values
        numel = math.prod(self.param_shapes[self.param_names.index(name)])
        full = values.new_zeros(*values.shape[:-1], numel)
        return full.index_copy_(-1, kept.to(values.device), values)

    def _static_part(self, part: str, key: str) -> torch.Tensor:
        if part == "encoder-weight":
            return self.encoder.weight[key].sum(0)
        weight = self.decoder.weight[key].sum(1)
        bias = self.decoder.bias[key] if self.decoder.bias is not None else torch.zeros_like(weight)
        if part == "decoder-weight":
            return weight
        if part == "decoder-bias":
            return bias.clone()
        return weight + bias  # decoder-sum

    @torch.no_grad()
    def get_weight_importance(self, part: str = "decoder-weight") -> dict[str, torch.Tensor]:
        """Importance of every covered base-parameter entry.

        Args:
            part (`str`, *optional*, defaults to `"decoder-weight"`):
                `"decoder-weight"`: Σ_j |W_d[i, j]|; `"encoder-weight"`: Σ_j |W_e[j, i]|; `"decoder-bias"`: |b_i|;
                `"decoder-sum"`: |Σ_j W_d[i, j] + b_i|.

        Returns:
            `dict[str, torch.Tensor]`: base parameter name → non-negative importance in the parameter's shape (0 at
            entries a pruned GRADIEND does not cover).
        """
        return {
            name: self.scatter_kept(name, value).reshape(shape)
            for (name, value), shape in zip(self.iter_kept_importance(part), self.param_shapes)
        }

    @torch.no_grad()
    def iter_kept_importance(self, part: str = "decoder-weight"):
        """Yields `(name, importance)` per covered parameter, one value per GRADIEND input dimension (the kept
        entries, in the order of [`kept_positions`]; all entries, flat, when unpruned). See [`get_weight_importance`].
        """
        if part not in IMPORTANCE_PARTS:
            raise GradiendError(f"Unknown importance part {part!r}; choose one of {', '.join(IMPORTANCE_PARTS)}.")
        for name, key in zip(self.param_names, self.param_keys):
            if part == "decoder-weight":
                value = self.decoder.weight[key].abs().sum(1)
            elif part == "encoder-weight":
                value = self.encoder.weight[key].abs().sum(0)
            else:
                value = self._static_part(part, key).abs()
            yield name, value

    @torch.no_grad()
    def topk(self, k: int, part: str = "decoder-weight") -> list[dict[str, Any]]:
        """The `k` most important base-parameter entries, without building one flat vector of all `n` entries.

        Args:
            k (`int`): How many entries to return.
            part (`str`, *optional*, defaults to `"decoder-weight"`): Importance definition, see
                [`get_weight_importance`].

        Returns:
            `list[dict]`: most important first; each with `parameter` (base name), `position` (index tuple in the
            parameter), `global_index` (position in the concatenation of all covered parameters in GRADIEND order,
            comparable across GRADIENDs with the same `config.selection_fingerprint`; a pruned GRADIEND counts in
            the selection it was pruned from) and `importance`.
        """
        kept = {name: self.kept_positions(name) for name in self.param_names}
        return topk_entries(self.iter_kept_importance(part), k, self.param_shapes, self.config.global_offsets, kept)

    @torch.no_grad()
    def prune(self, k: int | float, part: str = "decoder-weight"):
        """A copy of this GRADIEND that keeps only its `k` most important input dimensions (post-pruning).

        The encoder columns, decoder rows and decoder-bias entries of the kept dimensions are copied unchanged (the
        encoder bias too), so the pruned GRADIEND computes exactly what this one computes with all other encoder and
        decoder weights set to zero. Pruning a pruned GRADIEND selects among its kept entries.

        Args:
            k (`int` or `float`): Entries to keep: a count, or a share of the input dimensions in (0, 1] (rounded up).
            part (`str`, *optional*, defaults to `"decoder-weight"`): Importance definition, see
                [`get_weight_importance`].

        Returns:
            [`GradiendModel`]: The pruned GRADIEND, on the same device, in the same dtype and train/eval mode; this one
            is not changed.
        """
        total = self.config.num_base_parameters
        keep = resolve_k(k, total)
        selected = select_topk(dict(self.iter_kept_importance(part)), keep)
        names = [name for name in self.param_names if name in selected]
        record = {"method": "post", "k": k, "kept": keep, "part": part, "from_dims": total}
        config = self.config.pruned_copy(names, [selected[n].numel() for n in names], record)
        pruned = type(self)(config).to(device=self.device, dtype=self.dtype)
        pruned.encoder.bias.copy_(self.encoder.bias)
        base_positions = {}
        for name in names:
            key, index = escape_parameter_name(name), selected[name].to(self.device)
            pruned.encoder.weight[key].copy_(self.encoder.weight[key][:, index])
            pruned.decoder.weight[key].copy_(self.decoder.weight[key][index])
            if self.decoder.bias is not None:
                pruned.decoder.bias[key].copy_(self.decoder.bias[key][index])
            previous = self.kept_positions(name)
            base_positions[name] = index if previous is None else previous[index]
        pruned.set_kept_positions(base_positions)
        pruned.train(self.training)
        logger.info(f"Pruned the GRADIEND from {total:,} to {keep:,} input dimensions ({part} importance).")
        return pruned

    @torch.no_grad()
    def set_kept_positions(self, kept: Mapping[str, torch.Tensor]) -> None:
        """Writes the flat base-parameter positions a pruned GRADIEND keeps (name → sorted positions)."""
        for name, positions in kept.items():
            buffer = self.kept.get(escape_parameter_name(name))
            if buffer is not None:  # no buffer: the parameter is kept in full
                buffer.copy_(positions)
