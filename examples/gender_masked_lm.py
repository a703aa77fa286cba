"""he vs she with a masked LM: build data, train a GRADIEND, evaluate it, rewrite the model.

Runs offline in seconds on a tiny BERT built from a config (random weights: the feature it finds is in the
gradients of the target words, not in any pre-trained knowledge). Pass `--base-model bert-base-cased` (or any
masked LM) to run it on a real model.

    python examples/gender_masked_lm.py [--base-model ID] [--steps 60] [--output-dir out/gender-mlm]
"""

import argparse

from gradiend_hf import GradiendModel, GradiendTrainer, GradiendTrainingArguments, load_base_model
from gradiend_hf.data import load_builtin
from gradiend_hf.evaluation import evaluate_decoder, evaluate_encoder
from gradiend_hf.testing_utils import tiny_model


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-model", default=None, help="a masked LM (default: a tiny BERT built offline)")
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--output-dir", default="out/gender-mlm")
    args = parser.parse_args(argv)

    base, tokenizer = load_base_model(args.base_model) if args.base_model else tiny_model("bert")
    data = load_builtin("gender-en")  # he vs she rows from Jane Austen's novels
    neutral = load_builtin("neutral-en")

    gradiend = GradiendModel.from_base_model(base)  # the whole backbone; pass params=[...] for a subset
    trainer = GradiendTrainer(
        model=gradiend,
        base_model=base,
        processing_class=tokenizer,
        args=GradiendTrainingArguments(
            args.output_dir,
            max_steps=args.steps,
            learning_rate=1e-3,
            sentences_per_gradient=8,
            eval_steps=20,
            eval_max_rows=64,
            report_to="none",
        ),
        train_dataset=data,
    )
    trainer.train()
    trainer.save_model(args.output_dir)

    encoder = evaluate_encoder(gradiend, base, tokenizer, data, neutral=neutral, max_rows=128)
    print(encoder)
    decoder = evaluate_decoder(
        gradiend, base, tokenizer, data, neutral=neutral, target_class="F", max_rows=32, lms_max_texts=32
    )
    print(decoder)
    rewritten = gradiend.rewrite(base, decoder.selected.feature_factor, decoder.selected.learning_rate)
    return encoder, decoder, rewritten


if __name__ == "__main__":
    main()
