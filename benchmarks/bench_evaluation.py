"""Speed and memory of GRADIEND evaluation: gradiend-hf vs the reference package's way, measured in the same run.

(a) Decoder grid. Ours = `evaluate_decoder`: every (feature factor, learning rate) is applied to the base model in
    place through `RewriteSession` and reverted exactly; rows and neutral texts are tokenized once. Reference style =
    for every grid point a deep copy of the whole base model gets the update, and the rows and texts are tokenized
    again. Both score the same rows with the same scorers. Each variant runs in a fresh subprocess, so its peak memory
    is its own: we report the peak RSS increase during the grid (sampled every 5 ms with psutil) and the process peak.
    Two GRADIENDs: one covering the whole backbone (the default) and one covering the last layer only.
(b) Encoder evaluation. Ours = batched forward-mode AD (`encode_rows`, as used by `evaluate_encoder`); reference
    style = one backward pass per row (`encode_rows_loop`), the same rows.

The base model is a randomly initialised bert-base-sized `BertForMaskedLM(BertConfig())`.
Run: `python benchmarks/bench_evaluation.py [--quick]`. Ratios are reference / ours (> 1: ours is better).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import resource
import subprocess
import sys
import threading
import time
from pathlib import Path


sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

GRID_LRS = (0.001, 0.01, 0.1, 1.0, 10.0)
PARAMS = {"backbone": None, "last-layer": ["bert.encoder.layer.11.*"]}


def rss() -> int:
    import psutil

    return psutil.Process().memory_info().rss


class PeakRSS:
    """Samples the resident set size in a thread; `peak - start` is the growth during the `with` block."""

    def __enter__(self):
        self.start = self.peak = rss()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, rss())
            time.sleep(0.005)

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss())


def setup(params_key: str, rows: int, texts: int):
    import torch
    from transformers import BertConfig, BertForMaskedLM

    from gradiend_hf import GradiendModel
    from tests.test_evaluation_common import he_she_dataset, neutral_dataset
    from tests.tiny_models import wordpiece_tokenizer

    torch.manual_seed(0)
    model = BertForMaskedLM(BertConfig(attn_implementation="eager")).eval()
    gradiend = GradiendModel.from_base_model(model, params=PARAMS[params_key], feature_classes=["M", "F"])
    data, neutral = he_she_dataset(), neutral_dataset()
    return model, wordpiece_tokenizer(), gradiend, data, neutral


def run_ours(model, tokenizer, gradiend, data, neutral, rows, texts):
    from gradiend_hf.evaluation import evaluate_decoder

    report = evaluate_decoder(
        gradiend, model, tokenizer, data, neutral, "M", learning_rates=GRID_LRS, max_rows=rows, lms_max_texts=texts
    )
    return report.grid["lms"].tolist()


def run_reference(model, tokenizer, gradiend, data, neutral, rows, texts):
    """Deep copy per grid point, tokenization per grid point (the reference package's DecoderEvaluator)."""
    import torch

    from gradiend_hf.evaluation import ClassProbabilityScorer, LanguageModelingScorer
    from gradiend_hf.evaluation.rows import class_words, sample_by_class, sample_texts
    from gradiend_hf.objectives import get_objective
    from gradiend_hf.rewrite import add_update_

    objective = get_objective(model, tokenizer)
    picked = sample_by_class(data["test"], ["M", "F"], rows, 0)
    words = class_words(data, ["M", "F"])
    lms_texts = sample_texts(list(neutral["text"]), texts, 0)
    scores = []
    for ff, lr in [(None, None)] + [(1.0, lr) for lr in GRID_LRS]:
        target = model
        if lr is not None:
            target = copy.deepcopy(model)
            add_update_(target, gradiend.update(ff, lr))
        with torch.no_grad():
            probs = ClassProbabilityScorer(
                objective, [r["masked"] for r in picked], [r["factual"] for r in picked], words
            )
            probs(target)
            lms = LanguageModelingScorer(tokenizer, lms_texts, "masked_lm", excluded_token_ids=probs.token_ids())
            scores.append(lms(target)["lms"])
        del target
    return scores[1:]


def child(variant: str, params_key: str, rows: int, texts: int) -> None:
    model, tokenizer, gradiend, data, neutral = setup(params_key, rows, texts)
    run = run_ours if variant == "ours" else run_reference
    with PeakRSS() as memory:
        start = time.perf_counter()
        lms = run(model, tokenizer, gradiend, data, neutral, rows, texts)
        seconds = time.perf_counter() - start
    result = {
        "seconds": seconds,
        "peak_growth_mb": (memory.peak - memory.start) / 2**20,
        "process_peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "n": gradiend.config.num_base_parameters,
        "lms": lms,
    }
    print("RESULT " + json.dumps(result))


def spawn(variant: str, params_key: str, rows: int, texts: int) -> dict:
    command = [
        sys.executable,
        __file__,
        "--child",
        variant,
        "--params",
        params_key,
        f"--rows={rows}",
        f"--texts={texts}",
    ]
    out = subprocess.run(command, capture_output=True, text=True, check=False, env={**os.environ, "TQDM_DISABLE": "1"})
    lines = [line for line in out.stdout.splitlines() if line.startswith("RESULT ")]
    if out.returncode != 0 or not lines:
        raise RuntimeError(f"{variant}/{params_key} failed:\n{out.stderr[-3000:]}")
    return json.loads(lines[-1][len("RESULT ") :])


def bench_decoder(rows: int, texts: int) -> None:
    print(f"(a) decoder grid: {len(GRID_LRS)} grid points + base, {2 * rows} rows, {texts} neutral texts")
    for params_key in PARAMS:
        ours = spawn("ours", params_key, rows, texts)
        ref = spawn("reference", params_key, rows, texts)
        same = max(abs(a - b) for a, b in zip(ours["lms"], ref["lms"]))
        print(f"  GRADIEND over {params_key} (n = {ours['n'] / 1e6:.1f} M): max |LMS difference| = {same:.2g}")
        print(
            f"    time        ours {ours['seconds']:7.1f} s | reference style {ref['seconds']:7.1f} s | "
            f"ratio {ref['seconds'] / ours['seconds']:.2f}x"
        )
        print(
            f"    peak growth ours {ours['peak_growth_mb']:7.0f} MB | reference style {ref['peak_growth_mb']:7.0f} MB"
            f" | ratio {ref['peak_growth_mb'] / max(ours['peak_growth_mb'], 1):.2f}x"
        )
        print(
            f"    process peak ours {ours['process_peak_mb']:6.0f} MB | reference style "
            f"{ref['process_peak_mb']:6.0f} MB | ratio {ref['process_peak_mb'] / ours['process_peak_mb']:.2f}x"
        )


def bench_encoder(rows: int) -> None:
    import torch

    from gradiend_hf.gradients import encode_rows, encode_rows_loop
    from gradiend_hf.objectives import get_objective

    model, tokenizer, gradiend, data, _ = setup("backbone", rows, 0)
    objective = get_objective(model, tokenizer)
    test = data["test"].select(range(rows))
    batch = objective.prepare(test["masked"], test["factual"], test["alternative"])
    start = time.perf_counter()
    ours = encode_rows(gradiend, model, objective, batch)
    t_ours = time.perf_counter() - start
    start = time.perf_counter()
    ref = encode_rows_loop(gradiend, model, objective, batch)
    t_ref = time.perf_counter() - start
    error = float((ours - ref).abs().max())
    print(f"(b) encoder evaluation, {rows} rows, n = {gradiend.config.num_base_parameters / 1e6:.1f} M")
    print(
        f"    batched jvp {rows / t_ours:6.2f} rows/s | one backward per row {rows / t_ref:6.2f} rows/s | "
        f"ratio {t_ref / t_ours:.2f}x | max |difference| {error:.1e}"
    )
    del torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rows")
    parser.add_argument("--child", choices=["ours", "reference"])
    parser.add_argument("--params", choices=list(PARAMS), default="backbone")
    parser.add_argument("--rows", type=int, default=8, help="rows per class of the decoder grid")
    parser.add_argument("--texts", type=int, default=16, help="neutral texts of the LMS")
    args = parser.parse_args()
    if args.child:
        child(args.child, args.params, args.rows, args.texts)
        return
    rows, texts = (4, 8) if args.quick else (args.rows, args.texts)
    import torch

    print(f"torch threads: {torch.get_num_threads()}, CPU count: {os.cpu_count()}")
    bench_decoder(rows, texts)
    bench_encoder(8 if args.quick else 16)


if __name__ == "__main__":
    main()
