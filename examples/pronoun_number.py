"""3SG {he, she, it} vs 3PL {they}: a pronoun-number GRADIEND on SmolLM2-135M (or a tiny Llama with --fast).

python examples/pronoun_number.py [--fast]
"""

import argparse

from gradiend_hf import GradiendModel, GradiendTrainer, GradiendTrainingArguments, load_base_model
from gradiend_hf.data import load_builtin
from gradiend_hf.evaluation import evaluate_encoder
from gradiend_hf.testing_utils import tiny_model


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fast", action="store_true", help="tiny Llama instead of SmolLM2")
    parser.add_argument("--output-dir", default="out/pronoun-number")
    args = parser.parse_args(argv)

    if args.fast:
        (base, tokenizer), params, steps = tiny_model("llama"), None, 30
    else:
        (base, tokenizer), params, steps = (
            load_base_model("HuggingFaceTB/SmolLM2-135M-Instruct"),
            ["model.layers.2[4-9].*"],
            40,
        )
    data = load_builtin("pronoun-number-en")  # Wikipedia paragraphs; label +1 for 3SG, -1 for 3PL

    gradiend = GradiendModel.from_base_model(base, params=params)
    trainer = GradiendTrainer(
        model=gradiend,
        base_model=base,
        processing_class=tokenizer,
        args=GradiendTrainingArguments(
            args.output_dir,
            max_steps=steps,
            learning_rate=1e-3,
            sentences_per_gradient=8,
            eval_steps=10,
            eval_max_rows=64,
            report_to="none",
        ),
        train_dataset=data,
    )
    trainer.train()
    report = evaluate_encoder(gradiend, base, tokenizer, data, max_rows=128)
    print(report)
    return report


if __name__ == "__main__":
    main()
