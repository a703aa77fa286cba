"""The one error root of gradiend-hf, and the errors shared by several modules.

Every error gradiend-hf raises for input it cannot use derives from [`GradiendError`], a `ValueError`, so callers
that already guard against bad input keep working and applications (the command line, the Gradio app) can catch
exactly the mistakes a user can fix, while library bugs (`TypeError`, `KeyError`, …) still surface as tracebacks.
Module-specific errors (data, objectives, parameters, evaluation, export, pruning, comparison) live beside the code
that raises them and derive from this root too.
"""

from __future__ import annotations


class GradiendError(ValueError):
    """Root of every error gradiend-hf raises for input, files or settings it cannot use.

    The message names the problem and how to fix it.
    """


class GradiendSaveError(GradiendError):
    """A folder cannot be written: it is a file, is not writable, or holds another kind of model or artefact."""


class GradiendLoadError(GradiendError, OSError):
    """A folder or Hub repo cannot be loaded: it is incomplete, of another kind, holds pickled weights only, or its
    tensors do not match its config. An `OSError` too, like `from_pretrained`'s own errors for missing files."""


class GradiendFileNotFoundError(GradiendLoadError, FileNotFoundError):
    """A file or folder the user named does not exist."""


class NonFiniteError(GradiendError):
    """A number is `nan` or infinite where it would produce a broken model (a learning rate, a feature factor, a
    loss, GRADIEND weights, or the weights or logits of a rewritten model)."""


class GradiendTrainingError(GradiendError):
    """Training cannot start or continue (bad step counts, a missing or corrupt checkpoint, non-finite values)."""
