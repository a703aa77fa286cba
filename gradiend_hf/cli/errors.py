"""User mistakes end a command with one clear line and a non-zero exit code, not a traceback."""

from __future__ import annotations

import contextlib
import os
import sys

import yaml


USER_ERRORS = (ValueError, FileNotFoundError, KeyError, TypeError, yaml.YAMLError)


@contextlib.contextmanager
def user_errors(command: str):
    """Turns the errors a user can cause (bad config, missing file, bad class words) into one line on stderr.

    Set `GRADIEND_HF_DEBUG=1` to see the full traceback instead.
    """
    try:
        yield
    except USER_ERRORS as error:
        if os.environ.get("GRADIEND_HF_DEBUG"):
            raise
        message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        if isinstance(error, KeyError):
            message = f"missing key {message}"
        print(f"gradiend-hf {command}: error: {message}", file=sys.stderr)
        raise SystemExit(2) from None
