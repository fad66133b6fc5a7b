"""AutoAttack (Croce & Hein 2020) through the ``pyautoattack`` package."""

from __future__ import annotations

import logging

import torch
from torch import nn

from ..errors import LandscapeError
from ._common import (attack_context, check_batch, check_choice, check_int, check_labels, check_number,
                      check_overrides, logits_of, usable, working_copy)
from .base import Source
from .defaults import NORMS, attack_defaults

log = logging.getLogger(__name__)

__all__ = ["AutoAttack"]

VERSIONS = ("standard", "plus", "rand", "custom")
ATTACKS = ("apgd-ce", "apgd-dlr", "fab", "square", "apgd-t", "fab-t")


class _Logits(nn.Module):
    """The model's logits as float32 (AutoAttack's losses want full precision under autocast)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        self._f = logits_of(model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._f(x).float()


class AutoAttack(Source):
    """AutoAttack adversarial examples (Croce & Hein, "Reliable evaluation of
    adversarial robustness with an ensemble of diverse parameter-free attacks",
    ICML 2020), run by the ``pyautoattack`` package (the authors' code).

    The standard version runs APGD-CE, APGD-T (targeted DLR), FAB-T and Square in
    turn, each on the samples still classified correctly, and returns for every
    sample the first adversarial example found (or the clean image if none was).

    Args:
        norm: ``"Linf"`` or ``"L2"`` (distance in [0, 1] pixel units).
        eps: radius of the threat model (``eps=0`` returns the input).
        version: ``"standard"`` (the reported benchmark), ``"plus"``, ``"rand"``
            (for randomised defences), or ``"custom"`` with ``attacks``.
        attacks: with ``version="custom"``, a list out of ``apgd-ce``, ``apgd-dlr``,
            ``fab``, ``square``, ``apgd-t``, ``fab-t``.
        n_classes: number of classes; the targeted attacks use
            ``min(9, n_classes - 1)`` target classes (AutoAttack's 9 for 10 or more
            classes). Default: the model's ``n_classes`` or the logits' width.

    Call: ``aa(model, x, y, keys=None, seed=0)`` with ``x`` float ``N x C x H x W`` in
    [0, 1] and int64 labels ``y``; returns the adversarial examples, same shape,
    float32, in [0, 1] and inside the eps-ball. The attack runs on the model's
    logits (cast to float32), with every submodule in eval mode; ``model.training``
    and the parameters' ``requires_grad`` flags are restored afterwards.

    Randomness: ``seed`` is forwarded to AutoAttack, which seeds the global torch
    RNG with it before each attack; the caller's RNG state is saved and restored
    around the call. AutoAttack draws its random starts for the whole batch, so
    unlike the other sources a sample's result depends on the batch it is in
    (``keys`` are accepted and ignored); the same batch and seed give the same
    result. AutoAttack's progress messages go to the ``auto-attack`` logger and are
    on only when this module's logger is at DEBUG level.
    """

    name = "autoattack"
    needs_grad = True

    def __init__(self, norm: str = "Linf", eps: float = 8 / 255, version: str = "standard",
                 attacks: list[str] | tuple[str, ...] | None = None, n_classes: int | None = None):
        self.norm = check_choice("norm", norm, NORMS)
        self.eps = check_number("eps", eps, low=0.0, high=1.0 if norm == "Linf" else None)
        self.version = check_choice("version", version, VERSIONS)
        if version == "custom":
            if not attacks:
                raise LandscapeError(f"version='custom' needs attacks= a non-empty list out of {', '.join(ATTACKS)}")
            bad = [a for a in attacks if a not in ATTACKS]
            if bad or isinstance(attacks, str):
                raise LandscapeError(f"attacks must be a list out of {', '.join(ATTACKS)}, got {attacks!r}")
            attacks = list(attacks)
        elif attacks is not None:
            raise LandscapeError(f"attacks= is only for version='custom', got version={version!r} with attacks={attacks!r}")
        self.attacks = attacks
        self.n_classes = None if n_classes is None else check_int("n_classes", n_classes, low=2)

    @classmethod
    def for_dataset(cls, dataset: str, norm: str = "Linf", **overrides) -> "AutoAttack":
        """AutoAttack at the radius of :mod:`landscape.sources.defaults` for ``dataset``, then ``overrides``."""
        check_overrides(cls, overrides)
        args = {"eps": attack_defaults(dataset, norm)["eps"], **overrides}
        return cls(norm=norm, **args)

    def __call__(self, model, x: torch.Tensor, y: torch.Tensor, keys: torch.Tensor | None = None,
                 seed: int = 0) -> torch.Tensor:
        x, y, keys = check_batch(x, y, keys, need_y=True)
        seed = check_int("seed", seed)
        check_labels(model, y)
        if self.eps == 0.0 or x.shape[0] == 0:
            return x.detach().clone()
        try:
            from pyautoattack import AutoAttack as _AutoAttack
        except ImportError as exc:  # pragma: no cover - a broken install
            raise LandscapeError("AutoAttack needs the 'pyautoattack' package; run: pip install pyautoattack") from exc
        devices = [x.device] if x.device.type == "cuda" else []
        with attack_context(model, x), torch.random.fork_rng(devices=devices):
            x0, y = working_copy(x).float(), usable(y)
            wrapper = _Logits(model)
            n_classes = self.n_classes or getattr(model, "n_classes", None)
            if n_classes is None:
                with torch.no_grad():
                    n_classes = int(wrapper(x0[:1]).shape[1])
            kwargs = {"attacks": self.attacks} if self.version == "custom" else {}
            aa = _AutoAttack(wrapper, norm=self.norm, eps=self.eps, version=self.version, seed=seed,
                             device=x.device, **kwargs)
            aa.verbose = log.isEnabledFor(logging.DEBUG)
            targets = max(1, min(9, int(n_classes) - 1))
            aa.apgd_targeted.n_target_classes = targets
            aa.fab.n_target_classes = targets
            x_adv, _ = aa.run_standard_evaluation(x0, y, batch_size=x0.shape[0])
        return x_adv.detach().to(torch.float32)
