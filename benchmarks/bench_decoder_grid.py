"""Speed of the decoder grid: how it is searched, and reusing the hidden states below the first covered layer.

Search (the default comparison): the same grid scored `exhaustive`ly (every point, every column), with the exact LMS
`early_stop` (the default: each point's LMS batch by batch, stopped once certainly below the threshold; class
probabilities only where the policy can use them) and `adaptive`ly (also no larger learning rates after two below the
threshold). The base models are shaped like the ones users run (a Llama with SmolLM2's vocabulary, a BERT with
bert-base's) and first trained a few steps on their LM loss on the feature data's texts, so their LMS is far from 0
and large rewrites lose it; the GRADIEND's weights are random (N(0, 0.02)). For both selection policies the script
checks that every search selects what the exhaustive grid selects and prints the median times, their ratios
(exhaustive / search: above 1 the search is faster) and the points scored whole.

`--reuse`: the same grid with and without `reuse_lower_layers` (a GRADIEND covering only upper layers leaves every
lower layer's output the same at every point; the default computes it once), checking the grids are identical.

Run: `python benchmarks/bench_decoder_grid.py [--quick] [--rounds 2] [--lm-steps 60] [--families llama bert] [--reuse]`.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import pandas as pd
import torch
from transformers import DataCollatorForLanguageModeling


sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gradiend_hf import GradiendModel  # noqa: E402
from gradiend_hf.data import load_builtin  # noqa: E402
from gradiend_hf.evaluation import SEARCHES, evaluate_decoder  # noqa: E402
from gradiend_hf.evaluation.prefix_cache import layer_stack  # noqa: E402
from gradiend_hf.testing_utils import tiny_model  # noqa: E402


def upper_layers(model, covered: int) -> list[str]:
    stack = layer_stack(model)
    ids = {id(p) for layer in stack[len(stack) - covered :] for p in layer.parameters()}
    return [name for name, p in model.named_parameters() if id(p) in ids]


def lm_trained(family, hidden, layers, vocab, steps, texts):
    """A tiny model of `family` trained `steps` steps on its LM loss (masked LMs: 15 % masked tokens)."""
    model, tokenizer = tiny_model(family, hidden=hidden, layers=layers)
    model.resize_token_embeddings(vocab)
    collator = DataCollatorForLanguageModeling(tokenizer, mlm=tokenizer.mask_token_id is not None)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    torch.manual_seed(0)
    model.train()
    for step in range(steps):
        chunk = texts[(step * 16) % len(texts) :][:16]
        batch = collator([tokenizer(text, truncation=True, max_length=64) for text in chunk])
        loss = model(**batch).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    return model, tokenizer


def random_gradiend(model, covered):
    torch.manual_seed(0)
    params = upper_layers(model, covered) if covered else None
    gradiend = GradiendModel.from_base_model(model, params=params, feature_classes=["M", "F"])
    with torch.no_grad():
        for p in gradiend.parameters():
            p.normal_(0, 0.02)
    return gradiend


def bench_search(label, family, hidden, layers, covered, vocab, args) -> None:
    data = load_builtin("gender-en")
    model, tokenizer = lm_trained(family, hidden, layers, vocab, args.lm_steps, list(data["train"]["text"]))
    gradiend = random_gradiend(model, covered)
    common = dict(max_rows=args.rows, lms_max_texts=args.lms_texts)
    for policy, kwargs in (("lms_threshold", {"target_class": "F"}), ("balance", {"policy": "balance"})):
        times = {search: [] for search in SEARCHES}
        reports = {}
        for _ in range(args.rounds):
            for search in SEARCHES:
                start = time.perf_counter()
                reports[search] = evaluate_decoder(gradiend, model, tokenizer, data, search=search, **common, **kwargs)
                times[search].append(time.perf_counter() - start)
        exhaustive = reports["exhaustive"]
        base = statistics.median(times["exhaustive"])
        parts = [f"exhaustive {base:6.2f} s ({len(exhaustive.grid)} pts)"]
        for search in SEARCHES[1:]:
            report, median = reports[search], statistics.median(times[search])
            same = report.selected == exhaustive.selected
            parts.append(
                f"{search} {median:6.2f} s {base / median:5.2f}x ({report.num_scored.get('all', 0)} whole"
                f"{'' if same else ', SELECTION DIFFERS'})"
            )
        s = exhaustive.selected
        print(f"{label:32} {policy:13} " + " | ".join(parts), flush=True)
        print(
            f"{'':54} selected ff={s.feature_factor:+g} lr={s.learning_rate:g} lms={s.lms:.4f} (base {s.base_lms:.4f})"
        )


def bench_reuse(label, family, hidden, layers, covered, vocab, args) -> None:
    model, tokenizer = tiny_model(family, hidden=hidden, layers=layers)
    model.resize_token_embeddings(vocab)
    gradiend = random_gradiend(model, covered)
    data = load_builtin("gender-en")
    kwargs = dict(target_class="F", max_rows=args.rows, lms_max_texts=args.lms_texts, search="exhaustive")
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
    parser.add_argument("--lm-steps", type=int, default=60, help="LM training steps of the base models")
    parser.add_argument("--reuse", action="store_true", help="compare reuse_lower_layers instead of the searches")
    parser.add_argument("--families", nargs="+", default=["llama", "bert"], choices=["llama", "bert"])
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.quick:  # two LMS batches, so an LMS can stop early; vocabularies of 8192 tokens
        args.rows, args.lms_texts, args.rounds = 16, 64, 1
    hidden, layers = (64, 6) if args.quick else (192, 12)
    llama_vocab, bert_vocab = (8192, 8192) if args.quick else (49152, 30522)
    if args.reuse:
        print(
            f"decoder grid of evaluate_decoder (16 learning rates + base), {args.rows} rows per class, "
            f"{args.lms_texts} LMS texts"
        )
        bench_reuse(f"Llama {layers} layers, hidden {hidden}, last 2 covered", "llama", hidden, layers, 2, 49152, args)
        bench_reuse(f"BERT {layers} layers, hidden {hidden}, last 2 covered", "bert", hidden, layers, 2, 30522, args)
        bench_reuse(
            f"Llama {layers} layers, hidden {hidden}, all layers covered", "llama", hidden, layers, layers, 49152, args
        )
        return
    print(
        f"decoder grid searches (default grids: lms_threshold 16 points, balance 5 x 16), {args.rows} rows per class, "
        f"{args.lms_texts} LMS texts, base models trained {args.lm_steps} LM steps"
    )
    if "llama" in args.families:
        bench_search(f"Llama {layers}x{hidden}, vocab {llama_vocab}", "llama", hidden, layers, 2, llama_vocab, args)
    if "bert" in args.families:
        bench_search(f"BERT {layers}x{hidden}, vocab {bert_vocab}", "bert", hidden, layers, 2, bert_vocab, args)


if __name__ == "__main__":
    main()
