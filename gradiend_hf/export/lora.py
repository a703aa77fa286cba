"""Dense weight deltas to LoRA factors by truncated SVD.

This mirrors `peft.tuners.lora.conversion` (`_convert_module_to_lora`, `_find_cutoff_index`), which converts existing
PEFT adapters but has no entry point for a raw `ΔW`: `B = U[:, :r] · S[:r]`, `A = Vh[:r]`, and `lora_alpha = r` so
that PEFT's scaling `alpha / r` is 1 and `B @ A` is the best rank-`r` approximation of `ΔW` (Eckart–Young). The
relative Frobenius error of that approximation is known from the singular values alone:
`‖ΔW − BA‖_F / ‖ΔW‖_F = sqrt(Σ_{i≥r} s_i² / Σ_i s_i²)`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn
from transformers.pytorch_utils import Conv1D

from ..errors import GradiendError


RankSpec = int | float | str
"""An int (at most that many singular values per module), a float in (0, 1] (the smallest rank that keeps that share
of each module's spectral energy `Σ s_i²`) or `"full"` (`min(out, in)`: the delta is reproduced exactly)."""

LORA_LAYER_TYPES = (nn.Linear, Conv1D)


@dataclass
class LoraFactors:
    """A rank-`rank` factorisation `B @ A` of one module's weight delta, in PEFT's `(out, in)` orientation.

    Args:
        lora_A (`torch.Tensor` of shape `(rank, in_features)`): PEFT's `lora_A.weight`.
        lora_B (`torch.Tensor` of shape `(out_features, rank)`): PEFT's `lora_B.weight`.
        rank (`int`): The rank kept.
        max_rank (`int`): `min(out_features, in_features)`.
        delta_norm (`float`): `‖ΔW‖_F`.
        residual_norm (`float`): `‖ΔW − B A‖_F`, from the discarded singular values.
    """

    lora_A: torch.Tensor
    lora_B: torch.Tensor
    rank: int
    max_rank: int
    delta_norm: float
    residual_norm: float

    @property
    def relative_error(self) -> float:
        """`‖ΔW − BA‖_F / ‖ΔW‖_F` (0 for a zero delta)."""
        return self.residual_norm / self.delta_norm if self.delta_norm > 0 else 0.0


def validate_rank(rank: RankSpec) -> RankSpec:
    """Checks a rank specification and returns it unchanged.

    Raises:
        ValueError: for a bool, a non-positive int, a float outside (0, 1] or any other value.
    """
    if isinstance(rank, bool):
        raise GradiendError(f"`rank` must be an int, a float in (0, 1] or 'full', not the bool {rank}.")
    if isinstance(rank, int):
        if rank < 1:
            raise GradiendError(f"An integer `rank` must be at least 1, got {rank}.")
        return rank
    if isinstance(rank, float):
        if not 0.0 < rank <= 1.0 or math.isnan(rank):
            raise GradiendError(
                f"A float `rank` is the share of spectral energy to keep and must lie in (0, 1], got {rank}. "
                "Pass an int for a fixed number of singular values."
            )
        return rank
    if rank == "full":
        return rank
    raise GradiendError(f"`rank` must be an int, a float in (0, 1] or 'full', got {rank!r}.")


def resolve_rank(singular_values: torch.Tensor, rank: RankSpec) -> int:
    """The number of singular values to keep for `rank` (at least 1, at most `len(singular_values)`).

    Args:
        singular_values (`torch.Tensor`): Sorted in descending order, as returned by `torch.linalg.svd`.
        rank (`RankSpec`): See [`RankSpec`].

    Returns:
        `int`: The effective rank. An int larger than the matrix allows is clipped to `min(out, in)`.
    """
    max_rank = singular_values.numel()
    if rank == "full":
        return max_rank
    if isinstance(rank, int):
        return min(rank, max_rank)
    energy = singular_values.double() ** 2
    cumulative = torch.cumsum(energy, dim=0)
    # Smallest k with Σ_{i<k} s_i² ≥ rank · Σ s_i² (as peft's `_find_cutoff_index`); a zero delta keeps rank 1.
    k = int(torch.searchsorted(cumulative, rank * cumulative[-1]).item()) + 1
    return max(1, min(k, max_rank))


def delta_as_matrix(layer: nn.Module, delta: torch.Tensor) -> torch.Tensor:
    """A weight delta in PEFT's `(out_features, in_features)` orientation.

    GPT-2's `Conv1D` stores its weight as `(in, out)` (hence `fan_in_fan_out=True` in the adapter config), so its delta
    is transposed; an `nn.Linear` delta is returned as is.
    """
    return delta.T if isinstance(layer, Conv1D) else delta


@torch.no_grad()
def lora_from_delta(delta: torch.Tensor, rank: RankSpec, dtype: torch.dtype | None = None) -> LoraFactors:
    """Factorises a weight delta `ΔW` of shape `(out, in)` into LoRA factors by truncated SVD.

    Args:
        delta (`torch.Tensor` of shape `(out_features, in_features)`):
            The weight delta, in PEFT's orientation (see [`delta_as_matrix`]).
        rank (`RankSpec`):
            How many singular values to keep, see [`RankSpec`].
        dtype (`torch.dtype`, *optional*):
            dtype of the returned factors; defaults to `delta.dtype`. The SVD itself runs in float32 (float64 for a
            float64 delta) because half-precision SVD is not implemented.

    Returns:
        [`LoraFactors`]: `lora_A`, `lora_B`, the rank and the residual of the approximation.
    """
    if delta.dim() != 2:
        raise ValueError(f"A LoRA delta must be a matrix, got shape {tuple(delta.shape)}.")
    compute_dtype = torch.float64 if delta.dtype == torch.float64 else torch.float32
    matrix = delta.to(compute_dtype)
    U, S, Vh = torch.linalg.svd(matrix, full_matrices=False)
    r = resolve_rank(S, rank)
    tail = S[r:].double().pow(2).sum().sqrt().item()
    total = S.double().pow(2).sum().sqrt().item()
    out_dtype = dtype or delta.dtype
    return LoraFactors(
        lora_A=Vh[:r].to(out_dtype).contiguous(),
        lora_B=(U[:, :r] * S[:r]).to(out_dtype).contiguous(),
        rank=r,
        max_rank=S.numel(),
        delta_norm=total,
        residual_norm=tail,
    )
