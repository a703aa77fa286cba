"""`gradiend-hf rewrite GRADIEND --feature_factor F --learning_rate LR --output_dir DIR`: save a rewritten model."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..base_models import load_base_model
from ..modeling_gradiend import GradiendModel
from ..rewrite_io import save_rewritten
from .errors import user_errors
from .parsing import parse_config


@dataclass
class RewriteArguments:
    gradiend: str = field(metadata={"help": "Folder or Hub id of the trained GRADIEND."})
    feature_factor: float = field(metadata={"help": "Feature value fed to the decoder (its sign picks the class)."})
    learning_rate: float = field(metadata={"help": "Scale of the weight update."})
    output_dir: str = field(metadata={"help": "Folder for the rewritten model, tokenizer and card."})


def main(argv: list[str] | None = None) -> None:
    with user_errors("rewrite"):
        (args,) = parse_config((RewriteArguments,), argv, "gradiend-hf rewrite")
        gradiend = GradiendModel.from_pretrained(args.gradiend)
        base, tokenizer = load_base_model(gradiend)
        gradiend.rewrite(base, args.feature_factor, args.learning_rate, inplace=True)
        save_rewritten(
            base,
            tokenizer,
            args.output_dir,
            gradiend=gradiend,
            feature_factor=args.feature_factor,
            learning_rate=args.learning_rate,
        )
        print(f"Saved the rewritten model to {args.output_dir}.")


if __name__ == "__main__":
    main()
