"""Does the rewrite debias? A bias-vs-quality sweep of a trained GRADIEND, then every gender benchmark on its pick.

python examples/debias_sweep.py                                  # the GRADIEND `gradiend-hf demo` wrote
python examples/debias_sweep.py --gradiend out/gradiend-gender --primary crows_pairs
python examples/debias_sweep.py --fast                           # a tiny GPT-2 and an untrained GRADIEND, seconds

Steps: sweep feature factors × learning rates in place (`sweep_rewrites`: the primary benchmark's bias and the LMS
at every point, paired-bootstrap intervals of each point's change from the base model), select the least biased
rewrite within the LMS budget, then score the base model and that rewrite on CrowS-Pairs, StereoSet and WinoBias
(gender) with LMS and perplexity, and compare them (paired verdicts). Writes `sweep/` (table, Markdown, figure) and
`benchmarks/` (both reports and the comparison) into `--output-dir`.
"""

import argparse
import json
import time
from pathlib import Path

import torch

from gradiend_hf import GradiendModel, load_base_model
from gradiend_hf.benchmarks import attach_paired, comparison_markdown, evaluate_bias, sweep_rewrites
from gradiend_hf.io import atomic_write_text
from gradiend_hf.rewrite import RewriteSession
from gradiend_hf.testing_utils import tiny_model


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gradiend", default="gradiend-demo/gradiend", help="trained GRADIEND (folder or Hub id)")
    parser.add_argument("--fast", action="store_true", help="tiny GPT-2 and an untrained GRADIEND instead")
    parser.add_argument("--output-dir", default="out/debias-sweep")
    parser.add_argument("--primary", default="stereoset", help="benchmark whose bias the sweep minimises")
    parser.add_argument("--feature-factors", type=float, nargs="+", default=[-10, -5, -2, -1, -0.5, 0, 0.5, 1, 2])
    parser.add_argument("--learning-rates", type=float, nargs="+", default=[0.05, 0.1, 0.2, 0.5, 1.0])
    parser.add_argument("--budget", type=float, default=0.01, help="largest relative LMS loss (0.01 = 1 %%)")
    parser.add_argument("--max-rows", type=int, help="first rows per benchmark only")
    parser.add_argument("--lm-max-texts", type=int, default=100, help="neutral texts of the LMS")
    args = parser.parse_args(argv)
    out = Path(args.output_dir)

    if args.fast:
        base, tokenizer = tiny_model("gpt2")
        torch.manual_seed(0)
        gradiend = GradiendModel.from_base_model(base, params=["transformer.h.1.*"])
        args.max_rows, args.lm_max_texts = args.max_rows or 12, 8
    else:
        gradiend = GradiendModel.from_pretrained(args.gradiend)
        base, tokenizer = load_base_model(gradiend)
    common = dict(bias_types=["gender"], max_rows=args.max_rows, lm_max_texts=args.lm_max_texts)

    started = time.perf_counter()
    sweep = sweep_rewrites(
        gradiend,
        base,
        tokenizer,
        benchmarks=[args.primary],
        feature_factors=args.feature_factors,
        learning_rates=args.learning_rates,
        budget=args.budget,
        **common,
    )
    sweep.save(out / "sweep")
    sweep.plot(out / "sweep" / "sweep.png")
    sweep_seconds = time.perf_counter() - started
    summary = sweep.summary()
    print(sweep.to_markdown())

    benchmarks = ["crows_pairs", "stereoset", "winobias"]
    reports = {"base": evaluate_bias(base, tokenizer, benchmarks, model_name="base", **common)}
    chosen = sweep.selected
    if not chosen["is_base"]:
        with RewriteSession(base, gradiend) as session:
            session.apply(float(chosen["feature_factor"]), float(chosen["learning_rate"]))
            reports["selected"] = evaluate_bias(base, tokenizer, benchmarks, model_name="selected rewrite", **common)
        reports["selected"].rewrite = {
            "feature_factor": chosen["feature_factor"],
            "learning_rate": chosen["learning_rate"],
        }
        attach_paired(reports["base"], reports["selected"])
    for name, report in reports.items():
        report.save(out / "benchmarks" / name)
    comparison = comparison_markdown(reports)
    atomic_write_text(out / "benchmarks" / "comparison.md", comparison)
    print(comparison)
    seconds = {
        label: {name: round(r.benchmarks[name]["seconds"], 1) for name in benchmarks}
        | {"lms": round(r.language_modeling["seconds"], 1)}
        for label, r in reports.items()
    }
    result = {"sweep": summary, "sweep_points": len(sweep.table), "sweep_seconds": round(sweep_seconds, 1)}
    result["benchmark_seconds"] = seconds
    print(json.dumps(result, indent=2, default=float))
    return result


if __name__ == "__main__":
    main()
