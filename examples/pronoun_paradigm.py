"""The English pronoun paradigm as a suite of GRADIENDs (the GRADIEND package paper's comparison).

Five classes of subject pronouns (1SG "I", 1PL "we", 2 "you", 3SG "he"/"she"/"it", 3PL "they", built-in data
`pronouns-en`): one GRADIEND for each of the 10 pairs, one for number (SG vs PL over the pairs 1SG<->1PL and
3SG<->3PL) and one for person (first vs third person). The suite folder gets `suite.json`, `suite.md` and the figures
(top-k overlap of the decoder weights, transition encoding); each member a folder with its card.

python examples/pronoun_paradigm.py [--fast] [--output-dir out/pronoun-paradigm] [--steps N]

Without `--fast` it trains on the offline SmolLM2-135M; `--fast` runs the same suite on a tiny Llama in a minute.
Run it again to resume: converged members are loaded, an interrupted one continues from its checkpoint.
"""

import argparse

import torch
from datasets import DatasetDict

from gradiend_hf import SuiteTrainingArguments, load_base_model
from gradiend_hf.data import load_builtin
from gradiend_hf.suite import train_suite
from gradiend_hf.testing_utils import tiny_model


NUMBER = {"SG": ["1SG", "3SG"], "PL": ["1PL", "3PL"], "pairs": [["1SG", "1PL"], ["3SG", "3PL"]]}
PERSON = {"first": ["1SG", "1PL"], "third": ["3SG", "3PL"], "pairs": [["1SG", "3SG"], ["1PL", "3PL"]]}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fast", action="store_true", help="a tiny Llama and fewer steps instead of SmolLM2")
    parser.add_argument("--output-dir", default="out/pronoun-paradigm")
    parser.add_argument("--steps", type=int, default=None, help="training steps per member")
    args = parser.parse_args(argv)

    torch.manual_seed(0)
    if args.fast:
        (base, tokenizer), params, steps, rows = tiny_model("llama"), None, 10, 4
    else:
        base, tokenizer = load_base_model("HuggingFaceTB/SmolLM2-135M-Instruct")
        params, steps, rows = ["model.layers.2[4-9].mlp.*"], 20, 12
    data = load_builtin("pronouns-en")
    if args.fast:  # a sample of every split: seconds instead of minutes on a CPU
        data = DatasetDict(
            {name: split.shuffle(seed=0).select(range(min(len(split), 400))) for name, split in data.items()}
        )
    training = SuiteTrainingArguments(
        args.output_dir,
        max_steps=args.steps or steps,
        learning_rate=1e-3,
        sentences_per_gradient=4 if args.fast else 8,
        eval_steps=10,
        eval_max_rows=8 if args.fast else 24,
        save_strategy="steps",
        save_steps=10,
        save_total_limit=1,
        report_to="none",
        disable_tqdm=True,
    )
    suite = train_suite(
        base,
        tokenizer,
        data,
        training,
        ["pairs", NUMBER, PERSON],
        params=params,
        eval_max_rows=rows,
        top_k=100 if args.fast else 1000,
        venn=["1SG-vs-3SG", "1PL-vs-3PL", "SG-vs-PL"],
        dataset_name="pronouns-en",
    )
    print(open(f"{suite.output_dir}/suite.md", encoding="utf-8").read())
    return suite


if __name__ == "__main__":
    main()
