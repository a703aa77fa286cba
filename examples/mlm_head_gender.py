"""he vs she on a decoder-only model read through an auxiliary MLM head, compared with the next-token GRADIEND.

python examples/mlm_head_gender.py            # SmolLM2-135M-Instruct (offline default), the reference's head recipe
python examples/mlm_head_gender.py --fast     # a tiny Llama built from a config, seconds

Steps: train the MLM head on the frozen decoder (held-out accuracy vs the majority label); train one GRADIEND through
the head (objective causal_lm_mlm_head) and one on the next token (causal_lm) with the same parameters and steps;
report each one's encoder (correlation, class means) and decoder (class probabilities of the balancing rewrite,
scored by the model's own LM head for both, as in the reference).
"""

import argparse
import json
import os

import torch
from datasets import DatasetDict

from gradiend_hf import GradiendModel, GradiendTrainer, GradiendTrainingArguments, load_base_model
from gradiend_hf.data import load_builtin
from gradiend_hf.evaluation import evaluate_decoder, evaluate_encoder
from gradiend_hf.mlm_head import MLMHeadTrainingArguments, mlm_head_objective, train_mlm_head
from gradiend_hf.testing_utils import tiny_model


def train_gradiend(base, tokenizer, data, params, steps, output_dir, objective=None):
    torch.manual_seed(0)  # both GRADIENDs start from the same weights
    gradiend = GradiendModel.from_base_model(base, params=params)
    GradiendTrainer(
        model=gradiend,
        base_model=base,
        processing_class=tokenizer,
        args=GradiendTrainingArguments(
            output_dir,
            max_steps=steps,
            learning_rate=1e-3,
            sentences_per_gradient=8,
            eval_steps=10,
            eval_max_rows=64,
            report_to="none",
            disable_tqdm=True,
        ),
        train_dataset=data,
        objective=objective,
    ).train()
    gradiend.save_pretrained(output_dir)
    return gradiend


def summary(encoder, decoder):
    chosen = decoder.grid[
        (decoder.grid["feature_factor"] == decoder.selected.feature_factor)
        & (decoder.grid["learning_rate"] == decoder.selected.learning_rate)
    ].iloc[0]
    probabilities = [c for c in decoder.grid.columns if c.startswith("prob_")]
    return {
        "correlation": encoder.metrics["correlation"],
        "mean_by_class": encoder.metrics["mean_by_class"],
        "rewrite": {
            "feature_factor": decoder.selected.feature_factor,
            "learning_rate": decoder.selected.learning_rate,
        },
        "decoder_shift": {c: float(chosen[c]) - float(decoder.base[c]) for c in probabilities},
        "lms": {"base": float(decoder.base["lms"]), "rewrite": float(chosen["lms"])},
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fast", action="store_true", help="tiny Llama instead of SmolLM2")
    parser.add_argument("--output-dir", default="out/mlm-head-gender")
    parser.add_argument("--mask-token", help="token marking the blank (default: see default_mask_token)")
    parser.add_argument("--steps", type=int, help="GRADIEND training steps (default: 20 fast, 40 SmolLM2)")
    args = parser.parse_args(argv)

    data, neutral = load_builtin("gender-en"), load_builtin("neutral-en")
    head_args = MLMHeadTrainingArguments(
        os.path.join(args.output_dir, "mlm-head"), disable_tqdm=True, mask_token=args.mask_token
    )
    eval_rows, lms_texts, learning_rates = 128, 32, None
    if args.fast:
        base, tokenizer = tiny_model("llama")
        params, steps = ["model.layers.1.*"], 20
        data = DatasetDict(
            {name: split.select(range(400 if name == "train" else 100)) for name, split in data.items()}
        )
        head_data = data["train"].select(range(200))
        head_args.num_train_epochs, head_args.max_eval_rows = 1, 64
        eval_rows, lms_texts, learning_rates = 32, 16, [1e-3, 1e-2, 1e-1]
    else:
        base, tokenizer = load_base_model("HuggingFaceTB/SmolLM2-135M-Instruct")
        params, steps = ["model.layers.2[4-9].*"], 40  # the last six layers, as in gender_causal_lm.py
        head_data = data["train"]

    steps = args.steps or steps
    result = train_mlm_head(base, tokenizer, head_data, head_args, eval_dataset=data["validation"])
    report = {"mlm_head": {"accuracy": result.accuracy, "majority": result.chance, "eval_rows": result.eval_rows}}
    objectives = {"causal_lm_mlm_head": mlm_head_objective(result.head, tokenizer, base), "causal_lm": None}
    for name, objective in objectives.items():
        folder = os.path.join(args.output_dir, name)
        gradiend = train_gradiend(base, tokenizer, data, params, steps, folder, objective)
        encoder = evaluate_encoder(
            gradiend, base, tokenizer, data, neutral=neutral, max_rows=eval_rows, objective=objective
        )
        # Rewrites are scored by the model's own LM head for both GRADIENDs.
        decoder = evaluate_decoder(
            gradiend,
            base,
            tokenizer,
            data,
            neutral=neutral,
            policy="balance",
            max_rows=eval_rows // 4,
            lms_max_texts=lms_texts,
            learning_rates=learning_rates,
        )
        report[name] = summary(encoder, decoder)
    print(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
