"""Male vs female character names (`names-en`, many of several tokens) with a causal LM: train, then evaluate.

The names of Jane Austen's characters are often split by the tokenizer (SmolLM2 writes " Willoughby" as three
tokens, " Darcy" as two): every row is trained on and evaluated, a name's loss summing over its tokens and its
probability the chain-rule product (docs/data.md).

    python examples/names_gender.py            # SmolLM2-135M-Instruct offline, its last six layers
    python examples/names_gender.py --fast     # a tiny Llama built from a config, seconds
"""

import argparse

from gradiend_hf import GradiendModel, GradiendTrainer, GradiendTrainingArguments, load_base_model
from gradiend_hf.data import builtin_info, load_builtin
from gradiend_hf.evaluation import evaluate_decoder, evaluate_encoder
from gradiend_hf.objectives.registry import is_single_token
from gradiend_hf.testing_utils import tiny_model


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fast", action="store_true", help="tiny Llama instead of SmolLM2")
    parser.add_argument("--output-dir", default="out/names-gender")
    args = parser.parse_args(argv)

    if args.fast:
        (base, tokenizer), params, steps, learning_rate, rows = tiny_model("llama"), None, 30, 3e-3, 32
    else:
        base, tokenizer = load_base_model("HuggingFaceTB/SmolLM2-135M-Instruct")
        params, steps, learning_rate, rows = ["model.layers.2[4-9].*"], 40, 1e-3, 64
    data, neutral = load_builtin("names-en"), load_builtin("neutral-en")  # M names +1, F names -1
    for class_name, words in builtin_info("names-en")["classes"].items():
        split = [word for word in words if not is_single_token(tokenizer, word)]
        print(f"{class_name}: {len(split)} of {len(words)} names are several tokens ({', '.join(split[:5])}, ...)")

    gradiend = GradiendModel.from_base_model(base, params=params)
    GradiendTrainer(
        model=gradiend,
        base_model=base,
        processing_class=tokenizer,
        args=GradiendTrainingArguments(
            args.output_dir,
            max_steps=steps,
            learning_rate=learning_rate,
            sentences_per_gradient=8,
            eval_steps=steps // 2,
            eval_max_rows=rows,
            report_to="none",
        ),
        train_dataset=data,
    ).train()
    gradiend.save_pretrained(args.output_dir)

    encoder = evaluate_encoder(gradiend, base, tokenizer, data, neutral=neutral, max_rows=2 * rows)
    print(encoder)
    # Make the model prefer female names in the blank while keeping its language-modelling score.
    decoder = evaluate_decoder(
        gradiend, base, tokenizer, data, neutral=neutral, target_class="F", max_rows=rows // 4, lms_max_texts=rows // 4
    )
    print(decoder)
    return encoder, decoder


if __name__ == "__main__":
    main()
