"""Trains a tiny GRADIEND; run once plainly and once under `accelerate launch --multi_gpu --num_processes 2`.

Usage: python train_distributed.py OUTPUT_DIR PER_DEVICE_BATCH
"""

import sys
from pathlib import Path

import torch


sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from gradiend_hf import GradiendModel, GradiendTrainer, GradiendTrainingArguments  # noqa: E402
from gradiend_hf.data import load_builtin  # noqa: E402
from tests.tiny_models import tiny_model  # noqa: E402


def main():
    output_dir, per_device = sys.argv[1], int(sys.argv[2])
    model, tokenizer = tiny_model("bert")
    torch.manual_seed(0)
    gradiend = GradiendModel.from_base_model(model, params=["*.layer.1.*"])
    args = GradiendTrainingArguments(
        output_dir,
        max_steps=4,
        learning_rate=1e-3,
        sentences_per_gradient=4,
        per_device_train_batch_size=per_device,
        eval_steps=2,
        eval_max_rows=16,
        report_to="none",
        disable_tqdm=True,
        use_cpu=True,
        seed=0,
    )
    data = load_builtin("gender-en")
    trainer = GradiendTrainer(
        model=gradiend, base_model=model, processing_class=tokenizer, args=args, train_dataset=data
    )
    trainer.train()
    trainer.save_model(output_dir)
    trainer.accelerator.wait_for_everyone()
    if torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main()
