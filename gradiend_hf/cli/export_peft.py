"""`gradiend-hf export-peft GRADIEND --feature_factor F --learning_rate LR --output_dir DIR`: write a GRADIEND
rewrite as a PEFT LoRA adapter folder, or (with `--steering`) adapters whose strength is chosen at run time.

```bash
gradiend-hf export-peft ./my-gradiend --feature-factor 1 --learning-rate 1e-3 --rank 16 --output-dir ./adapter
gradiend-hf export-peft ./my-gradiend --steering --learning-rate 1e-3 --output-dir ./steering
```
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..artefacts import KIND_ADAPTER, KIND_STEERING, check_output_folder
from ..base_models import load_base_model
from ..errors import GradiendError
from ..export.lora import validate_rank
from ..export.peft_export import export_peft
from ..export.steering import export_steering
from ..modeling_gradiend import GradiendModel
from ..objectives import OBJECTIVES
from ..rewrite import check_rewrite_numbers
from .errors import user_errors
from .parsing import parse_config


@dataclass
class ExportArguments:
    gradiend: str = field(
        metadata={"help": "Folder or Hub id of the trained GRADIEND (may be given first, unflagged)."}
    )
    learning_rate: float = field(metadata={"help": "Learning rate lr of the update."})
    output_dir: str = field(metadata={"help": "Folder to write the adapter to."})
    feature_factor: float | None = field(
        default=None, metadata={"help": "Feature factor ff of the rewrite (ignored with --steering)."}
    )
    base_model: str | None = field(
        default=None, metadata={"help": "Base model id or folder; defaults to the one recorded in the GRADIEND."}
    )
    rank: str = field(
        default="full", metadata={"help": "'full' (exact), an int, or a float in (0, 1] (share of energy kept)."}
    )
    steering: bool = field(
        default=False, metadata={"help": "Write steering adapters (strength chosen at run time) instead."}
    )
    objective: str | None = field(
        default=None,
        metadata={"help": "masked_lm, causal_lm, seq2seq_lm or causal_lm_cloze (default: the GRADIEND's)."},
    )
    model_card: bool = field(default=True, metadata={"help": "Write a README.md card (--no_model_card to skip)."})
    overwrite: bool = field(default=False, metadata={"help": "Replace another kind of artefact in output_dir."})

    def __post_init__(self):
        self.rank = parse_rank(self.rank)
        if self.objective is not None and self.objective not in OBJECTIVES:
            raise GradiendError(f"Unknown objective {self.objective!r}; choose one of {', '.join(OBJECTIVES)}.")
        if not self.steering and self.feature_factor is None:
            raise GradiendError(
                "--feature_factor is required (or pass --steering to choose the strength at run time)."
            )
        check_rewrite_numbers(self.feature_factor or 0.0, self.learning_rate)
        kind = KIND_STEERING if self.steering else KIND_ADAPTER
        check_output_folder(self.output_dir, kind, overwrite=self.overwrite, what="output_dir")


def parse_rank(value) -> int | float | str:
    """`"full"`, an int (`"16"`) or an energy share (`"0.9"`), validated."""
    if not isinstance(value, str):
        rank = value
    elif value == "full":
        rank = value
    else:
        try:
            rank = int(value)
        except ValueError:
            try:
                rank = float(value)
            except ValueError:
                raise GradiendError(f"--rank must be 'full', an int or a float in (0, 1], got {value!r}.") from None
    validate_rank(rank)
    return rank


def main(argv: list[str] | None = None) -> int:
    with user_errors("export-peft"):
        (args,) = parse_config((ExportArguments,), argv, "gradiend-hf export-peft", positional=("gradiend",))
        gradiend = GradiendModel.from_pretrained(args.gradiend)
        base_name = args.base_model or gradiend.config.base_model_name_or_path
        if not base_name:
            raise GradiendError("The GRADIEND records no base model; pass --base_model ID_OR_PATH.")
        objective = args.objective or gradiend.config.objective
        base_model, _ = load_base_model(base_name, objective=objective, revision=gradiend.config.base_model_revision)
        common = {
            "rank": args.rank,
            "base_model_name_or_path": base_name,
            "model_card": args.model_card,
            "overwrite": args.overwrite,
        }
        if args.steering:
            report = export_steering(gradiend, base_model, args.learning_rate, args.output_dir, **common)
        else:
            report = export_peft(
                gradiend, base_model, args.feature_factor, args.learning_rate, args.output_dir, **common
            )
        print(report.to_markdown())
        print(report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
