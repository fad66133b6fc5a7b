"""Synthetic images that ignore the input: i.i.d. Gaussian or uniform pixels (OOD baselines).

Each image is drawn keyed by the sample it replaces (its dataset index), so a table
does not depend on the batch size.
"""

from __future__ import annotations

import torch

from ._common import check_batch, check_number
from .base import Source, rand_like_keyed, randn_like_keyed

__all__ = ["GaussianImages", "UniformImages"]

#: keyed-RNG streams of the noise images (distinct from the sources' streams)
_STREAM_GAUSS = 3 << 20
_STREAM_UNIFORM = (3 << 20) + 1


class GaussianImages(Source):
    """Images of i.i.d. Gaussian pixels ``clamp(0.5 + sigma * N(0, 1), 0, 1)``, one per row of ``x`` (whose pixels are not used)."""

    name = "gaussian"
    needs_grad = False

    def __init__(self, sigma: float = 1.0):
        self.sigma = check_number("sigma", sigma, low=0.0, low_open=True)

    def __call__(self, model, x, y=None, keys=None, seed: int = 0) -> torch.Tensor:
        x, _, keys = check_batch(x, y, keys)
        n = randn_like_keyed(x, keys, seed, stream=_STREAM_GAUSS).to(device=x.device, dtype=torch.float32)
        return (0.5 + self.sigma * n).clamp_(0.0, 1.0)


class UniformImages(Source):
    """Images of i.i.d. ``U[0, 1]`` pixels, one per row of ``x`` (whose pixels are not used)."""

    name = "uniform"
    needs_grad = False

    def __call__(self, model, x, y=None, keys=None, seed: int = 0) -> torch.Tensor:
        x, _, keys = check_batch(x, y, keys)
        return rand_like_keyed(x, keys, seed, stream=_STREAM_UNIFORM).to(device=x.device, dtype=torch.float32)
