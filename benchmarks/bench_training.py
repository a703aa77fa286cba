"""Time per training step: GradiendTrainer vs the reference package's step, measured in the same process.

- ours: one `GradiendTrainer` optimizer step (`training_step`: group gradients from one forward pass, the
  per-parameter GRADIEND and its backward; then the fused AdamW step);
- reference style: the factual and the alternative loss each get a forward and a backward pass into `.grad`, the
  selected gradients are concatenated into flat vectors, and a plain `nn.Linear(n, 1)` / `nn.Linear(1, n)`
  encoder-decoder takes an AdamW step on the MSE (the reference's architecture and optimizer);
- bare base cost: one forward and two backward passes of the same group through the base model (what any
  GRADIEND step must pay), to show the overhead we add on top.

Run: `python benchmarks/bench_training.py [--quick]`. Ratios > 1 mean ours is faster.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch import nn
from transformers import BertConfig, BertForMaskedLM


sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gradiend_hf import GradiendModel, GradiendTrainer, GradiendTrainingArguments  # noqa: E402
from gradiend_hf.data import load_builtin  # noqa: E402
from gradiend_hf.gradients import group_gradients  # noqa: E402
from tests.tiny_models import wordpiece_tokenizer  # noqa: E402


def make_trainer(model, tokenizer, data, group_size, output_dir):
    torch.manual_seed(0)
    gradiend = GradiendModel.from_base_model(model)
    args = GradiendTrainingArguments(
        output_dir,
        max_steps=100,
        sentences_per_gradient=group_size,
        eval_strategy="no",
        eval_on_start=False,
        report_to="none",
        disable_tqdm=True,
        save_strategy="no",
    )
    trainer = GradiendTrainer(
        model=gradiend, base_model=model, processing_class=tokenizer, args=args, train_dataset=data["train"]
    )
    trainer.create_optimizer_and_scheduler(num_training_steps=100)
    trainer.current_gradient_accumulation_steps = 1  # set by the training loop we bypass
    return trainer


def our_step(trainer, inputs):
    """Exactly what `Trainer.train` does per step: `training_step` (loss + backward), optimizer step, zero grad."""
    trainer.model.train()
    trainer.training_step(trainer.model, inputs)
    trainer.optimizer.step()
    trainer.model.zero_grad(set_to_none=True)


class ReferenceGradiend(nn.Module):
    def __init__(self, n):
        super().__init__()
        self.encoder = nn.Linear(n, 1)
        self.decoder = nn.Linear(1, n)

    def forward(self, x):
        return self.decoder(torch.tanh(self.encoder(x)))


class ReferenceStep:
    """Two forward + two backward passes into `.grad`, flat concatenation, plain Linear encoder-decoder, AdamW."""

    def __init__(self, model, names):
        self.model, self.names = model, names
        self.params = dict(model.named_parameters())
        n = sum(self.params[name].numel() for name in names)
        self.gradiend = ReferenceGradiend(n)
        self.optimizer = torch.optim.AdamW(self.gradiend.parameters(), lr=1e-5, weight_decay=0.01, eps=1e-8)

    def __call__(self, batch):
        for p in self.model.parameters():
            p.requires_grad_(True)
        flats = []
        for slot in (0, 1):  # the factual, then the alternative word (single-token rows: one read per row)
            picked = batch.target_slots == slot
            reads = batch.target_reads[picked]
            labels = torch.full_like(batch.input_ids, -100)
            labels[batch.read_sequences[reads], batch.read_positions[reads]] = batch.target_ids[picked]
            self.model.zero_grad(set_to_none=True)
            self.model(input_ids=batch.input_ids, attention_mask=batch.attention_mask, labels=labels).loss.backward()
            flats.append(torch.cat([self.params[name].grad.reshape(-1) for name in self.names]))
        self.model.zero_grad(set_to_none=True)
        for p in self.model.parameters():
            p.requires_grad_(False)
        source, target = flats[1], flats[0] - flats[1]
        loss = nn.functional.mse_loss(self.gradiend(source), target)
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()


def timed(fn, *args) -> float:
    start = time.perf_counter()
    fn(*args)
    return time.perf_counter() - start


def bench(label, model, tokenizer, data, group_size, steps):
    model.eval()
    with tempfile.TemporaryDirectory() as out:
        trainer = make_trainer(model, tokenizer, data, group_size, out)
        groups, collator, objective = trainer.train_dataset, trainer.data_collator, trainer.objective
        names = trainer.model.param_names
        reference = ReferenceStep(model, names)
        times = {"ours": [], "reference": [], "bare": []}
        # Interleaved, so that load changes on a shared machine hit all three alike; step 0 warms up (optimizer state).
        for step in range(steps + 1):
            inputs = collator([groups[step % len(groups)]])
            batch = inputs["groups"][0]
            measured = {
                "ours": timed(our_step, trainer, inputs),
                "reference": timed(reference, batch),
                "bare": timed(group_gradients, model, objective, batch, names, ("alternative", "diff")),
            }
            if step:
                for key, value in measured.items():
                    times[key].append(value)
    ours, ref, bare = (statistics.median(times[k]) for k in ("ours", "reference", "bare"))
    n = trainer.model.config.num_base_parameters
    print(f"\n== {label}: n = {n / 1e6:.1f} M, {group_size} sentences per gradient, median of {steps} steps")
    print(f"ours {ours:.3f} s/step | reference style {ref:.3f} s/step | bare base (1 fwd + 2 bwd) {bare:.3f} s")
    print(f"speed-up reference/ours = {ref / ours:.2f}x ; overhead ours/bare base = {ours / bare:.2f}x")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny model only")
    parser.add_argument("--steps", type=int, default=6)
    args = parser.parse_args()
    data = load_builtin("gender-en")
    tokenizer = wordpiece_tokenizer()
    tiny = BertConfig(
        vocab_size=len(tokenizer), hidden_size=64, num_hidden_layers=2, num_attention_heads=2, intermediate_size=128
    )
    bench("tiny BERT (hidden 64, 2 layers)", BertForMaskedLM(tiny), tokenizer, data, 8, args.steps)
    if not args.quick:
        bench(
            "bert-base-sized random BERT", BertForMaskedLM(BertConfig()), tokenizer, data, 8, max(3, args.steps // 2)
        )


if __name__ == "__main__":
    main()
