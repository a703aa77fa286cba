"""Speed of gradient extraction: gradiend-hf vs the reference package's way, measured in the same process.

(a) Group gradients (training): ours = ONE forward pass shared by the factual and alternative losses, then one
    `torch.autograd.grad` per needed kind (alternative and diff), per-parameter tensors. Reference style = a forward
    and a backward pass per side through the model's own loss into `.grad`, then one flat concatenation of all
    selected gradients and a flat difference. Both on the same dynamically padded batch; the reference package also
    pads every sentence to 256 tokens, shown as a third row.
(b) Per-example encodings (evaluation): ours = batched forward-mode AD (`jvp`), reference style = one backward pass
    per example followed by the encoder.

Run: `python benchmarks/bench_gradients.py [--quick]`. Prints times and ratios (reference / ours: >1 means faster).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
from transformers import BertConfig, BertForMaskedLM


sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gradiend_hf import GradiendModel  # noqa: E402
from gradiend_hf.gradients import encode_rows, encode_rows_loop, group_gradients  # noqa: E402
from gradiend_hf.objectives import get_objective
from tests.tiny_models import masked_rows, wordpiece_tokenizer  # noqa: E402


def best_of(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def reference_group_gradients(model, tokenizer, masked, factual, alternative, names, pad_to=None):
    """Two forward + two backward passes through the HF loss into `.grad`, then flat concatenation."""
    params = dict(model.named_parameters())
    flats = []
    for words in (factual, alternative):
        texts = [m.replace("[MASK]", tokenizer.mask_token) for m in masked]
        enc = tokenizer(texts, return_tensors="pt", padding="max_length" if pad_to else True, max_length=pad_to)
        labels = torch.full_like(enc["input_ids"], -100)
        positions = (enc["input_ids"] == tokenizer.mask_token_id).nonzero()
        for (row, col), word in zip(positions.tolist(), words):
            labels[row, col] = tokenizer.convert_tokens_to_ids(word)
        model.zero_grad(set_to_none=True)
        model(**enc, labels=labels).loss.backward()
        flats.append(torch.cat([params[n].grad.reshape(-1) for n in names]))
    model.zero_grad(set_to_none=True)
    return flats[1], flats[0] - flats[1]


def bench_model(label, model, tokenizer, group_size, encode_rows_count, repeats):
    model.eval()
    objective = get_objective("masked_lm", tokenizer)
    gradiend = GradiendModel.from_base_model(model)
    names = gradiend.param_names
    masked, factual, alternative = masked_rows(group_size)
    batch = objective.prepare(masked, factual, alternative)
    n = gradiend.config.num_base_parameters
    print(f"\n== {label}: n = {n / 1e6:.1f} M covered parameters, {group_size} sentences per gradient")

    ours = best_of(lambda: group_gradients(model, objective, batch, names, kinds=("alternative", "diff")), repeats)
    for p in model.parameters():
        p.requires_grad_(True)
    ref = best_of(lambda: reference_group_gradients(model, tokenizer, masked, factual, alternative, names), repeats)
    ref256 = best_of(
        lambda: reference_group_gradients(model, tokenizer, masked, factual, alternative, names, pad_to=256), repeats
    )
    print(f"(a) group gradients  ours {ours:.3f} s | reference style {ref:.3f} s | padded to 256 {ref256:.3f} s")
    print(f"    ratio reference/ours = {ref / ours:.2f}x   (with 256 padding: {ref256 / ours:.2f}x)")

    masked, factual, alternative = masked_rows(encode_rows_count)
    batch = objective.prepare(masked, factual, alternative)
    fast = best_of(lambda: encode_rows(gradiend, model, objective, batch), repeats)
    slow = best_of(lambda: encode_rows_loop(gradiend, model, objective, batch), max(1, repeats - 1))
    err = (encode_rows(gradiend, model, objective, batch) - encode_rows_loop(gradiend, model, objective, batch)).abs()
    print(
        f"(b) {encode_rows_count} per-example encodings  batched jvp {fast:.3f} s | per-example backward loop "
        f"{slow:.3f} s | ratio {slow / fast:.2f}x | max abs diff {err.max():.1e}"
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny model only")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.manual_seed(0)
    tokenizer = wordpiece_tokenizer()
    tiny = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=128,
        attn_implementation="eager",
    )
    model = BertForMaskedLM(tiny)
    bench_model("tiny BERT (hidden 64, 2 layers)", model, tokenizer, 32, 32, args.repeats)
    if args.quick:
        return
    config = BertConfig(attn_implementation="eager")  # bert-base sizes: 12 layers, hidden 768, vocab 30522
    bench_model("bert-base-sized random BERT", BertForMaskedLM(config), tokenizer, 8, 8, args.repeats)


if __name__ == "__main__":
    main()
