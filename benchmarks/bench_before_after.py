"""Single-token workloads before and after a change to gradiend-hf, measured in one command.

The multi-token redesign of the objectives (issue 15) must not make the single-token case slower. This script checks
out an earlier revision (by default the parent of the commit that introduced multi-token words) into a temporary git
worktree and times the same single-token workloads with that tree and with the working tree, in fresh processes that
alternate (before, after, before, after, …) so that the machine's noise hits both alike:

- row tokenisation (training and evaluation): a batch's rows and their two words into the model's inputs;
- group gradients (training): one forward pass for the factual and alternative words of a batch and the gradients
  of the alternative and diff kinds;
- per-example encodings (evaluation): batched forward-mode AD over the rows;
- class probabilities (decoder evaluation): tokenising the rows once, then scoring one state of the model;
- the language-modelling score (decoder evaluation): scoring one state of the model on neutral texts.

Each on a masked LM (BERT) and a causal LM (Llama), all words single tokens (`he`/`she`). Prints the median time of
every workload for both trees and the ratio before / after (>1 means the working tree is faster; ≈1 means the same).

Run: `python benchmarks/bench_before_after.py [--rev REV] [--rounds 3] [--quick]`. Needs git; the temporary worktree
is removed at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path


ROOT = Path(__file__).resolve().parents[1]
MULTI_TOKEN_COMMIT = "0f11f8d"  # "Multi-token words (issue 15, part 1)"

# Runs inside a child process whose `sys.path` starts with one tree; uses only APIs both trees share.
CHILD = r"""
import json, statistics, sys, time
import torch
torch.set_num_threads(1)
from gradiend_hf import GradiendModel
from gradiend_hf.evaluation.lms import LanguageModelingScorer
from gradiend_hf.evaluation.probabilities import ClassProbabilityScorer
from gradiend_hf.gradients import encode_rows, group_gradients
from gradiend_hf.objectives import get_objective
from gradiend_hf.testing_utils import masked_rows, tiny_model

hidden, layers, rows, repeats, vocab = (int(v) for v in sys.argv[1:6])

def median_time(fn):
    fn()  # warm-up: first-call allocations and lazy imports are not the workload
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)

result = {}
for family, objective_name in (("bert", "masked_lm"), ("llama", "causal_lm")):
    model, tokenizer = tiny_model(family, hidden=hidden, layers=layers)
    if vocab > len(tokenizer):
        # The vocabulary of a real tokenizer (bert-base: 30522) makes the LM head as costly as it is in practice.
        model.resize_token_embeddings(vocab)
    objective = get_objective(objective_name, tokenizer)
    gradiend = GradiendModel.from_base_model(model)
    names = gradiend.param_names
    masked, factual, alternative = masked_rows(rows, causal=objective_name == "causal_lm")
    result[f"{family} row tokenisation"] = median_time(lambda: objective.prepare(masked, factual, alternative))
    batch = objective.prepare(masked, factual, alternative)
    result[f"{family} group gradients"] = median_time(
        lambda: group_gradients(model, objective, batch, names, kinds=("alternative", "diff"))
    )
    result[f"{family} jvp encodings"] = median_time(lambda: encode_rows(gradiend, model, objective, batch))
    words = {"M": ["he"], "F": ["she"]}
    result[f"{family} class-probability setup"] = median_time(
        lambda: ClassProbabilityScorer(objective, masked, factual, words)
    )
    scorer = ClassProbabilityScorer(objective, masked, factual, words)
    with torch.no_grad():
        result[f"{family} class-probability scoring"] = median_time(lambda: scorer(model))
    texts = [m.replace("[MASK]", f) for m, f in zip(masked, factual)] * 4
    lms = LanguageModelingScorer(tokenizer, texts, objective.name)
    with torch.no_grad():
        result[f"{family} LMS scoring"] = median_time(lambda: lms(model))
print("RESULT " + json.dumps(result))
"""


def run_child(tree: Path, args) -> dict[str, float]:
    env = dict(os.environ, PYTHONPATH=str(tree), OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false")
    sizes = (args.hidden, args.layers, args.rows, args.repeats, args.vocab)
    command = [sys.executable, "-c", CHILD, *(str(size) for size in sizes)]
    done = subprocess.run(command, cwd=tree, env=env, capture_output=True, text=True, check=False)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode != 0 or not lines:
        raise SystemExit(f"the workload failed in {tree}:\n{done.stderr[-3000:]}")
    return json.loads(lines[-1][len("RESULT ") :])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rev", default=f"{MULTI_TOKEN_COMMIT}^", help="the revision before the change")
    parser.add_argument("--rounds", type=int, default=3, help="alternating before/after process pairs")
    parser.add_argument("--repeats", type=int, default=5, help="timed calls of each workload per process")
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--rows", type=int, default=32)
    parser.add_argument("--vocab", type=int, default=30522, help="vocabulary size of the models (bert-base's)")
    parser.add_argument("--quick", action="store_true", help="one round, 2 repeats, a smaller model")
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.repeats, args.hidden, args.layers = 1, 2, 64, 2
    revision = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", args.rev], capture_output=True, text=True, check=True
    ).stdout.strip()
    with tempfile.TemporaryDirectory(prefix="gradiend-before-") as scratch:
        before_tree = Path(scratch) / "tree"
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "add", "--detach", "-q", str(before_tree), revision], check=True
        )
        try:
            runs = {"before": [], "after": []}
            for _ in range(args.rounds):
                runs["before"].append(run_child(before_tree, args))
                runs["after"].append(run_child(ROOT, args))
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(before_tree)], check=False)
    print(
        f"Single-token workloads, before = {revision} ({args.rev}), after = the working tree; tiny models hidden "
        f"{args.hidden}, {args.layers} layers, vocabulary {args.vocab}, {args.rows} rows; median of {args.rounds} x {args.repeats} calls."
    )
    print(f"{'workload':36} {'before s':>10} {'after s':>10} {'before/after':>13}")
    for workload in runs["before"][0]:
        before = statistics.median(run[workload] for run in runs["before"])
        after = statistics.median(run[workload] for run in runs["after"])
        print(f"{workload:36} {before:10.4f} {after:10.4f} {before / after:12.2f}x")


if __name__ == "__main__":
    main()
