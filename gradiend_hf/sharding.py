"""Sharded GRADIEND training with torch's FSDP2 (`fully_shard`): sharding, gathering and loading the weights and the
optimizer state.

Only the GRADIEND is sharded (its per-parameter encoder/decoder tensors become `DTensor`s split over the processes);
the base model stays whole on every process, which computes the gradients of its own groups. FSDP2 all-gathers the
weights for the forward and backward passes and reduce-scatters (averages) the gradients, so each process keeps
1/world_size of the weights, their gradients and the AdamW moments between steps. By default the GRADIEND is split
into one shard group per covered base layer ([`gradiend_hf.shard_groups`]), so a step gathers one group at a time.

Every function here that gathers or scatters is a collective: all processes must call it, in the same order.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_optimizer_state_dict,
    set_model_state_dict,
    set_optimizer_state_dict,
)
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.fsdp import FSDPModule, fully_shard
from torch.distributed.tensor import Shard

from .errors import GradiendError
from .shard_groups import GroupDecoder, canonical_name, split_into_groups


def sharding_requested(args) -> bool:
    """Whether `args.shard_gradiend` asks for sharding, checked against the launch.

    Raises:
        [`GradiendError`]: sharding is asked for in a single-process run, or together with accelerate's own FSDP.
    """
    if not getattr(args, "shard_gradiend", False):
        return False
    if args.world_size < 2:
        raise GradiendError(
            "`shard_gradiend=True` splits the GRADIEND over several processes, but this run has one. Launch it with "
            "`torchrun --nproc_per_node N ...` or `accelerate launch --multi_gpu --num_processes N ...`, or drop "
            "`shard_gradiend`."
        )
    state = getattr(args, "distributed_state", None)
    if args.save_on_each_node:
        raise GradiendError(
            "`shard_gradiend=True` gathers the GRADIEND onto the first process to save it; `save_on_each_node=True` "
            "would need it whole on every node. Drop `save_on_each_node`."
        )
    if getattr(args, "fsdp", None) or getattr(getattr(state, "distributed_type", None), "name", "") == "FSDP":
        raise GradiendError(
            "`shard_gradiend=True` shards the GRADIEND itself; do not configure accelerate's or transformers' FSDP "
            "as well. Drop one of them."
        )
    return True


def shard_gradiend(
    gradiend: nn.Module, device: torch.device, grouping: str = "layer", bucket_size: int = 50_000_000
) -> nn.Module:
    """Shards the GRADIEND's tensors over all processes with FSDP2 (in place; returns the module).

    With `grouping="layer"` (one group per covered base layer) or `"bucket"` (groups of about `bucket_size` covered
    entries) the per-parameter tensors are split into shard groups (see [`gradiend_hf.shard_groups`]), each group's
    encoder part and decoder part an FSDP2 unit of its own: a step gathers one unit's weights at a time. With
    `grouping="one"` the whole GRADIEND is one unit: its forward pass gathers every weight. Either way the weights are
    freed again after the forward and the backward pass. Each tensor is split along its longer dimension, so the
    `(latent_dim, numel)` encoder weights are spread over the processes like the `(numel, latent_dim)` decoder
    weights (split along dimension 0 they would all sit on the first process).

    Args:
        gradiend ([`GradiendModel`]): An unsharded GRADIEND, identical on every process.
        device (`torch.device`): The process's device (`cpu` for gloo runs).
        grouping (`str`, *optional*, defaults to `"layer"`): `"layer"`, `"bucket"` or `"one"`.
        bucket_size (`int`, *optional*, defaults to 50,000,000): Covered entries per group with `grouping="bucket"`.
    """
    world = torch.distributed.get_world_size()
    gradiend.to(device)
    mesh = init_device_mesh(device.type, (world,))
    options = {"mesh": mesh, "reshard_after_forward": True, "shard_placement_fn": _longer_dimension}
    if grouping != "one":
        for group in split_into_groups(gradiend, grouping, bucket_size):
            fully_shard(group.encoder, **options)
            fully_shard(group.decoder, **options)
    fully_shard(gradiend, **options)  # the root: the encoder bias (and everything, with one group)
    return gradiend


def _longer_dimension(param: nn.Parameter) -> Shard:
    return Shard(1 if param.dim() > 1 and param.shape[1] > param.shape[0] else 0)


def is_sharded(model: nn.Module) -> bool:
    """Whether `model` was sharded by [`shard_gradiend`]."""
    return isinstance(model, FSDPModule)


def _options(**kwargs):
    return StateDictOptions(**kwargs)


def full_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """The GRADIEND's whole state dict under its own names, gathered onto the CPU of every process (collective)."""
    state = get_model_state_dict(model, options=_options(full_state_dict=True, cpu_offload=True))
    return {canonical_name(name): value for name, value in state.items()}


def load_full_state_dict(model: nn.Module, state_dict: dict[str, torch.Tensor] | None) -> None:
    """Loads a whole (unsharded) state dict into the sharded GRADIEND (collective).

    Only the first process needs to hold it (the others may pass `None`): it is broadcast and each process keeps its
    shards, so a resumed run does not read the whole GRADIEND into every process's memory.
    """
    names = _sharded_names(model)
    state = {names.get(name, name): value for name, value in (state_dict or {}).items()}
    set_model_state_dict(model, state, options=_options(full_state_dict=True, broadcast_from_rank0=True))


def full_optimizer_state(model: nn.Module, optimizer: torch.optim.Optimizer) -> dict:
    """The optimizer's whole state (AdamW moments of every entry) keyed by the GRADIEND's own parameter names,
    gathered onto the CPU (collective)."""
    state = get_optimizer_state_dict(model, optimizer, options=_options(full_state_dict=True, cpu_offload=True))
    return _rename_optimizer_state(state, canonical_name)


def load_full_optimizer_state(model: nn.Module, optimizer: torch.optim.Optimizer, state: dict | None) -> None:
    """Loads a whole optimizer state as shards into `optimizer` (collective; only the first process needs `state`)."""
    names = _sharded_names(model)
    state = _rename_optimizer_state(state or {}, lambda name: names.get(name, name))
    options = _options(full_state_dict=True, broadcast_from_rank0=True)
    set_optimizer_state_dict(model, optimizer, state, options=options)


def _sharded_names(model: nn.Module) -> dict[str, str]:
    # The GRADIEND's own name of each tensor → its name in the sharded model (they differ inside shard groups).
    return {canonical_name(name): name for name in model.state_dict()}


def _rename_optimizer_state(state: dict, rename) -> dict:
    if not state:  # gathered onto the first process only
        return state
    groups = [{**group, "params": [rename(name) for name in group["params"]]} for group in state["param_groups"]]
    return {"state": {rename(name): value for name, value in state["state"].items()}, "param_groups": groups}


@contextmanager
def unsharded(model: nn.Module, encoder_only: bool = False) -> Iterator[nn.Module]:
    """Gives the sharded GRADIEND whole weights inside the block (e.g. to encode outside its forward pass).

    A no-op for an unsharded model; a collective for a sharded one, which gathers every shard group (with
    `encoder_only=True` only the encoder's: enough to encode).
    """
    if not is_sharded(model):
        yield model
        return
    units = [model] + [
        unit
        for unit in model.modules()
        if unit is not model and isinstance(unit, FSDPModule) and not (encoder_only and isinstance(unit, GroupDecoder))
    ]
    for unit in units:
        unit.unshard()
    try:
        yield model
    finally:
        for unit in units:
            unit.reshard()


def plain_copy(model: nn.Module, state_dict: dict[str, torch.Tensor]) -> nn.Module:
    """An unsharded GRADIEND of the sharded `model`'s class and config holding `state_dict` (on the CPU)."""
    # FSDP2 swaps the module's class for a subclass of (FSDPModule, original class).
    cls = next(c for c in type(model).__mro__ if issubclass(c, nn.Module) and not issubclass(c, FSDPModule))
    with torch.device("meta"):
        plain = cls(copy.deepcopy(model.config))
    plain.load_state_dict(state_dict, assign=True, strict=True)
    return plain.eval()


def all_finite(tensor: torch.Tensor) -> bool:
    """Whether every entry of a (possibly sharded) tensor is finite, agreed over all processes (collective when
    sharded)."""
    local = tensor.to_local() if hasattr(tensor, "to_local") else tensor
    finite = torch.isfinite(local).all().to(torch.int32).reshape(1)
    if hasattr(tensor, "to_local"):
        torch.distributed.all_reduce(finite, op=torch.distributed.ReduceOp.MIN)
    return bool(finite.item())
