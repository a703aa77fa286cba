"""Time per training step: GradiendTrainer vs the reference package's step, measured in the same process.

- ours: one `GradiendTrainer` optimizer step (group gradients from one forward pass, per-parameter GRADIEND,
  AdamW), timed between `on_step_begin` and `on_step_end` of a real `trainer.train()`;
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
from transformers import BertConfig, BertForMaskedLM, TrainerCallback


sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gradiend_hf import GradiendModel, GradiendTrainer, GradiendTrainingArguments, get_objective  # noqa: E402
from gradiend_hf.data import load_builtin  # noqa: E402
from gradiend_hf.gradients import group_gradients  # noqa: E402
from tests.tiny_models import wordpiece_tokenizer  # noqa: E402


class StepTimer(TrainerCallback):
    def __init__(self):
        self.times, self._start = [], None

    def on_step_begin(self, args, state, control, **kwargs):
        self._start = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        self.times.append(time.perf_counter() - self._start)


def our_step_time(model, tokenizer, data, group_size, steps):
    torch.manual_seed(0)
    gradiend = GradiendModel.from_base_model(model)
    timer = StepTimer()
    with tempfile.TemporaryDirectory() as out:
        args = GradiendTrainingArguments(
            out, max_steps=steps, sentences_per_gradient=group_size, eval_strategy="no", eval_on_start=False,
            report_to="none", disable_tqdm=True, save_strategy="no",
        )
        trainer = GradiendTrainer(
            model=gradiend, base_model=model, processing_class=tokenizer, args=args, train_dataset=data["train"],
            callbacks=[timer],
        )
        trainer.train()
    return statistics.median(timer.times[1:]), trainer


class ReferenceGradiend(nn.Module):
    def __init__(self, n):
        super().__init__()
        self.encoder = nn.Linear(n, 1)
        self.decoder = nn.Linear(1, n)

    def forward(self, x):
        return self.decoder(torch.tanh(self.encoder(x)))


def reference_step_time(model, tokenizer, batches, names, steps):
    params = dict(model.named_parameters())
    for p in model.parameters():
        p.requires_grad_(True)
    n = sum(params[name].numel() for name in names)
    gradiend = ReferenceGradiend(n)
    optimizer = torch.optim.AdamW(gradiend.parameters(), lr=1e-5, weight_decay=0.01, eps=1e-8)
    times = []
    for step in range(steps):
        batch = batches[step % len(batches)]
        start = time.perf_counter()
        flats = []
        for ids in (batch.factual_ids, batch.alternative_ids):
            labels = torch.full_like(batch.input_ids, -100)
            labels[torch.arange(len(ids)), batch.target_positions] = ids
            model.zero_grad(set_to_none=True)
            model(input_ids=batch.input_ids, attention_mask=batch.attention_mask, labels=labels).loss.backward()
            flats.append(torch.cat([params[name].grad.reshape(-1) for name in names]))
        source, target = flats[1], flats[0] - flats[1]
        loss = nn.functional.mse_loss(gradiend(source), target)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        times.append(time.perf_counter() - start)
    model.zero_grad(set_to_none=True)
    for p in model.parameters():
        p.requires_grad_(False)
    return statistics.median(times[1:])


def bare_base_time(model, objective, batches, names, steps):
    times = []
    for step in range(steps):
        start = time.perf_counter()
        group_gradients(model, objective, batches[step % len(batches)], names, kinds=("alternative", "diff"))
        times.append(time.perf_counter() - start)
    return statistics.median(times[1:])


def bench(label, model, tokenizer, data, group_size, steps):
    model.eval()
    ours, trainer = our_step_time(model, tokenizer, data, group_size, steps)
    objective = trainer.objective
    groups = trainer.train_dataset
    batches = [objective.prepare(g["masked"], g["factual"], g["alternative"]) for g in (groups[i] for i in range(steps))]
    names = trainer.model.param_names
    reference = reference_step_time(model, tokenizer, batches, names, steps)
    bare = bare_base_time(model, objective, batches, names, steps)
    n = trainer.model.config.num_base_parameters
    print(f"\n== {label}: n = {n / 1e6:.1f} M, {group_size} sentences per gradient, median of {steps - 1} steps")
    print(f"ours {ours:.3f} s/step | reference style {reference:.3f} s/step | bare base (1 fwd + 2 bwd) {bare:.3f} s")
    print(f"speed-up reference/ours = {reference / ours:.2f}x ; overhead ours/bare base = {ours / bare:.2f}x")


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
        bench("bert-base-sized random BERT", BertForMaskedLM(BertConfig()), tokenizer, data, 8, max(3, args.steps // 2))


if __name__ == "__main__":
    main()
