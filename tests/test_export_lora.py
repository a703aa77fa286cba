"""SVD conversion of dense deltas to LoRA factors (`gradiend_hf/export/lora.py`)."""

import pytest
import torch
from torch import nn
from transformers.pytorch_utils import Conv1D

from gradiend_hf.export.lora import delta_as_matrix, lora_from_delta, resolve_rank, validate_rank


def _matrix(out=12, inp=7, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(out, inp, generator=generator)


def test_full_rank_reproduces_the_delta():
    delta = _matrix()
    factors = lora_from_delta(delta, "full")
    assert factors.rank == factors.max_rank == 7
    assert factors.lora_A.shape == (7, 7) and factors.lora_B.shape == (12, 7)
    torch.testing.assert_close(factors.lora_B @ factors.lora_A, delta, atol=1e-5, rtol=0)
    assert factors.relative_error == 0.0


@pytest.mark.parametrize("rank", [1, 3, 6])
def test_truncation_error_is_the_svd_tail(rank):
    delta = _matrix()
    factors = lora_from_delta(delta, rank)
    s = torch.linalg.svdvals(delta.double())
    expected = (s[rank:].pow(2).sum() / s.pow(2).sum()).sqrt().item()
    actual = ((delta - factors.lora_B @ factors.lora_A).norm() / delta.norm()).item()
    assert factors.rank == rank
    assert factors.relative_error == pytest.approx(expected, rel=1e-6)
    assert actual == pytest.approx(expected, rel=1e-4)


def test_energy_share_picks_the_smallest_sufficient_rank():
    delta = torch.diag(torch.tensor([3.0, 2.0, 1.0, 0.5]))
    energy = torch.tensor([9.0, 4.0, 1.0, 0.25]).cumsum(0) / 14.25
    for share in (0.3, 0.7, 0.95, 0.99, 1.0):
        r = resolve_rank(torch.linalg.svdvals(delta), share)
        assert energy[r - 1] >= share - 1e-12
        assert r == 1 or energy[r - 2] < share


def test_int_rank_is_clipped_and_zero_delta_keeps_rank_one():
    assert lora_from_delta(_matrix(5, 3), 64).rank == 3
    zero = lora_from_delta(torch.zeros(4, 6), 0.9)
    assert zero.rank == 1 and zero.relative_error == 0.0
    assert torch.count_nonzero(zero.lora_B @ zero.lora_A) == 0


def test_conv1d_delta_is_transposed_to_out_in():
    conv = Conv1D(nf=5, nx=3)  # weight (in=3, out=5)
    linear = nn.Linear(3, 5)
    delta = torch.randn(3, 5)
    assert delta_as_matrix(conv, delta).shape == (5, 3)
    assert delta_as_matrix(linear, delta.T).shape == (5, 3)


def test_factors_take_the_requested_dtype():
    factors = lora_from_delta(_matrix().to(torch.bfloat16), 2)
    assert factors.lora_A.dtype == factors.lora_B.dtype == torch.bfloat16
    assert lora_from_delta(_matrix(), 2, dtype=torch.float16).lora_A.dtype == torch.float16


@pytest.mark.parametrize("bad", [0, -3, 0.0, 1.5, float("nan"), True, "half", None])
def test_invalid_ranks_are_rejected(bad):
    with pytest.raises(ValueError, match="rank"):
        validate_rank(bad)
