"""Sequences that begin another run inside it vs every sequence on its own: the encoder evaluation on SmolLM2.

A causal LM's logits at a position come from the tokens up to it, so a row whose sequence begins another row's needs
no pass of its own ([`gradiend_hf.objectives.shared_prefixes`]). The encoder evaluation encodes each test row and
its neutral re-blanking (the same sentence, up to another word): one of the two prefixes begins the other. This
script runs `evaluate_encoder` on the offline SmolLM2 with the demo's covered layers both ways, interleaved (A, B,
A, B, ...) so that machine noise hits both alike, and prints the positions through the model, the times, their ratio
and the largest difference of the encodings.

Run: `python benchmarks/bench_shared_prefixes.py [--rows 70] [--repeats 3]`. A ratio above 1 means sharing is faster.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch


sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gradiend_hf import GradiendModel  # noqa: E402
from gradiend_hf.base_models import load_base_model  # noqa: E402
from gradiend_hf.data import load_builtin  # noqa: E402
from gradiend_hf.default_model import DEFAULT_BASE_MODEL  # noqa: E402
from gradiend_hf.evaluation import evaluate_encoder  # noqa: E402
from gradiend_hf.objectives import get_objective, logits  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=70, help="test rows per class (as many re-blankings and neutral)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--params", default="model.layers.2[4-9].*", help="the covered parameters (the demo's)")
    parser.add_argument("--gradiend", help="a trained GRADIEND of SmolLM2 (e.g. the demo's `gradiend/`) instead")
    args = parser.parse_args()
    torch.manual_seed(0)
    model, tokenizer = load_base_model(DEFAULT_BASE_MODEL)
    model.eval()
    if args.gradiend:
        gradiend = GradiendModel.from_pretrained(args.gradiend).eval()
    else:
        gradiend = GradiendModel.from_base_model(model, params=[args.params]).eval()
    objective = get_objective(model, tokenizer)
    data, neutral = load_builtin("gender-en"), load_builtin("neutral-en")
    positions = []
    model.get_input_embeddings().register_forward_pre_hook(
        lambda _, inputs: None if logits.in_check_pass() else positions.append(inputs[0].numel())
    )

    def run(shared: bool):
        objective.shares_prefix_sequences = shared
        positions.clear()
        start = time.perf_counter()
        report = evaluate_encoder(
            gradiend, model, tokenizer, data, neutral=neutral, max_rows=args.rows, objective=objective
        )
        return time.perf_counter() - start, sum(positions), torch.tensor(report.rows["encoding"].to_numpy())

    run(True)  # the one-time checks
    times, counts, encodings = {True: [], False: []}, {}, {}
    for _ in range(args.repeats):
        for shared in (False, True):
            seconds, counts[shared], encodings[shared] = run(shared)
            times[shared].append(seconds)
    alone, shared = statistics.median(times[False]), statistics.median(times[True])
    print(
        f"{DEFAULT_BASE_MODEL}, GRADIEND over {gradiend.config.num_base_parameters / 1e6:.1f} M parameters; "
        f"{len(encodings[True])} rows encoded"
    )
    print(
        f"positions through the model (with padding): every sequence {counts[False]} | shared {counts[True]} "
        f"({counts[True] / counts[False]:.0%})"
    )
    print(
        f"encoder evaluation: every sequence {alone:.2f} s | shared {shared:.2f} s | ratio {alone / shared:.2f}x | "
        f"largest encoding difference {float((encodings[True] - encodings[False]).abs().max()):.1e}"
    )


if __name__ == "__main__":
    main()
