"""The model's own samples: draws from the SGLD replay buffer it was trained with."""

from __future__ import annotations

import torch

from ..errors import LandscapeError
from ..rng import keyed_uniform
from ._common import check_batch, check_bool, check_int, check_number, usable
from .base import Source
from .sgld import SGLD

__all__ = ["Replay"]

#: keyed-RNG stream of the slot draws (SGLD refinement uses its own streams)
SLOT_STREAM = 1 << 21


class Replay(Source):
    r"""Samples of the model's replay buffer: what a JEM-style model generates.

    JEM, JEM++, SADA-JEM and EB-JDAT keep a replay buffer of persistent SGLD chains
    that have run for the whole training (thousands of steps per slot); their
    released generation and FID code report these samples. They are the model's own
    samples, unlike short chains started from noise (the :class:`SGLD` source), which
    measure the sampler as much as the model.

    Args:
        steps: refine the drawn samples with this many SGLD steps (0: the buffer
            samples as they are); ``step_size`` and ``noise`` as in :class:`SGLD`
            (JEM's [-1, 1] units).
        conditional: draw, for each sample, a slot of its label's class (a
            class-conditional buffer, ``model.replay_labels``), and refine by
            descending ``E(x, y)``. Default: when the buffer is class-conditional.

    Call: ``replay(model, x, y, keys=None, seed=0)``; the model must carry its buffer
    as ``model.replay_buffer`` (pixels in [0, 1]; JEM-family files and native files
    saved with one, see :func:`landscape.load_model`). ``x`` gives the number, device
    and shape of the samples. Sample ``i`` is the slot ``floor(u * N)`` with ``u``
    the keyed uniform of ``(seed, keys[i])`` (slots are drawn with replacement, so
    two samples may share one); without ``keys`` the global torch RNG is used. The
    buffer is never written. Returns ``N x C x H x W`` float32 in [0, 1], detached.
    """

    name = "replay"

    def __init__(self, steps: int = 0, step_size: float = 1.0, noise: float = 0.01, conditional: bool | None = None):
        self.steps = check_int("steps", steps, low=0)
        self.step_size = check_number("step_size", step_size, low=0.0)
        self.noise = check_number("noise", noise, low=0.0)
        self.conditional = None if conditional is None else check_bool("conditional", conditional)

    @property
    def needs_grad(self) -> bool:
        return self.steps > 0

    @property
    def stateful(self) -> bool:
        """True: the samples come from the model's buffer, which the cache's model fingerprint does not cover."""
        return True

    def _slots(self, n_slots: int, keys, seed: int, n: int, device) -> torch.Tensor:
        if keys is None:
            u = torch.rand(n, device=device)
        else:
            u = keyed_uniform(keys, (1,), seed=seed, stream=SLOT_STREAM, device=device).view(-1)
        return (u * n_slots).long().clamp_(max=n_slots - 1)

    def __call__(self, model, x: torch.Tensor, y: torch.Tensor | None = None, keys: torch.Tensor | None = None,
                 seed: int = 0) -> torch.Tensor:
        buf = getattr(model, "replay_buffer", None)
        if buf is None:
            raise LandscapeError("source 'replay' needs a model that carries its SGLD replay buffer (model.replay_buffer: "
                                 "JEM-family checkpoints and native files saved with one); this model has none, use "
                                 "'sgld' for chains started from noise")
        labels = getattr(model, "replay_labels", None)
        conditional = labels is not None if self.conditional is None else self.conditional
        if conditional and labels is None:
            raise LandscapeError("replay with conditional=True needs a class-conditional buffer (model.replay_labels), "
                                 "this model's buffer has no labels")
        x, y, keys = check_batch(x, y, keys, need_y=conditional)
        if tuple(buf.shape[1:]) != tuple(x.shape[1:]):
            raise LandscapeError(f"the model's replay buffer holds samples of shape {tuple(buf.shape[1:])}, x has "
                                 f"{tuple(x.shape[1:])}")
        n = x.shape[0]
        if n == 0:
            return x.detach().new_zeros(x.shape, dtype=torch.float32)
        if conditional:
            y = usable(y).to("cpu")
            out_idx = torch.empty(n, dtype=torch.long)
            for c in torch.unique(y).tolist():
                rows = (y == c).nonzero().view(-1)
                slots = (labels.to("cpu") == c).nonzero().view(-1)
                if slots.numel() == 0:
                    raise LandscapeError(f"the model's replay buffer has no samples of class {c}")
                pick = self._slots(slots.numel(), None if keys is None else keys.cpu()[rows], seed, rows.numel(), "cpu")
                out_idx[rows] = slots[pick]
        else:
            out_idx = self._slots(buf.shape[0], keys, seed, n, x.device).cpu()
        samples = buf[out_idx].to(device=x.device, dtype=torch.float32)
        if self.steps == 0:
            return samples.clamp_(0.0, 1.0)
        sgld = SGLD(steps=self.steps, step_size=self.step_size, noise=self.noise, conditional=conditional)
        return sgld.run(model, samples, y.to(x.device) if conditional else None, keys=keys, seed=seed)
