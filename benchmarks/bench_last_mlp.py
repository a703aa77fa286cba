"""The last layer's MLP at the read positions only vs at every position, on the offline SmolLM2 and the bundled data.

Where logits are read at a few positions without autograd ([`logits_at`]: batched encodings, class probabilities,
the LMS), nothing after the last layer mixes positions, so its MLP runs on the read positions alone (checked once
per model). This script times both on the demo's workloads, interleaved (A, B, A, B, ...) so that machine noise hits
both alike: the batched encodings of test rows (forward-mode AD through the demo's six covered layers) and the
class probabilities of the demo's decoder-grid rows, as a grid point computes them (the layers below the covered ones
replayed by `FrozenPrefix`), and checks that they give the same numbers.

Run: `python benchmarks/bench_last_mlp.py [--rows 160] [--repeats 3]`. A ratio above 1 means the restriction is
faster.
"""

from __future__ import annotations

import argparse
import contextlib
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
from gradiend_hf.evaluation.prefix_cache import FrozenPrefix  # noqa: E402
from gradiend_hf.evaluation.probabilities import ClassProbabilityScorer  # noqa: E402
from gradiend_hf.evaluation.rows import class_words, sample_by_class  # noqa: E402
from gradiend_hf.gradients import encode_texts  # noqa: E402
from gradiend_hf.objectives import get_objective, logits  # noqa: E402


def timed(restricted: bool, model, work):
    logits._LAST_MLP_CHECKED[model] = restricted  # False: as for a model that failed the check
    start = time.perf_counter()
    result = work()
    return time.perf_counter() - start, result


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=160, help="test rows encoded")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--params", default="model.layers.2[4-9].*", help="the covered parameters (the demo's)")
    args = parser.parse_args()
    torch.manual_seed(0)
    model, tokenizer = load_base_model(DEFAULT_BASE_MODEL)
    model.eval()
    gradiend = GradiendModel.from_base_model(model, params=[args.params]).eval()
    objective = get_objective(model, tokenizer)
    data = load_builtin("gender-en")
    test = data["test"].select(range(args.rows))
    texts = (test["masked"], test["factual"], test["alternative"])
    rows = sample_by_class(data["test"], ["M", "F"], 48, 0)
    scorer = ClassProbabilityScorer(
        objective, [r["masked"] for r in rows], [r["factual"] for r in rows], class_words(data, ["M", "F"])
    )
    workloads = {
        f"batched encodings ({args.rows} test rows)": lambda: encode_texts(gradiend, model, objective, *texts),
        "class probabilities (96 grid rows, 6 layers)": lambda: torch.stack(list(scorer(model).values())),
    }
    prefix = FrozenPrefix(model, gradiend.param_names, keep_records=True)
    with torch.no_grad():
        encode_texts(gradiend, model, objective, *(t[:4] for t in texts))  # the one-time checks
        with prefix:
            scorer(model)  # recorded once, as at the grid's base point
            prefix.stop_recording()
    assert logits._LAST_MLP_CHECKED.get(model), "SmolLM2 did not pass the check of its last MLP"
    print(f"{DEFAULT_BASE_MODEL}, GRADIEND over {args.params}")
    for name, work in workloads.items():
        times, results = {True: [], False: []}, {}
        with torch.no_grad(), prefix if name.startswith("class") else contextlib.nullcontext():
            for _ in range(args.repeats):
                for restricted in (False, True):
                    seconds, results[restricted] = timed(restricted, model, work)
                    times[restricted].append(seconds)
        whole, reads = statistics.median(times[False]), statistics.median(times[True])
        difference = float((results[True] - results[False]).abs().max())
        print(
            f"{name:38s} whole MLP {whole:.2f} s | at the reads {reads:.2f} s | ratio {whole / reads:.2f}x | "
            f"largest difference {difference:.1e}"
        )
    logits._LAST_MLP_CHECKED[model] = True


if __name__ == "__main__":
    main()
