"""Helpers shared by the sample sources: argument checks and the attack context.

Private to :mod:`landscape.sources`; ``attack_context`` and ``logits_of`` are public
as ``landscape.sources.attack_context`` / ``logits_of`` (the trainer's searches use
them), the setting checks as :mod:`landscape.validate`.
"""

from __future__ import annotations

import contextlib
from typing import Iterator

import torch
from torch import nn

from ..energy import eval_mode
from ..errors import LandscapeError
from ..precision import network_input
# the setting checks live in landscape.validate (shared with evaluation and train); the
# sources import them from here, with the call-argument checks
from ..validate import check_bool, check_choice, check_int, check_number

__all__ = ["check_bool", "check_choice", "check_int", "check_number", "check_batch", "check_input_shape",
           "check_labels", "working_copy", "usable", "logits_of", "temperature_of", "attack_context",
           "check_overrides"]

# ----------------------------------------------------------------------------- call arguments
def check_batch(x, y=None, keys=None, *, need_y: bool = False):
    """Validate ``x`` (float N x C x H x W), ``y`` (N labels) and ``keys`` (N integers); no device sync."""
    if not isinstance(x, torch.Tensor) or not x.is_floating_point() or x.dim() != 4:
        got = f"{type(x).__name__}" if not isinstance(x, torch.Tensor) else f"dtype {x.dtype} shape {tuple(x.shape)}"
        raise LandscapeError(f"x must be a float tensor N x C x H x W of pixels in [0, 1], got {got}")
    n = x.shape[0]
    if y is None:
        if need_y:
            raise LandscapeError("this source needs labels y (an integer vector of length N), got None")
    else:
        y = torch.as_tensor(y, device=x.device)
        if y.dim() != 1 or y.shape[0] != n or y.is_floating_point() or y.dtype == torch.bool:
            raise LandscapeError(f"y must be an integer vector of length {n}, got shape {tuple(y.shape)} dtype {y.dtype}")
        y = y.long()
    if keys is not None:
        keys = torch.as_tensor(keys)
        if keys.dim() != 1 or keys.shape[0] != n or keys.is_floating_point() or keys.dtype == torch.bool:
            raise LandscapeError(f"keys must be an integer vector of length {n} (one per sample), "
                                 f"got shape {tuple(keys.shape)} dtype {keys.dtype}")
        keys = keys.to(device=x.device, dtype=torch.int64)
    return x, y, keys


def check_input_shape(model: nn.Module, x: torch.Tensor) -> None:
    """``x`` must have the sample shape the model declares (``input_shape``), when it declares one.

    For sources that use ``x`` only as a template (SGLD, replay): without this a
    network with adaptive pooling would run on, and return, samples of any size.
    """
    shape = getattr(model, "input_shape", None)
    if shape is not None and tuple(x.shape[1:]) != tuple(shape):
        raise LandscapeError(f"x must have shape N x {' x '.join(map(str, shape))} (the model's input shape), "
                             f"got {tuple(x.shape)}")


def check_labels(model: nn.Module, y: torch.Tensor | None) -> None:
    """Labels must lie in [0, n_classes) when the model declares ``n_classes`` (one small device sync)."""
    k = getattr(model, "n_classes", None)
    if y is None or not k or y.numel() == 0:
        return
    lo, hi = (int(v) for v in torch.aminmax(y))
    if lo < 0 or hi >= k:
        raise LandscapeError(f"labels must lie in [0, {k - 1}], got values in [{lo}, {hi}]")


def working_copy(x: torch.Tensor) -> torch.Tensor:
    """A detached float32 (or float64) copy of ``x``, never an inference tensor."""
    dtype = x.dtype if x.dtype in (torch.float32, torch.float64) else torch.float32
    return x.detach().to(dtype=dtype, copy=True)


def usable(t: torch.Tensor | None) -> torch.Tensor | None:
    """``t``, or a normal copy of it if it was made under ``torch.inference_mode`` (call inside :func:`attack_context`)."""
    return t.clone() if t is not None and t.is_inference() else t


def logits_of(model: nn.Module):
    """The callable every search uses to run the network: ``model.logits`` for an
    EnergyModel, else the module itself, fed through
    :func:`landscape.precision.network_input` so that no autocast cache can freeze an
    iterate that the search updates in place."""
    f = getattr(model, "logits", model)

    def logits(x: torch.Tensor) -> torch.Tensor:
        return f(network_input(x))

    return logits


def temperature_of(model: nn.Module) -> float:
    return float(getattr(model, "temperature", 1.0))


@contextlib.contextmanager
def attack_context(model: nn.Module, x: torch.Tensor | None = None) -> Iterator[nn.Module]:
    """Eval mode, parameters not requiring grad, autograd on; everything restored on exit.

    * every submodule's ``training`` flag is saved and restored (:func:`eval_mode`);
    * parameters have ``requires_grad`` turned off while the attack runs, so a
      backward pass computes input gradients only and never writes ``.grad``;
      the flags are restored on exit, also on error;
    * an :class:`~landscape.energy.EnergyModel`'s range check is run once on ``x``
      and then switched off for the inner loop (every iterate is projected into
      [0, 1] by construction, and the check costs a device sync per call);
    * autograd is enabled even if the caller runs under ``torch.no_grad()`` or
      ``torch.inference_mode()``.
    """
    check = getattr(model, "check_inputs", None)
    if x is not None and check and hasattr(model, "validate_input"):
        model.validate_input(x)
    params = [(p, p.requires_grad) for p in model.parameters()]
    with eval_mode(model), torch.inference_mode(False), torch.enable_grad():
        try:
            for p, _ in params:
                p.requires_grad_(False)
            if check is not None:
                model.check_inputs = False
            yield model
        finally:
            for p, flag in params:
                p.requires_grad_(flag)
            if check is not None:
                model.check_inputs = check


def check_overrides(cls, overrides: dict) -> None:
    """``cls.for_dataset(**overrides)`` takes the constructor's arguments except ``norm``."""
    import inspect

    allowed = [p for p in inspect.signature(cls.__init__).parameters if p not in ("self", "norm")]
    unknown = sorted(set(overrides) - set(allowed))
    if unknown:
        raise LandscapeError(f"{cls.__name__}.for_dataset takes overrides {allowed}, got unknown {unknown}")
