"""Bias benchmarks of a causal LM with sentences that begin alike packed into one row vs one row per sentence.

[`log_probs`] packs a causal LM's sentences into rows of their prefix trees, so a beginning several sentences share
(the two sentences of a WinoBias row up to the pronoun, rows that begin alike) is computed once
([`gradiend_hf.benchmarks.packing`]). This script scores the bundled CrowS-Pairs and WinoBias (gender) rows on the
offline SmolLM2 both ways, interleaved (A, B, A, B, ...) so that machine noise hits both alike, and prints the
positions each way sends through the model, the median times, their ratio and the largest score difference.

Run: `python benchmarks/bench_prefix_packing.py [--repeats 2] [--max_rows N]`. A ratio above 1 means packing is
faster.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch


sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gradiend_hf.base_models import load_base_model  # noqa: E402
from gradiend_hf.benchmarks.runner import prepare_benchmark  # noqa: E402
from gradiend_hf.default_model import DEFAULT_BASE_MODEL  # noqa: E402
from gradiend_hf.evaluation.prefix_cache import layer_stack  # noqa: E402


class PositionCounter:
    """Counts the positions entering the model's first layer."""

    def __init__(self, model):
        self.positions = 0
        layer_stack(model)[0].register_forward_pre_hook(self.count)

    def count(self, module, args):
        self.positions += args[0].shape[0] * args[0].shape[1]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--max_rows", type=int, default=None, help="first rows per benchmark (default: all)")
    args = parser.parse_args()
    torch.manual_seed(0)
    model, tokenizer = load_base_model(DEFAULT_BASE_MODEL)
    model.eval()
    counter = PositionCounter(model)
    print(f"{DEFAULT_BASE_MODEL}, bias type gender")
    for name in ("crows_pairs", "winobias"):
        task = prepare_benchmark(name, tokenizer, "causal_lm", ["gender"], args.max_rows)
        task(model)  # the one-time checks (separated LM head, packed rows)
        times, positions, scores = {True: [], False: []}, {}, {}
        for _ in range(args.repeats):
            for packed in (True, False):
                task.pack_prefixes = packed
                counter.positions = 0
                start = time.perf_counter()
                scores[packed] = task(model)
                times[packed].append(time.perf_counter() - start)
                positions[packed] = counter.positions
        columns = list(task.sentences.values())
        worst = max(float(np.abs(scores[True][c] - scores[False][c]).max()) for c in columns)
        plain, packed = statistics.median(times[False]), statistics.median(times[True])
        print(
            f"{name:12s} {len(task)} rows | positions plain {positions[False]} packed {positions[True]} "
            f"({positions[True] / positions[False]:.0%}) | plain {plain:.1f} s packed {packed:.1f} s | "
            f"ratio {plain / packed:.2f}x | largest sentence-score difference {worst:.1e}"
        )


if __name__ == "__main__":
    main()
