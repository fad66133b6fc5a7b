"""The interface every sample source follows (torchattacks-style).

A source turns a batch of clean pixels ``x`` (``N x C x H x W`` in [0, 1]) with
labels ``y`` into the samples whose energies are scored: the clean images
themselves, adversarial examples, SGLD samples, corrupted images...

* The constructor stores hyper-parameters only (validated there, with clear
  errors). ``config()`` returns all of them, and ``__repr__`` shows them.
* ``__call__(model, x, y, keys=None, seed=0)`` returns a tensor of samples in
  [0, 1] on ``x``'s device, one per input row, detached. It restores
  ``model.training`` (and every submodule's flag) before returning, also on error.
* Randomness: when ``keys`` (one integer per row, normally the dataset index) is
  given, every random draw comes from :mod:`landscape.rng` keyed by
  ``(seed, key)``, so a sample's result does not depend on the batch it is in.
  Without ``keys`` the global torch RNG is used.
* ``name`` is the short label used in energy tables (``"clean"``, ``"pgd"``...).
"""

from __future__ import annotations

import json
from typing import Any

import torch

from ..rng import keyed_normal, keyed_uniform

__all__ = ["Source", "make_samples", "randn_like_keyed", "rand_like_keyed"]


class Source:
    """Base class of sample sources; see the module docstring for the contract."""

    name: str = "source"
    #: whether the source needs input gradients (so the engine enables autograd)
    needs_grad: bool = False

    def __call__(self, model, x: torch.Tensor, y: torch.Tensor, keys: torch.Tensor | None = None,
                 seed: int = 0) -> torch.Tensor:
        raise NotImplementedError

    def config(self) -> dict[str, Any]:
        """Every hyper-parameter, JSON-serialisable (used in cache keys and ``repr``)."""
        return {k: v for k, v in vars(self).items() if not k.startswith("_")}

    def cache_key(self) -> str:
        return json.dumps({"source": type(self).__name__, "name": self.name, **self.config()},
                          sort_keys=True, default=str)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config().items())
        return f"{type(self).__name__}({args})"


def randn_like_keyed(x: torch.Tensor, keys: torch.Tensor | None, seed: int, stream: int) -> torch.Tensor:
    """Standard normal noise shaped like ``x``: keyed by sample when ``keys`` is given."""
    if keys is None:
        return torch.randn_like(x, dtype=torch.float32)
    return keyed_normal(keys, x.shape[1:], seed=seed, stream=stream, device=x.device)


def rand_like_keyed(x: torch.Tensor, keys: torch.Tensor | None, seed: int, stream: int) -> torch.Tensor:
    """Uniform [0, 1) noise shaped like ``x``: keyed by sample when ``keys`` is given."""
    if keys is None:
        return torch.rand_like(x, dtype=torch.float32)
    return keyed_uniform(keys, x.shape[1:], seed=seed, stream=stream, device=x.device)


def make_samples(source: Source, model, x: torch.Tensor, y: torch.Tensor, keys: torch.Tensor | None = None,
                 seed: int = 0) -> torch.Tensor:
    """Call ``source``, with autograd only when it needs input gradients."""
    if getattr(source, "needs_grad", False):
        return source(model, x, y, keys=keys, seed=seed)
    with torch.no_grad():
        return source(model, x, y, keys=keys, seed=seed)
