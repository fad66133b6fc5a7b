"""Setting checks shared by every part of the toolkit: one line per bad value, naming what was expected.

Each returns the value as the type it promises (an ``int``, a ``float``...) or raises
:class:`~landscape.errors.LandscapeError` with ``"NAME must be ..., got VALUE"``.
Sources, the evaluation and the trainer validate their settings with these.

Settings tables (an analysis file, a training config) are declared as
:class:`Setting` lists: each setting states what it accepts (:class:`Int`,
:class:`Real`, :class:`Choice`...) and its default once, and :func:`check_settings`
validates a table against them (unknown keys are errors naming the allowed ones).
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from .errors import LandscapeError

__all__ = ["check_number", "check_int", "check_bool", "check_choice", "Setting", "check_settings", "defaults",
           "describe_settings", "Int", "Real", "Choice", "Bool", "Str", "Table", "Optional", "Constraint", "toml_value"]


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
        raise LandscapeError(f"{name} must be true or false, got {value!r}")
    return value


def check_choice(name: str, value, choices) -> str:
    if value not in choices:
        raise LandscapeError(f"{name} must be one of {', '.join(repr(c) for c in choices)}, got {value!r}")
    return value


# ----------------------------------------------------------------------------- declared settings
class Constraint:
    """What a setting accepts; ``check(name, value)`` returns the value (converted) or raises."""

    def check(self, name: str, value):  # pragma: no cover - interface
        raise NotImplementedError

    def describe(self) -> str:  # pragma: no cover - interface
        raise NotImplementedError


class Int(Constraint):
    def __init__(self, low: int | None = None, high: int | None = None):
        self.low, self.high = low, high

    def check(self, name, value):
        v = check_int(name, value, low=self.low)
        if self.high is not None and v > self.high:
            raise LandscapeError(f"{name} must be an integer <= {self.high}, got {value!r}")
        return v

    def describe(self):
        bounds = [f">= {self.low}" if self.low is not None else "", f"<= {self.high}" if self.high is not None else ""]
        return "integer" + (" " + ", ".join(b for b in bounds if b) if any(bounds) else "")


class Real(Constraint):
    def __init__(self, low: float | None = None, high: float | None = None, low_open: bool = False,
                 high_open: bool = False):
        self.low, self.high, self.low_open, self.high_open = low, high, low_open, high_open

    def check(self, name, value):
        return check_number(name, value, low=self.low, high=self.high, low_open=self.low_open, high_open=self.high_open)

    def describe(self):
        parts = []
        if self.low is not None:
            parts.append(f"{'>' if self.low_open else '>='} {self.low:g}")
        if self.high is not None:
            parts.append(f"{'<' if self.high_open else '<='} {self.high:g}")
        return "number" + (" " + ", ".join(parts) if parts else "")


class Choice(Constraint):
    def __init__(self, *options):
        self.options = tuple(options)

    def check(self, name, value):
        return check_choice(name, value, self.options)

    def describe(self):
        return "one of " + ", ".join(repr(o) for o in self.options)


class Bool(Constraint):
    def check(self, name, value):
        return check_bool(name, value)

    def describe(self):
        return "true or false"


class Str(Constraint):
    def check(self, name, value):
        if not isinstance(value, str) or not value:
            raise LandscapeError(f"{name} must be a non-empty string, got {value!r}")
        return value

    def describe(self):
        return "string"


class Table(Constraint):
    def check(self, name, value):
        if not isinstance(value, dict):
            raise LandscapeError(f"{name} must be a table, got {value!r}")
        return dict(value)

    def describe(self):
        return "table"


class Optional(Constraint):
    """``None`` (the setting left out) or what ``inner`` accepts."""

    def __init__(self, inner: Constraint):
        self.inner = inner

    def check(self, name, value):
        return None if value is None else self.inner.check(name, value)

    def describe(self):
        return self.inner.describe() + " (optional)"


_REQUIRED = object()


@dataclass(frozen=True)
class Setting:
    """One declared setting: its name, what it accepts, its default (the only place the
    default is written) and a one-line description (shown by ``--schema``)."""

    name: str
    accepts: Constraint
    default: Any = _REQUIRED
    doc: str = ""

    @property
    def required(self) -> bool:
        return self.default is _REQUIRED


def check_settings(values: Mapping[str, Any], settings: Sequence[Setting], where: str,
                   error: type[LandscapeError] = LandscapeError) -> dict[str, Any]:
    """Validate a table of settings against their declarations: unknown keys are an error
    naming the allowed ones, missing required keys an error, every value checked; the
    defaults fill what is left out. Errors are ``error`` and start with ``where``."""
    known = {s.name: s for s in settings}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise error(f"unknown key{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))} in {where}; "
                    f"allowed: {', '.join(sorted(known))}")
    out = {}
    for s in settings:
        if s.name not in values:
            if s.required:
                raise error(f"{where} needs {s.name} ({s.accepts.describe()})")
            out[s.name] = s.default
            continue
        try:
            out[s.name] = s.accepts.check(s.name, values[s.name])
        except LandscapeError as exc:
            raise error(f"{where}: {exc}") from None
    return out


def defaults(settings: Sequence[Setting]) -> dict[str, Any]:
    """``{name: default}`` of the settings that have one."""
    return {s.name: s.default for s in settings if not s.required}


def describe_settings(settings: Sequence[Setting]) -> list[tuple[str, str, str, str]]:
    """``(name, accepts, default, doc)`` rows, for documentation and ``--schema``."""
    return [(s.name, s.accepts.describe(), "(required)" if s.required else toml_value(s.default), s.doc) for s in settings]


def toml_value(value) -> str:
    """A default as it is written in TOML (``true``, ``"test"``, ``{}``); ``None`` is "not set"."""
    if value is None:
        return "not set"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, dict) and not value:
        return "{}"
    return repr(value)
