"""Reading a subcommand's dataclasses from a YAML/JSON config file or from flags."""

from __future__ import annotations

import sys
from pathlib import Path

import yaml
from transformers import HfArgumentParser


def parse_config(dataclass_types, argv: list[str] | None, prog: str):
    """Parses `argv`: one `CONFIG.yaml`/`.json` path (plus optional `--key value` overrides) or plain flags.

    Unknown keys in a config file are an error that names them (a typo must not be silently ignored).
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = HfArgumentParser(dataclass_types, prog=prog)
    if argv and argv[0].endswith((".yaml", ".yml", ".json")):
        path = Path(argv[0])
        if not path.is_file():
            raise FileNotFoundError(f"config file {argv[0]!r} does not exist")
        values = yaml.safe_load(path.read_text()) or {}
        if not isinstance(values, dict):
            raise ValueError(f"{argv[0]} must hold a mapping of option names to values")
        overrides = argv[1:]
        known = {f.dest for f in parser._actions}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown key(s) in {argv[0]}: {', '.join(unknown)} (see `{prog} --help`)")
        if overrides:
            flags = parser.parse_args_into_dataclasses(args=overrides, return_remaining_strings=True)
            explicit = {a.lstrip("-").split("=")[0].replace("-", "_") for a in overrides if a.startswith("--")}
            merged = {**values}
            for obj in flags[:-1]:
                merged.update({k: v for k, v in vars(obj).items() if k in explicit})
            values = merged
        return parser.parse_dict(values, allow_extra_keys=False)
    return parser.parse_args_into_dataclasses(args=argv)
