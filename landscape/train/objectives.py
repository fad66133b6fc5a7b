r"""Training objectives as weighted sums of named terms (DESIGN.md section 1).

One model ``f`` and up to three sample types per step: clean data ``x+``,
adversarial samples ``x~`` found inside the eps-ball around ``x+``, and SGLD
samples ``x-`` drawn from a replay buffer. The terms (all minimised):

================ ================================================ ===========================
term             value                                            paper
================ ================================================ ===========================
``ce``           ``CE(f(x+), y)``                                 -
``adv_ce``       ``CE(f(x~), y)``, x~ = PGD on CE                 Madry et al. 2018 (PGD-AT)
``trades_kl``    ``KL(p(.|x+) || p(.|x~))``, x~ = PGD on KL       Zhang et al. 2019 (TRADES)
``px``           ``mean E(x+) - mean E(x-)``, x- = SGLD           Grathwohl et al. 2020 (JEM)
``energy_align`` ``mean E(x+) - mean E(x~)``                      EB-JDAT
``energy_l2``    ``mean E(x+)^2 + mean E(x-)^2 [+ mean E(x~)^2]`` Du & Mordatch 2019 (IGEBM)
================ ================================================ ===========================

``energy_l2`` is off unless given a weight: it keeps the energies of data and
samples bounded when short SGLD chains cannot follow the model (the usual way
JEM-style training diverges, with E(x+) running to -10^4). When the step also has
adversarial samples it covers them too: ``energy_align`` alone is unbounded, since
cross-entropy does not see a common shift of all logits, so the model can raise
E(x~) without limit (an EB-JDAT run without this drove E(x~) to about 600 and
diverged). With weights ``w_adv`` and ``w_l2`` the two balance at
E(x~) = w_adv / (2 w_l2). This regulariser is the toolkit's addition, not part of
JEM or EB-JDAT as published.

The named objectives are fixed combinations:

* ``standard``: ``ce``; ``pgdat``: ``adv_ce``; ``trades``: ``ce + beta * trades_kl``;
* ``jem``: ``ce + px``;
* ``ebjdat``: ``w_px px + w_ce ce + w_adv energy_align + w_advce adv_ce``, weights
  from a preset: ``released`` (the default: w_px 1, w_ce 1, w_adv 0.1, w_advce 1,
  the EB-JDAT-JEM++ / -SADAJEM training scripts), ``released-jem`` (w_adv 0.05, the
  EB-JDAT-JEM script) or ``paper`` (the paper's ablation weights
  ``(w_px, w_adv, w_ce + w_advce) = (1, 1, 1)``, clean and adversarial CE 0.5
  each). ``released`` is the default because it is the setting the authors
  actually trained their reported models with; the energy alignment term, like
  JEM's ``px``, is unbounded below, and at weight 1 it dominates the loss of a
  small model early in training (try ``paper`` to reproduce the ablation).

EB-JDAT's inner maximisation (``inner``):

* ``energy`` (default, the paper's description): PGD raising the conditional
  energy ``E(x~, y)`` (:class:`landscape.sources.PGD` with ``loss="conditional"``);
* ``ce``: standard PGD on cross-entropy;
* ``released``: what the authors' code ascends: the true-class logit
  ``f(x~)[y]`` plus the squared distance between the L2-normalised logit
  vectors of ``x~`` and ``x+``.

All searches run in eval mode in float32, outside the training step's bf16
autocast unless ``attack_bf16`` asks for it (see :class:`TrainConfig`), take
sign steps, start from a random point of the
ball, and are projected onto the eps-ball and [0, 1] after every step; eps and
steps are in pixel units. ``released_compat=True`` instead reproduces the released
code's search: eps and step applied in [-1, 1] image units (half as large in
pixels) and no projection onto the eps-ball (only the clamp to the image range).
"""

from __future__ import annotations

import contextlib
import logging

import torch
import torch.nn.functional as F
from torch import nn

from ..energy import energy_from_logits
from ..sources import PGD, SGLD, ReplayBuffer
from ..sources._common import attack_context
from ..sources.base import rand_like_keyed, randn_like_keyed
from ..utils import full_precision
from .config import TrainConfig

log = logging.getLogger(__name__)

__all__ = ["Objective", "InnerMax", "TrackingBuffer"]


class TrackingBuffer(ReplayBuffer):
    """A :class:`ReplayBuffer` that remembers which slots the last SGLD call wrote.

    The trainer re-seeds exactly those slots when a step diverges.
    """

    last_indices: torch.Tensor | None = None

    def update(self, idx, x):
        super().update(idx, x)
        self.last_indices = torch.as_tensor(idx).detach().cpu().clone()

    def reseed(self, idx: torch.Tensor | None = None) -> int:
        """Replace slots ``idx`` and every non-finite slot by fresh initial samples; returns how many."""
        bad = ~torch.isfinite(self.data.flatten(1)).all(dim=1)
        if idx is not None and idx.numel():
            bad[idx.to(self.data.device)] = True
        slots = bad.nonzero().view(-1)
        if slots.numel():
            classes = self.labels[slots].cpu() if self.conditional else int(slots.numel())
            self.data[slots] = self._fresh(classes).to(self.data.device, torch.float32)
        return int(slots.numel())


class InnerMax:
    """The adversarial search of a training step (see the module docstring).

    ``kind``: ``ce``, ``energy``, ``released`` or ``trades`` (KL). Called as
    ``inner(model, x, y, keys, seed)`` with ``x`` in [0, 1]; returns ``x~``
    detached, in [0, 1].
    """

    def __init__(self, kind: str, eps: float, step: float, steps: int, released_compat: bool = False):
        self.kind, self.eps, self.step, self.steps = kind, float(eps), float(step), int(steps)
        self.released_compat = bool(released_compat)
        self._pgd = None
        if kind in ("ce", "energy") and not released_compat:
            self._pgd = PGD("Linf", eps=eps, step=step, steps=steps, loss="ce" if kind == "ce" else "conditional",
                            random_start=True)

    def __repr__(self) -> str:
        return (f"InnerMax(kind={self.kind!r}, eps={self.eps}, step={self.step}, steps={self.steps}, "
                f"released_compat={self.released_compat})")

    def __call__(self, model, x: torch.Tensor, y: torch.Tensor, keys: torch.Tensor | None, seed: int) -> torch.Tensor:
        if self._pgd is not None:
            return self._pgd(model, x, y, keys=keys, seed=seed)
        return self._search(model, x, y, keys, seed)

    def _search(self, model, x, y, keys, seed):
        # released_compat: the released code's eps/step were in [-1, 1] units -> half in pixels, no ball projection
        scale = 0.5 if self.released_compat else 1.0
        eps, step = self.eps * scale, self.step * scale
        x0 = x.detach().float()
        with attack_context(model, x0):
            with torch.no_grad():
                clean = model.logits(x0).float()
                p_clean = F.softmax(clean, dim=1)
                n_clean = F.normalize(clean, dim=1)
            if self.kind == "trades":
                xa = x0 + 0.001 * randn_like_keyed(x0, keys, seed, stream=0)
            else:
                xa = x0 + (2.0 * rand_like_keyed(x0, keys, seed, stream=0) - 1.0) * eps
            xa = xa.clamp(0.0, 1.0).requires_grad_(True)
            lo, hi = (x0 - eps).clamp(min=0.0), (x0 + eps).clamp(max=1.0)
            for _ in range(self.steps):
                logits = model.logits(xa).float()
                if self.kind == "trades":
                    obj = F.kl_div(F.log_softmax(logits, dim=1), p_clean, reduction="sum")
                elif self.kind == "released":
                    true = logits.gather(1, y.view(-1, 1)).sum()
                    obj = true + (F.normalize(logits, dim=1) - n_clean).pow(2).sum()
                elif self.kind == "ce":
                    obj = F.cross_entropy(logits, y, reduction="sum")
                else:  # energy: raise E(x~, y) = -f(x~)[y]
                    obj = -logits.gather(1, y.view(-1, 1)).sum()
                (g,) = torch.autograd.grad(obj, xa)
                with torch.no_grad():
                    xa.add_(g.sign(), alpha=step)
                    if self.released_compat:
                        xa.clamp_(0.0, 1.0)
                    else:
                        xa.copy_(torch.maximum(torch.minimum(xa, hi), lo))
        return xa.detach()


def _has_batchnorm(model: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())


class Objective:
    """The loss of one training step: a weighted sum of terms (see the module docstring).

    Built from a :class:`~landscape.train.config.TrainConfig`; ``buffer`` (a
    :class:`TrackingBuffer`) is needed when the ``px`` term is on. Call
    ``objective(model, x, y, keys, seed)`` in train mode; returns ``(loss, stats)``
    with ``stats`` a dict of detached scalars: every term's unweighted value,
    ``loss``, ``acc`` (clean batch accuracy), ``adv_acc``, and the mean energies
    ``e_clean``, ``e_adv``, ``e_sgld`` of the samples it used.
    """

    def __init__(self, config: TrainConfig, buffer: ReplayBuffer | None = None):
        self.config = config
        self.weights = config.term_weights()
        self.inner = None
        if config.needs_adversarial:
            if config.objective == "trades" or "trades_kl" in self.weights:
                kind = "trades"
            elif config.objective == "ebjdat":
                kind = config.inner
            else:
                kind = "ce"
            self.inner = InnerMax(kind, config.eps, config.attack_step, config.attack_steps, config.released_compat)
            if config.released_compat:
                log.warning("released_compat: the inner search uses eps %g and step %g in [-1, 1] units (%g and %g in "
                            "pixels) and is NOT projected onto the eps-ball, as the released EB-JDAT code did",
                            config.eps, config.attack_step, config.eps / 2, config.attack_step / 2)
        self.sgld = None
        if config.needs_sgld:
            if buffer is None:
                raise ValueError("the px term needs a replay buffer")
            self.sgld = SGLD(steps=config.sgld_steps, step_size=config.sgld_step_size, noise=config.sgld_noise,
                             init="buffer", buffer=buffer)
        self.buffer = buffer

    def __repr__(self) -> str:
        terms = " + ".join(f"{w:g}*{k}" for k, w in self.weights.items())
        return f"Objective({terms}, inner={self.inner!r}, sgld={self.sgld!r})"

    def __call__(self, model, x: torch.Tensor, y: torch.Tensor, keys: torch.Tensor | None = None,
                 seed: int = 0) -> tuple[torch.Tensor, dict]:
        w = self.weights
        n = x.shape[0]
        x_adv = None
        if self.inner is not None:
            precision = contextlib.nullcontext() if self.config.attack_bf16 else full_precision(x.device)
            with precision:
                x_adv = self.inner(model, x, y, keys, seed)
        x_neg = None
        if self.sgld is not None:
            m = self.config.n_negatives or n
            x_neg = self.sgld(model, torch.zeros((m, *x.shape[1:]), device=x.device))
        parts = [x] + [t for t in (x_adv, x_neg) if t is not None]
        if len(parts) > 1 and _has_batchnorm(model):
            logits = torch.cat([model.logits(p) for p in parts])
        else:
            logits = model.logits(torch.cat(parts) if len(parts) > 1 else x)
        logits = logits.float()
        lc = logits[:n]
        la = logits[n:2 * n] if x_adv is not None else None
        ln = logits[-x_neg.shape[0]:] if x_neg is not None else None
        temperature = float(getattr(model, "temperature", 1.0))
        e_clean = energy_from_logits(lc, temperature)
        e_adv = energy_from_logits(la, temperature) if la is not None else None
        e_neg = energy_from_logits(ln, temperature) if ln is not None else None

        values: dict[str, torch.Tensor] = {}
        if "ce" in w:
            values["ce"] = F.cross_entropy(lc, y)
        if "adv_ce" in w:
            values["adv_ce"] = F.cross_entropy(la, y)
        if "trades_kl" in w:
            values["trades_kl"] = F.kl_div(F.log_softmax(la, dim=1), F.softmax(lc, dim=1), reduction="batchmean")
        if "px" in w:
            values["px"] = e_clean.mean() - e_neg.mean()
        if "energy_align" in w:
            values["energy_align"] = e_clean.mean() - e_adv.mean()
        if "energy_l2" in w:
            values["energy_l2"] = e_clean.pow(2).mean() + e_neg.pow(2).mean()
            if e_adv is not None:
                values["energy_l2"] = values["energy_l2"] + e_adv.pow(2).mean()
        loss = sum(w[k] * v for k, v in values.items())

        stats = {k: v.detach() for k, v in values.items()}
        stats["loss"] = loss.detach()
        stats["acc"] = (lc.argmax(1) == y).float().mean().detach()
        stats["e_clean"] = e_clean.mean().detach()
        if la is not None:
            stats["adv_acc"] = (la.argmax(1) == y).float().mean().detach()
            stats["e_adv"] = e_adv.mean().detach()
        if e_neg is not None:
            stats["e_sgld"] = e_neg.mean().detach()
        return loss, stats
