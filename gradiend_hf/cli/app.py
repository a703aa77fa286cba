"""`gradiend-hf app PATH_OR_ID`: the GRADIEND demo app (Gradio) in the browser."""

from __future__ import annotations

import argparse
import json

from ..app import build_demo
from ..errors import GradiendError
from .errors import user_errors
from .parsing import OneLineArgumentParser


def _boolean(value: str) -> bool:
    lowered = value.lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {value!r}")


def _classes(value: str) -> dict[str, list[str]]:
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError:
        parsed = None
    if not isinstance(parsed, dict) or not all(isinstance(words, list) for words in parsed.values()):
        raise argparse.ArgumentTypeError(
            f'expected a JSON mapping like \'{{"M": ["he"], "F": ["she"]}}\', got {value!r}'
        )
    return parsed


def make_parser() -> argparse.ArgumentParser:
    parser = OneLineArgumentParser(
        prog="gradiend-hf app",
        description="Try a GRADIEND in the browser: feature values, predictions, and rewrites with a slider.",
    )
    parser.add_argument("gradiend", metavar="PATH_OR_ID", help="folder or Hub id of a GRADIEND")
    parser.add_argument("--port", type=int, help="server port (default: Gradio's, 7860 or the next free one)")
    parser.add_argument("--host", default="127.0.0.1", help="server address (0.0.0.0 to serve the network)")
    parser.add_argument(
        "--share", type=_boolean, default=False, metavar="{true,false}", help="create a public gradio.live link"
    )
    parser.add_argument("--classes", type=_classes, help="class words when the GRADIEND records none, as JSON")
    parser.add_argument("--example", action="append", dest="examples", help="an example input (repeatable)")
    parser.add_argument("--max-chars", type=_positive, default=500, help="longest accepted input")
    parser.add_argument(
        "--benchmarks", metavar="JSON", help="benchmarks.json of `gradiend-hf benchmark` (or its folder) to show"
    )
    return parser


def _positive(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {value!r}")
    return number


def main(argv: list[str] | None = None) -> None:
    args = make_parser().parse_args(argv)
    with user_errors("app"):
        try:
            demo = build_demo(
                args.gradiend,
                examples=args.examples,
                class_words=args.classes,
                max_chars=args.max_chars,
                benchmarks=args.benchmarks,
            )
        except ImportError as error:  # Gradio missing: the message says which extra to install
            raise GradiendError(str(error)) from None
    demo.launch(server_name=args.host, server_port=args.port, share=args.share)


if __name__ == "__main__":
    main()
