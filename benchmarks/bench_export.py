"""Adapter size and kept effect of `export_peft` at several ranks.

For one GRADIEND update `Δθ = lr · u(ff)` it exports a LoRA adapter per rank specification (ints, spectral-energy
shares and "full") and reports, per rank: the adapter size, the relative Frobenius error of the whole update
(`‖Δ − Δ_adapter‖ / ‖Δ‖`) and, with `--evaluate`, the language-modelling score `LMS = 1 / (1 + NLL)` on neutral texts
of base, dense rewrite and base + adapter, plus the share of the rewrite's effect on the logits the adapter keeps
(`1 − ‖z_adapter − z_rewrite‖ / ‖z_rewrite − z_base‖`).

Model: SmolLM2-135M-Instruct (`gradiend_hf.default_model.load_default_model()`) when it can be loaded, else a tiny
random Llama. GRADIEND: `--gradiend PATH` (a trained one), else an untrained one over `--params` whose decoder is
either random normal (`--decoder random`, the default: a flat spectrum, the worst case for low rank) or the LM-loss
gradient of a few neutral texts (`--decoder gradient`: a stand-in for a trained decoder, which reconstructs
gradients). The output says which.

Run: `python benchmarks/bench_export.py [--decoder gradient] [--evaluate] [--quick]`.
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from pathlib import Path

import torch


sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gradiend_hf import GradiendModel  # noqa: E402
from gradiend_hf.export import export_peft, load_exported, unload_exported  # noqa: E402
from gradiend_hf.rewrite import RewriteSession  # noqa: E402


RANKS = (1, 4, 16, 64, 0.5, 0.9, "full")


def lms(mean_nll: float) -> float:
    """`1 / (1 + NLL)` (method.md §4.2), from `gradiend_hf.evaluation` when it is there."""
    try:
        from gradiend_hf.evaluation.metrics import lms_from_nll

        return lms_from_nll(mean_nll)[0]
    except ImportError:
        return 1.0 / (1.0 + mean_nll) if math.isfinite(mean_nll) and mean_nll <= 700 else 0.0


def load_model(quick: bool):
    if not quick:
        try:
            from gradiend_hf.default_model import load_default_model

            model, tokenizer = load_default_model()
            return model, tokenizer, "SmolLM2-135M-Instruct (dequantized Q4_1, float32)"
        except (ImportError, FileNotFoundError, OSError) as error:
            print(f"SmolLM2 unavailable ({error}); falling back to a tiny random Llama.")
    from tests.tiny_models import tiny_model

    model, tokenizer = tiny_model("llama", hidden=64, layers=4)
    return model, tokenizer, "tiny random Llama (hidden 64, 4 layers)"


def neutral_texts(count: int) -> list[str]:
    from gradiend_hf.data.builtin_datasets import load_builtin

    return [row["text"] for row in load_builtin("neutral-en").select(range(count))]


def batch(tokenizer, texts):
    enc = tokenizer(texts, return_tensors="pt", padding=True, truncation=True, max_length=64)
    labels = enc["input_ids"].masked_fill(enc["attention_mask"] == 0, -100)
    return enc, labels


def make_gradiend(model, tokenizer, args):
    if args.gradiend:
        return GradiendModel.from_pretrained(args.gradiend), f"trained GRADIEND from {args.gradiend}"
    gradiend = GradiendModel.from_base_model(model, params=args.params)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        if args.decoder == "random":
            for param in gradiend.decoder.parameters():
                param.copy_(torch.randn(param.shape, generator=generator))
            source = "random normal decoder (untrained)"
        else:
            enc, labels = batch(tokenizer, neutral_texts(200)[100:116])
            params = [model.get_parameter(n) for n in gradiend.param_names]
            with torch.enable_grad():
                grads = torch.autograd.grad(model(**enc, labels=labels).loss, params)
            for key, grad in zip(gradiend.param_keys, grads):
                gradiend.decoder.weight[key].copy_(grad.reshape(-1, 1) / grad.norm())
                gradiend.decoder.bias[key].zero_()
            source = "decoder = normalised LM-loss gradient of 16 neutral texts (untrained stand-in)"
    return gradiend, f"{source} over {args.params}"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gradiend", default=None, help="path of a trained GRADIEND for the loaded base model")
    parser.add_argument("--params", nargs="+", default=["model.layers.2*.mlp.*"], help="parameter patterns")
    parser.add_argument("--decoder", choices=("random", "gradient"), default="random")
    parser.add_argument("--feature-factor", type=float, default=1.0)
    parser.add_argument("--learning-rate", type=float, default=None, help="default: 1e-2 / max|W_d| (small change)")
    parser.add_argument("--evaluate", action="store_true", help="LMS and kept effect on neutral texts")
    parser.add_argument("--quick", action="store_true", help="tiny model only")
    args = parser.parse_args()
    torch.manual_seed(0)

    model, tokenizer, model_label = load_model(args.quick)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    gradiend, gradiend_label = make_gradiend(model, tokenizer, args)
    if args.learning_rate is None:
        scale = max(float(w.abs().max()) for w in gradiend.decoder.weight.values())
        args.learning_rate = 1e-2 / scale
    covered = gradiend.config.num_base_parameters
    dense_mb = sum(model.get_parameter(n).nbytes for n in gradiend.param_names) / 2**20
    print(f"model:    {model_label}")
    print(f"GRADIEND: {gradiend_label}: {len(gradiend.param_names)} tensors, {covered:,} parameters")
    print(
        f"update:   ff={args.feature_factor}, lr={args.learning_rate:.3g}; dense delta of the covered parameters "
        f"{dense_mb:.2f} MiB (float32)"
    )

    evaluate, base_stats, rewrite_stats = None, None, None
    if args.evaluate:
        enc, labels = batch(tokenizer, neutral_texts(32))

        def evaluate(m):
            with torch.no_grad():
                out = m(**enc, labels=labels)
            return {"lms": lms(float(out.loss)), "logits": out.logits.float()}

        base_stats = evaluate(model)
        with RewriteSession(model, gradiend) as session:
            session.apply(args.feature_factor, args.learning_rate)
            rewrite_stats = evaluate(model)
        effect = (rewrite_stats["logits"] - base_stats["logits"]).norm()
        print(
            f"LMS base {base_stats['lms']:.5f}, dense rewrite {rewrite_stats['lms']:.5f}; "
            f"‖z_rewrite − z_base‖ = {effect:.4g}"
        )

    header = "| rank | adapter MiB | relative error | ranks (min–max) | export s |"
    if args.evaluate:
        header += " LMS adapter | effect kept |"
    print()
    print(header)
    print("|" + " --- |" * (header.count("|") - 1))
    for rank in RANKS:
        with tempfile.TemporaryDirectory() as folder:
            start = time.perf_counter()
            report = export_peft(
                gradiend, model, args.feature_factor, args.learning_rate, folder, rank=rank, model_card=False
            )
            seconds = time.perf_counter() - start
            ranks = [m.rank for m in report.modules if m.kind == "lora"]
            row = (
                f"| {rank} | {report.size_mb:.2f} | {report.relative_error:.4f} | {min(ranks)}–{max(ranks)} "
                f"| {seconds:.1f} |"
            )
            if args.evaluate:
                peft_model = load_exported(model, folder)
                stats = evaluate(peft_model)
                unload_exported(peft_model)
                z_base, z_rewrite = base_stats["logits"], rewrite_stats["logits"]
                kept = 1 - float((stats["logits"] - z_rewrite).norm() / (z_rewrite - z_base).norm())
                row += f" {stats['lms']:.5f} | {kept:.4f} |"
            print(row, flush=True)


if __name__ == "__main__":
    main()
