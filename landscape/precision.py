"""Low precision, in one place: the only module of the package that calls ``torch.autocast``.

Why a helper: ``torch.autocast`` caches the low-precision copy of every *leaf
tensor that requires grad* (a feature meant for weights) until the context exits.
An iterative search whose iterate is such a leaf and is updated in place (PGD,
SGLD, the trainer's inner maximisation) would then feed the network its
*starting point* at every step: the search walks in one fixed direction and only
a forward pass after the context sees where it went. Two defences, both here:

* :func:`autocast` runs the network in bf16 with that cache switched off
  (``cache_enabled=False``): nothing the toolkit runs under it can be frozen;
* :func:`network_input` hands the network a view of an iterate that is a leaf
  (a view is never cached), so a search stays correct even under a caller's own
  ``torch.autocast`` with the cache on. Every search calls the network through
  :func:`landscape.sources.base.logits_of`, which applies it.

:func:`full_precision` switches autocast off (float32 searches inside a bf16
training step, float32 statistics).
"""

from __future__ import annotations

import contextlib

import torch

from .errors import LandscapeError

__all__ = ["PRECISIONS", "autocast", "full_precision", "network_input", "check_precision", "native_bf16"]

#: the precisions the network can run in (energies are always float32)
PRECISIONS = ("fp32", "bf16")
_AUTOCAST_DEVICES = ("cpu", "cuda")


def check_precision(precision) -> str:
    """``precision`` if it is one of :data:`PRECISIONS` (``True``/``False`` mean bf16/fp32)."""
    if precision is True:
        return "bf16"
    if precision is False or precision is None:
        return "fp32"
    if precision not in PRECISIONS:
        raise LandscapeError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    return precision


def _device_type(device) -> str:
    return torch.device(device).type if not isinstance(device, torch.device) else device.type


def autocast(device, precision="bf16"):
    """A context running the network in ``precision`` on ``device``.

    ``"bf16"`` (or ``True``): ``torch.autocast(dtype=torch.bfloat16, cache_enabled=False)``;
    ``"fp32"`` (or ``False``/``None``): nothing. Devices without autocast (e.g. ``mps``
    on old torch, ``meta``) run in float32.
    """
    precision = check_precision(precision)
    kind = _device_type(device)
    if precision == "fp32" or kind not in _AUTOCAST_DEVICES:
        return contextlib.nullcontext()
    return torch.autocast(device_type=kind, dtype=torch.bfloat16, cache_enabled=False)


def full_precision(device):
    """A context that switches autocast off on ``device`` (a no-op for device types without autocast)."""
    kind = _device_type(device)
    if kind in _AUTOCAST_DEVICES:
        return torch.autocast(kind, enabled=False)
    return contextlib.nullcontext()


def native_bf16(device="cpu") -> bool:
    """Whether ``device`` computes bf16 natively: a CUDA GPU with bf16 support, or a CPU
    with AMX or AVX512-BF16. Elsewhere bf16 autocast is emulated and far SLOWER than
    float32 (an AMD EPYC with AVX2 only: about 14x for a small conv net's fwd+bwd)."""
    kind = _device_type(device)
    if kind == "cuda":
        return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())
    if kind != "cpu":
        return False
    checks = [getattr(torch.cpu, name, None) for name in ("_is_amx_tile_supported", "_is_avx512_bf16_supported")]
    return any(bool(check()) for check in checks if check is not None)


def network_input(x: torch.Tensor) -> torch.Tensor:
    """``x`` as the network should receive it: a view when ``x`` is a leaf that requires
    grad, so that no autocast (not even a caller's, with its cache on) can cache a cast
    of an iterate that is later updated in place. Free: a view copies nothing."""
    if x.requires_grad and x.is_leaf:
        return x.view_as(x)
    return x
