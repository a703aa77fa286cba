"""Checks of the numbers a user gives (learning rates, step counts, thresholds), before any work is done.

An absurd or non-finite setting must be refused with a message that names it, not train or save a broken model (an
`inf` learning rate trains and saves a `nan` GRADIEND; a `nan` feature factor writes a `nan` model).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from typing import Any

from .errors import GradiendError, NonFiniteError


def check_number(
    value: Any,
    name: str,
    valid: Callable[[float], bool] = lambda v: True,
    expected: str = "a finite number",
    integer: bool = False,
    optional: bool = False,
) -> None:
    """Raises unless `value` is a finite real number (an integer if `integer`) for which `valid(value)` holds.

    Args:
        value: The setting.
        name (`str`): How the message names it (e.g. `"learning_rate"`).
        valid (`Callable[[float], bool]`, *optional*): The range check.
        expected (`str`, *optional*): What a valid value is, for the message (e.g. `"a finite number > 0"`).
        integer (`bool`, *optional*, defaults to `False`): Require a whole number.
        optional (`bool`, *optional*, defaults to `False`): Accept `None`.

    Raises:
        [`NonFiniteError`]: for `nan` and infinite values; [`GradiendError`]: for anything else that is invalid.
    """
    if value is None and optional:
        return
    is_number = isinstance(value, numbers.Real) and not isinstance(value, bool)
    if not is_number:
        raise GradiendError(f"`{name}` must be {expected}, got {value!r}.")
    if not math.isfinite(float(value)):
        raise NonFiniteError(f"`{name}` must be {expected}, got {value!r}.")
    if (integer and float(value) != int(value)) or not valid(value):
        raise GradiendError(f"`{name}` must be {expected}, got {value!r}.")


def check_positive(value: Any, name: str, integer: bool = False, optional: bool = False) -> None:
    """[`check_number`] for values that must be > 0 (≥ 1 for integers)."""
    if integer:
        check_number(value, name, lambda v: v >= 1, "an integer >= 1", integer=True, optional=optional)
    else:
        check_number(value, name, lambda v: v > 0, "a finite number > 0", optional=optional)


def number_grid(values, name: str) -> list[float]:
    """`values` as a list of distinct floats in their order (a grid of feature factors or learning rates).

    Raises:
        [`GradiendError`]: for an empty grid; [`NonFiniteError`]: for `nan` or infinite values.
    """
    grid = [float(v) for v in values]
    if not grid:
        raise GradiendError(f"`{name}` is empty; give at least one value.")
    if not all(math.isfinite(v) for v in grid):
        raise NonFiniteError(f"`{name}` must be finite numbers, got {grid}.")
    return list(dict.fromkeys(grid))
