"""`gradiend-hf train-mlm-head CONFIG.yaml`: train the MLM head of a decoder-only model on feature data and save it;
`gradiend-hf train --mlm_head FOLDER` then trains a GRADIEND through it."""

from __future__ import annotations

import os

from ..mlm_head import MLMHeadTrainingArguments, train_mlm_head
from .arguments import DataArguments, ModelArguments
from .errors import user_errors
from .parsing import parse_config
from .train import load_base, load_feature_rows


def main(argv: list[str] | None = None) -> None:
    with user_errors("train-mlm-head"):
        model_args, data_args, head_args = parse_config(
            (ModelArguments, DataArguments, MLMHeadTrainingArguments), argv, "gradiend-hf train-mlm-head"
        )
        _, data = load_feature_rows(model_args, data_args, head_args.seed)
        base, tokenizer = load_base(model_args, "causal_lm")
        result = train_mlm_head(base, tokenizer, data, head_args)
        print(
            f"Saved the MLM head to {os.path.abspath(head_args.output_dir)}: held-out accuracy {result.accuracy:.3f} "
            f"(majority label {result.chance:.3f}, {result.eval_rows} rows)."
        )


if __name__ == "__main__":
    main()
