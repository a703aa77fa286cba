"""Per-process memory of a GRADIEND's training state, unsharded (1 process) vs sharded (`shard_gradiend=True`,
2 gloo processes on the CPU, torch FSDP2).

Trains a GRADIEND on a bert-base-sized random BERT for two steps and measures, in each process:

- the resident training state: the bytes of the process's GRADIEND weights, their gradients and the AdamW moments
  (what stays allocated between steps; counted from the tensors' local shards right after an optimizer step);
- the peak RSS growth over training (`ru_maxrss` minus the RSS before `train()`), which adds what is gathered only
  for a step (the whole weights and gradients: the GRADIEND is one FSDP2 shard group) and the base model's gradients.

By default the GRADIEND covers the last encoder layer (`--params "*.layer.11.*"`, 7.1M base parameters → 21M GRADIEND
weights) so that both runs fit a few minutes on two CPU cores; `--params` widens it (the bytes per weight do not
depend on it).

Run: `python benchmarks/bench_fsdp_memory.py [--params PATTERN ...]`. Prints bytes per GRADIEND weight and the
2-process / 1-process ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
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


def rss_bytes() -> int:
    with open("/proc/self/statm") as file:
        return int(file.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def worker(output: str, params: list[str], shard: bool) -> None:
    tokenizer = wordpiece_tokenizer()
    torch.manual_seed(0)
    base = BertForMaskedLM(BertConfig(attn_implementation="eager"))  # bert-base sizes
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
        shard_gradiend=shard,
    )
    trainer = GradiendTrainer(
        model=gradiend, base_model=base, processing_class=tokenizer, args=args, train_dataset=load_builtin("gender-en")
    )
    counter = StateBytes(trainer)
    trainer.add_callback(counter)
    before = rss_bytes()
    trainer.train()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - before
    rank = torch.distributed.get_rank() if torch.distributed.is_initialized() else 0
    record = {"rank": rank, "gradiend_weights": weights, "peak_rss_growth": peak, **counter.found}
    Path(output, f"rank{rank}.json").write_text(json.dumps(record))
    if torch.distributed.is_initialized():
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()


def free_port() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return str(sock.getsockname()[1])


def run(processes: int, output: Path, params: list[str]) -> list[dict]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": "1"}
    command = [sys.executable, __file__, "--worker", str(output), "--params", *params]
    if processes > 1:
        launch = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(processes)]
        command = [*launch, "--master_port", free_port(), *command[1:], "--shard"]
    subprocess.run(command, env=env, check=False, capture_output=True)
    records = [json.loads(p.read_text()) for p in sorted(output.glob("rank*.json"))]
    if len(records) != processes:
        raise SystemExit(f"The {processes}-process run did not finish; run `{' '.join(command)}` to see why.")
    return records


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--params", nargs="+", default=["*.layer.11.*"])
    parser.add_argument("--worker")
    parser.add_argument("--shard", action="store_true")
    parser.add_argument("--output", default="bench-fsdp-memory")
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.params, args.shard)
        return
    output = Path(args.output)
    results = {}
    for processes in (1, 2):
        folder = output / f"{processes}-process"
        for stale in folder.glob("rank*.json"):
            stale.unlink()
        folder.mkdir(parents=True, exist_ok=True)
        results[processes] = run(processes, folder, args.params)
    weights = results[1][0]["gradiend_weights"]
    print(f"GRADIEND over {args.params}: {weights / 1e6:.1f}M weights (bert-base-sized random BERT)")
    print(f"{'processes':>9} {'rank':>4} {'state MB':>9} {'B/weight':>9} {'peak RSS growth MB':>19}")
    for processes, records in results.items():
        for r in records:
            state = r["weights"] + r["grads"] + r["optimizer"]
            print(
                f"{processes:>9} {r['rank']:>4} {state / 1e6:>9.1f} {state / weights:>9.2f} "
                f"{r['peak_rss_growth'] / 1e6:>19.1f}"
            )

    def worst(n, key):
        return max(r[key] if key != "state" else r["weights"] + r["grads"] + r["optimizer"] for r in results[n])

    print(f"ratio 2/1 of the resident training state per process: {worst(2, 'state') / worst(1, 'state'):.3f}")
    ratio = worst(2, "peak_rss_growth") / worst(1, "peak_rss_growth")
    print(f"ratio 2/1 of the peak RSS growth per process:          {ratio:.3f}")


if __name__ == "__main__":
    main()
