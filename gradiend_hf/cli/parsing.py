"""Reading a subcommand's dataclasses from a YAML/JSON config file, positional arguments and `--flag value` overrides.

Strict on purpose: an unknown key, a mistyped or abbreviated flag (`--learning_rat`, `--max_step`) or a value of the
wrong type is an error that names it, never silently ignored. YAML numbers like `1e-3` (text for YAML 1.1, which
wants `1.0e-3`) are read as numbers.
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import sys
import types
import typing
from pathlib import Path
from typing import Any

import yaml
from transformers import HfArgumentParser

from ..errors import GradiendError


CONFIG_SUFFIXES = (".yaml", ".yml", ".json")


class ConfigLoader(yaml.SafeLoader):
    """`yaml.SafeLoader` that also reads `1e-3` and `5E+2` as floats."""


ConfigLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:\d+\.?\d*|\.\d+)[eE][-+]?\d+$"),
    list("-+0123456789."),
)


class OneLineArgumentParser(argparse.ArgumentParser):
    """`argparse.ArgumentParser` without abbreviated flags whose usage errors are one line on stderr and exit 2."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str):
        print(f"{self.prog}: error: {message} (see `{self.prog} --help`)", file=sys.stderr)
        raise SystemExit(2)


class StrictArgumentParser(HfArgumentParser):
    """`HfArgumentParser` without abbreviated flags, whose errors raise [`GradiendError`] (one line, exit 2 in the
    command line) instead of printing the usage and exiting."""

    def __init__(self, dataclass_types, **kwargs):
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(dataclass_types, **kwargs)

    def error(self, message: str):
        raise GradiendError(f"{message} (see `{self.prog} --help`)")


def parse_config(dataclass_types, argv: list[str] | None, prog: str, positional: tuple[str, ...] = ()):
    """Parses `argv` into one instance of each dataclass.

    `argv` is an optional `CONFIG.yaml`/`.json` path, then values for the `positional` fields (in order), then
    `--key value` flags; flags override the file.

    Args:
        dataclass_types: The dataclasses (e.g. `(ModelArguments, GradiendTrainingArguments)`).
        argv (`list[str]`, *optional*): The arguments (default: `sys.argv[1:]`).
        prog (`str`): The command's name, for messages.
        positional (`tuple[str, ...]`, *optional*): Fields that may be given without their flag.

    Returns:
        `tuple`: one instance per dataclass.

    Raises:
        [`GradiendError`]: for a missing or unreadable config file, unknown keys or flags, values of the wrong type,
        missing required values and invalid values.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    dataclass_types = list(dataclass_types)
    parser = StrictArgumentParser(dataclass_types, prog=prog)
    values: dict[str, Any] = {}
    if argv and argv[0].endswith(CONFIG_SUFFIXES) and not argv[0].startswith("-"):
        values = read_config_file(argv.pop(0), parser, prog)
    for name in positional:
        if argv and not argv[0].startswith("-"):
            values[name] = argv.pop(0)
    values.update(_parse_flags(parser, argv))
    fields = _fields(dataclass_types)
    values = {key: coerce(key, value, fields[key][1]) for key, value in values.items()}
    missing = [name for name, (field, _) in fields.items() if _required(field) and name not in values]
    if missing:
        raise GradiendError(
            f"missing {', '.join('--' + name for name in missing)} ({fields[missing[0]][0].metadata.get('help', '')})"
        )
    try:
        return parser.parse_dict(values, allow_extra_keys=False)
    except GradiendError:
        raise
    except ValueError as error:  # the dataclasses' own checks (e.g. TrainingArguments' combinations)
        raise GradiendError(str(error).strip().splitlines()[0]) from error


def read_config_file(path: str, parser: argparse.ArgumentParser, prog: str) -> dict[str, Any]:
    """The mapping in a YAML/JSON config file, with its keys checked against the parser's options."""
    file = Path(path)
    if not file.is_file():
        raise GradiendError(f"config file {path!r} does not exist")
    try:
        values = yaml.load(file.read_text(encoding="utf-8"), Loader=ConfigLoader) or {}
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
        raise GradiendError(f"cannot read {path}: {str(error).splitlines()[0]}") from None
    if not isinstance(values, dict):
        raise GradiendError(f"{path} must hold a mapping of option names to values")
    known = {action.dest for action in parser._actions}
    unknown = sorted(str(key) for key in values if key not in known)
    if unknown:
        raise GradiendError(f"unknown key(s) in {path}: {', '.join(unknown)} (see `{prog} --help`)")
    return values


def _parse_flags(parser: StrictArgumentParser, argv: list[str]) -> dict[str, Any]:
    """Only the flags given in `argv`, typed by argparse; unknown or abbreviated flags are errors."""
    relaxed = StrictArgumentParser(parser.dataclass_types, prog=parser.prog)
    for action in relaxed._actions:
        action.required = False
        if action.dest != "help":
            action.default = argparse.SUPPRESS
    namespace = relaxed.parse_args(argv)
    return vars(namespace)


def _fields(dataclass_types) -> dict[str, tuple[dataclasses.Field, Any]]:
    fields = {}
    for dataclass_type in dataclass_types:
        hints = typing.get_type_hints(dataclass_type)
        # `config_types` (a class attribute) widens what a config file may give for a field (e.g. mappings in a
        # list of members), where argparse needs a plain type for the flag.
        hints.update(getattr(dataclass_type, "config_types", {}))
        for field in dataclasses.fields(dataclass_type):
            if field.init:
                fields[field.name] = (field, hints.get(field.name, Any))
    return fields


def _required(field: dataclasses.Field) -> bool:
    return field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING


_TRUE, _FALSE = ("true", "yes", "1", "y", "on"), ("false", "no", "0", "n", "off")


def coerce(name: str, value: Any, hint: Any) -> Any:
    """`value` as the type `hint` names (a YAML string `"1e-3"` for a float field), or a [`GradiendError`]."""
    if value is None or hint is Any:
        return value
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in args if a is not type(None)]
        if str in options or any(isinstance(value, typing.get_origin(a) or a) for a in options if _is_class(a)):
            return value
        for option in options:
            try:
                return coerce(name, value, option)
            except GradiendError:
                continue
        return _wrong(name, value, " or ".join(_type_name(a) for a in options))
    if origin in (list, tuple):
        items = value if isinstance(value, (list, tuple)) else [value]
        item_hint = args[0] if args else Any
        return [coerce(name, item, item_hint) for item in items]
    if origin is dict or hint is dict:
        return value if isinstance(value, dict) else _wrong(name, value, "a mapping")
    if hint is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in _TRUE + _FALSE:
            return value.lower() in _TRUE
        return _wrong(name, value, "true or false")
    if hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        number = _as_float(value)
        if number is not None and number.is_integer():
            return int(number)
        return _wrong(name, value, "an integer")
    if hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        number = _as_float(value)
        return number if number is not None else _wrong(name, value, "a number")
    if hint is str:
        if isinstance(value, str):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
        return _wrong(name, value, "a string")
    return value


def _as_float(value: Any) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def _is_class(hint: Any) -> bool:
    return isinstance(typing.get_origin(hint) or hint, type)


def _type_name(hint: Any) -> str:
    return getattr(hint, "__name__", str(hint))


def _wrong(name: str, value: Any, expected: str):
    raise GradiendError(f"`{name}` must be {expected}, got {value!r}")
