"""Trains a tiny GRADIEND, sharded (`shard_gradiend=True`) or not; for `tests/test_sharding.py`.

Usage: python train_sharded.py OUTPUT_DIR PER_DEVICE_BATCH SHARD [GROUPS [RESUME_GROUPS [BUCKET_SIZE]]]

Trains 4 steps into OUTPUT_DIR/run (checkpoints at steps 2 and 4) with `shard_groups=GROUPS` (default `layer`); with
SHARD=1 it then trains a differently initialised GRADIEND into OUTPUT_DIR/resumed, resuming from
OUTPUT_DIR/run/checkpoint-2 with `shard_groups=RESUME_GROUPS` (default GROUPS). BUCKET_SIZE is `shard_bucket_size`.

With SHARD=1 (under `torchrun --nproc_per_node 2`) each process also writes its local shards of the final GRADIEND
(`shards/rank<r>.safetensors`, under the GRADIEND's own names) and, after a forced sign flip, its shards of the
weights and first Adam moments before and after (`shards/flip-rank<r>.safetensors`), so the test can check them
without the gathering code. It prints how many FSDP2 units the GRADIEND has and the most of them that held gathered
weights at once when one of them started its forward pass.
"""

import os
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file
from torch.distributed.fsdp import FSDPModule
from torch.distributed.tensor import DTensor


sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from gradiend_hf import GradiendModel, GradiendTrainer, GradiendTrainingArguments  # noqa: E402
from gradiend_hf.data import load_builtin  # noqa: E402
from gradiend_hf.shard_groups import canonical_name  # noqa: E402
from gradiend_hf.trainer_callbacks import SignNormalizationCallback  # noqa: E402
from tests.tiny_models import tiny_model  # noqa: E402


PARAMS = ["*.layer.*"]  # both layers of the tiny BERT: two groups with shard_groups="layer"


def local(tensor):
    return (tensor.to_local() if hasattr(tensor, "to_local") else tensor).detach().clone().contiguous()


def local_state(module):
    return {canonical_name(k): local(v) for k, v in module.state_dict().items()}


class GatheredUnits:
    """Records, at the start of each FSDP2 unit's forward, how many units hold gathered (non-DTensor) weights."""

    def __init__(self, gradiend):
        self.units = [m for m in gradiend.modules() if isinstance(m, FSDPModule) and m is not gradiend]
        self.most = 0
        for unit in self.units:
            unit.register_forward_pre_hook(self.count)

    def count(self, module, args):
        gathered = sum(any(not isinstance(p, DTensor) for p in unit.parameters()) for unit in self.units)
        self.most = max(self.most, gathered)


def train(output_dir, per_device, shard, model, tokenizer, seed, groups, bucket_size, resume=None):
    torch.manual_seed(seed)
    gradiend = GradiendModel.from_base_model(model, params=PARAMS)
    args = GradiendTrainingArguments(
        output_dir,
        max_steps=4,
        learning_rate=1e-3,
        sentences_per_gradient=4,
        per_device_train_batch_size=per_device,
        eval_steps=2,
        eval_max_rows=16,
        save_strategy="steps",
        save_steps=2,
        report_to="none",
        disable_tqdm=True,
        use_cpu=True,
        seed=0,
        shard_gradiend=shard,
        shard_groups=groups,
        shard_bucket_size=bucket_size,
    )
    data = load_builtin("gender-en")
    trainer = GradiendTrainer(
        model=gradiend, base_model=model, processing_class=tokenizer, args=args, train_dataset=data
    )
    gathered = GatheredUnits(gradiend) if shard else None
    trainer.train(resume_from_checkpoint=resume)
    trainer.save_model(output_dir)
    return trainer, gradiend, args, gathered


def main():
    root, per_device, shard = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1"
    groups = sys.argv[4] if len(sys.argv) > 4 else "layer"
    resume_groups = sys.argv[5] if len(sys.argv) > 5 else groups
    bucket_size = int(sys.argv[6]) if len(sys.argv) > 6 else 50_000_000
    model, tokenizer = tiny_model("bert")
    output_dir = os.path.join(root, "run")
    trainer, gradiend, args, gathered = train(
        output_dir, per_device, shard, model, tokenizer, seed=0, groups=groups, bucket_size=bucket_size
    )
    if shard:
        rank = torch.distributed.get_rank()
        shards = Path(output_dir) / "shards"
        shards.mkdir(exist_ok=True)
        save_file(local_state(gradiend), str(shards / f"rank{rank}.safetensors"))
        optimizer = trainer.optimizer
        moments = {canonical_name(k): optimizer.state[p]["exp_avg"] for k, p in gradiend.named_parameters()}
        before = {f"before.{k}": v for k, v in local_state(gradiend).items()}
        before.update({f"before_m.{k}": local(v) for k, v in moments.items()})
        SignNormalizationCallback().on_evaluate(
            args, trainer.state, trainer.control, model=gradiend, optimizer=optimizer, metrics={"eval_correlation": -1}
        )
        after = {f"after.{k}": v for k, v in local_state(gradiend).items()}
        after.update({f"after_m.{k}": local(v) for k, v in moments.items()})
        save_file({**before, **after}, str(shards / f"flip-rank{rank}.safetensors"))
        print(
            f"sharded world_size={torch.distributed.get_world_size()} dtensor={type(gradiend.encoder.bias).__name__} "
            f"units={len(gathered.units)} most_gathered={gathered.most}"
        )
        # A different initialisation: everything must come from the checkpoint.
        resume = os.path.join(output_dir, "checkpoint-2")
        train(
            os.path.join(root, "resumed"),
            per_device,
            shard,
            model,
            tokenizer,
            seed=123,
            groups=resume_groups,
            bucket_size=bucket_size,
            resume=resume,
        )
    trainer.accelerator.wait_for_everyone()
    if torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main()
