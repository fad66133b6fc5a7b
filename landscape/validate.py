"""Setting checks shared by every part of the toolkit: one line per bad value, naming what was expected.

Each returns the value as the type it promises (an ``int``, a ``float``...) or raises
:class:`~landscape.errors.LandscapeError` with ``"NAME must be ..., got VALUE"``.
Sources, the evaluation and the trainer validate their settings with these.
"""

from __future__ import annotations

import math
import numbers

from .errors import LandscapeError

__all__ = ["check_number", "check_int", "check_bool", "check_choice"]

def check_number(name: str, value, *, low: float | None = None, high: float | None = None,
                 low_open: bool = False, high_open: bool = False) -> float:
    """A finite real number inside the given bounds, as a float (bools refused)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(float(value)):
        raise LandscapeError(f"{name} must be a finite number, got {value!r}")
    v = float(value)
    if low is not None and (v < low or (low_open and v == low)):
        raise LandscapeError(f"{name} must be {'>' if low_open else '>='} {low:g}, got {value!r}")
    if high is not None and (v > high or (high_open and v == high)):
        raise LandscapeError(f"{name} must be {'<' if high_open else '<='} {high:g}, got {value!r}")
    return v


def check_int(name: str, value, *, low: int | None = None) -> int:
    """An integer (bools refused) no smaller than ``low``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise LandscapeError(f"{name} must be an integer, got {value!r}")
    v = int(value)
    if low is not None and v < low:
        raise LandscapeError(f"{name} must be an integer >= {low}, got {value!r}")
    return v


def check_bool(name: str, value) -> bool:
    if not isinstance(value, bool):
        raise LandscapeError(f"{name} must be True or False, got {value!r}")
    return value


def check_choice(name: str, value, choices) -> str:
    if value not in choices:
        raise LandscapeError(f"{name} must be one of {', '.join(repr(c) for c in choices)}, got {value!r}")
    return value
