"""`gradiend-hf evaluate GRADIEND`: encoder metrics and the decoder grid of a trained GRADIEND."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from ..artefacts import check_output_folder
from ..base_models import load_base_model
from ..checks import check_positive
from ..data import load_builtin, load_feature_data
from ..errors import GradiendError
from ..evaluation import FEATURE_FACTOR_PRESETS, SEARCHES, evaluate_decoder, evaluate_encoder
from ..io import atomic_write_json
from ..modeling_gradiend import GradiendModel
from ..plotting import plot_decoder_grid, plot_encoder_distributions
from .errors import user_errors
from .parsing import parse_config


POLICIES = ("balance", "lms_threshold")


@dataclass
class EvaluateArguments:
    gradiend: str = field(
        metadata={"help": "Folder or Hub id of the trained GRADIEND (may be given first, unflagged)."}
    )
    dataset: str = field(default="gender-en", metadata={"help": "Feature rows: built-in name, files or Hub id."})
    neutral: str | None = field(default="neutral-en", metadata={"help": "Built-in neutral text, or 'none'."})
    split: str = field(default="test", metadata={"help": "Split to evaluate."})
    target_class: str | None = field(default=None, metadata={"help": "Class to strengthen (lms_threshold policy)."})
    policy: str = field(default="balance", metadata={"help": "Decoder selection: balance or lms_threshold."})
    search: str = field(
        default="early_stop",
        metadata={"help": "Decoder grid search: early_stop (exact, default), exhaustive or adaptive."},
    )
    feature_factors: str | None = field(
        default=None,
        metadata={"help": "Feature-factor preset of the decoder grid: paper or balance (default: the policy's)."},
    )
    skip_decoder: bool = field(default=False, metadata={"help": "Only evaluate the encoder."})
    max_rows: int | None = field(default=None, metadata={"help": "Rows encoded (default: all)."})
    decoder_max_rows: int = field(default=64, metadata={"help": "Rows per class scored at each grid point."})
    output_dir: str | None = field(default=None, metadata={"help": "Write report.json and figures here."})

    def __post_init__(self):
        if self.policy not in POLICIES:
            raise GradiendError(f"Unknown policy {self.policy!r}; choose one of {', '.join(POLICIES)}.")
        if self.search not in SEARCHES:
            raise GradiendError(f"Unknown search {self.search!r}; choose one of {', '.join(SEARCHES)}.")
        if self.feature_factors is not None and self.feature_factors not in FEATURE_FACTOR_PRESETS:
            raise GradiendError(
                f"Unknown feature-factor preset {self.feature_factors!r}; choose one of "
                f"{', '.join(FEATURE_FACTOR_PRESETS)}."
            )
        check_positive(self.max_rows, "max_rows", integer=True, optional=True)
        check_positive(self.decoder_max_rows, "decoder_max_rows", integer=True)
        if self.output_dir is not None:
            check_output_folder(self.output_dir, "report", what="output_dir")


def main(argv: list[str] | None = None) -> None:
    with user_errors("evaluate"):
        (args,) = parse_config((EvaluateArguments,), argv, "gradiend-hf evaluate", positional=("gradiend",))
        data = load_feature_data(args.dataset)
        neutral = None if not args.neutral or args.neutral == "none" else load_builtin(args.neutral)
        gradiend = GradiendModel.from_pretrained(args.gradiend)
        base, tokenizer = load_base_model(gradiend)
        encoder = evaluate_encoder(
            gradiend, base, tokenizer, data, neutral=neutral, split=args.split, max_rows=args.max_rows
        )
        print(encoder)
        report = {
            "encoder": {k: v for k, v in encoder.metrics.items() if not isinstance(v, dict) or k.endswith("class")}
        }
        decoder = None
        if not args.skip_decoder:
            grid = {"search": args.search, "feature_factors": args.feature_factors, "policy": args.policy}
            decoder = evaluate_decoder(
                gradiend, base, tokenizer, data, neutral, args.target_class, split=args.split, show_progress=True,
                max_rows=args.decoder_max_rows, **grid,
            )  # fmt: skip
            print(decoder)
            report["decoder"] = {k: v for k, v in decoder.to_dict().items() if k != "grid"}
        if args.output_dir:
            out = Path(args.output_dir)
            atomic_write_json(out / "report.json", report)
            plot_encoder_distributions(encoder, out / "encoder_distributions.png")
            if decoder is not None:
                plot_decoder_grid(decoder, out / "decoder_grid.png")
            print(f"Wrote the report and figures to {os.path.abspath(out)}.")


if __name__ == "__main__":
    main()
