"""`gradiend-hf export-peft`: write a GRADIEND rewrite (or steering adapters) as a PEFT adapter folder.

Example:

```bash
gradiend-hf export-peft --gradiend ./my-gradiend --feature-factor 1 --learning-rate 1e-3 --rank 16 --output-dir ./adapter
python -m gradiend_hf.export.cli --gradiend ./my-gradiend --steering --learning-rate 1e-3 --output-dir ./steering
```
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def parse_rank(value: str) -> int | float | str:
    """`"full"`, an int (`"16"`) or an energy share (`"0.9"`)."""
    if value == "full":
        return value
    try:
        return int(value)
    except ValueError:
        pass
    try:
        return float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--rank must be 'full', an int or a float in (0, 1], got {value!r}."
        ) from None


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gradiend-hf export-peft",
        description="Export a GRADIEND rewrite as a PEFT LoRA adapter (or runtime steering adapters).",
    )
    parser.add_argument("--gradiend", required=True, help="Path or Hub id of the trained GRADIEND.")
    parser.add_argument(
        "--base-model", default=None, help="Base model id or path; defaults to the one recorded in the GRADIEND."
    )
    parser.add_argument("--feature-factor", type=float, default=None, help="Feature factor ff (static export).")
    parser.add_argument("--learning-rate", type=float, required=True, help="Learning rate lr of the update.")
    parser.add_argument(
        "--rank", type=parse_rank, default="full", help="'full' (exact), an int, or a float in (0, 1] (energy kept)."
    )
    parser.add_argument("--output-dir", required=True, help="Folder to write the adapter to.")
    parser.add_argument(
        "--steering",
        action="store_true",
        help="Write steering adapters (feature strength chosen at run time) instead of one fixed rewrite.",
    )
    parser.add_argument(
        "--objective", choices=("masked_lm", "causal_lm"), default=None, help="Override the GRADIEND's objective."
    )
    parser.add_argument("--no-card", action="store_true", help="Do not write README.md.")
    return parser


def load_base_model(name_or_path: str, objective: str | None):
    """Loads the base model with the Auto class matching the GRADIEND's objective."""
    from transformers import AutoModelForCausalLM, AutoModelForMaskedLM

    from ..default_model import resolve_model_name_or_path

    if objective not in ("masked_lm", "causal_lm"):
        raise SystemExit(
            "The GRADIEND records no objective; pass --objective masked_lm or --objective causal_lm to say how to "
            "load the base model."
        )
    auto = AutoModelForMaskedLM if objective == "masked_lm" else AutoModelForCausalLM
    model = auto.from_pretrained(resolve_model_name_or_path(name_or_path))
    model.eval()
    return model


def main(argv: Sequence[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    from ..modeling_gradiend import GradiendModel
    from .peft_export import export_peft
    from .steering import export_steering

    if not args.steering and args.feature_factor is None:
        raise SystemExit("--feature-factor is required (or pass --steering to choose the strength at run time).")
    gradiend = GradiendModel.from_pretrained(args.gradiend)
    base_name = args.base_model or gradiend.config.base_model_name_or_path
    if not base_name:
        raise SystemExit("The GRADIEND records no base model; pass --base-model ID_OR_PATH.")
    base_model = load_base_model(base_name, args.objective or gradiend.config.objective)
    common = {"rank": args.rank, "base_model_name_or_path": base_name, "model_card": not args.no_card}
    if args.steering:
        report = export_steering(gradiend, base_model, args.learning_rate, args.output_dir, **common)
    else:
        report = export_peft(gradiend, base_model, args.feature_factor, args.learning_rate, args.output_dir, **common)
    print(report.to_markdown())
    print(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
