"""The building blocks of a [`GradiendModel`]: per-parameter encoder and decoder weights, the kept positions of a
pruned GRADIEND, the output type, the reconstruction loss with its hand-written backward, and the pre-trained base
class with the reference initialisation.

Weights are held as one tensor per selected base parameter (`nn.ParameterDict`s keyed by the escaped parameter
name), never as one flat vector of all `n` entries: checkpoints shard naturally, keys read like the base model's
parameter names, and updates come out directly in the base parameters' shapes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedModel
from transformers.utils import ModelOutput

from .configuration_gradiend import GradiendConfig


try:  # transformers>=5 skips tensors that were loaded from a checkpoint
    from transformers import initialization as init
except ImportError:  # pragma: no cover - transformers 4.x
    from torch.nn import init


ACTIVATIONS = {
    "tanh": torch.tanh,
    "id": lambda x: x,
    "relu": F.relu,
    "leakyrelu": F.leaky_relu,
    "gelu": F.gelu,
    "silu": F.silu,
    "elu": F.elu,
    "sigmoid": torch.sigmoid,
    "hardtanh": F.hardtanh,
}


def escape_parameter_name(name: str) -> str:
    """Turns a base parameter name into a `ParameterDict` key (keys may not contain dots)."""
    return name.replace(".", "__")


@dataclass
class GradiendOutput(ModelOutput):
    """Output of [`GradiendModel.forward`].

    Args:
        loss (`torch.FloatTensor`, *optional*):
            Mean squared reconstruction error over all `n` entries (and the batch), when targets were given.
        encodings (`torch.FloatTensor` of shape `(batch, latent_dim)` or `(latent_dim,)`):
            The feature values of the source gradients.
    """

    loss: torch.FloatTensor | None = None
    encodings: torch.FloatTensor | None = None


class GradiendEncoder(nn.Module):
    """`h = act(Σ_p W_p · g_p + b)`: one `(latent_dim, numel_p)` weight per base parameter `p`."""

    def __init__(self, keys: Sequence[str], numels: Sequence[int], latent_dim: int):
        super().__init__()
        self.weight = nn.ParameterDict(
            {key: nn.Parameter(torch.empty(latent_dim, numel)) for key, numel in zip(keys, numels)}
        )
        self.bias = nn.Parameter(torch.empty(latent_dim))


class GradiendDecoder(nn.Module):
    """`u_p(h) = act(W_p · h + b_p)`: one `(numel_p, latent_dim)` weight and `(numel_p,)` bias per parameter."""

    def __init__(self, keys: Sequence[str], numels: Sequence[int], latent_dim: int, bias: bool):
        super().__init__()
        self.weight = nn.ParameterDict(
            {key: nn.Parameter(torch.empty(numel, latent_dim)) for key, numel in zip(keys, numels)}
        )
        self.bias = (
            nn.ParameterDict({key: nn.Parameter(torch.empty(numel)) for key, numel in zip(keys, numels)})
            if bias
            else None
        )


class GradiendKeptPositions(nn.Module):
    """The flat base-parameter positions a pruned GRADIEND keeps: one sorted int64 buffer per partially kept parameter.

    Only parameters that keep fewer than all of their entries get a buffer (state-dict key `kept.<key>`, saved in the
    safetensors file next to the weights); a parameter without one is covered in full.
    """

    def __init__(self, keys: Sequence[str], counts: Sequence[int], numels: Sequence[int]):
        super().__init__()
        for key, count, numel in zip(keys, counts, numels):
            if count < numel:
                self.register_buffer(key, torch.zeros(count, dtype=torch.long))

    def get(self, key: str) -> torch.Tensor | None:
        return self._buffers.get(key)


class SquaredReconstruction(torch.autograd.Function):
    """`Σ (h · Wᵀ + b − t)²` for one parameter chunk, with a hand-written backward.

    The residual `r = h · Wᵀ + b − t` is the only saved tensor; the backward pass turns it in place into `2r`, which
    is the bias gradient (summed over the batch) and gives `∂/∂W = 2rᵀh` and `∂/∂h = 2rW`.

    With `overwrite_target=True` the residual is written over the target (whose memory it then is) as
    `t − (h · Wᵀ + b) = −r`: IEEE subtraction is antisymmetric, so this is exactly `−r`, its square exactly `r²` and
    `(−r) · (−2g)` exactly `r · 2g`: the loss and every gradient are bit for bit those of the plain path, with one
    n-sized tensor less alive from the forward to the backward pass.
    """

    @staticmethod
    def forward(ctx, h, weight, bias, target, overwrite_target=False):
        if overwrite_target:
            residual, ctx.scale = target.sub_(torch.addmm(bias, h, weight.T)), -2
        else:
            residual, ctx.scale = torch.addmm(bias, h, weight.T).sub_(target), 2
        ctx.save_for_backward(h, weight, residual)
        return residual.pow(2).sum()

    @staticmethod
    def backward(ctx, grad_output):
        h, weight, residual = ctx.saved_tensors
        scaled = residual.mul_(ctx.scale * grad_output)
        grad_h = scaled @ weight if ctx.needs_input_grad[0] else None
        grad_weight = scaled.T @ h if ctx.needs_input_grad[1] else None
        grad_bias = (scaled[0] if scaled.shape[0] == 1 else scaled.sum(0)) if ctx.needs_input_grad[2] else None
        return grad_h, grad_weight, grad_bias, None, None


def squared_error(h, weight, bias, target, activation, fused: bool, overwrite_target: bool = False) -> torch.Tensor:
    """`Σ (act(h · Wᵀ + b) − t)²` of one parameter: through [`SquaredReconstruction`] when `fused` (identity
    activation and a bias), else through autograd.

    Args:
        h (`torch.Tensor`): `(batch, latent_dim)` feature values, in the weight's dtype.
        weight (`torch.Tensor`): The `(numel, latent_dim)` decoder weight.
        bias (`torch.Tensor`, *optional*): The `(numel,)` decoder bias.
        target (`torch.Tensor`): The `(batch, numel)` target gradient.
        activation: The decoder activation.
        fused (`bool`): Whether to use the fused reconstruction.
        overwrite_target (`bool`, *optional*, defaults to `False`): Let the fused reconstruction write its residual
            over `target` (same loss and gradients; the target's values are lost).

    Returns:
        `torch.Tensor`: The scalar sum of squared errors.
    """
    if fused:
        return SquaredReconstruction.apply(h, weight, bias, target, overwrite_target)
    decoded = activation(h @ weight.T + (bias if bias is not None else 0))
    return (decoded - target).pow(2).sum()


class GradiendPreTrainedModel(PreTrainedModel):
    config_class = GradiendConfig
    base_model_prefix = "gradiend"
    main_input_name = "source_gradients"
    _no_split_modules = []
    supports_gradient_checkpointing = False

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        """Initialises like the reference: the encoder as `nn.Linear(n, latent_dim)` over the TOTAL n, the decoder
        uniformly in ±(largest encoder weight).

        Works on the `ParameterDict`s themselves: transformers skips a custom module whose direct parameters are all
        loaded, and the encoder/decoder modules hold theirs one level down. Uses `transformers.initialization`, which
        leaves tensors loaded from a checkpoint untouched. Children are initialised before parents and the encoder
        before the decoder, so the decoder's bound is read from an initialised encoder.
        """
        if isinstance(module, GradiendKeptPositions):
            # Kept positions come from pruning or from the checkpoint; -1 marks any that came from neither, so
            # `check_kept_positions` can reject a checkpoint that lacks them instead of reading garbage.
            for buffer in module.buffers(recurse=False):
                init.constant_(buffer, -1)
            return
        encoder, decoder = getattr(self, "encoder", None), getattr(self, "decoder", None)
        if encoder is None or decoder is None:
            return
        # nn.Linear's default (kaiming_uniform with a=sqrt(5)) gives a bound of 1/sqrt(fan_in) for W and b.
        bound = 1.0 / math.sqrt(max(self.config.num_base_parameters, 1))
        if module is encoder.weight:
            for weight in module.values():
                init.uniform_(weight, -bound, bound)
        elif module is encoder:
            init.uniform_(module.bias, -bound, bound)
        elif module is decoder.weight or (decoder.bias is not None and module is decoder.bias):
            encoder_weights = list(encoder.weight.values())
            if not encoder_weights or any(w.is_meta for w in encoder_weights):
                return
            limit = max(float(w.max()) for w in encoder_weights)
            for value in module.values():
                init.uniform_(value, -limit, limit)
