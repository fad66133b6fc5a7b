"""The clean images themselves."""

from __future__ import annotations

import torch

from ._common import check_batch
from .base import Source

__all__ = ["Clean"]


class Clean(Source):
    """The unmodified inputs: ``x`` itself.

    Inputs: ``x`` float ``N x C x H x W`` in [0, 1] (``y`` and ``keys`` are accepted
    and ignored). Returns ``x.detach()``: the same storage, not a copy, so the
    engine pays nothing for it. The model is not called.
    """

    name = "clean"
    needs_grad = False

    def __call__(self, model, x: torch.Tensor, y: torch.Tensor | None = None,
                 keys: torch.Tensor | None = None, seed: int = 0) -> torch.Tensor:
        x, _, _ = check_batch(x, y, keys)
        return x.detach()
