"""The toolkit's own checkpoint format: one ``.safetensors`` file.

The weights are the network's state_dict (safetensors: no pickle, nothing runs on
load); the safetensors header's metadata carries one JSON document under the key
``"landscape"`` that says everything needed to rebuild the model without flags::

    {"format": "landscape-native", "format_version": 1,
     "architecture": "smallcnn", "arch_kwargs": {...},
     "normalization": {"kind": "identity"}, "temperature": 1.0,
     "input_shape": [1, 28, 28], "n_classes": 10,
     "metadata": {"dataset": ..., "class_names": [...], "training": {...},
                  "provenance": {...}, ...},
     "landscape_version": "0.1.0", "created": "2026-11-30T07:00:00+00:00"}

Files are written atomically (temporary file, then rename).
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import os
from pathlib import Path

import torch

from ._version import __version__
from .energy import EnergyModel
from .errors import CheckpointError, LandscapeError
from .models import create_model
from .utils import atomic_path

log = logging.getLogger(__name__)

FORMAT = "landscape-native"
FORMAT_VERSION = 1
META_KEY = "landscape"

__all__ = ["save_model", "load_native", "read_native_header", "is_native"]


def save_model(model: EnergyModel, path: str | os.PathLike, **metadata) -> Path:
    """Save ``model`` as a self-describing native checkpoint at ``path``.

    ``metadata`` (dataset, class_names, training config, provenance, metrics, ...)
    must be JSON-serialisable; it is stored verbatim and returned on load as
    ``model.metadata``.
    """
    from safetensors.torch import save_file

    if not isinstance(model, EnergyModel):
        raise LandscapeError(f"save_model expects an EnergyModel, got {type(model).__name__}")
    net = model.net
    arch = getattr(net, "arch_name", None)
    if arch is None:
        raise LandscapeError(
            f"save_model needs a network built by landscape.models.create_model (so it can be rebuilt), "
            f"got a {type(net).__name__} without arch_name"
        )
    merged = {**model.metadata, **metadata}
    header = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "architecture": arch,
        "arch_kwargs": net.arch_kwargs,
        "normalization": model.normalization.to_config(),
        "temperature": model.temperature,
        "input_shape": list(model.input_shape) if model.input_shape else None,
        "n_classes": model.n_classes,
        "metadata": merged,
        "landscape_version": __version__,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    try:
        text = json.dumps(header, sort_keys=True)
    except TypeError as exc:
        raise LandscapeError(f"checkpoint metadata must be JSON-serialisable: {exc}") from exc
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in net.state_dict().items()}
    path = Path(path)
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata={META_KEY: text})
    log.info("saved %s (%s) to %s", arch, ", ".join(f"{k}={v}" for k, v in net.arch_kwargs.items()), path)
    return path


def read_native_header(path: str | os.PathLike) -> dict:
    """The JSON header of a native checkpoint, without reading the weights."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        with safe_open(str(path), framework="pt") as fh:
            meta = fh.metadata() or {}
    except Exception as exc:  # safetensors raises its own SafetensorError / OSError types
        raise CheckpointError(f"{path} is not a readable safetensors file ({type(exc).__name__}: {exc})") from exc
    if META_KEY not in meta:
        raise CheckpointError(f"{path} is a safetensors file but not a landscape native checkpoint (no '{META_KEY}' metadata)")
    try:
        header = json.loads(meta[META_KEY])
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{path}: the landscape metadata is not valid JSON ({exc})") from exc
    if header.get("format") != FORMAT:
        raise CheckpointError(f"{path}: expected format {FORMAT!r}, got {header.get('format')!r}")
    if int(header.get("format_version", 0)) > FORMAT_VERSION:
        raise CheckpointError(
            f"{path} was written by a newer landscape (format version {header['format_version']}, "
            f"this is version {FORMAT_VERSION}); upgrade landscape"
        )
    return header


def is_native(path: str | os.PathLike) -> bool:
    try:
        read_native_header(path)
        return True
    except CheckpointError:
        return False


def load_native(path: str | os.PathLike, device: str | torch.device = "cpu") -> EnergyModel:
    """Rebuild the EnergyModel saved at ``path`` (in eval mode, on ``device``)."""
    from safetensors.torch import load_file

    header = read_native_header(path)
    try:
        net = create_model(header["architecture"], **header.get("arch_kwargs", {}))
    except LandscapeError as exc:
        raise CheckpointError(f"{path}: cannot rebuild its architecture: {exc}") from exc
    try:
        state = load_file(str(path), device="cpu")
    except Exception as exc:
        raise CheckpointError(f"{path}: the weights could not be read ({type(exc).__name__}: {exc})") from exc
    expected = net.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise CheckpointError(
            f"{path}: weights do not match architecture {header['architecture']!r}: "
            f"missing {missing[:5]}{'...' if len(missing) > 5 else ''}, unexpected {unexpected[:5]}{'...' if len(unexpected) > 5 else ''}"
        )
    bad = [k for k in expected if expected[k].shape != state[k].shape]
    if bad:
        k = bad[0]
        raise CheckpointError(f"{path}: tensor {k} has shape {tuple(state[k].shape)}, the architecture expects {tuple(expected[k].shape)}")
    net.load_state_dict(state, strict=True)
    model = EnergyModel(
        net,
        normalization=header.get("normalization") or "identity",
        temperature=float(header.get("temperature", 1.0)),
        input_shape=header.get("input_shape"),
        n_classes=header.get("n_classes"),
        metadata=header.get("metadata") or {},
    )
    model.metadata.setdefault("source", str(path))
    return model.to(device).eval()
