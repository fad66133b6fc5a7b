"""Stochastic gradient Langevin dynamics (SGLD) samples, with JEM's semantics."""

from __future__ import annotations

import logging

import torch

from ..energy import conditional_energy_from_logits, energy_from_logits
from ..errors import LandscapeError
from ._common import (attack_context, check_batch, check_input_shape, check_labels, check_bool, check_choice, check_int, check_number,
                      logits_of, temperature_of, usable)
from .base import Source, rand_like_keyed, randn_like_keyed
from .buffer import ClassGaussians, ReplayBuffer

__all__ = ["SGLD"]

log = logging.getLogger(__name__)

#: keyed-RNG streams of SGLD: the initialisation, then step t's noise is STREAM_BASE + 1 + t
STREAM_BASE = 1 << 20


class SGLD(Source):
    r"""Samples of the model's density ``exp(-E(x))`` by SGLD, as JEM draws them
    (Grathwohl et al., "Your Classifier is Secretly an Energy Based Model and You
    Should Treat it Like One", ICLR 2020; informative initialisation from JEM++,
    Yang & Ji, ICCV 2021, and SADA-JEM, Yang et al., CVPR 2023).

    The update, in JEM's units (images scaled to [-1, 1]), is

        x_m <- x_m + step_size * grad_{x_m}(-E) + noise * N(0, 1)

    with ``step_size`` and ``noise`` decoupled (JEM: 20 steps, step 1, noise 0.01;
    these are the defaults). The units are those of the [-1, 1] image space whatever
    the model's own normalisation, so the same numbers mean the same walk for every
    model. The toolkit iterates on pixels ``x_p`` in [0, 1] with ``x_m = 2 x_p - 1``:
    by the chain rule ``dE/dx_p = 2 dE/dx_m``, i.e. ``grad_{x_m} = grad_{x_p} / 2``,
    and ``dx_p = dx_m / 2``, so the pixel update is

        x_p <- x_p + (step_size / 4) * grad_{x_p}(-E) + (noise / 2) * N(0, 1)

    which is exactly JEM's step mapped to pixels.

    Args:
        steps: number of Langevin steps.
        step_size: gradient step, in [-1, 1] units (see above).
        noise: standard deviation of the Gaussian noise per step, in [-1, 1] units.
        conditional: sample ``exp(-E(x, y))`` for the given labels (class-conditional
            generation, descending ``E(x, y) = -f(x)[y]``) instead of ``exp(-E(x))``.
        init: where chains start: ``"uniform"`` (U[0, 1] pixels, JEM's uniform noise
            on [-1, 1]), ``"gaussian"`` (the per-class Gaussians ``class_gaussians``,
            class = the sample's label ``y``), or ``"buffer"`` (a JEM replay buffer:
            draw from ``buffer``, 5% re-initialised by the buffer, results written
            back). Default: ``"buffer"`` if a buffer is given, else ``"gaussian"`` if
            class Gaussians are given, else ``"uniform"``.
        buffer: a :class:`~landscape.sources.buffer.ReplayBuffer` (``init="buffer"``).
            Conditional sampling needs a class-conditional buffer.
        class_gaussians: a :class:`~landscape.sources.buffer.ClassGaussians`
            (``init="gaussian"``), see :func:`~landscape.sources.buffer.fit_class_gaussians`.
        clamp: clamp to [0, 1] after every step. With ``clamp=False`` the chain may
            leave [0, 1] (as in JEM's code) and only the returned samples are clamped,
            since sources always return pixels in [0, 1].
        record_trajectory: record the energy every chain descends (``E(x)``, or
            ``E(x, y)`` when conditional) at every step; after a call,
            :attr:`last_trajectory` is a float32 ``N x (steps + 1)`` tensor on ``x``'s
            device, column ``t`` = energies after ``t`` steps (column 0: the
            initialisation, the last column: the returned samples). The first
            ``steps`` columns come from the forward passes the chain makes anyway;
            the last costs one extra forward pass.

    Call: ``sgld(model, x, y, keys=None, seed=0)``; ``x`` (``N x C x H x W`` in [0, 1])
    gives the number, shape, device of the samples (its pixels are not used),
    ``y`` the labels (needed when conditional or ``init="gaussian"``). Returns
    ``N x C x H x W`` float32 in [0, 1], detached. The chains run with every
    submodule in eval mode; ``model.training`` and the parameters'
    ``requires_grad`` flags are restored afterwards, parameter gradients are never
    computed. Under ``torch.autocast`` the network runs in low precision, the
    chain state and gradients stay float32.

    Diagnostic: a Langevin chain descends the energy (plus noise). When the mean
    energy at the chains' last step is above the mean at their first step by more
    than ``0.5 + 0.05 |E|``, the step size is too large for this model (each step
    overshoots), so a warning is logged (once per source object; later calls log at
    DEBUG) and :attr:`last_diagnostic` holds the two means; otherwise it is None.

    Randomness: with ``keys`` the uniform (or Gaussian) initialisation uses keyed
    stream ``STREAM_BASE`` and step ``t``'s noise stream ``STREAM_BASE + 1 + t``, so
    a sample does not depend on its batch. ``init="buffer"`` is stateful (the
    buffer changes with every call and draws with its own generator): its samples
    are not a function of the key, see :attr:`stateful`.
    """

    name = "sgld"
    needs_grad = True
    INITS = ("uniform", "gaussian", "buffer")

    def __init__(self, steps: int = 20, step_size: float = 1.0, noise: float = 0.01, conditional: bool = False,
                 init: str | None = None, buffer: ReplayBuffer | None = None,
                 class_gaussians: ClassGaussians | None = None, clamp: bool = True,
                 record_trajectory: bool = False):
        self.steps = check_int("steps", steps, low=0)
        self.step_size = check_number("step_size", step_size, low=0.0)
        self.noise = check_number("noise", noise, low=0.0)
        self.conditional = check_bool("conditional", conditional)
        if buffer is not None and not isinstance(buffer, ReplayBuffer):
            raise LandscapeError(f"buffer must be a ReplayBuffer, got {type(buffer).__name__}")
        if class_gaussians is not None and not isinstance(class_gaussians, ClassGaussians):
            raise LandscapeError(f"class_gaussians must be a ClassGaussians (see fit_class_gaussians), got {type(class_gaussians).__name__}")
        if init is None:
            init = "buffer" if buffer is not None else "gaussian" if class_gaussians is not None else "uniform"
        self.init = check_choice("init", init, self.INITS)
        if init == "buffer" and buffer is None:
            raise LandscapeError("init='buffer' needs buffer= a ReplayBuffer, got none")
        if init == "gaussian" and class_gaussians is None:
            raise LandscapeError("init='gaussian' needs class_gaussians= (see fit_class_gaussians), got none")
        if init != "buffer" and buffer is not None:
            raise LandscapeError(f"a buffer was given but init={init!r}; use init='buffer' or drop the buffer")
        if init != "gaussian" and class_gaussians is not None:
            raise LandscapeError(f"class_gaussians were given but init={init!r}; use init='gaussian' "
                                 "(a buffer re-initialises from the Gaussians given to ReplayBuffer(init=...))")
        if init == "buffer" and self.conditional and not buffer.conditional:
            raise LandscapeError("conditional SGLD from a buffer needs a class-conditional ReplayBuffer(n_classes=...), "
                                 "got an unconditional one")
        self.clamp = check_bool("clamp", clamp)
        self.record_trajectory = check_bool("record_trajectory", record_trajectory)
        self._buffer = buffer
        self._class_gaussians = class_gaussians
        self._last_trajectory: torch.Tensor | None = None
        self._last_diagnostic: dict | None = None
        self._warned = False

    # -- properties ------------------------------------------------------------------
    @property
    def buffer(self) -> ReplayBuffer | None:
        return self._buffer

    @property
    def class_gaussians(self) -> ClassGaussians | None:
        return self._class_gaussians

    @property
    def stateful(self) -> bool:
        """True when samples depend on state beyond ``(seed, key)`` (a replay buffer): do not cache them."""
        return self.init == "buffer"

    @property
    def last_trajectory(self) -> torch.Tensor | None:
        """``N x (steps + 1)`` energies of the latest call (``record_trajectory=True``), else None."""
        return self._last_trajectory

    @property
    def last_diagnostic(self) -> dict | None:
        """``{"first": mean E at step 0, "last": mean E at the last step, "steps", "step_size"}`` when
        the latest call's chains went UP in energy (step size too large), else None."""
        return self._last_diagnostic

    def config(self) -> dict:
        cfg = super().config()
        if self._buffer is not None:
            cfg["buffer"] = self._buffer.describe()
        if self._class_gaussians is not None:
            cfg["class_gaussians"] = self._class_gaussians.fingerprint()
        return cfg

    # -- call -------------------------------------------------------------------------
    def _initial(self, x: torch.Tensor, y, keys, seed: int):
        if self.init == "uniform":
            return rand_like_keyed(x, keys, seed, stream=STREAM_BASE), None
        if self.init == "gaussian":
            cg = self._class_gaussians
            if cg.shape != tuple(x.shape[1:]):
                raise LandscapeError(f"the class Gaussians are for samples of shape {cg.shape}, x has {tuple(x.shape[1:])}")
            return cg.sample(y, keys=keys, seed=seed, stream=STREAM_BASE, device=x.device), None
        buf = self._buffer
        if buf.shape != tuple(x.shape[1:]):
            raise LandscapeError(f"the replay buffer holds samples of shape {buf.shape}, x has {tuple(x.shape[1:])}")
        return buf.sample(x.shape[0], y=y if self.conditional else None, device=x.device)

    def __call__(self, model, x: torch.Tensor, y: torch.Tensor | None = None, keys: torch.Tensor | None = None,
                 seed: int = 0) -> torch.Tensor:
        x, y, keys = check_batch(x, y, keys, need_y=self.conditional or self.init == "gaussian")
        check_input_shape(model, x)
        if self.conditional:
            check_labels(model, y)
        self._last_trajectory = None
        with attack_context(model):
            y = usable(y)
            x0, idx = self._initial(x, y, keys, seed)
            out = self._chain(model, x0.to(device=x.device, dtype=torch.float32), y, keys, seed)
            if idx is not None:
                self._buffer.update(idx, out)
        return out

    def run(self, model, x0: torch.Tensor, y: torch.Tensor | None = None, keys: torch.Tensor | None = None,
            seed: int = 0) -> torch.Tensor:
        """Run the chains from given starting points ``x0`` (pixels, ``N x C x H x W``) instead of ``init``.

        For trainers with their own initialisation; the update, noise streams,
        clamping, trajectory and model handling are those of a call. The buffer
        (if any) is neither read nor written.
        """
        x0, y, keys = check_batch(x0, y, keys, need_y=self.conditional)
        check_input_shape(model, x0)
        if self.conditional:
            check_labels(model, y)
        self._last_trajectory = None
        with attack_context(model):
            return self._chain(model, x0.detach().to(dtype=torch.float32, copy=True), usable(y), keys, seed)

    def _diagnose(self, first, last) -> None:
        self._last_diagnostic = None
        if self.steps < 2 or first is None:
            return
        e0, e1 = (float(v) for v in torch.stack([first, last]).tolist())
        if not e1 > e0 + 0.5 + 0.05 * abs(e0):
            return
        self._last_diagnostic = {"first": e0, "last": e1, "steps": self.steps, "step_size": self.step_size}
        level = logging.DEBUG if self._warned else logging.WARNING
        self._warned = True
        log.log(level, "SGLD: the mean energy rose from %.3g to %.3g along %d steps (step_size %g): the step size is "
                "too large for this model, each step overshoots; try a smaller step_size", e0, e1, self.steps,
                self.step_size)

    def _chain(self, model, xs: torch.Tensor, y, keys, seed: int) -> torch.Tensor:
        """The Langevin loop, inside :func:`attack_context`; ``xs`` (float32) is updated in place."""
        f, temperature = logits_of(model), temperature_of(model)
        a, s = self.step_size / 4.0, self.noise / 2.0  # pixel units, see the class docstring
        xs.requires_grad_(True)
        traj = torch.empty(xs.shape[0], self.steps + 1, device=xs.device) if self.record_trajectory else None

        def energy(logits):
            if self.conditional:
                return conditional_energy_from_logits(logits, y)
            return energy_from_logits(logits, temperature)

        first = last = None
        for t in range(self.steps):
            e = energy(f(xs))
            (g,) = torch.autograd.grad(e.sum(), xs)
            with torch.no_grad():
                if t == 0:
                    first = e.detach().float().mean()
                last = e.detach().float().mean()
                if traj is not None:
                    traj[:, t] = e
                xs.add_(g.to(torch.float32), alpha=-a)
                if s > 0:
                    xs.add_(randn_like_keyed(xs, keys, seed, stream=STREAM_BASE + 1 + t), alpha=s)
                if self.clamp:
                    xs.clamp_(0.0, 1.0)
        out = xs.detach().clamp_(0.0, 1.0)
        self._diagnose(first, last)
        if traj is not None:
            with torch.no_grad():
                traj[:, self.steps] = energy(f(out))
            self._last_trajectory = traj
        return out
