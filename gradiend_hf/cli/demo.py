"""`gradiend-hf demo`: the whole GRADIEND workflow, offline, on SmolLM2-135M with the built-in he/she data.

Trains a he-vs-she GRADIEND (causal LM, next token), evaluates the encoder on the test split and on neutral text,
runs the decoder grid, rewrites the model with the balanced (debiasing) choice, scores CrowS-Pairs (gender) and
WinoBias on the base and the rewritten model, and writes into one folder: the GRADIEND with its card, the rewritten
model with tokenizer and card (both with the benchmark table), the figures, `benchmarks/` and `report.json` /
`report.md`.

Choices that keep it within ~7.5 minutes on a 2-core CPU: the GRADIEND covers the last six transformer layers
(`model.layers.2[4-9].*`, 21 M parameters; the backward pass then stops there), 8 sentences per gradient, 40
steps at learning rate 1e-3 (the reference package's SmolLM2 setting that reaches r ≈ 1), capped evaluation
sizes and the adaptive grid search (`decoder_search`; it selects what the exact `early_stop` walk selects here,
28 s sooner). Every one is a flag.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from ..artefacts import check_output_folder
from ..base_models import load_base_model
from ..benchmarks.bootstrap import check_bootstrap_settings
from ..benchmarks.loading import check_benchmark_name
from ..benchmarks.rewrite_bias import evaluate_rewrite_bias
from ..checks import check_positive
from ..data import load_builtin
from ..default_model import DEFAULT_BASE_MODEL
from ..errors import GradiendError
from ..evaluation import evaluate_decoder, evaluate_encoder
from ..evaluation.grid_search import SEARCHES
from ..io import atomic_write_json, atomic_write_text
from ..model_card import write_gradiend_card
from ..modeling_gradiend import GradiendModel
from ..plotting import plot_decoder_grid, plot_encoder_distributions, plot_training_convergence
from ..rewrite_io import save_rewritten
from ..trainer import GradiendTrainer
from ..training_args import GradiendTrainingArguments
from .benchmark import write as write_benchmarks
from .errors import user_errors
from .parsing import parse_config


MIN_CORRELATION = 0.8


@dataclass
class DemoArguments:
    """Options of `gradiend-hf demo` (all have offline defaults)."""

    output_dir: str = field(default="gradiend-demo", metadata={"help": "Folder for everything the demo writes."})
    base_model: str = field(default=DEFAULT_BASE_MODEL, metadata={"help": "Base model (default: SmolLM2, offline)."})
    dataset: str = field(default="gender-en", metadata={"help": "Built-in feature dataset."})
    neutral: str = field(default="neutral-en", metadata={"help": "Built-in neutral text."})
    params: list[str] = field(
        default_factory=lambda: ["model.layers.2[4-9].*"],
        metadata={"help": "Parameters the GRADIEND covers (the last six layers of SmolLM2)."},
    )
    max_steps: int = field(default=40, metadata={"help": "Training steps."})
    learning_rate: float = field(default=1e-3, metadata={"help": "AdamW learning rate of the GRADIEND."})
    sentences_per_gradient: int = field(default=8, metadata={"help": "Sentences of one transition per gradient."})
    eval_steps: int = field(default=10, metadata={"help": "Evaluate every this many steps."})
    encoder_max_rows: int | None = field(default=None, metadata={"help": "Test rows encoded (default: all)."})
    decoder_max_rows: int = field(default=48, metadata={"help": "Test rows per class scored at each grid point."})
    lms_max_texts: int = field(default=48, metadata={"help": "Neutral texts of the language-modelling score."})
    decoder_search: str = field(
        default="adaptive",
        metadata={
            "help": "How the grid is walked: `adaptive` (per feature factor, no larger learning rates after two "
            "that lose the LMS), `early_stop` (every point, exactly the exhaustive selection) or `exhaustive`."
        },
    )
    seed: int = field(default=0, metadata={"help": "Seed of the GRADIEND and of the samples."})
    benchmarks: list[str] = field(
        default_factory=lambda: ["crows_pairs", "winobias"],
        metadata={"help": "Bias benchmarks (gender) of the base and the rewritten model; `none` for none."},
    )
    benchmark_max_rows: int | None = field(default=None, metadata={"help": "First rows per benchmark only."})
    bootstrap_samples: int = field(default=1000, metadata={"help": "Bootstrap resamples of each benchmark score."})

    def __post_init__(self):
        self.benchmarks = (
            [] if self.benchmarks in (["none"], []) else [check_benchmark_name(n) for n in self.benchmarks]
        )
        check_positive(self.benchmark_max_rows, "benchmark_max_rows", integer=True, optional=True)
        check_bootstrap_settings(self.bootstrap_samples, 0.95)
        check_output_folder(self.output_dir, "demo", what="output_dir")
        check_positive(self.max_steps, "max_steps", integer=True)
        check_positive(self.learning_rate, "learning_rate")
        for name in ("sentences_per_gradient", "eval_steps", "decoder_max_rows", "lms_max_texts"):
            check_positive(getattr(self, name), name, integer=True)
        check_positive(self.encoder_max_rows, "encoder_max_rows", integer=True, optional=True)
        if self.decoder_search not in SEARCHES:
            raise GradiendError(f"`decoder_search` must be one of {', '.join(SEARCHES)}, got {self.decoder_search!r}.")


def _step(message: str) -> float:
    print(f"\n▶ {message}", flush=True)
    return time.perf_counter()


def run_demo(args: DemoArguments) -> dict:
    """Runs the workflow and returns the report (also written to `report.json` / `report.md`)."""
    started = time.perf_counter()
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    figures = out / "figures"
    figures.mkdir(exist_ok=True)

    _step(f"Loading {args.base_model} (converted once from the offline GGUF file and cached)")
    torch.manual_seed(args.seed)
    base, tokenizer = load_base_model(args.base_model)
    data, neutral = load_builtin(args.dataset), load_builtin(args.neutral)
    gradiend = GradiendModel.from_base_model(base, params=args.params)
    gradiend.config.base_model_name_or_path = args.base_model
    print(
        f"  GRADIEND over {len(gradiend.param_names)} tensors, {gradiend.config.num_base_parameters / 1e6:.1f} M "
        f"base parameters; {data['train'].num_rows} training rows"
    )

    t = _step(f"Training for {args.max_steps} steps ({args.sentences_per_gradient} sentences per gradient)")
    # The trainer's own files (the best-GRADIEND snapshot) go to a folder of the demo's, never to a user's folder.
    run_dir = tempfile.mkdtemp(prefix=".gradiend-demo-run-", dir=out)
    training_args = GradiendTrainingArguments(
        run_dir,
        max_steps=args.max_steps,
        learning_rate=args.learning_rate,
        sentences_per_gradient=args.sentences_per_gradient,
        eval_steps=args.eval_steps,
        eval_max_rows=64,
        logging_steps=max(1, args.eval_steps),
        report_to="none",
        seed=args.seed,
    )
    trainer = GradiendTrainer(
        model=gradiend, base_model=base, processing_class=tokenizer, args=training_args, train_dataset=data
    )
    trainer.train()
    shutil.rmtree(run_dir, ignore_errors=True)
    timings = {"training_s": time.perf_counter() - t}

    t = _step("Evaluating the encoder on the test split and on neutral text")
    encoder = evaluate_encoder(gradiend, base, tokenizer, data, neutral=neutral, max_rows=args.encoder_max_rows)
    timings["encoder_evaluation_s"] = time.perf_counter() - t
    print(f"  {encoder}")

    t = _step("Decoder grid: rewriting the model in place at every point, selecting the balanced rewrite")
    decoder = evaluate_decoder(
        gradiend,
        base,
        tokenizer,
        data,
        neutral=neutral,
        policy="balance",
        max_rows=args.decoder_max_rows,
        lms_max_texts=args.lms_max_texts,
        seed=args.seed,
        search=args.decoder_search,
        show_progress=True,
    )
    timings["decoder_grid_s"] = time.perf_counter() - t
    print(f"  {decoder}")

    selected = decoder.selected
    benchmarks = None
    if args.benchmarks:
        t = _step(f"Bias benchmarks ({', '.join(args.benchmarks)}, gender) of the base and the rewritten model")
        benchmarks = _benchmarks(args, gradiend, base, tokenizer, selected)
        write_benchmarks(benchmarks, out / "benchmarks", args.base_model)
        timings["benchmarks_s"] = time.perf_counter() - t

    _step("Writing the GRADIEND, the rewritten model, figures and the report")
    figure_files = {
        "training_convergence.png": lambda p: plot_training_convergence(
            gradiend.config.training_summary["history"], p
        ),
        "encoder_distributions.png": lambda p: plot_encoder_distributions(encoder, p),
        "decoder_grid.png": lambda p: plot_decoder_grid(decoder, p),
    }
    for name, draw in figure_files.items():
        draw(figures / name)
    gradiend_dir = out / "gradiend"
    gradiend.save_pretrained(gradiend_dir)
    keep = ("learning_rate", "max_steps", "sentences_per_gradient", "seed")
    _write_gradiend_card(
        gradiend,
        gradiend_dir,
        encoder,
        decoder,
        [figures / f for f in figure_files],
        data,
        {k: getattr(args, k) for k in keep},
        benchmarks,
    )

    gradiend.rewrite(base, selected.feature_factor, selected.learning_rate, inplace=True)
    save_rewritten(
        base, tokenizer, out / "rewritten", gradiend=gradiend, decoder_report=decoder, benchmark_reports=benchmarks
    )

    report = _report(args, gradiend, encoder, decoder, timings, time.perf_counter() - started)
    if benchmarks:
        report["benchmarks"] = {
            name: {label: r.benchmarks[name]["headline"] for label, r in benchmarks.items()}
            for name in args.benchmarks
        }
    atomic_write_json(out / "report.json", report)
    atomic_write_text(out / "report.md", _markdown(report))
    return report


def _benchmarks(args, gradiend, base, tokenizer, selected) -> dict:
    """The bias benchmarks of the selected rewrite (applied in place, then restored) and of the base model."""
    return evaluate_rewrite_bias(
        gradiend,
        base,
        tokenizer,
        selected.feature_factor,
        selected.learning_rate,
        model_name=args.base_model,
        rewritten_name=f"{args.base_model} rewritten (balanced)",
        benchmarks=args.benchmarks,
        bias_types=["gender"],
        max_rows=args.benchmark_max_rows,
        bootstrap_samples=args.bootstrap_samples,
        seed=args.seed,
        lm_max_texts=args.lms_max_texts,
    )


def _write_gradiend_card(gradiend, directory, encoder, decoder, figures, data, training_args, benchmarks) -> None:

    write_gradiend_card(
        gradiend,
        directory,
        encoder_report=encoder,
        decoder_report=decoder,
        figures=[str(f) for f in figures],
        dataset_name="gender-en",
        dataset_sizes={split: data[split].num_rows for split in data},
        training_args=training_args,
        benchmark_reports=benchmarks,
    )


def _report(args, gradiend, encoder, decoder, timings, total) -> dict:
    selected = decoder.selected
    classes = gradiend.config.feature_classes
    shifts = {}
    for rows_of in classes:
        for cls in classes:
            before = selected.base_probabilities.get(rows_of, {}).get(cls)
            after = selected.probabilities.get(rows_of, {}).get(cls)
            shifts[f"P({cls}) on {rows_of} rows"] = {"before": before, "after": after}
    metrics = encoder.metrics
    return {
        "base_model": args.base_model,
        "feature_classes": classes,
        "parameters": {"patterns": args.params, "count": gradiend.config.num_base_parameters},
        "training": {k: v for k, v in gradiend.config.training_summary.items() if k != "history"},
        "test_correlation": metrics["correlation"],
        "test_accuracy": metrics.get("accuracy"),
        "class_means": metrics.get("mean_by_class"),
        "neutral_means": metrics.get("neutral_mean"),
        "rewrite": {
            "policy": decoder.policy,
            "search": decoder.search,
            "feature_factor": selected.feature_factor,
            "learning_rate": selected.learning_rate,
            "balance": {"before": selected.base_value, "after": selected.value},
            "lms": {"before": selected.base_lms, "after": selected.lms},
        },
        "probability_shifts": shifts,
        "passed": bool(metrics["correlation"] >= MIN_CORRELATION),
        "timings_s": {**timings, "total_s": total},
        "arguments": asdict(args),
    }


def _fmt(value) -> str:
    return "n/a" if value is None else f"{value:.4g}"


def _markdown(report: dict) -> str:
    a, b = report["feature_classes"]
    rewrite = report["rewrite"]
    lines = [
        f"# GRADIEND demo: {a} vs {b} on {report['base_model']}",
        "",
        "| | value |",
        "| --- | --- |",
        f"| test correlation | {report['test_correlation']:.4f} |",
        f"| test accuracy | {_fmt(report['test_accuracy'])} |",
        *(f"| mean encoding, {c} rows | {_fmt(v)} |" for c, v in (report["class_means"] or {}).items()),
        f"| chosen rewrite | feature factor {rewrite['feature_factor']:+g}, learning rate {rewrite['learning_rate']:g} |",
        f"| balance 2·min(P({a}), P({b})) | {_fmt(rewrite['balance']['before'])} → {_fmt(rewrite['balance']['after'])} |",
        f"| LMS | {_fmt(rewrite['lms']['before'])} → {_fmt(rewrite['lms']['after'])} |",
        "",
        "| probability | before | after |",
        "| --- | --- | --- |",
        *(f"| {k} | {_fmt(v['before'])} | {_fmt(v['after'])} |" for k, v in report["probability_shifts"].items()),
        "",
        *_benchmark_lines(report.get("benchmarks")),
        f"Total wall time: {report['timings_s']['total_s'] / 60:.1f} min.",
        "",
        "![training](figures/training_convergence.png) ![encoder](figures/encoder_distributions.png) "
        "![decoder](figures/decoder_grid.png)",
    ]
    if not report["passed"]:
        lines.insert(2, f"**The encoder did NOT reach a test correlation of {MIN_CORRELATION}; this run failed.**\n")
    return "\n".join(lines) + "\n"


def _benchmark_lines(benchmarks: dict | None) -> list[str]:
    if not benchmarks:
        return []
    lines = ["| bias benchmark (gender) | base | rewritten | ideal |", "| --- | --- | --- | --- |"]
    for name, by_label in benchmarks.items():
        cells = [f"{h['value']:.2f} [{_fmt(h.get('ci_low'))}–{_fmt(h.get('ci_high'))}]" for h in by_label.values()]
        headline = next(iter(by_label.values()))
        lines.append(f"| {name} {headline['metric']} | {' | '.join(cells)} | {headline['ideal']:g} |")
    return [*lines, "", "Details, intervals and LM quality: `benchmarks/benchmarks.md`.", ""]


def main(argv: list[str] | None = None) -> None:
    with user_errors("demo"):
        (args,) = parse_config((DemoArguments,), argv, "gradiend-hf demo")
    report = run_demo(args)
    print("\n" + _markdown(report).split("![training]")[0].rstrip())
    print(f"Everything is in {os.path.abspath(args.output_dir)}.")
    if not report["passed"]:
        print(
            f"\nFAILED: the encoder's test correlation {report['test_correlation']:.3f} is below {MIN_CORRELATION}.",
            file=sys.stderr,
        )
        raise SystemExit(1)


if __name__ == "__main__":
    main()
