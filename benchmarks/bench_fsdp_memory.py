"""Per-process memory of a GRADIEND's training state, unsharded (1 process) vs sharded (`shard_gradiend=True`,
2 gloo processes on the CPU, torch FSDP2) as one shard group (`shard_groups="one"`) and one group per covered layer
(`shard_groups="layer"`, the default).

Trains a GRADIEND on a bert-base-sized random BERT for two steps and measures, in each process:

- the kept training state: the bytes of the process's GRADIEND weights, their gradients and the AdamW moments
  (what stays allocated between steps; counted from the tensors' local shards right after an optimizer step);
- the peak of a step: the peak RSS over training (`ru_maxrss`) minus the RSS before the GRADIEND was built, so it
  holds the GRADIEND's weights, gradients and AdamW moments, what is gathered only for a step (the whole GRADIEND
  with one shard group; one group, plus one prefetched in the backward pass, with per-layer groups) and the step's
  inputs (the base model's gradients of the covered parameters and the reconstruction residuals, the same in every
  run).

By default the GRADIEND covers the last four encoder layers (`--params "*.layer.8.*" ... "*.layer.11.*"`, 28.3M base
parameters → 85M GRADIEND weights) so that every run fits a few minutes on two CPU cores; `--params` changes it (the
more layers, the smaller the largest group's share).

Run: `python benchmarks/bench_fsdp_memory.py [--params PATTERN ...]`. Prints bytes per GRADIEND weight and the
2-process / 1-process ratios of each sharded run.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import torch
from transformers import BertConfig, BertForMaskedLM, TrainerCallback


ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gradiend_hf import GradiendModel, GradiendTrainer, GradiendTrainingArguments  # noqa: E402
from gradiend_hf.data import load_builtin  # noqa: E402
from tests.tiny_models import wordpiece_tokenizer  # noqa: E402


def local_bytes(tensor) -> int:
    tensor = tensor.to_local() if hasattr(tensor, "to_local") else tensor
    return tensor.numel() * tensor.element_size()


class StateBytes(TrainerCallback):
    """Counts the process's GRADIEND weights, gradients and optimizer state right after an optimizer step."""

    def __init__(self, trainer):
        self.trainer, self.found = trainer, {}

    def on_optimizer_step(self, args, state, control, **kwargs):
        model, optimizer = self.trainer.model, self.trainer.optimizer
        params = list(model.parameters())
        moments = [v for p in params for v in optimizer.state.get(p, {}).values() if torch.is_tensor(v) and v.dim()]
        self.found = {
            "weights": sum(local_bytes(p) for p in params),
            "grads": sum(local_bytes(p.grad) for p in params if p.grad is not None),
            "optimizer": sum(local_bytes(m) for m in moments),
        }


def peak_rss_bytes() -> int:
    """The process's peak RSS since the last [`reset_peak_rss`] (`VmHWM`)."""
    with open("/proc/self/status") as file:
        return int(re.search(r"VmHWM:\s+(\d+) kB", file.read()).group(1)) * 1024


def reset_peak_rss() -> None:
    # Writing 5 to clear_refs resets VmHWM to the current RSS (Linux), so each phase of a step gets its own peak.
    with open("/proc/self/clear_refs", "w") as file:
        file.write("5")


class PhasePeaks(TrainerCallback):
    """The peak RSS (above `base`) of each step's forward and backward pass and of its optimizer step."""

    def __init__(self, base: int):
        self.base, self.found = base, {"forward_backward": 0, "optimizer_step": 0}

    def on_step_begin(self, args, state, control, **kwargs):
        reset_peak_rss()

    def on_pre_optimizer_step(self, args, state, control, **kwargs):
        self.found["forward_backward"] = max(self.found["forward_backward"], peak_rss_bytes() - self.base)
        reset_peak_rss()

    def on_optimizer_step(self, args, state, control, **kwargs):
        self.found["optimizer_step"] = max(self.found["optimizer_step"], peak_rss_bytes() - self.base)


def rss_bytes() -> int:
    with open("/proc/self/statm") as file:
        return int(file.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def worker(output: str, params: list[str], groups: str | None) -> None:
    tokenizer = wordpiece_tokenizer()
    torch.manual_seed(0)
    base = BertForMaskedLM(BertConfig(attn_implementation="eager"))  # bert-base sizes
    before = rss_bytes()
    gradiend = GradiendModel.from_base_model(base, params=params)
    weights = gradiend.num_parameters()
    args = GradiendTrainingArguments(
        os.path.join(output, "run"),
        max_steps=2,
        sentences_per_gradient=4,
        eval_strategy="no",
        eval_on_start=False,
        select_best=False,
        report_to="none",
        disable_tqdm=True,
        use_cpu=True,
        shard_gradiend=groups is not None,
        shard_groups=groups or "layer",
    )
    trainer = GradiendTrainer(
        model=gradiend, base_model=base, processing_class=tokenizer, args=args, train_dataset=load_builtin("gender-en")
    )
    counter = StateBytes(trainer)
    trainer.add_callback(counter)
    phases = PhasePeaks(before)
    trainer.add_callback(phases)
    trainer.train()
    rank = torch.distributed.get_rank() if torch.distributed.is_initialized() else 0
    record = {"rank": rank, "gradiend_weights": weights, **counter.found, **phases.found}
    record["peak"] = max(phases.found.values())
    Path(output, f"rank{rank}.json").write_text(json.dumps(record))
    if torch.distributed.is_initialized():
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()


def free_port() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return str(sock.getsockname()[1])


def run(groups: str | None, output: Path, params: list[str]) -> list[dict]:
    """One run: unsharded in one process (`groups=None`) or sharded over two with `shard_groups=groups`."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": "1"}
    # Every allocation above 128 kB gets its own mapping, returned to the system when freed: without it glibc serves
    # the per-parameter tensors (most below its dynamic 32 MB threshold) from heaps that keep freed memory resident,
    # and the RSS would count what was once allocated rather than what is live.
    env["MALLOC_MMAP_THRESHOLD_"] = "131072"
    command = [sys.executable, __file__, "--worker", str(output), "--params", *params]
    processes = 1 if groups is None else 2
    if groups is not None:
        launch = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(processes)]
        command = [*launch, "--master_port", free_port(), *command[1:], "--groups", groups]
    subprocess.run(command, env=env, check=False, capture_output=True)
    records = [json.loads(p.read_text()) for p in sorted(output.glob("rank*.json"))]
    if len(records) != processes:
        raise SystemExit(f"The {processes}-process run did not finish; run `{' '.join(command)}` to see why.")
    return records


RUNS = {"1 process": None, "2, one group": "one", "2, per layer": "layer"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--params", nargs="+", default=[f"*.layer.{i}.*" for i in range(8, 12)])
    parser.add_argument("--worker")
    parser.add_argument("--groups", help="shard_groups of a sharded worker (none: an unsharded worker)")
    parser.add_argument("--output", default="bench-fsdp-memory")
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.params, args.groups)
        return
    output = Path(args.output)
    results = {}
    for label, groups in RUNS.items():
        folder = output / (groups or "unsharded")
        for stale in folder.glob("rank*.json"):
            stale.unlink()
        folder.mkdir(parents=True, exist_ok=True)
        results[label] = run(groups, folder, args.params)
    weights = results["1 process"][0]["gradiend_weights"]
    print(f"GRADIEND over {args.params}: {weights / 1e6:.1f}M weights (bert-base-sized random BERT)")
    print("MB per process (B/weight); peaks above the RSS before the GRADIEND was built")
    header = ("kept state", "step peak", "fwd+bwd peak", "optimizer peak")
    print(f"{'run':>14} {'rank':>4} " + " ".join(f"{h:>20}" for h in header))
    for label, records in results.items():
        for r in records:
            state = r["weights"] + r["grads"] + r["optimizer"]
            cells = [state, r["peak"], r["forward_backward"], r["optimizer_step"]]
            print(f"{label:>14} {r['rank']:>4} " + " ".join(f"{v / 1e6:>12.1f} ({v / weights:>5.2f})" for v in cells))

    def worst(label, key):
        return max(r[key] if key != "state" else r["weights"] + r["grads"] + r["optimizer"] for r in results[label])

    for label in ("2, one group", "2, per layer"):
        keys = ("state", "peak", "forward_backward", "optimizer_step")
        ratios = {key: worst(label, key) / worst("1 process", key) for key in keys}
        print(
            f"ratio ({label}) / (1 process): kept state {ratios['state']:.3f}, step peak {ratios['peak']:.3f}, "
            f"fwd+bwd peak {ratios['forward_backward']:.3f}, optimizer-step peak {ratios['optimizer_step']:.3f}"
        )


if __name__ == "__main__":
    main()
