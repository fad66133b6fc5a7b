"""Gaussian corruption of the clean images."""

from __future__ import annotations

import torch

from ._common import check_batch, check_number
from .base import Source, randn_like_keyed

__all__ = ["Noise"]

#: keyed-RNG stream of the corruption noise
STREAM = 2 << 20


class Noise(Source):
    """Gaussian-noise corruption: ``clamp(x + sigma * N(0, 1), 0, 1)``.

    A common-corruption baseline (in the spirit of Hendrycks & Dietterich, ICLR
    2019, "gaussian noise"): energies of noisy images are compared with those of
    clean, adversarial and generated ones.

    Args:
        sigma: standard deviation of the noise, in [0, 1] pixel units (``0``
            returns the input).

    Call: ``noise(model, x, y=None, keys=None, seed=0)`` with ``x`` float ``N x C x H
    x W`` in [0, 1]; returns the same shape, float32 (float64 if ``x`` is), in
    [0, 1]. The model is not called. With ``keys`` the noise is
    ``landscape.rng.keyed_normal(keys, x.shape[1:], seed, stream=STREAM)``.
    """

    name = "noise"
    needs_grad = False

    def __init__(self, sigma: float = 0.1):
        self.sigma = check_number("sigma", sigma, low=0.0)

    def __call__(self, model, x: torch.Tensor, y: torch.Tensor | None = None,
                 keys: torch.Tensor | None = None, seed: int = 0) -> torch.Tensor:
        x, _, keys = check_batch(x, y, keys)
        x = x.detach()
        dtype = x.dtype if x.dtype in (torch.float32, torch.float64) else torch.float32
        n = randn_like_keyed(x, keys, seed, stream=STREAM).to(dtype)
        return torch.add(x.to(dtype), n, alpha=self.sigma).clamp_(0.0, 1.0)
