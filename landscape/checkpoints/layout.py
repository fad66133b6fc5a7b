"""State-dict containers and key prefixes, in one place.

Checkpoints wrap their weights in different ways: a bare state_dict, JEM's
``{"model_state_dict": ..., "replay_buffer": ...}``, RobustBench's
``{"state_dict": ...}``, and keys prefixed by ``module.`` (``nn.DataParallel``),
``model.`` (wrappers) or ``_orig_mod.`` (``torch.compile``). :func:`unwrap`
finds the one state_dict in a container; :func:`strip_to_marker` removes
whatever prefix sits in front of a key the caller knows must be there.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import torch

from ..errors import CheckpointError

__all__ = ["Unwrapped", "unwrap", "strip_to_marker", "is_state_dict", "describe_keys"]


def is_state_dict(obj) -> bool:
    """A non-empty mapping of string keys to tensors."""
    return (isinstance(obj, Mapping) and len(obj) > 0
            and all(isinstance(k, str) for k in obj) and all(isinstance(v, torch.Tensor) for v in obj.values()))


def describe_keys(keys, n: int = 4) -> str:
    keys = list(keys)
    shown = ", ".join(keys[:n])
    return f"[{shown}{', ...' if len(keys) > n else ''}] ({len(keys)} keys)"


@dataclass
class Unwrapped:
    """What :func:`unwrap` found in a checkpoint object."""

    state_dict: dict
    state_key: str | None = None              # the container entry holding it (None: bare state_dict)
    replay_buffer: torch.Tensor | None = None  # JEM family: Tensor[N, C, H, W] in [-1, 1]
    fields: dict = field(default_factory=dict)     # JSON-able scalar entries (epoch, accuracy, ...)
    ignored: list = field(default_factory=list)    # names of other entries (optimizer state, args, ...)


def _scalar(value):
    if isinstance(value, (bool, int, float, str)) or value is None:
        return value
    if isinstance(value, torch.Tensor) and value.numel() == 1 and value.dim() == 0:
        return value.item()
    try:
        import numpy as np

        if isinstance(value, np.generic):
            return value.item()
    except ImportError:  # pragma: no cover
        pass
    return None


def unwrap(obj, where: str, state_key: str | None = None) -> Unwrapped:
    """Find the state_dict in ``obj`` (what ``torch.load`` returned).

    Exactly one entry of a container may be a state_dict, unless ``state_key``
    names the one to use; several candidates are an error listing them.
    """
    if isinstance(obj, torch.Tensor):
        raise CheckpointError(f"{where} holds a single tensor of shape {tuple(obj.shape)}, not a state_dict")
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"{where} holds a {type(obj).__name__}, expected a state_dict or a dict holding one")
    if not obj:
        raise CheckpointError(f"{where} holds an empty dict, expected a state_dict")
    if state_key is None and is_state_dict(obj):
        return Unwrapped(dict(obj))
    if state_key is not None:
        if state_key not in obj or not is_state_dict(obj[state_key]):
            found = [k for k, v in obj.items() if is_state_dict(v)]
            raise CheckpointError(f"{where}: state_key {state_key!r} is not a state_dict in the file; state_dicts found: {found}")
        chosen = state_key
    else:
        candidates = [k for k, v in obj.items() if is_state_dict(v)]
        if not candidates:
            summary = ", ".join(f"{k}: {type(v).__name__}" for k, v in list(obj.items())[:8])
            raise CheckpointError(f"{where} holds no state_dict (a mapping of names to tensors); its entries are {{{summary}}}")
        if len(candidates) > 1:
            raise CheckpointError(
                f"{where} holds several state_dicts, candidates: {', '.join(map(repr, candidates))}; "
                "pass state_key= to choose one"
            )
        chosen = candidates[0]
    out = Unwrapped(dict(obj[chosen]), state_key=str(chosen))
    for key, value in obj.items():
        if key == chosen:
            continue
        if key == "replay_buffer" and isinstance(value, torch.Tensor):
            out.replay_buffer = value
            continue
        scalar = _scalar(value)
        if scalar is not None and isinstance(key, str):
            out.fields[key] = scalar
        else:
            out.ignored.append(str(key))
    return out


def strip_to_marker(state_dict: dict, markers: tuple[str, ...], where: str) -> tuple[dict, str] | None:
    """Remove the prefix in front of ``markers[0]`` (and its companions) from every key.

    Returns ``(state_dict, prefix)``, or None when no key ends with the first
    marker. A prefix must be shared by every key (``module.`` from DataParallel,
    ``model.``, ``_orig_mod.``...); if the first marker appears under several
    prefixes (two networks in one file), the error lists them.
    """
    first = markers[0]
    prefixes = sorted({k[: -len(first)] for k in state_dict if k.endswith(first)})
    prefixes = [p for p in prefixes if p == "" or p.endswith(".")]
    prefixes = [p for p in prefixes if all(p + m in state_dict for m in markers)]
    if not prefixes:
        return None
    if len(prefixes) > 1:
        shown = ", ".join(repr(p) if p else "'' (no prefix)" for p in prefixes)
        raise CheckpointError(f"{where} holds several networks, under the prefixes {shown}; pass state_key= or extract one")
    prefix = prefixes[0]
    if not prefix:
        return dict(state_dict), ""
    outside = [k for k in state_dict if not k.startswith(prefix)]
    if outside:
        raise CheckpointError(
            f"{where}: the weights sit under the prefix {prefix!r} but {len(outside)} keys do not, e.g. {outside[:3]}"
        )
    return {k[len(prefix):]: v for k, v in state_dict.items()}, prefix
