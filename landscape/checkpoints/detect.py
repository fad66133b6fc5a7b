"""From a checkpoint's contents to a loading plan: family, architecture, weights.

:func:`plan_state_dict` looks at the keys and shapes of a state_dict (already
unwrapped from its container) and decides which family wrote it, which
registered architecture rebuilds it and with which arguments, which keys are
documented as harmless and dropped, and how inputs are normalised. Nothing is
built or run here; :mod:`landscape.checkpoints.build` does that.

Loader options (the ``**overrides`` of :func:`landscape.load_model`) are
validated here too: each applies to some families only, and one that does not
apply is an error rather than silently ignored.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from ..errors import CheckpointError, LandscapeError
from .families import JEM_FAMILIES, MARKERS, canonicalise, detect_wrn_kwargs, fingerprint
from .layout import Unwrapped, describe_keys, strip_to_marker

__all__ = ["FAMILIES", "Options", "Plan", "plan_state_dict", "check_options", "dataset_shape"]

FAMILIES = ("native", *JEM_FAMILIES, "robustbench", "state_dict")

# Which loader options each family accepts (architecture keyword arguments are
# accepted where "architecture" is).
_COMMON = {"temperature", "metadata", "sha256"}
_ACCEPTS = {
    "native": _COMMON | {"load_buffer"},
    "robustbench": _COMMON | {"dataset", "threat_model", "model_dir"},
    "jem": _COMMON | {"architecture", "normalization", "input_shape", "dataset", "state_key", "load_buffer"},
    "state_dict": _COMMON | {"architecture", "normalization", "input_shape", "dataset", "state_key", "load_buffer"},
}
for _f in JEM_FAMILIES:
    _ACCEPTS[_f] = _ACCEPTS["jem"]


@dataclass
class Options:
    """The loader's options, split from the architecture's keyword arguments."""

    architecture: str | nn.Module | None = None
    normalization: object = None
    temperature: float | None = None
    input_shape: tuple | None = None
    dataset: str | None = None
    model_dir: str | Path | None = None
    threat_model: str | None = None
    sha256: str | None = None
    state_key: str | None = None
    load_buffer: bool = True
    metadata: dict = field(default_factory=dict)
    arch_kwargs: dict = field(default_factory=dict)
    given: set = field(default_factory=set)

    NAMES = ("architecture", "normalization", "temperature", "input_shape", "dataset", "model_dir", "threat_model",
             "sha256", "state_key", "load_buffer", "metadata")

    @classmethod
    def from_overrides(cls, overrides: dict) -> "Options":
        opts = cls()
        for key, value in overrides.items():
            if key in cls.NAMES and value is None:
                continue  # None means "not given" for every loader option
            if key in cls.NAMES:
                setattr(opts, key, value)
                opts.given.add(key)
            else:
                opts.arch_kwargs[key] = value
        if opts.temperature is not None and not (float(opts.temperature) > 0):
            raise CheckpointError(f"temperature must be > 0, got {opts.temperature!r}")
        if opts.metadata is None:
            opts.metadata = {}
        if not isinstance(opts.metadata, dict):
            raise CheckpointError(f"metadata must be a dict, got {type(opts.metadata).__name__}")
        if opts.input_shape is not None:
            shape = tuple(int(s) for s in opts.input_shape)
            if len(shape) != 3:
                raise CheckpointError(f"input_shape must be (C, H, W), got {opts.input_shape!r}")
            opts.input_shape = shape
        if not (opts.architecture is None or isinstance(opts.architecture, (str, nn.Module))):
            raise CheckpointError(f"architecture must be a registered name or an nn.Module, got {type(opts.architecture).__name__}")
        return opts


def check_options(opts: Options, family: str) -> None:
    """Raise when an option was given that ``family`` does not use."""
    accepts = _ACCEPTS[family]
    extra = sorted(k for k in opts.given if k not in accepts)
    if opts.arch_kwargs and "architecture" not in accepts:
        extra += sorted(opts.arch_kwargs)
    if extra:
        raise CheckpointError(
            f"option(s) {', '.join(extra)} do not apply to family {family!r} "
            f"(it accepts {', '.join(sorted(accepts)) or 'none'}{', and architecture arguments' if 'architecture' in accepts else ''})"
        )


def dataset_shape(name: str | None) -> tuple | None:
    if not name:
        return None
    from ..data import dataset_info

    try:
        return dataset_info(name).shape
    except LandscapeError:
        return None


@dataclass
class Plan:
    """What to build and load; everything in ``metadata`` is JSON-serialisable."""

    family: str
    where: str
    architecture: str | nn.Module
    arch_kwargs: dict
    state_dict: dict
    normalization: object
    input_shape: tuple | None
    n_classes: int | None
    replay_buffer: torch.Tensor | None = None
    metadata: dict = field(default_factory=dict)


def _common_metadata(unw: Unwrapped, prefix: str) -> dict:
    meta: dict = {}
    if unw.state_key:
        meta["state_key"] = unw.state_key
    if prefix:
        meta["stripped_prefix"] = prefix
    if unw.fields:
        meta["checkpoint_fields"] = dict(unw.fields)
    if unw.ignored:
        meta["ignored_entries"] = list(unw.ignored)
    return meta


def _check_buffer(buffer: torch.Tensor, in_channels: int, where: str) -> torch.Tensor:
    if buffer.dim() != 4 or not buffer.is_floating_point() or buffer.shape[1] != in_channels:
        raise CheckpointError(
            f"{where}: replay_buffer has shape {tuple(buffer.shape)} and dtype {buffer.dtype}; expected a float "
            f"N x {in_channels} x H x W tensor (pass load_buffer=False to load the model without it)"
        )
    return buffer


def _plan_jem(unw: Unwrapped, found: tuple[dict, str], family: str | None, where: str, opts: Options) -> Plan:
    state, prefix = found
    candidates: list[str] = []
    if family is None:
        family, candidates = fingerprint(state, where)
    meta = _common_metadata(unw, prefix)
    if family == "ebjdat":
        try:
            meta["base_family"] = fingerprint(state, where)[0]
        except CheckpointError:
            meta["base_family"] = "mixed"
    state, dropped = canonicalise(state, family, where)
    if opts.architecture not in (None, "wrn"):
        raise CheckpointError(f"{where}: {family} checkpoints use the 'wrn' architecture, got architecture={opts.architecture!r}")
    detected = detect_wrn_kwargs(state, where)
    kwargs = {**detected, **opts.arch_kwargs}
    if len(candidates) > 1:
        meta["family_candidates"] = candidates
    if dropped:
        meta["dropped_keys"] = dropped
    buffer = unw.replay_buffer if opts.load_buffer else None
    if buffer is not None:
        _check_buffer(buffer, int(kwargs.get("in_channels", detected["in_channels"])), where)
    shape = (opts.input_shape
             or (tuple(int(s) for s in buffer.shape[1:]) if buffer is not None else None)
             or dataset_shape(opts.dataset)
             or (int(kwargs.get("in_channels", 3)), 32, 32))
    return Plan(family, where, "wrn", kwargs, state, opts.normalization or "jem", shape,
                int(kwargs.get("n_classes", detected["n_classes"])), buffer, meta)


def _plan_explicit(unw: Unwrapped, where: str, opts: Options) -> Plan:
    arch = opts.architecture
    state = unw.state_dict
    prefix = ""
    kwargs = dict(opts.arch_kwargs)
    if isinstance(arch, nn.Module):
        if kwargs:
            raise CheckpointError(f"architecture arguments {sorted(kwargs)} cannot be applied to an nn.Module instance")
        expected = list(arch.state_dict())
    else:
        if arch == "wrn":
            found = strip_to_marker(state, MARKERS, where)
            if found is not None:
                state, prefix = found
                kwargs = {**detect_wrn_kwargs(state, where), **kwargs}
        from ..models import create_model

        try:
            with torch.device("meta"):
                expected = list(create_model(arch, **kwargs).state_dict())
        except LandscapeError as exc:
            raise CheckpointError(f"{where}: cannot build architecture {arch!r}: {exc}") from None
    if not prefix and expected:
        markers = tuple(dict.fromkeys((expected[0], expected[-1])))
        found = strip_to_marker(state, markers, where)
        if found is not None:
            state, prefix = found
    buffer = unw.replay_buffer if opts.load_buffer else None
    shape = opts.input_shape or (tuple(int(s) for s in buffer.shape[1:]) if buffer is not None and buffer.dim() == 4 else None) \
        or dataset_shape(opts.dataset)
    return Plan("state_dict", where, arch, kwargs, state, opts.normalization or "identity", shape,
                kwargs.get("n_classes"), buffer, _common_metadata(unw, prefix))


def plan_state_dict(unw: Unwrapped, family: str | None, where: str, opts: Options) -> Plan | None:
    """A loading plan for ``unw``; None when ``family`` is None and no layout matches."""
    if family == "state_dict" or (family is None and opts.architecture not in (None, "wrn")):
        if opts.architecture is None:
            from ..models import list_models

            raise CheckpointError(
                f"family 'state_dict' needs architecture= a registered name ({', '.join(list_models())}) or an nn.Module"
            )
        return _plan_explicit(unw, where, opts)
    found = strip_to_marker(unw.state_dict, MARKERS, where)
    if found is not None and family in (None, *JEM_FAMILIES):
        return _plan_jem(unw, found, family, where, opts)
    if family in JEM_FAMILIES:
        raise CheckpointError(
            f"{where}: family {family!r} expects JEM-family keys ({', '.join(MARKERS)}, under an optional prefix), "
            f"found {describe_keys(unw.state_dict)}"
        )
    if family is None and opts.architecture == "wrn":
        return _plan_explicit(unw, where, opts)
    return None
