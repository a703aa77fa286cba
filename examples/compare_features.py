"""Train GRADIENDs for three features of SmolLM2-135M and compare them.

Features (all from the built-in English data, offline):

- `gender`: he (M) vs she (F), built-in `gender-en`;
- `pronoun-number`: he/she/it (3SG) vs they (3PL), built-in `pronoun-number-en`;
- `verb-number`: was (SG) vs were (PL), built with `make_feature_dataset` from the built-in texts.

Each feature is trained with [`train_multi_seed`] (distinct seeds per feature, so no two GRADIENDs share an
initialisation that would look like shared structure), then the script writes similarity matrices (cosine, Spearman,
top-k and mass overlap), the cross-encoding matrix, a Venn diagram of the top-k sets and a chart of where the top
weights sit, plus the encoder correlation of each GRADIEND post-pruned to its top 1 %.

Run:

    python examples/compare_features.py --output-dir comparison-smollm2        # SmolLM2-135M, ~15 min on 2 CPU cores
    python examples/compare_features.py --fast --output-dir /tmp/comparison    # tiny random Llama, seconds (tests)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import torch

from gradiend_hf import GradiendModel, GradiendTrainingArguments
from gradiend_hf.comparison import cross_encoding_matrix, similarity_matrix, topk_locations, topk_sets
from gradiend_hf.comparison_plots import (
    plot_cross_encoding_heatmap,
    plot_similarity_heatmap,
    plot_topk_locations,
    plot_topk_venn,
)
from gradiend_hf.data import load_builtin, make_feature_dataset
from gradiend_hf.evaluation import evaluate_encoder
from gradiend_hf.multi_seed import train_multi_seed


REAL = {
    "params": ["model.layers.2[4-9].mlp.*"],  # the MLPs of the last six of SmolLM2's 30 layers: 15.9M entries
    "max_steps": 16,  # measured: gender converges by step 10 (|r| 0.99, class means ±0.8)
    "eval_steps": 8,
    "sentences_per_gradient": 8,
    "eval_max_rows": 32,  # a forward-mode encoding of SmolLM2 costs ~0.5 s per row on 2 CPU cores
    "learning_rate": 1e-3,
    "test_rows": 16,
}
FAST = {
    "params": None,
    "max_steps": 20,
    "eval_steps": 10,
    "sentences_per_gradient": 4,
    "eval_max_rows": 32,
    "learning_rate": 1e-3,
    "test_rows": 12,
}
VERB_NUMBER = {"SG": ["was"], "PL": ["were"]}


def load_base(fast: bool):
    """SmolLM2-135M (offline), or with `fast` a tiny random Llama from the test helpers."""
    if fast:
        sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        from tests.tiny_models import tiny_model

        return tiny_model("llama")
    from gradiend_hf.default_model import load_default_model

    return load_default_model()


def check_single_tokens(tokenizer, words) -> None:
    """A causal LM predicts the word after a space: each word must be ONE token with its leading space."""
    for word in words:
        ids = tokenizer(" " + word, add_special_tokens=False)["input_ids"]
        if len(ids) != 1:
            raise SystemExit(f"' {word}' is {len(ids)} tokens for this tokenizer; choose single-token words.")


def verb_number_dataset(tokenizer, max_rows_per_class: int = 1500):
    """was (SG) vs were (PL) in the sentences of the built-in datasets (≥ 10 words before the blank)."""
    check_single_tokens(tokenizer, [w for words in VERB_NUMBER.values() for w in words])
    texts = list(load_builtin("gender-en")["train"]["text"]) + list(load_builtin("pronoun-number-en")["train"]["text"])
    texts += list(load_builtin("neutral-en")["text"])
    return make_feature_dataset(
        texts, VERB_NUMBER, min_left_context_words=10, max_rows_per_class=max_rows_per_class, segment=False
    )


def train_features(base, tokenizer, datasets, settings, output_dir, seeds):
    models, runs = {}, {}
    for index, (feature, dataset) in enumerate(datasets.items()):
        start = time.perf_counter()
        args = GradiendTrainingArguments(
            os.path.join(output_dir, feature),
            max_steps=settings["max_steps"],
            eval_steps=settings["eval_steps"],
            learning_rate=settings["learning_rate"],
            sentences_per_gradient=settings["sentences_per_gradient"],
            eval_max_rows=settings["eval_max_rows"],
            report_to="none",
            disable_tqdm=True,
            logging_steps=settings["eval_steps"],
        )
        result = train_multi_seed(
            lambda: GradiendModel.from_base_model(base, params=settings["params"]),
            base,
            tokenizer,
            dataset,
            args,
            seeds=[3 * index + s for s in range(seeds)],
            min_convergent=1,
            keep="best",
        )
        models[feature] = result.model
        run = next(r for r in result.runs if r.selected)
        runs[feature] = {
            "seed": run.seed,
            "seeds_tried": [r.seed for r in result.runs],
            "converged": run.converged,
            "best_correlation": run.best_correlation,
            "best_step": run.best_step,
            "mean_by_class": run.mean_by_class,
            "seconds": round(time.perf_counter() - start, 1),
        }
        print(f"[{feature}] {json.dumps(runs[feature])}", flush=True)
    return models, runs


def compare(models, base, tokenizer, datasets, settings, output_dir, k):
    figures = os.path.join(output_dir, "figures")
    matrices = {
        "cosine_encoder": similarity_matrix(models, "cosine", part="encoder-weight"),
        "cosine_signed_decoder": similarity_matrix(models, "cosine_signed", part="decoder-weight"),
        "spearman_encoder": similarity_matrix(models, "spearman", part="encoder-weight"),
        "topk_overlap": similarity_matrix(models, "topk_overlap", k=k),
        "topk_overlap_count": similarity_matrix(models, "topk_overlap", k=k, value="count"),
        "mass_overlap": similarity_matrix(models, "mass_overlap", k=k),
    }
    for name, matrix in matrices.items():
        matrix.to_csv(os.path.join(output_dir, f"{name}.csv"))
        plot_similarity_heatmap(matrix, save_path=os.path.join(figures, f"{name}.png"))
    cross = cross_encoding_matrix(models, base, tokenizer, datasets, split="test", max_rows=settings["test_rows"])
    cross.to_csv(os.path.join(output_dir, "cross_encoding.csv"))
    plot_cross_encoding_heatmap(cross, save_path=os.path.join(figures, "cross_encoding.png"))
    sets = topk_sets(models, k)
    plot_topk_venn(sets, save_path=os.path.join(figures, "topk_venn.png"), title=f"Top-{k} decoder weights")
    locations = topk_locations(models, k)
    locations.to_csv(os.path.join(output_dir, "topk_locations.csv"), index=False)
    plot_topk_locations(locations, save_path=os.path.join(figures, "topk_locations.png"))
    summary = {name: matrix.round(4).to_dict() for name, matrix in matrices.items()}
    summary["cross_encoding"] = cross.round(4).to_dict()
    by_module = locations.groupby(["gradiend", "module"])["count"].sum().unstack(fill_value=0)
    by_layer = locations.groupby(["gradiend", "layer"])["count"].sum().unstack(fill_value=0)
    summary["topk_by_module"] = by_module.to_dict(orient="index")
    summary["topk_by_layer"] = by_layer.to_dict(orient="index")
    return summary


def pruned_correlations(models, base, tokenizer, datasets, settings, share):
    """Test correlation of each GRADIEND and of its post-pruned top-`share` copy."""
    out = {}
    for feature, gradiend in models.items():
        kwargs = dict(split="test", max_rows=settings["test_rows"], max_neutral_rows=0)
        full = evaluate_encoder(gradiend, base, tokenizer, datasets[feature], **kwargs).metrics["correlation"]
        pruned = gradiend.prune(share)
        small = evaluate_encoder(pruned, base, tokenizer, datasets[feature], **kwargs).metrics["correlation"]
        out[feature] = {"full": round(full, 4), "pruned": round(small, 4), "kept": pruned.config.num_base_parameters}
        print(f"[{feature}] test correlation full {full:.3f}, top-{share:g} pruned {small:.3f}", flush=True)
    return out


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output-dir", default="comparison-output")
    parser.add_argument("--fast", action="store_true", help="tiny random Llama and few steps (for the tests)")
    parser.add_argument("--k", type=int, default=None, help="top-k size (default 1000; 100 with --fast)")
    parser.add_argument("--seeds", type=int, default=None, help="seeds tried per feature (default 3; 1 with --fast)")
    parser.add_argument("--prune-share", type=float, default=0.01, help="share kept by the pruning check")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    options = parser.parse_args(argv)
    if options.threads:
        torch.set_num_threads(options.threads)
    settings = FAST if options.fast else REAL
    k = options.k or (100 if options.fast else 1000)
    os.makedirs(options.output_dir, exist_ok=True)

    start = time.perf_counter()
    base, tokenizer = load_base(options.fast)
    datasets = {
        "gender": load_builtin("gender-en"),
        "pronoun-number": load_builtin("pronoun-number-en"),
        "verb-number": verb_number_dataset(tokenizer),
    }
    seeds = options.seeds or (1 if options.fast else 3)
    models, runs = train_features(base, tokenizer, datasets, settings, options.output_dir, seeds)
    trained = time.perf_counter()
    summary = {"runs": runs, "training_seconds": round(trained - start, 1), "k": k, "params": settings["params"]}
    summary.update(compare(models, base, tokenizer, datasets, settings, options.output_dir, k))
    summary["pruning"] = pruned_correlations(models, base, tokenizer, datasets, settings, options.prune_share)
    summary["total_seconds"] = round(time.perf_counter() - start, 1)
    with open(os.path.join(options.output_dir, "summary.json"), "w") as handle:
        json.dump(summary, handle, indent=2, default=str)
    print(f"Done in {summary['total_seconds']} s; figures in {os.path.join(options.output_dir, 'figures')}")
    return summary


if __name__ == "__main__":
    main()
