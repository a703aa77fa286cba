"""Training groups in parts of similar length vs one padded pass, on the offline SmolLM2 and the bundled data.

A training group's sentences vary widely in length; in one pass each is padded to the group's longest. Since the
split, [`group_gradients`] runs one forward pass per part of similar-length rows (each trimmed to its own longest)
and one backward pass over all of them. This script times both on the same groups, interleaved (A, B, A, B, ...)
so that machine noise hits both alike, checks that they give the same gradients, and prints the padding share.

Run: `python benchmarks/bench_group_parts.py [--groups 12] [--group_size 8]`. Prints the median time of each and the
ratio one pass / parts (>1 means the parts are faster).
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path

import torch


sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gradiend_hf import GradiendModel, gradients  # noqa: E402
from gradiend_hf.base_models import load_base_model  # noqa: E402
from gradiend_hf.data import load_builtin  # noqa: E402
from gradiend_hf.default_model import DEFAULT_BASE_MODEL  # noqa: E402
from gradiend_hf.objectives import get_objective  # noqa: E402


DEFAULT_OVERHEAD = gradients._PASS_OVERHEAD_POSITIONS


def timed(one_pass: bool, base, objective, batch, names):
    # With a pass overhead above any padding, the group is one part: the previous single pass.
    gradients._PASS_OVERHEAD_POSITIONS = 10**9 if one_pass else DEFAULT_OVERHEAD
    start = time.perf_counter()
    result = gradients.group_gradients(base, objective, batch, names)
    return time.perf_counter() - start, result


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--groups", type=int, default=12)
    parser.add_argument("--group_size", type=int, default=8)
    parser.add_argument("--params", default="model.layers.2[4-9].*", help="the covered parameters (the demo's)")
    args = parser.parse_args()
    torch.manual_seed(0)
    base, tokenizer = load_base_model(DEFAULT_BASE_MODEL)
    base.eval()
    objective = get_objective(base, tokenizer)
    names = GradiendModel.from_base_model(base, params=[args.params]).param_names
    train = load_builtin("gender-en")["train"]
    # Rows of one transition, as the trainer groups them.
    by_transition: dict[tuple[str, str], list[int]] = {}
    for index, (factual, alternative) in enumerate(zip(train["factual"], train["alternative"])):
        by_transition.setdefault((factual, alternative), []).append(index)
    pools = [rows for rows in by_transition.values() if len(rows) >= args.group_size]
    rng = random.Random(0)
    times = {True: [], False: []}
    real = padded = 0
    worst = 0.0
    for _ in range(args.groups):
        rows = train.select(rng.sample(rng.choice(pools), args.group_size))
        batch = objective.prepare(rows["masked"], rows["factual"], rows["alternative"])
        real, padded = real + int(batch.attention_mask.sum()), padded + batch.attention_mask.numel()
        results = {}
        for one_pass in (True, False):
            seconds, results[one_pass] = timed(one_pass, base, objective, batch, names)
            times[one_pass].append(seconds)
        for kind, grads in results[True].items():
            scale = max(g.abs().max() for g in grads.values())
            worst = max(worst, max(float((g - results[False][kind][n]).abs().max() / scale) for n, g in grads.items()))
    one, parts = statistics.median(times[True]), statistics.median(times[False])
    print(f"{args.groups} groups of {args.group_size} rows, {len(names)} covered tensors of {DEFAULT_BASE_MODEL}")
    print(f"padding in one pass: {1 - real / padded:.0%} of the positions")
    print(f"group gradients  one pass {one:.3f} s | parts by length {parts:.3f} s | ratio {one / parts:.2f}x")
    print(f"largest gradient difference (relative to the largest entry): {worst:.1e}")


if __name__ == "__main__":
    main()
