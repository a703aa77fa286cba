"""User mistakes end a command with one clear line on stderr and exit status 2, not a traceback.

A user mistake is a [`gradiend_hf.errors.GradiendError`] (the root of every error the library raises for input it
cannot use; the loaders turn missing folders and unreachable Hub ids into one too) or an unreadable YAML file.
Anything else, `TypeError` and `KeyError` included, is a bug and keeps its traceback.
"""

from __future__ import annotations

import contextlib
import os
import sys

import yaml
from transformers.utils import logging as transformers_logging

from ..errors import GradiendError


USER_ERRORS = (GradiendError, yaml.YAMLError)


def fail(command: str, message: str) -> None:
    """Prints `gradiend-hf <command>: error: <first line of message>` to stderr and exits with status 2."""
    lines = str(message).strip().splitlines()
    print(f"gradiend-hf {command}: error: {lines[0] if lines else 'failed'}", file=sys.stderr)
    raise SystemExit(2)


@contextlib.contextmanager
def user_errors(command: str):
    """Turns the errors a user can cause (bad config, missing file, bad class words) into one line on stderr.

    When stderr is not a terminal (a log file, CI), the progress bars of loading and saving weights are switched off
    too, so the log of a failed command is that one line. Set `GRADIEND_HF_DEBUG=1` to see the full traceback.
    """
    if not sys.stderr.isatty():
        transformers_logging.disable_progress_bar()
    try:
        yield
    except USER_ERRORS as error:
        if os.environ.get("GRADIEND_HF_DEBUG"):
            raise
        fail(command, str(error) or type(error).__name__)
