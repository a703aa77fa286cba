"""What [`GradiendTrainer`] does differently for a GRADIEND sharded with `shard_gradiend=True`: gathering it for
saving, snapshots and the Hub, and checkpointing and resuming its sharded optimizer state.

A checkpoint of a sharded run is the same as one of an unsharded run: a whole safetensors GRADIEND and a whole
`optimizer.pt` (gathered, written by the main process), so it can be resumed with any number of processes.
"""

from __future__ import annotations

import os

import torch
from transformers.trainer import OPTIMIZER_NAME, SCHEDULER_NAME

from .io import atomic_path
from .modeling_gradiend import GradiendModel
from .sharding import (
    full_optimizer_state,
    full_state_dict,
    load_full_optimizer_state,
    load_full_state_dict,
    plain_copy,
    shard_gradiend,
    sharding_requested,
)


class ShardedGradiendMixin:
    """Mixed into [`GradiendTrainer`] before `transformers.Trainer`; a no-op unless the GRADIEND is sharded."""

    sharded: bool = False

    def _shard_if_asked(self, model: GradiendModel, args) -> None:
        # Before `Trainer.__init__`, so the optimizer it creates later holds the shards.
        self.sharded = sharding_requested(args)
        if self.sharded:
            shard_gradiend(model, args.device, args.shard_groups, args.shard_bucket_size)

    def _after_init_sharding(self) -> None:
        fsdp_plugin = getattr(self.accelerator.state, "fsdp_plugin", None)
        if self.is_fsdp_enabled and getattr(fsdp_plugin, "fsdp_version", 1) == 2:
            # accelerate's FSDP2 plugin (GPU; e.g. examples/accelerate/fsdp.yaml) applies `fully_shard` itself when
            # training starts; gathering, encoding and checkpointing then go the same way as with `shard_gradiend`.
            # Not run by this project yet: accelerate's plugin does not shard on CPU.
            self.sharded = True
        elif self.sharded:
            # transformers' path for a model that owns its sharding: no DDP wrap, no second sharding by accelerate,
            # no `.to()` on the shards.
            self.is_distributed_loading_by_transformers = True

    def gradiend_to_save(self) -> GradiendModel | None:
        """The GRADIEND as a plain (unsharded) model on the processes that save, `None` on the others.

        For a sharded GRADIEND this gathers the weights (a collective: every process must call it); otherwise it is
        the trained model itself.
        """
        if not self.sharded:
            return self.accelerator.unwrap_model(self.model, keep_torch_compile=False)
        state = full_state_dict(self.model)
        return plain_copy(self.model, state) if self.args.should_save else None

    def load_whole_gradiend(self, state_dict: dict[str, torch.Tensor]) -> None:
        """Loads a whole GRADIEND state dict (given on every process) into the trained model."""
        if self.sharded:
            load_full_state_dict(self.model, state_dict)
            return
        with torch.no_grad():
            self.accelerator.unwrap_model(self.model).load_state_dict(state_dict)

    def _load_from_checkpoint(self, resume_from_checkpoint: str, model=None) -> None:
        if not self.sharded:
            return super()._load_from_checkpoint(resume_from_checkpoint, model)
        # Only the first process reads the whole GRADIEND; the others receive their shards from it.
        whole = GradiendModel.from_pretrained(resume_from_checkpoint) if self.is_world_process_zero() else None
        load_full_state_dict(self.model, whole.state_dict() if whole is not None else None)
        return None

    def _save_optimizer_and_scheduler(self, output_dir: str) -> None:
        if not self.sharded:
            return super()._save_optimizer_and_scheduler(output_dir)
        state = full_optimizer_state(self.model, _torch_optimizer(self.optimizer))
        if self.args.should_save:
            with atomic_path(os.path.join(output_dir, OPTIMIZER_NAME)) as path:
                torch.save(state, path)
            with atomic_path(os.path.join(output_dir, SCHEDULER_NAME)) as path:
                torch.save(self.lr_scheduler.state_dict(), path)
        return None

    def _load_optimizer_and_scheduler(self, checkpoint: str | None) -> None:
        if not self.sharded:
            return super()._load_optimizer_and_scheduler(checkpoint)
        if checkpoint is None:
            return None
        state = None
        if self.is_world_process_zero():
            state = torch.load(os.path.join(checkpoint, OPTIMIZER_NAME), map_location="cpu", weights_only=True)
        load_full_optimizer_state(self.model, _torch_optimizer(self.optimizer), state)
        scheduler = os.path.join(checkpoint, SCHEDULER_NAME)
        if os.path.isfile(scheduler):
            self.lr_scheduler.load_state_dict(torch.load(scheduler, map_location="cpu", weights_only=True))
        return None


def _torch_optimizer(optimizer):
    # accelerate wraps the torch optimizer; the state-dict helpers need the optimizer that holds the shards.
    return getattr(optimizer, "optimizer", optimizer)
