"""Sanity checks run on the first batch before scoring, in the spirit of
AutoAttack's checks (Croce & Hein 2020): each finds a way in which energies (or
gradient-based samples) would silently be meaningless.

* outputs that look like probabilities (non-negative rows summing to 1): the
  energy needs logits, ``logsumexp`` of probabilities is nearly constant;
* non-deterministic outputs (dropout or BatchNorm in train mode, a randomised
  defence): the same input scored twice gives different energies;
* non-finite logits or energies;
* zero input gradients (gradient masking): gradient-based sources (PGD, SGLD)
  cannot move such samples.

``mode="error"`` raises :class:`CheckError` for the findings that make energies
meaningless (probabilities, non-finite values) and warns for the others;
``mode="warn"`` only warns; ``mode="off"`` skips the checks.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass

import torch

from .energy import energy_from_logits
from .errors import LandscapeError

log = logging.getLogger(__name__)

__all__ = ["CheckError", "CheckWarning", "Finding", "run_checks", "check_finite"]


class CheckError(LandscapeError):
    """A check found that the energies would be meaningless."""


class CheckWarning(UserWarning):
    """A check found something that makes energies or attacks less reliable."""


@dataclass(frozen=True)
class Finding:
    name: str
    fatal: bool
    message: str


def _probabilities(logits: torch.Tensor) -> Finding | None:
    lg = logits.float()
    if lg.min() >= 0 and torch.allclose(lg.sum(1), torch.ones(len(lg), device=lg.device), atol=1e-3):
        return Finding("probabilities", True,
                       "model outputs look like probabilities (non-negative, rows sum to 1); energies need logits: "
                       "remove the final softmax")
    if lg.max() <= 0 and torch.allclose(lg.exp().sum(1), torch.ones(len(lg), device=lg.device), atol=1e-3):
        return Finding("probabilities", True,
                       "model outputs look like log-probabilities (log_softmax); E(x) would be 0 for every input: "
                       "remove the final log_softmax")
    return None


def _nondeterministic(model, x: torch.Tensor) -> Finding | None:
    with torch.no_grad():
        a = model.logits(x).float()
        b = model.logits(x).float()
    diff = float((a - b).abs().max())
    scale = float(a.abs().max()) + 1e-6
    if diff > 1e-4 * scale + 1e-5:
        return Finding("nondeterministic", False,
                       f"model gives different outputs for the same input (max difference {diff:.3g}): dropout or "
                       "BatchNorm in train mode, or a randomised defence; energies will be noisy")
    return None


def _zero_gradients(model, x: torch.Tensor) -> Finding | None:
    xg = x.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        e = energy_from_logits(model.logits(xg), model.temperature).sum()
        (g,) = torch.autograd.grad(e, xg)
    zero = (g.flatten(1).abs().amax(1) == 0).float().mean().item()
    if zero > 0:
        return Finding("zero_gradients", False,
                       f"{zero:.1%} of the samples have zero input gradients (gradient masking?): "
                       "PGD and SGLD cannot move them")
    return None


def check_finite(values: torch.Tensor, what: str) -> None:
    bad = ~torch.isfinite(values)
    if bool(bad.any()):
        raise CheckError(f"{int(bad.sum())} of {values.numel()} {what} are not finite (NaN or inf)")


def run_checks(model, x: torch.Tensor, needs_grad: bool, mode: str = "error") -> list[Finding]:
    """Run the checks on batch ``x`` (model already in the mode it is scored in)."""
    if mode not in ("error", "warn", "off"):
        raise LandscapeError(f"checks must be 'error', 'warn' or 'off', got {mode!r}")
    if mode == "off":
        return []
    with torch.no_grad():
        logits = model.logits(x)
    findings = []
    try:
        check_finite(logits.float(), "logits of the first batch")
    except CheckError as exc:
        findings.append(Finding("non_finite", True, str(exc)))
    for f in (_probabilities(logits), _nondeterministic(model, x), _zero_gradients(model, x) if needs_grad else None):
        if f is not None:
            findings.append(f)
    for f in findings:
        if f.fatal and mode == "error":
            raise CheckError(f.message + " (pass checks='warn' to score anyway)")
        warnings.warn(f.message, CheckWarning, stacklevel=3)
        log.warning("check %s: %s", f.name, f.message)
    return findings
