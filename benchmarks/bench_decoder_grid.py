"""Speed of the decoder grid with and without reusing the hidden states below the first covered layer.

A GRADIEND that covers only upper layers (the demo: SmolLM2's last six of thirty) leaves every lower layer's output
the same at every grid point; `evaluate_decoder(reuse_lower_layers=True)` (the default) computes it once. This script
runs the same grid both ways on randomly initialised models shaped like the ones users run (a Llama with SmolLM2's
vocabulary and a BERT with bert-base's), alternating the two settings, checks that the grids are identical, and
prints the median times and their ratio (without / with: above 1 the reuse is faster).

Run: `python benchmarks/bench_decoder_grid.py [--quick] [--rounds 2]`.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import pandas as pd
import torch


sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gradiend_hf import GradiendModel  # noqa: E402
from gradiend_hf.data import load_builtin  # noqa: E402
from gradiend_hf.evaluation import evaluate_decoder  # noqa: E402
from gradiend_hf.evaluation.prefix_cache import layer_stack  # noqa: E402
from gradiend_hf.testing_utils import tiny_model  # noqa: E402


def upper_layers(model, covered: int) -> list[str]:
    stack = layer_stack(model)
    ids = {id(p) for layer in stack[len(stack) - covered :] for p in layer.parameters()}
    return [name for name, p in model.named_parameters() if id(p) in ids]


def bench(label, family, hidden, layers, covered, vocab, args) -> None:
    model, tokenizer = tiny_model(family, hidden=hidden, layers=layers)
    model.resize_token_embeddings(vocab)
    torch.manual_seed(0)
    gradiend = GradiendModel.from_base_model(model, params=upper_layers(model, covered), feature_classes=["M", "F"])
    with torch.no_grad():
        for p in gradiend.parameters():
            p.normal_(0, 0.02)
    data = load_builtin("gender-en")
    kwargs = dict(target_class="F", max_rows=args.rows, lms_max_texts=args.lms_texts)
    times = {True: [], False: []}
    grids = {}
    for _ in range(args.rounds):
        for reuse in (False, True):
            start = time.perf_counter()
            report = evaluate_decoder(gradiend, model, tokenizer, data, reuse_lower_layers=reuse, **kwargs)
            times[reuse].append(time.perf_counter() - start)
            grids[reuse] = report.grid
    pd.testing.assert_frame_equal(grids[True], grids[False], check_exact=True)
    plain, reused = statistics.median(times[False]), statistics.median(times[True])
    print(
        f"{label:52} without {plain:7.2f} s | with {reused:7.2f} s | ratio {plain / reused:5.2f}x | "
        f"{len(grids[True])} points, grids identical"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smaller models and samples")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--rows", type=int, default=50, help="rows per class")
    parser.add_argument("--lms-texts", type=int, default=100)
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.quick:
        args.rows, args.lms_texts, args.rounds = 16, 32, 1
    hidden, layers = (64, 6) if args.quick else (192, 12)
    print(
        f"decoder grid of evaluate_decoder (16 learning rates + base), {args.rows} rows per class, {args.lms_texts} LMS texts"
    )
    bench(f"Llama {layers} layers, hidden {hidden}, last 2 covered", "llama", hidden, layers, 2, 49152, args)
    bench(f"BERT {layers} layers, hidden {hidden}, last 2 covered", "bert", hidden, layers, 2, 30522, args)
    bench(f"Llama {layers} layers, hidden {hidden}, all layers covered", "llama", hidden, layers, layers, 49152, args)


if __name__ == "__main__":
    main()
