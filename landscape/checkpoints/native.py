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
     "landscape_version": "0.1.0", "created": "2026-11-30T07:00:00+00:00",
     "replay_buffer": {"n": 10000, "shape": [1, 28, 28], "units": "pixels in [0, 1]",
                       "conditional": false}}

A JEM-family model may carry its SGLD replay buffer (the model's own samples, which
the released generation and FID code of JEM and EB-JDAT use): two more tensors,
``__replay_buffer__`` (``N x C x H x W`` pixels in [0, 1], stored as float16: 11
significant bits, finer than 8-bit images, at half the size) and, for a
class-conditional buffer, ``__replay_labels__`` (int64 ``N``). They load back as
float32 ``model.replay_buffer`` and ``model.replay_labels``.

Files are written atomically (temporary file, then rename).
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import os
from pathlib import Path

import torch

from .._version import __version__
from ..energy import EnergyModel
from ..errors import CheckpointError, LandscapeError, NotNativeError
from ..utils import atomic_path

log = logging.getLogger(__name__)

FORMAT = "landscape-native"
FORMAT_VERSION = 1
META_KEY = "landscape"

#: metadata that describes a loading, not the model: dropped when a loaded model is saved again
_LOAD_TIME_KEYS = ("source", "registry")

BUFFER_KEY = "__replay_buffer__"
LABELS_KEY = "__replay_labels__"

__all__ = ["save_model", "load_native", "read_native_header", "is_native", "BUFFER_KEY", "LABELS_KEY"]


def _check_buffer(buffer, labels, input_shape, n_classes, where: str) -> tuple[torch.Tensor, torch.Tensor | None]:
    """A replay buffer as float32 CPU pixels ``N x C x H x W`` in [0, 1] and its labels (int64 N) or None."""
    if not isinstance(buffer, torch.Tensor) or buffer.dim() != 4 or not buffer.is_floating_point():
        got = f"shape {tuple(buffer.shape)} dtype {buffer.dtype}" if isinstance(buffer, torch.Tensor) else type(buffer).__name__
        raise LandscapeError(f"{where}: the replay buffer must be a float tensor N x C x H x W of pixels in [0, 1], got {got}")
    buffer = buffer.detach().to("cpu", torch.float32).contiguous()
    if input_shape and tuple(buffer.shape[1:]) != tuple(input_shape):
        raise LandscapeError(f"{where}: the replay buffer holds samples of shape {tuple(buffer.shape[1:])}, the model "
                             f"takes {tuple(input_shape)}")
    if buffer.numel() and not torch.isfinite(buffer).all():
        raise LandscapeError(f"{where}: the replay buffer has non-finite values")
    if buffer.numel() and (float(buffer.min()) < 0.0 or float(buffer.max()) > 1.0):
        raise LandscapeError(f"{where}: the replay buffer must hold pixels in [0, 1], got values in "
                             f"[{float(buffer.min()):.3g}, {float(buffer.max()):.3g}]")
    if labels is None:
        return buffer, None
    if not isinstance(labels, torch.Tensor) or labels.dim() != 1 or labels.is_floating_point() \
            or labels.dtype == torch.bool or labels.shape[0] != buffer.shape[0]:
        got = f"shape {tuple(labels.shape)} dtype {labels.dtype}" if isinstance(labels, torch.Tensor) else type(labels).__name__
        raise LandscapeError(f"{where}: the replay buffer's labels must be an integer vector of length {buffer.shape[0]}, got {got}")
    labels = labels.detach().to("cpu", torch.int64).contiguous()
    if labels.numel() and (int(labels.min()) < 0 or (n_classes and int(labels.max()) >= n_classes)):
        raise LandscapeError(f"{where}: the replay buffer's labels must lie in [0, {(n_classes or 0) - 1}], got values in "
                             f"[{int(labels.min())}, {int(labels.max())}]")
    return buffer, labels


def save_model(model: EnergyModel, path: str | os.PathLike, *, replay_buffer=None, replay_labels=None,
               **metadata) -> Path:
    """Save ``model`` as a self-describing native checkpoint at ``path``.

    ``metadata`` (dataset, class_names, training config, provenance, metrics, ...)
    must be JSON-serialisable; it is stored verbatim and returned on load as
    ``model.metadata``.

    ``replay_buffer`` (``N x C x H x W`` pixels in [0, 1]) and ``replay_labels`` (its
    classes, for a class-conditional buffer) are stored with the weights; by default
    the model's own ``model.replay_buffer`` / ``model.replay_labels`` when it has
    them (so a loaded JEM keeps its samples when saved again); ``replay_buffer=False``
    saves none.
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
    if replay_buffer is None:
        replay_buffer = getattr(model, "replay_buffer", None)
        if replay_labels is None:
            replay_labels = getattr(model, "replay_labels", None)
    elif replay_buffer is False:
        replay_buffer, replay_labels = None, None
    if replay_buffer is not None:
        replay_buffer, replay_labels = _check_buffer(replay_buffer, replay_labels, model.input_shape, model.n_classes,
                                                     "save_model")
    elif replay_labels is not None:
        raise LandscapeError("save_model: replay_labels were given without a replay_buffer")
    # where a model was loaded from is not part of it: a loaded-then-saved model must not
    # name its old file (the engine names table rows after metadata "source")
    merged = {k: v for k, v in {**model.metadata, **metadata}.items() if k not in _LOAD_TIME_KEYS or k in metadata}
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
    if replay_buffer is not None:
        header["replay_buffer"] = {"n": int(replay_buffer.shape[0]), "shape": list(replay_buffer.shape[1:]),
                                   "units": "pixels in [0, 1]", "dtype": "float16",
                                   "conditional": replay_labels is not None}
    try:
        text = json.dumps(header, sort_keys=True)
    except TypeError as exc:
        raise LandscapeError(f"checkpoint metadata must be JSON-serialisable: {exc}") from exc
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in net.state_dict().items()}
    if BUFFER_KEY in tensors or LABELS_KEY in tensors:
        raise LandscapeError(f"save_model: the network has a parameter named {BUFFER_KEY!r} or {LABELS_KEY!r}, "
                             "which native files reserve for the replay buffer")
    if replay_buffer is not None:
        tensors[BUFFER_KEY] = replay_buffer.to(torch.float16)
        if replay_labels is not None:
            tensors[LABELS_KEY] = replay_labels
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
        raise NotNativeError(f"{path} is a safetensors file but not a landscape native checkpoint (no '{META_KEY}' metadata)")
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


def load_native(path: str | os.PathLike, device: str | torch.device = "cpu", load_buffer: bool = True) -> EnergyModel:
    """Rebuild the EnergyModel saved at ``path`` (in eval mode, on ``device``).

    A stored replay buffer comes back as ``model.replay_buffer`` (float32 CPU pixels in
    [0, 1]) and ``model.replay_labels`` (int64, or None when unconditional); both are
    None when the file has none or ``load_buffer=False``.
    """
    from safetensors.torch import load_file

    from .build import build_meta, build_network, check_state, safetensors_meta

    header = read_native_header(path)
    arch, kwargs = header.get("architecture"), header.get("arch_kwargs") or {}
    if not isinstance(arch, str) or not isinstance(kwargs, dict):
        raise CheckpointError(f"{path}: the header's architecture must be a name and arch_kwargs a table, got "
                              f"{arch!r} and {type(kwargs).__name__}")
    # The header's architecture is built on the meta device and compared with the
    # file's tensor shapes before anything is allocated: a header that claims a huge
    # network over small weights is refused without allocating it.
    meta_net = build_meta(arch, kwargs, str(path))
    try:
        shapes = safetensors_meta(path, skip=(BUFFER_KEY, LABELS_KEY))
    except Exception as exc:
        raise CheckpointError(f"{path}: the weights could not be read ({type(exc).__name__}: {exc})") from None
    check_state(meta_net.state_dict(), shapes, str(path), f"architecture {arch!r}")
    del meta_net
    try:
        state = load_file(str(path), device="cpu")
    except Exception as exc:
        raise CheckpointError(f"{path}: the weights could not be read ({type(exc).__name__}: {exc})") from exc
    buffer, labels = state.pop(BUFFER_KEY, None), state.pop(LABELS_KEY, None)
    declared = header.get("replay_buffer")
    if (buffer is None) != (declared is None) or (labels is not None and buffer is None):
        raise CheckpointError(f"{path}: the header {'declares' if declared else 'does not declare'} a replay buffer "
                              f"but the file {'has none' if buffer is None else 'holds one'}")
    if buffer is not None:
        try:
            buffer, labels = _check_buffer(buffer, labels, header.get("input_shape"), header.get("n_classes"), str(path))
        except LandscapeError as exc:
            raise CheckpointError(str(exc)) from None
        if int(declared.get("n", -1)) != buffer.shape[0] or bool(declared.get("conditional")) != (labels is not None):
            raise CheckpointError(f"{path}: the replay buffer does not match its header entry {declared}")
    net = build_network(arch, kwargs, state, str(path))
    model = EnergyModel(
        net,
        normalization=header.get("normalization") or "identity",
        temperature=float(header.get("temperature", 1.0)),
        input_shape=header.get("input_shape"),
        n_classes=header.get("n_classes"),
        metadata=header.get("metadata") or {},
    )
    model.metadata.setdefault("source", str(path))
    model.replay_buffer = buffer if load_buffer else None
    model.replay_labels = labels if load_buffer else None
    return model.to(device).eval()
