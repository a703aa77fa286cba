"""`gradiend-hf benchmark MODEL_OR_REWRITE`: bias benchmarks (with intervals) and LM quality of a model.

MODEL_OR_REWRITE is a base model (Hub id or folder), a rewritten model folder, or a GRADIEND (folder or Hub id) with
`--feature_factor` and `--learning_rate`: then its base model is scored unchanged and rewritten (in place, restored
afterwards) and the two are compared. Writes `benchmarks.json`, `benchmarks.md` and `figures/benchmarks.png` into
`--output_dir`.
"""

from __future__ import annotations

import json
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path

from transformers import AutoConfig

from ..base_models import load_base_model
from ..benchmarks import BENCHMARKS, BenchmarkError, comparison_markdown, evaluate_bias
from ..benchmarks.bootstrap import check_bootstrap_settings
from ..benchmarks.loading import check_benchmark_name
from ..benchmarks.plots import plot_benchmarks
from ..benchmarks.rewrite_bias import evaluate_rewrite_bias
from ..benchmarks.runner import applicable_bias_types
from ..default_model import resolve_model_name_or_path
from ..errors import GradiendLoadError
from ..io import atomic_write_json, atomic_write_text
from ..modeling_gradiend import GradiendModel
from .errors import user_errors
from .parsing import parse_config


@dataclass
class BenchmarkArguments:
    model: str = field(metadata={"help": "Base model, rewritten model folder, or GRADIEND (folder or Hub id)."})
    benchmarks: list[str] = field(
        default_factory=lambda: list(BENCHMARKS), metadata={"help": "Any of crows_pairs, stereoset, winobias."}
    )
    bias_types: list[str] | None = field(default=None, metadata={"help": "Only these bias types, e.g. gender."})
    feature_factor: float | None = field(default=None, metadata={"help": "With a GRADIEND: the feature factor."})
    learning_rate: float | None = field(default=None, metadata={"help": "With a GRADIEND: the learning rate."})
    output_dir: str = field(default="benchmarks", metadata={"help": "Folder for the reports and figures."})
    compare_base: bool = field(default=True, metadata={"help": "With a GRADIEND: also score the unchanged model."})
    max_rows: int | None = field(default=None, metadata={"help": "First rows per benchmark only (quick runs)."})
    batch_size: int = field(default=32, metadata={"help": "Sequences per forward pass."})
    bootstrap_samples: int = field(default=1000, metadata={"help": "Bootstrap resamples per score (0: none)."})
    confidence: float = field(default=0.95, metadata={"help": "Coverage of the intervals."})
    seed: int = field(default=0, metadata={"help": "Seed of the bootstrap and of the neutral-text sample."})
    lm_max_texts: int = field(default=200, metadata={"help": "Neutral texts for LMS and perplexity."})
    dtype: str = field(default="float32", metadata={"help": "float32, bfloat16 or float16."})


def _is_gradiend(model: str) -> bool:
    path = Path(model).expanduser()
    if not path.exists():
        if model.startswith((".", "/", "~")) or model.count("/") > 1:
            raise GradiendLoadError(f"No such model folder: {model!r}; give an existing folder or a Hub id.")
    try:
        config = AutoConfig.from_pretrained(resolve_model_name_or_path(model))
    except (OSError, ValueError) as error:  # not a model folder (no or an unknown config), or an unreachable Hub id
        first_line = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise GradiendLoadError(f"{model!r} is not a model folder or a reachable Hub model: {first_line}") from None
    return config.model_type == "gradiend"


def check_arguments(args: BenchmarkArguments) -> None:
    """Mistakes in the options fail before minutes of model loading."""
    args.benchmarks = [check_benchmark_name(name) for name in args.benchmarks]
    for name in args.benchmarks:
        applicable_bias_types(name, args.bias_types)
    check_bootstrap_settings(args.bootstrap_samples, args.confidence)
    for name in ("feature_factor", "learning_rate"):
        value = getattr(args, name)
        if value is not None and not math.isfinite(value):
            raise BenchmarkError(f"--{name} must be a finite number, got {value}.")
    for name in ("batch_size", "max_rows", "lm_max_texts"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise BenchmarkError(f"--{name} must be at least 1, got {value}.")


def run(args: BenchmarkArguments) -> dict:
    """Scores the model(s) and writes the reports; returns `{label: BenchmarkReport}`."""
    check_arguments(args)
    options = dict(
        benchmarks=args.benchmarks,
        bias_types=args.bias_types,
        max_rows=args.max_rows,
        batch_size=args.batch_size,
        bootstrap_samples=args.bootstrap_samples,
        confidence=args.confidence,
        seed=args.seed,
        lm_max_texts=args.lm_max_texts,
    )
    rewrite_given = args.feature_factor is not None or args.learning_rate is not None
    if _is_gradiend(args.model):
        if args.feature_factor is None or args.learning_rate is None:
            raise BenchmarkError(f"{args.model!r} is a GRADIEND: give --feature_factor and --learning_rate too.")
        gradiend = GradiendModel.from_pretrained(args.model)
        base, tokenizer = load_base_model(gradiend, dtype=args.dtype)
        name = gradiend.config.base_model_name_or_path
        reports = evaluate_rewrite_bias(
            gradiend,
            base,
            tokenizer,
            args.feature_factor,
            args.learning_rate,
            compare_base=args.compare_base,
            model_name=name,
            rewritten_name=f"{name} rewritten by {args.model}",
            **options,
        )
        reports["rewritten"].rewrite = {"gradiend": args.model, **reports["rewritten"].rewrite}
    else:
        if rewrite_given:
            raise BenchmarkError(
                f"--feature_factor and --learning_rate need a GRADIEND, but {args.model!r} is a plain model; drop them."
            )
        model, tokenizer = load_base_model(args.model, dtype=args.dtype)
        reports = {"model": evaluate_bias(model, tokenizer, model_name=args.model, **options)}
    write(reports, Path(args.output_dir), args.model)
    return reports


def write(reports: dict, output_dir: Path, model: str) -> None:
    atomic_write_json(
        output_dir / "benchmarks.json",
        {"model": model, "reports": {label: r.to_dict() for label, r in reports.items()}},
        indent=2,
        default=float,
    )
    if len(reports) == 1:
        markdown = next(iter(reports.values())).to_markdown()
    else:
        markdown = f"# Bias benchmarks: {model}\n\n" + comparison_markdown(reports) + "\n"
        markdown += "\n".join(r.to_markdown(title=f"{label}: {r.model_name}") for label, r in reports.items())
    atomic_write_text(output_dir / "benchmarks.md", markdown)
    try:
        plot_benchmarks(reports, output_dir / "figures" / "benchmarks.png")
    except ImportError as error:  # matplotlib is optional
        print(f"No figure: {error}", file=sys.stderr)


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    with user_errors("benchmark"):
        if argv and not argv[0].startswith("-") and not argv[0].endswith((".yaml", ".yml", ".json")):
            argv = ["--model", argv[0], *argv[1:]]  # MODEL_OR_REWRITE is positional
        (args,) = parse_config((BenchmarkArguments,), argv, "gradiend-hf benchmark")
        reports = run(args)
    for label, report in reports.items():
        summary = {name: round(r["headline"]["value"], 2) for name, r in report.benchmarks.items()}
        print(f"{label}: {json.dumps(summary)}")
    print(f"Wrote {Path(args.output_dir) / 'benchmarks.json'} and benchmarks.md.")


if __name__ == "__main__":
    main()
