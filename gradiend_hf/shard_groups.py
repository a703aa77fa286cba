"""Shard groups of a GRADIEND sharded with FSDP2: which per-parameter tensors share a group, the group modules whose
forward passes are each group's share of the encoder and of the reconstruction loss, and the views that keep
`gradiend.encoder.weight[key]` working.

FSDP2 all-gathers a group's weights in the group module's forward pre-hook and frees them after its forward (and
again around its backward), so a step holds the weights of one group at a time (plus one prefetched in the backward)
instead of the whole GRADIEND. The encoder needs the sum over all groups before the decoder can run, so a sharded
forward has two phases over the groups, each group an FSDP2 unit of its own in each phase:

1. encoder: `pre ← pre + Σ_{p in group} g_p · W_pᵀ`, group after group (the running sum is each group's input);
2. decoder and loss: `squared ← squared + Σ_{p in group} ‖act(h · W_pᵀ + b_p) − t_p‖²`, group after group.

The backward pass visits the groups in reverse, each gathered again for its own gradients, which FSDP2
reduce-scatters as soon as the group is done (its post-backward hook sits on the group's inputs that need a gradient:
the running sum, and in phase 2 also `h`).

The per-parameter tensors move from `encoder.weight` / `decoder.weight` / `decoder.bias` into
`shard_groups.<i>.encoder.weight` / `shard_groups.<i>.decoder.weight` / `shard_groups.<i>.decoder.bias`;
[`canonical_name`] maps those names back to the GRADIEND's own (a saved GRADIEND's keys never change).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence

import torch
from torch import nn

from .errors import GradiendError
from .gradiend_modules import ACTIVATIONS, squared_error


SHARD_GROUPINGS = ("layer", "bucket", "one")
_GROUP_PREFIX = re.compile(r"^shard_groups\.\d+\.")


def canonical_name(name: str) -> str:
    """The GRADIEND's own state-dict name of a tensor of a GRADIEND split into shard groups (unchanged otherwise)."""
    return _GROUP_PREFIX.sub("", name)


def layer_of(name: str) -> str | None:
    """The covered base layer a base parameter belongs to: its name up to the first numeric component
    (`bert.encoder.layer.11.output.dense.weight` → `bert.encoder.layer.11`), `None` outside numbered layers."""
    parts = name.split(".")
    for i, part in enumerate(parts):
        if part.isdigit():
            return ".".join(parts[: i + 1])
    return None


def plan_shard_groups(
    names: Sequence[str], counts: Sequence[int], grouping: str = "layer", bucket_size: int = 50_000_000
) -> list[list[int]]:
    """Splits the covered base parameters (in the GRADIEND's order) into shard groups of consecutive parameters.

    Args:
        names (`Sequence[str]`): The covered base parameter names.
        counts (`Sequence[int]`): The entries the GRADIEND covers of each (its encoder inputs).
        grouping (`str`, *optional*, defaults to `"layer"`): `"layer"`: one group per covered base layer (the
            parameters outside numbered layers, such as embeddings, form a group per consecutive run); `"bucket"`:
            consecutive parameters packed into groups of at most `bucket_size` entries (a larger parameter is a
            group of its own); `"one"`: a single group.
        bucket_size (`int`, *optional*, defaults to 50,000,000): Entries per bucket (`grouping="bucket"`).

    Returns:
        `list[list[int]]`: The indices of each group's parameters.

    Raises:
        [`GradiendError`]: an unknown grouping or a bucket size below 1.
    """
    if grouping not in SHARD_GROUPINGS:
        raise GradiendError(f"Unknown shard grouping {grouping!r}; choose one of {', '.join(SHARD_GROUPINGS)}.")
    if isinstance(bucket_size, bool) or not isinstance(bucket_size, int) or bucket_size < 1:
        raise GradiendError(f"`shard_bucket_size` must be a positive number of entries, got {bucket_size!r}.")
    groups: list[list[int]] = []
    previous, filled = object(), 0
    for index, (name, count) in enumerate(zip(names, counts)):
        if grouping == "one":
            new = not groups
        elif grouping == "layer":
            new, previous = layer_of(name) != previous, layer_of(name)
        else:
            new = not groups or filled + count > bucket_size
            filled = count if new else filled + count
        if new:
            groups.append([])
        groups[-1].append(index)
    return groups


class PartialEncoding(torch.autograd.Function):
    """`pre + Σ_p g_p · W_pᵀ` over one group's parameters, with a hand-written backward.

    Only the gradients `g_p` are saved (the weights' gradients `∂/∂W_p = (g_pᵀ · grad)ᵀ` need no weights, so the
    gathered weights are not kept alive by autograd), and the running sum's gradient comes out of the same backward
    node as the weights' gradients: FSDP2's post-backward hook on the running sum then fires only after the group's
    weight gradients exist.
    """

    @staticmethod
    def forward(ctx, pre, count, *tensors):
        weights, flats = tensors[:count], tensors[count:]
        ctx.save_for_backward(*flats)
        for weight, flat in zip(weights, flats):
            pre = pre + flat @ weight.T
        return pre

    @staticmethod
    def backward(ctx, grad):
        flats = ctx.saved_tensors
        weight_grads = [(flat.T @ grad).T if ctx.needs_input_grad[2 + i] else None for i, flat in enumerate(flats)]
        return grad, None, *weight_grads, *([None] * len(flats))


class GroupEncoder(nn.Module):
    """One shard group's encoder weights (`weight[key]`: `(latent_dim, entries)`); its forward adds the group's
    share to the encoder's running pre-activation."""

    def __init__(self, weights: Mapping[str, nn.Parameter]):
        super().__init__()
        self.weight = nn.ParameterDict(list(weights.items()))

    def forward(self, pre: torch.Tensor, flats: Mapping[str, torch.Tensor]) -> torch.Tensor:
        weights = [self.weight[key] for key in self.weight]
        inputs = [flats[key].to(device=w.device, dtype=w.dtype) for key, w in zip(self.weight, weights)]
        return PartialEncoding.apply(pre, len(weights), *weights, *inputs)


class GroupDecoder(nn.Module):
    """One shard group's decoder weights and biases; its forward adds the group's squared reconstruction errors to
    the running sum."""

    def __init__(
        self,
        weights: Mapping[str, nn.Parameter],
        biases: Mapping[str, nn.Parameter] | None,
        activation: str,
    ):
        super().__init__()
        self.weight = nn.ParameterDict(list(weights.items()))
        self.bias = nn.ParameterDict(list(biases.items())) if biases is not None else None
        self.activation = activation

    def forward(
        self, h: torch.Tensor, targets: Mapping[str, torch.Tensor], squared: torch.Tensor | None
    ) -> torch.Tensor:
        activation = ACTIVATIONS[self.activation]
        fused = self.activation == "id" and self.bias is not None
        for key in self.weight:
            weight = self.weight[key]
            bias = self.bias[key] if self.bias is not None else None
            target = targets[key].to(device=weight.device, dtype=weight.dtype)
            term = squared_error(h.to(weight.dtype), weight, bias, target, activation, fused)
            squared = term if squared is None else squared + term
        return squared


class ShardGroup(nn.Module):
    """The tensors of one shard group: an encoder part and a decoder part (two FSDP2 units)."""

    def __init__(self, keys: Sequence[str], encoder: GroupEncoder, decoder: GroupDecoder):
        super().__init__()
        self.keys = list(keys)
        self.encoder = encoder
        self.decoder = decoder


class GroupedParameters(Mapping):
    """`encoder.weight` / `decoder.weight` / `decoder.bias` of a GRADIEND split into shard groups: `view[key]` looks
    the tensor up in its group at every access, so it is whichever tensor FSDP2 has registered there now (the local
    shard between steps, the gathered weight inside the group's forward)."""

    def __init__(self, keys: Sequence[str], where: Mapping[str, nn.ParameterDict]):
        self._keys = list(keys)
        self._where = dict(where)

    def __getitem__(self, key: str) -> nn.Parameter:
        return self._where[key][key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._keys)

    def __len__(self) -> int:
        return len(self._keys)


def split_into_groups(gradiend: nn.Module, grouping: str = "layer", bucket_size: int = 50_000_000) -> nn.ModuleList:
    """Moves the GRADIEND's per-parameter tensors into shard groups (`gradiend.shard_groups`), in place.

    `gradiend.encoder.weight`, `gradiend.decoder.weight` and `gradiend.decoder.bias` become [`GroupedParameters`]
    views of the same tensors; `gradiend.encoder.bias` stays where it is.

    Args:
        gradiend ([`GradiendModel`]): An unsharded GRADIEND.
        grouping (`str`, *optional*, defaults to `"layer"`), bucket_size (`int`, *optional*): See
            [`plan_shard_groups`].

    Returns:
        `nn.ModuleList`: The groups, in the GRADIEND's parameter order.
    """
    encoder, decoder = gradiend.encoder, gradiend.decoder
    keys = list(gradiend.param_keys)
    counts = [encoder.weight[key].shape[1] for key in keys]
    groups = nn.ModuleList()
    for indices in plan_shard_groups(gradiend.param_names, counts, grouping, bucket_size):
        members = [keys[i] for i in indices]
        part_encoder = GroupEncoder({key: encoder.weight[key] for key in members})
        biases = {key: decoder.bias[key] for key in members} if decoder.bias is not None else None
        part_decoder = GroupDecoder(
            {key: decoder.weight[key] for key in members}, biases, gradiend.config.activation_decoder
        )
        groups.append(ShardGroup(members, part_encoder, part_decoder))
    has_bias = decoder.bias is not None
    del encoder.weight, decoder.weight, decoder.bias
    encoder.weight = GroupedParameters(keys, {key: g.encoder.weight for g in groups for key in g.keys})
    decoder.weight = GroupedParameters(keys, {key: g.decoder.weight for g in groups for key in g.keys})
    decoder.bias = (
        GroupedParameters(keys, {key: g.decoder.bias for g in groups for key in g.keys}) if has_bias else None
    )
    gradiend.shard_groups = groups
    return groups


def forward_by_group(
    gradiend: nn.Module,
    source_gradients: Mapping[str, torch.Tensor],
    target_gradients: Mapping[str, torch.Tensor] | None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """[`GradiendModel.forward`] of a GRADIEND split into shard groups: the encodings and the reconstruction loss
    (`None` without targets), computed group by group in the GRADIEND's parameter order (the same sums in the same
    order as the ungrouped forward).

    Returns:
        `tuple`: `(encodings, loss)`, as [`GradiendModel.encode`] and [`GradiendModel.reconstruction_loss`] give them.
    """
    config = gradiend.config
    where = {
        key: (name, shape)
        for key, name, shape in zip(gradiend.param_keys, gradiend.param_names, gradiend.param_shapes)
    }
    bias = gradiend.encoder.bias
    pre, batched = None, False
    for group in gradiend.shard_groups:
        flats = {}
        for key in group.keys:
            name, shape = where[key]
            flats[key] = gradiend.flat_gradient(source_gradients, name, shape)
            batched = batched or source_gradients[name].dim() > len(shape)
        if pre is None:
            # A zero start (0 + x is x exactly) that needs a gradient, so the first group has an input for FSDP2's
            # post-backward hook too.
            batch = next(iter(flats.values())).shape[0]
            pre = torch.zeros(
                batch, config.latent_dim, dtype=bias.dtype, device=bias.device, requires_grad=torch.is_grad_enabled()
            )
        pre = group.encoder(pre, flats)
    h = ACTIVATIONS[config.activation_encoder](pre + bias)
    encodings = h if batched else h[0]
    if target_gradients is None:
        return encodings, None
    squared = None
    for group in gradiend.shard_groups:
        targets = {
            key: gradiend.reconstruction_target(where[key][0], target_gradients, h.shape[0]) for key in group.keys
        }
        squared = group.decoder(h, targets, squared)
    return encodings, squared / (config.num_base_parameters * h.shape[0])
