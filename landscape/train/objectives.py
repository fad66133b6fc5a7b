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
``energy_l2``    ``mean E(x+)^2 + mean E(x-)^2``                 Du & Mordatch 2019 (IGEBM)
================ ================================================ ===========================

``energy_l2`` is off unless given a weight: it keeps the energies of data and
samples bounded when short SGLD chains cannot follow the model (the usual way
JEM-style training diverges, with E(x+) running to -10^4). It is the same term in
JEM and EB-JDAT and never covers the adversarial samples: the saddle-point inner
step below bounds E(x~). This regulariser is the toolkit's addition, not part of
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

* ``saddle`` (default): the inner step maximises exactly what the outer step
  minimises, for the terms that involve ``x~``. The outer loss is

      L(theta, x~) = w_adv (mean E(x+) - mean E(x~)) + w_advce mean CE(f(x~), y) + (terms without x~)

  and ``E(x+)`` does not depend on ``x~``, so ``max_{x~ in ball} L`` is, per sample,

      max_{x~}  w_adv * (-E(x~)) + w_advce * CE(f(x~), y)
      = (w_adv + w_advce) logsumexp f(x~) - w_advce f(x~)[y]      (T = 1)

  a min-max over the same objective (JEM's contrastive term is one too). The
  ``-E(x~)`` part finds the nearby points the model finds most likely (LOW
  energy); the outer term then raises their energy, so each player bounds the
  other and no regulariser on ``x~`` is needed. The CE part is the usual
  adversarial ascent. This agrees with the released code (next item), which also
  lowers E(x~) in its search, and with the paper's words "min-max energy
  optimization". (An earlier default raised ``E(x~, y)``: inner and outer then
  pushed E(x~) the same way, nothing bounded it, and training diverged.)
* ``ce``: standard PGD on cross-entropy;
* ``released``: what the authors' code (``sampleXadv``) ascends: the true-class
  logit ``f(x~)[y]`` plus the squared distance between the L2-normalised logit
  vectors of ``x~`` and ``x+``;
* ``released-compat``: the released search with its units too: eps and step
  applied in [-1, 1] image units (half as large in pixels) and no projection onto
  the eps-ball (only the clamp to the image range).

All searches run in eval mode in float32, outside the training step's bf16
autocast unless ``attack_bf16`` asks for it (see :class:`TrainConfig`), take
sign steps, start from a random point of the ball, and (except
``released-compat``) are projected onto the eps-ball and [0, 1] after every step;
eps and steps are in pixel units.
"""

from __future__ import annotations

import contextlib
import logging

import torch
import torch.nn.functional as F
from torch import nn

from ..energy import energy_from_logits
from ..sources import PGD, SGLD, ReplayBuffer, SearchLoss
from ..precision import full_precision
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


def _saddle(logits, y, clean, temperature, w_adv, w_advce):
    # w_adv * (-E(x~)) + w_advce * CE(f(x~), y), per sample: the terms of the outer loss in x~
    return w_adv * -energy_from_logits(logits, temperature) + w_advce * F.cross_entropy(logits, y, reduction="none")


def _released(logits, y, clean, temperature):
    # the released EB-JDAT search: f(x~)[y] + ||normalize(f(x~)) - normalize(f(x))||^2
    true = logits.gather(1, y.view(-1, 1)).view(-1)
    return true + (F.normalize(logits, dim=1) - F.normalize(clean, dim=1)).pow(2).sum(1)


def _trades_kl(logits, y, clean, temperature):
    # TRADES: KL(f(x) || f(x~)) per sample
    return F.kl_div(F.log_softmax(logits, dim=1), F.softmax(clean, dim=1), reduction="none").sum(1)


class InnerMax:
    """The adversarial search of a training step (see the module docstring): a
    :class:`~landscape.sources.PGD` configuration, not a search of its own.

    ``kind``: ``saddle``, ``ce``, ``released``, ``released-compat`` or ``trades``
    (KL). ``saddle`` takes the outer weights ``w_adv`` (of ``energy_align``) and
    ``w_advce`` (of ``adv_ce``). Called as ``inner(model, x, y, keys, seed)`` with
    ``x`` in [0, 1]; returns ``x~`` detached, in [0, 1]. ``inner.pgd`` is the PGD
    source it runs (Linf; uniform random start, or TRADES' ``x + 0.001 N(0, 1)``;
    ``released-compat``: eps and step halved, the released code's [-1, 1] units, and
    no projection onto the eps-ball).
    """

    KINDS = ("saddle", "ce", "released", "released-compat", "trades")

    def __init__(self, kind: str, eps: float, step: float, steps: int, w_adv: float = 1.0, w_advce: float = 1.0):
        if kind not in self.KINDS:
            raise ValueError(f"inner search kind must be one of {', '.join(self.KINDS)}, got {kind!r}")
        self.kind, self.eps, self.step, self.steps = kind, float(eps), float(step), int(steps)
        self.w_adv, self.w_advce = float(w_adv), float(w_advce)
        self.released_compat = kind == "released-compat"
        loss = {"ce": "ce",
                "saddle": SearchLoss("saddle", _saddle, w_adv=self.w_adv, w_advce=self.w_advce),
                "released": SearchLoss("released", _released, needs_clean=True),
                "released-compat": SearchLoss("released", _released, needs_clean=True),
                "trades": SearchLoss("trades-kl", _trades_kl, needs_clean=True)}[kind]
        scale = 0.5 if self.released_compat else 1.0
        self.pgd = PGD("Linf", eps=self.eps * scale, step=self.step * scale, steps=self.steps, loss=loss,
                       random_start="gaussian" if kind == "trades" else True, project=not self.released_compat)

    def __repr__(self) -> str:
        extra = f", w_adv={self.w_adv}, w_advce={self.w_advce}" if self.kind == "saddle" else ""
        return f"InnerMax(kind={self.kind!r}, eps={self.eps}, step={self.step}, steps={self.steps}{extra})"

    def objective(self, logits: torch.Tensor, y: torch.Tensor, clean_logits: torch.Tensor | None = None,
                  temperature: float = 1.0) -> torch.Tensor:
        """The summed objective the search ascends, from float32 ``logits`` of ``x~``."""
        loss = self.pgd.loss
        if loss == "ce":
            return F.cross_entropy(logits, y, reduction="sum")
        return loss(logits, y, clean_logits, temperature).sum()

    def __call__(self, model, x: torch.Tensor, y: torch.Tensor, keys: torch.Tensor | None, seed: int) -> torch.Tensor:
        return self.pgd(model, x.detach().float(), y, keys=keys, seed=seed)


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
            self.inner = InnerMax(kind, config.eps, config.attack_step, config.attack_steps,
                                  w_adv=self.weights.get("energy_align", 0.0), w_advce=self.weights.get("adv_ce", 0.0))
            if kind == "released-compat":
                log.warning("inner='released-compat': the search uses eps %g and step %g in [-1, 1] units (%g and %g "
                            "in pixels) and is NOT projected onto the eps-ball, as the released EB-JDAT code did",
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
        if "energy_l2" in w:  # JEM's term only: data and SGLD samples, never x~ (the saddle bounds E(x~))
            values["energy_l2"] = e_clean.pow(2).mean() + e_neg.pow(2).mean()
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
