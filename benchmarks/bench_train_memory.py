"""Peak memory of GRADIEND training: the plain AdamW step after the backward pass and the loss's residuals in memory
of their own ("before") vs the defaults ("after"): AdamW stepped inside the backward pass, each parameter as soon as
its gradient is complete (`optimizer_in_backward`), and the residuals written over the target gradients. The variant
"in-backward" (`--variants before in-backward after`) has the first lever only.

Each variant trains in a fresh subprocess (same command, same seed) for a few steps of a GRADIEND over the whole
backbone (all of SmolLM2's parameters: its LM head is tied) and reports:

- the peak RSS of the process (`ru_maxrss`) and the RSS before training started (base model, GRADIEND, data);
- the peak RSS of each phase of a step (sampled every 2 ms): the base model's gradients (`group_gradients`), the
  GRADIEND's forward pass (encoder + reconstruction loss), its backward pass, the optimizer step;
- the bytes of what the step holds, counted from the tensors: base model, GRADIEND weights, AdamW moments, the
  GRADIEND's gradients, the base gradients that are its inputs (source and target), the loss's saved residuals;
- the median time per optimizer step (the first step, which allocates the AdamW moments, is left out).

`--model tiny` (default) is a random BERT of hidden size 64; `--model smollm2` is SmolLM2-135M-Instruct (offline,
converted once; n = 134.5M base parameters, 3n + 1 GRADIEND weights), `sentences_per_gradient=8`.

Run: `python benchmarks/bench_train_memory.py [--model smollm2] [--steps 10]`. Ratios > 1 mean "after" uses less.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import torch
from transformers import BertConfig, BertForMaskedLM, TrainerCallback


ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import gradiend_hf.trainer as trainer_module  # noqa: E402
from gradiend_hf import GradiendModel, GradiendTrainer, GradiendTrainingArguments, load_base_model  # noqa: E402
from gradiend_hf.data import load_builtin  # noqa: E402
from gradiend_hf.testing_utils import wordpiece_tokenizer  # noqa: E402


# variant -> (optimizer_in_backward, whether the loss may write its residuals over the targets)
VARIANTS = {"before": (False, False), "in-backward": (True, False), "after": (None, True)}
PHASES = ("gradients", "forward", "backward", "optimizer step")


def rss_bytes() -> int:
    with open("/proc/self/statm") as file:
        return int(file.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class PhaseSampler:
    """Samples the RSS every 2 ms in a thread and keeps the peak of each named phase."""

    def __init__(self):
        self.phase, self.peaks, self._stop = None, {}, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.wait(0.002):
            if self.phase is not None:
                self.peaks[self.phase] = max(self.peaks.get(self.phase, 0), rss_bytes())

    def enter(self, phase):
        if self.phase is not None:  # the RSS at the end of the phase counts for it too
            self.peaks[self.phase] = max(self.peaks.get(self.phase, 0), rss_bytes())
        self.phase = phase

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


class StepProbe(TrainerCallback):
    """Times each optimizer step, marks the optimizer phase and counts the bytes the optimizer holds."""

    def __init__(self, trainer, sampler):
        self.trainer, self.sampler = trainer, sampler
        self.times, self._start, self.found = [], None, {}

    def on_step_begin(self, args, state, control, **kwargs):
        self._start = time.perf_counter()

    def on_pre_optimizer_step(self, args, state, control, **kwargs):
        grads = [p.grad for p in self.trainer.model.parameters() if p.grad is not None]
        self.found["gradiend grads held at the optimizer step"] = sum(g.numel() * g.element_size() for g in grads)
        self.sampler.enter("optimizer step")

    def on_step_end(self, args, state, control, **kwargs):
        self.sampler.enter(None)
        self.times.append(time.perf_counter() - self._start)
        optimizer = getattr(self.trainer.optimizer, "optimizer", self.trainer.optimizer)
        moments = [v for s in optimizer.state.values() for v in s.values() if torch.is_tensor(v) and v.dim()]
        self.found["AdamW moments"] = sum(m.numel() * m.element_size() for m in moments)


def tensor_bytes(tensors) -> int:
    return sum(t.numel() * t.element_size() for t in tensors)


def load(model: str):
    if model == "smollm2":
        return load_base_model("HuggingFaceTB/SmolLM2-135M-Instruct")
    tokenizer = wordpiece_tokenizer()
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=len(tokenizer), hidden_size=64, num_hidden_layers=2, num_attention_heads=2, intermediate_size=128
    )
    return BertForMaskedLM(config).eval(), tokenizer


def child(model_name: str, variant: str, steps: int, group_size: int) -> dict:
    base, tokenizer = load(model_name)
    torch.manual_seed(0)
    gradiend = GradiendModel.from_base_model(base)  # the backbone: all of SmolLM2 (its LM head is tied)
    n = gradiend.config.num_base_parameters
    data = load_builtin("gender-en")
    with tempfile.TemporaryDirectory() as out, PhaseSampler() as sampler:
        args = GradiendTrainingArguments(
            out,
            max_steps=steps,
            sentences_per_gradient=group_size,
            eval_strategy="no",
            eval_on_start=False,
            select_best=False,
            save_strategy="no",
            report_to="none",
            disable_tqdm=True,
            optimizer_in_backward=VARIANTS[variant][0],
        )
        trainer = GradiendTrainer(
            model=gradiend, base_model=base, processing_class=tokenizer, args=args, train_dataset=data["train"]
        )
        probe = StepProbe(trainer, sampler)
        trainer.add_callback(probe)
        # The phases of a step: the trainer's gradients, the GRADIEND's forward pass, the backward pass.
        plain_gradients, plain_forward, plain_backward = (
            trainer_module.group_gradients,
            gradiend.forward,
            trainer.accelerator.backward,
        )

        def gradients(*a, **k):
            sampler.enter("gradients")
            grads = plain_gradients(*a, **k)
            counted = {id(t): t for kind in grads.values() for t in kind.values()}
            probe.found["base gradients (source + target)"] = tensor_bytes(counted.values())
            return grads

        def forward(*a, **k):
            sampler.enter("forward")
            k["overwrite_targets"] = k.get("overwrite_targets", False) and VARIANTS[variant][1]
            return plain_forward(*a, **k)

        def backward(*a, **k):
            sampler.enter("backward")
            return plain_backward(*a, **k)

        trainer_module.group_gradients, gradiend.forward, trainer.accelerator.backward = gradients, forward, backward
        before = rss_bytes()
        trainer.train()
        trainer_module.group_gradients = plain_gradients
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    found = {
        "base model": tensor_bytes(base.parameters()),
        "gradiend weights": tensor_bytes(gradiend.parameters()),
        "loss residuals (saved, one per entry)": 4 * n,  # one gradient per step, fp32
        **probe.found,
    }
    return {
        "variant": variant,
        "optimizer": type(getattr(trainer.optimizer, "optimizer", trainer.optimizer)).__name__,
        "n": n,
        "peak": peak,
        "before_train": before,
        "phases": sampler.peaks,
        "bytes": found,
        "step_times": probe.times,
    }


def run_child(model: str, variant: str, steps: int, group_size: int) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TOKENIZERS_PARALLELISM": "false"}
    command = [sys.executable, __file__, "--child", variant, "--model", model, "--steps", str(steps)]
    command += ["--sentences-per-gradient", str(group_size)]
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if done.returncode:
        raise SystemExit(f"The {variant!r} run failed:\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def gb(value: float) -> str:
    return f"{value / 1e9:6.2f} GB" if value >= 1e9 else f"{value / 1e6:6.1f} MB"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", choices=("tiny", "smollm2"), default="tiny")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--sentences-per-gradient", type=int, default=8)
    parser.add_argument("--variants", nargs="+", choices=tuple(VARIANTS), default=["before", "after"])
    parser.add_argument("--child", choices=tuple(VARIANTS))
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.model, args.child, args.steps, args.sentences_per_gradient)))
        return
    results = {v: run_child(args.model, v, args.steps, args.sentences_per_gradient) for v in args.variants}
    first = next(iter(results.values()))
    print(f"== {args.model}: GRADIEND over all n = {first['n'] / 1e6:.1f}M base parameters, {args.steps} steps, ")
    print(f"   {args.sentences_per_gradient} sentences per gradient; fresh process per variant")
    for variant, r in results.items():
        times = r["step_times"][1:] or r["step_times"]
        in_backward, overwrite = VARIANTS[variant]
        print(
            f"\n-- {variant}: optimizer_in_backward={in_backward} ({r['optimizer']}), residuals over targets: {overwrite}"
        )
        print(f"peak RSS {gb(r['peak'])} | RSS before training {gb(r['before_train'])}")
        print(f"time per step: median {statistics.median(times):.3f} s over {len(times)} steps")
        print("peak RSS by phase: " + ", ".join(f"{p} {gb(r['phases'][p])}" for p in PHASES if p in r["phases"]))
        for name, value in r["bytes"].items():
            print(f"  {name:<45} {gb(value)}")
    if {"before", "after"} <= set(results):
        before, after = results["before"], results["after"]
        t_before = statistics.median(before["step_times"][1:] or before["step_times"])
        t_after = statistics.median(after["step_times"][1:] or after["step_times"])
        print(
            f"\npeak RSS before/after = {before['peak'] / after['peak']:.2f}x "
            f"({gb(before['peak'])} -> {gb(after['peak'])})"
        )
        print(f"time per step after/before = {t_after / t_before:.2f}x ({t_before:.3f} s -> {t_after:.3f} s)")


if __name__ == "__main__":
    main()
