"""Out-of-distribution (OOD) detection: AUROC of the energy score and of max-softmax.

Scores (higher = "more in-distribution"):

``energy``
    ``-E(x) = T * logsumexp_y f(x)[y] / T`` (Liu et al., "Energy-based
    Out-of-distribution Detection", NeurIPS 2020; the sign convention of
    :mod:`landscape.energy`: low energy = likely, so ``-E(x)`` is the score).
``msp``
    the maximum softmax probability ``max_y softmax(f(x))[y]`` at temperature 1
    (Hendrycks & Gimpel, "A Baseline for Detecting Misclassified and
    Out-of-Distribution Examples", ICLR 2017), for comparison.

AUROC
    ``P(s_in > s_out) + 0.5 P(s_in = s_out)`` for a random in-distribution and a
    random OOD sample: the area under the ROC curve with in-distribution as the
    positive class (0.5: chance, 1: every in-distribution sample scores higher).
FPR at 95% TPR
    the fraction of OOD samples scoring at or above the highest threshold that
    keeps at least 95% of in-distribution samples (lower is better).

OOD sets (:func:`ood_source`): the name of another dataset (``"mnist"``, ``"svhn"``,
``"cifar100"``..., brought to the model's input shape by
:func:`landscape.sources.match_shape`), ``"gaussian"`` (images of i.i.d. pixels
``clamp(0.5 + sigma * N(0, 1), 0, 1)``, ``sigma`` 1 by default; ``"gaussian:sigma=0.3"``),
``"uniform"`` (i.i.d. ``U[0, 1]`` pixels), or any :class:`landscape.sources.Source`.
Every OOD image is drawn keyed by the in-distribution sample it is paired with,
so the result does not depend on the batch size.
"""

from __future__ import annotations

import logging

import numpy as np
import torch
from scipy.stats import rankdata

from ..energy import energy_from_logits
from ..errors import LandscapeError
from ..validate import check_number
from ..sources import GaussianImages, Source, UniformImages

log = logging.getLogger(__name__)

__all__ = ["SCORES", "GaussianImages", "UniformImages", "ood_source", "auroc", "fpr_at_tpr", "ood_scores"]

#: the OOD scores, higher = more in-distribution
SCORES = ("energy", "msp")

def ood_source(spec) -> tuple[str, Source]:
    """``(label, source)`` for ``"gaussian"``, ``"gaussian:sigma=0.3"``, ``"uniform"``, a dataset name
    (``"mnist"``, ``"svhn:split=train"``) or a Source object."""
    if isinstance(spec, Source):
        return getattr(spec, "name", type(spec).__name__), spec
    if not isinstance(spec, str) or not spec.strip():
        raise LandscapeError(f"an OOD set must be a dataset name, 'gaussian', 'uniform' or a Source, got {spec!r}")
    from ..sources import parse_spec

    name = spec.split(":", 1)[0].strip()
    # one spec parser for every source: "gaussian:sigma=0.3", "uniform", or a dataset
    # name, which is the ood source "ood:dataset=NAME:..."
    return spec, parse_spec(spec if name in ("gaussian", "uniform") else f"ood:dataset={spec.strip()}")


def _scores(values, name: str) -> np.ndarray:
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    v = np.asarray(values, dtype=np.float64).ravel()
    if v.size == 0:
        raise LandscapeError(f"{name} scores are empty")
    if not np.all(np.isfinite(v)):
        raise LandscapeError(f"{name} scores must be finite, got {int((~np.isfinite(v)).sum())} non-finite values")
    return v


def auroc(in_scores, out_scores) -> float:
    """AUROC of telling in-distribution (positive, higher score) from OOD samples; ties count half."""
    a, b = _scores(in_scores, "in-distribution"), _scores(out_scores, "out-of-distribution")
    ranks = rankdata(np.concatenate([a, b]))  # average ranks for ties
    u = ranks[: a.size].sum() - a.size * (a.size + 1) / 2.0  # Mann-Whitney U of the in-distribution sample
    return float(u / (a.size * b.size))


def fpr_at_tpr(in_scores, out_scores, tpr: float = 0.95) -> float:
    """Fraction of OOD samples accepted at the highest threshold accepting at least ``tpr`` of in-distribution samples."""
    tpr = check_number("tpr", tpr, low=0.0, high=1.0, low_open=True)
    a, b = np.sort(_scores(in_scores, "in-distribution"))[::-1], _scores(out_scores, "out-of-distribution")
    k = int(np.ceil(tpr * a.size - 1e-9))  # accept the k highest in-distribution scores
    threshold = a[max(k, 1) - 1]
    return float(np.mean(b >= threshold))


def ood_scores(logits: torch.Tensor, temperature: float = 1.0) -> dict[str, np.ndarray]:
    """``{"energy": -E(x), "msp": max softmax}`` of float logits (N x K), as float64 arrays."""
    logits = logits.detach().float()
    energy = energy_from_logits(logits, temperature)
    msp = torch.softmax(logits.double(), dim=1).max(dim=1).values
    return {"energy": (-energy).double().cpu().numpy(), "msp": msp.cpu().numpy()}
