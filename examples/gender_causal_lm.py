"""he vs she with a causal LM (next token after the text before the blank), on SmolLM2-135M offline.

python examples/gender_causal_lm.py            # SmolLM2-135M-Instruct, about 5 minutes on a laptop CPU
python examples/gender_causal_lm.py --fast     # a tiny Llama built from a config, seconds
"""

import argparse

from gradiend_hf import GradiendModel, GradiendTrainer, GradiendTrainingArguments, load_base_model
from gradiend_hf.data import load_builtin
from gradiend_hf.evaluation import evaluate_decoder, evaluate_encoder
from gradiend_hf.testing_utils import tiny_model


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fast", action="store_true", help="tiny Llama instead of SmolLM2")
    parser.add_argument("--output-dir", default="out/gender-clm")
    args = parser.parse_args(argv)

    if args.fast:
        base, tokenizer = tiny_model("llama")
        params, steps = ["model.layers.1.*"], 20
    else:
        base, tokenizer = load_base_model("HuggingFaceTB/SmolLM2-135M-Instruct")
        params, steps = ["model.layers.2[4-9].*"], 40  # the last six layers: the backward pass stops there
    data, neutral = load_builtin("gender-en"), load_builtin("neutral-en")

    gradiend = GradiendModel.from_base_model(base, params=params)
    GradiendTrainer(
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
    ).train()
    gradiend.save_pretrained(args.output_dir)

    encoder = evaluate_encoder(gradiend, base, tokenizer, data, neutral=neutral, max_rows=128)
    print(encoder)
    # The debiasing rewrite: make P(he) and P(she) as equal as possible while keeping the language-modelling score.
    decoder = evaluate_decoder(
        gradiend, base, tokenizer, data, neutral=neutral, policy="balance", max_rows=32, lms_max_texts=32
    )
    print(decoder)
    return encoder, decoder


if __name__ == "__main__":
    main()
