"""Architecture registry, filled by the :func:`register_model` decorator.

``create_model(name, **kwargs)`` builds a network and records on it the
architecture's name and its full argument list (``net.arch_name``,
``net.arch_kwargs``), which is what a self-describing checkpoint stores.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Callable

from torch import nn

from ..errors import LandscapeError

__all__ = ["register_model", "create_model", "list_models", "get_model_entry", "ModelEntry"]


@dataclass(frozen=True)
class ModelEntry:
    name: str
    factory: Callable[..., nn.Module]
    description: str

    @property
    def signature(self) -> inspect.Signature:
        return inspect.signature(self.factory)


_REGISTRY: dict[str, ModelEntry] = {}


def register_model(name: str | None = None):
    """Decorator: register a factory (function or class) under ``name``."""

    def deco(factory):
        key = name or factory.__name__.lower()
        if key in _REGISTRY:
            raise RuntimeError(f"architecture {key!r} is registered twice")
        doc = (inspect.getdoc(factory) or "").strip().splitlines()
        _REGISTRY[key] = ModelEntry(key, factory, doc[0] if doc else "")
        return factory

    return deco


def list_models() -> list[str]:
    return sorted(_REGISTRY)


def get_model_entry(name: str) -> ModelEntry:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise LandscapeError(f"unknown architecture {name!r}; known: {', '.join(list_models())}") from None


def create_model(name: str, **kwargs) -> nn.Module:
    """Build architecture ``name`` with ``kwargs``; unknown arguments are an error."""
    entry = get_model_entry(name)
    sig = entry.signature
    try:
        bound = sig.bind(**kwargs)
    except TypeError:
        allowed = [p for p in sig.parameters if p != "self"]
        unknown = sorted(set(kwargs) - set(allowed))
        raise LandscapeError(
            f"architecture {name!r} takes arguments {allowed}, got unknown {unknown}"
        ) from None
    bound.apply_defaults()
    net = entry.factory(**bound.arguments)
    net.arch_name = name
    net.arch_kwargs = dict(bound.arguments)
    return net
