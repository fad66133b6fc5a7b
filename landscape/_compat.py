"""Shims for third-party packages; the only place they live.

RobustBench 1.1.1 does ``from autoattack import AutoAttack`` at import time, but the
AutoAttack code on PyPI is the ``pyautoattack`` package. :func:`import_robustbench`
registers ``pyautoattack`` (and its submodules) under the name ``autoattack`` before
importing RobustBench, so both resolve to one copy of the attack code.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
from types import ModuleType

from .errors import LandscapeError


def alias_autoattack() -> ModuleType:
    """Make ``import autoattack`` (and ``autoattack.<sub>``) resolve to ``pyautoattack``."""
    try:
        pkg = importlib.import_module("pyautoattack")
    except ImportError as exc:  # pragma: no cover - a broken install
        raise LandscapeError(
            "AutoAttack is needed but the 'pyautoattack' package is not installed; "
            "run: pip install pyautoattack"
        ) from exc
    existing = sys.modules.get("autoattack")
    if existing is not None and existing is not pkg:
        # A real `autoattack` install (e.g. from the authors' git repository) wins.
        return existing
    sys.modules["autoattack"] = pkg
    for info in pkgutil.iter_modules(pkg.__path__):
        try:
            sub = importlib.import_module(f"pyautoattack.{info.name}")
        except ImportError:  # the TensorFlow helpers (utils_tf, fab_tf) need tensorflow
            continue
        sys.modules[f"autoattack.{info.name}"] = sub
    return pkg


def import_robustbench() -> ModuleType:
    """Import ``robustbench.utils`` with the AutoAttack alias in place."""
    alias_autoattack()
    try:
        return importlib.import_module("robustbench.utils")
    except ImportError as exc:  # pragma: no cover - a broken install
        raise LandscapeError(
            f"robustbench could not be imported ({exc}); install it with "
            "pip install 'setuptools<81' pyautoattack robustbench==1.1.1"
        ) from exc
