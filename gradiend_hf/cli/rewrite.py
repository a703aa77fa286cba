"""`gradiend-hf rewrite GRADIEND --feature_factor F --learning_rate LR --output_dir DIR [--benchmarks JSON]`: save a
rewritten model (its card with the bias benchmarks of `gradiend-hf benchmark` when given)."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..artefacts import KIND_REWRITE, check_output_folder
from ..base_models import load_base_model
from ..benchmark_card import benchmark_reports
from ..modeling_gradiend import GradiendModel
from ..rewrite import check_rewrite_numbers
from ..rewrite_io import save_rewritten
from .errors import user_errors
from .parsing import parse_config


@dataclass
class RewriteArguments:
    gradiend: str = field(
        metadata={"help": "Folder or Hub id of the trained GRADIEND (may be given first, unflagged)."}
    )
    feature_factor: float = field(metadata={"help": "Feature value fed to the decoder (its sign picks the class)."})
    learning_rate: float = field(metadata={"help": "Scale of the weight update."})
    output_dir: str = field(metadata={"help": "Folder for the rewritten model, tokenizer and card."})
    overwrite: bool = field(
        default=False, metadata={"help": "Replace another kind of artefact in output_dir (e.g. a GRADIEND)."}
    )
    benchmarks: str | None = field(
        default=None,
        metadata={
            "help": "benchmarks.json written by `gradiend-hf benchmark` for this rewrite (or its folder): the card "
            "shows its table and lists the scores as model-index eval results."
        },
    )

    def __post_init__(self):
        check_rewrite_numbers(self.feature_factor, self.learning_rate)
        check_output_folder(self.output_dir, KIND_REWRITE, overwrite=self.overwrite, what="output_dir")
        self.benchmark_reports = None if self.benchmarks is None else benchmark_reports(self.benchmarks)


def main(argv: list[str] | None = None) -> None:
    with user_errors("rewrite"):
        (args,) = parse_config((RewriteArguments,), argv, "gradiend-hf rewrite", positional=("gradiend",))
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
            overwrite=args.overwrite,
            benchmark_reports=args.benchmark_reports,
        )
        print(f"Saved the rewritten model to {args.output_dir}.")


if __name__ == "__main__":
    main()
