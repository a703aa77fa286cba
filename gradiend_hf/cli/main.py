"""`gradiend-hf <command> ...`: dispatches to the subcommand modules."""

from __future__ import annotations

import difflib
import importlib
import sys


COMMANDS = {
    "train": ("gradiend_hf.cli.train", "train a GRADIEND from a YAML/JSON config"),
    "train-mlm-head": ("gradiend_hf.cli.train_mlm_head", "train the MLM head of a decoder (for `train --mlm_head`)"),
    "suite": ("gradiend_hf.cli.suite", "train a family of GRADIENDs (all pairs, one-vs-rest) of a k-class feature"),
    "evaluate": ("gradiend_hf.cli.evaluate", "encoder and decoder evaluation of a trained GRADIEND"),
    "rewrite": ("gradiend_hf.cli.rewrite", "save a base model rewritten by a GRADIEND"),
    "benchmark": ("gradiend_hf.cli.benchmark", "bias benchmarks and LM quality of a model or rewrite"),
    "demo": ("gradiend_hf.cli.demo", "the whole workflow offline on SmolLM2-135M with built-in data"),
    "export-peft": ("gradiend_hf.cli.export_peft", "export a rewrite as a PEFT LoRA adapter (or steering adapters)"),
    "push": ("gradiend_hf.cli.push", "upload a GRADIEND, rewritten model or adapter folder to the Hub"),
    "app": ("gradiend_hf.cli.app", "try a GRADIEND in the browser (Gradio)"),
}


def usage() -> str:
    lines = ["usage: gradiend-hf <command> [options]", "", "commands:"]
    lines += [f"  {name:<15} {help_text}" for name, (_, help_text) in COMMANDS.items()]
    lines += ["", "Run `gradiend-hf <command> --help` for a command's options."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return
    command, rest = argv[0], argv[1:]
    if command not in COMMANDS:
        close = difflib.get_close_matches(command, COMMANDS, n=1)
        hint = f"did you mean {close[0]!r}?" if close else f"choose one of {', '.join(COMMANDS)}"
        print(f"gradiend-hf: error: unknown command {command!r}; {hint} (see `gradiend-hf --help`)", file=sys.stderr)
        raise SystemExit(2)
    module = importlib.import_module(COMMANDS[command][0])
    module.main(rest)


if __name__ == "__main__":
    main()
