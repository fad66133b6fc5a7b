"""Build a network and load a state_dict into it, strictly, with one clear error per mismatch.

Registered architectures are built on the ``meta`` device (no memory, no random
initialisation) and the checkpoint's tensors are assigned to them, which makes
loading a WRN-28-10 about as fast as reading its file. Missing BatchNorm
``num_batches_tracked`` counters (absent from saves of old PyTorch versions)
are filled in; every other missing or unexpected key, and every shape
mismatch, is a :class:`CheckpointError` naming the key.
"""

from __future__ import annotations

import logging

import torch
from torch import nn

from ..errors import CheckpointError, LandscapeError

log = logging.getLogger(__name__)

__all__ = ["describe_architecture", "build_network", "count_values", "build_meta", "check_state", "safetensors_meta"]

_FILLABLE = ("num_batches_tracked",)


def describe_architecture(arch, kwargs: dict) -> str:
    if isinstance(arch, nn.Module):
        return f"the given {type(arch).__name__}"
    args = ", ".join(f"{k}={v!r}" for k, v in kwargs.items())
    return f"{arch}({args})"


def build_meta(arch: str, kwargs: dict, where: str) -> nn.Module:
    """Architecture ``arch`` on the meta device (for shapes and parameter counts)."""
    from ..models import create_model

    try:
        with torch.device("meta"):
            return create_model(arch, **kwargs)
    except LandscapeError as exc:
        raise CheckpointError(f"{where}: cannot build architecture {arch!r}: {exc}") from None


_SAFETENSORS_DTYPES = {"F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
                       "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8,
                       "U8": torch.uint8, "BOOL": torch.bool}


def safetensors_meta(path, skip=()) -> dict:
    """``{name: meta tensor}`` with the shape and dtype of every tensor of a safetensors file
    (read from its header: no tensor data is read, nothing is allocated)."""
    from safetensors import safe_open

    out = {}
    with safe_open(str(path), framework="pt") as fh:
        for k in fh.keys():
            if k in skip:
                continue
            sl = fh.get_slice(k)
            out[k] = torch.empty(sl.get_shape(), dtype=_SAFETENSORS_DTYPES.get(sl.get_dtype(), torch.float32),
                                 device="meta")
    return out


def count_values(net: nn.Module) -> tuple[int, int]:
    """``(parameters, buffer values)`` of ``net`` (works on the meta device)."""
    params = sum(p.numel() for p in net.parameters())
    buffers = sum(b.numel() for b in net.buffers())
    return params, buffers


def check_state(expected: dict, state: dict, where: str, desc: str) -> dict:
    missing = [k for k in expected if k not in state]
    fill = [k for k in missing if k.rsplit(".", 1)[-1] in _FILLABLE]
    missing = [k for k in missing if k not in fill]
    unexpected = [k for k in state if k not in expected]
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing {len(missing)} key(s) {missing[:4]}{'...' if len(missing) > 4 else ''}")
        if unexpected:
            parts.append(f"unexpected {len(unexpected)} key(s) {unexpected[:4]}{'...' if len(unexpected) > 4 else ''}")
        raise CheckpointError(f"{where}: the weights do not fit {desc}: {'; '.join(parts)}")
    for key, ref in expected.items():
        if key in state and tuple(state[key].shape) != tuple(ref.shape):
            raise CheckpointError(
                f"{where}: tensor {key} has shape {tuple(state[key].shape)}, {desc} expects {tuple(ref.shape)}"
            )
    out = dict(state)
    for key in fill:
        out[key] = torch.zeros((), dtype=expected[key].dtype)
    for key, ref in expected.items():
        value = out[key]
        if value.dtype != ref.dtype:
            if value.is_floating_point() != ref.is_floating_point():
                raise CheckpointError(f"{where}: tensor {key} has dtype {value.dtype}, {desc} expects {ref.dtype}")
            out[key] = value.to(ref.dtype)
    return out


def build_network(arch, kwargs: dict, state: dict, where: str) -> nn.Module:
    """The network ``arch(**kwargs)`` holding the weights ``state`` (on the CPU, eval mode)."""
    desc = describe_architecture(arch, kwargs)
    if isinstance(arch, nn.Module):
        net = arch
        state = check_state(net.state_dict(), state, where, desc)
        net.load_state_dict(state, strict=True)
        return net.eval()
    net = build_meta(arch, kwargs, where)
    state = check_state(net.state_dict(), state, where, desc)
    flags = {name: p.requires_grad for name, p in net.named_parameters()}
    net.load_state_dict(state, strict=True, assign=True)
    if any(t.is_meta for t in (*net.parameters(), *net.buffers())):
        # a non-persistent buffer (not in any state_dict) is still on the meta device: build for real
        from ..models import create_model

        net = create_model(arch, **kwargs)
        net.load_state_dict(state, strict=True)
    for name, p in net.named_parameters():
        p.requires_grad_(flags.get(name, True))
    return net.eval()
