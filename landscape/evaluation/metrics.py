"""Clean accuracy and calibration: expected calibration error and reliability diagrams.

Definitions (``p_i`` is the softmax of sample ``i``'s logits at temperature 1, the
classifier's predictive distribution; the energy temperature of a model does not
enter here):

accuracy
    the fraction of samples whose predicted class ``argmax_k p_ik`` (equivalently
    ``argmax_k f(x_i)[k]``) equals the label.
expected calibration error (ECE)
    top-label ECE with ``M`` equal-width bins (Naeini et al., AAAI 2015; Guo et al.,
    "On Calibration of Modern Neural Networks", ICML 2017). The confidence of
    sample ``i`` is ``c_i = max_k p_ik``; bin ``m`` (``m = 1..M``) holds the samples
    with ``c_i`` in ``((m-1)/M, m/M]`` (the first bin also holds ``c_i = 0``). Then

        ECE = sum_m (|B_m| / N) * |acc(B_m) - conf(B_m)|

    where ``acc(B_m)`` is the accuracy and ``conf(B_m)`` the mean confidence of the
    samples in bin ``m``; empty bins contribute nothing. ``M = 15`` by default (as
    Guo et al.). A value in [0, 1]; tables print it in percent.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import torch

from ..errors import LandscapeError

log = logging.getLogger(__name__)

__all__ = ["ECE_BINS", "accuracy", "wilson_interval", "softmax", "confidences", "calibration_bins", "expected_calibration_error",
           "plot_reliability_diagram"]

#: default number of equal-width confidence bins of the ECE
ECE_BINS = 15


def _array(values, name: str) -> np.ndarray:
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    try:
        arr = np.asarray(values)
    except Exception as exc:  # noqa: BLE001 - anything that is not array-like
        raise LandscapeError(f"{name} must be array-like, got {type(values).__name__}") from exc
    return arr


def _labels(labels, n: int) -> np.ndarray:
    y = _array(labels, "labels")
    if y.ndim != 1 or len(y) != n or not (np.issubdtype(y.dtype, np.integer)):
        raise LandscapeError(f"labels must be an integer vector of length {n}, got shape {y.shape} dtype {y.dtype}")
    return y.astype(np.int64)


def softmax(logits) -> np.ndarray:
    """Row-wise softmax of ``N x K`` logits, as float64 (temperature 1)."""
    z = _array(logits, "logits").astype(np.float64)
    if z.ndim != 2 or z.shape[1] < 2:
        raise LandscapeError(f"logits must be N x K with K >= 2, got shape {z.shape}")
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def accuracy(outputs, labels) -> float:
    """Fraction of correct predictions; ``outputs`` are ``N x K`` scores (logits or
    probabilities: the argmax is taken) or ``N`` predicted classes."""
    out = _array(outputs, "outputs")
    if out.ndim == 2:
        pred = out.argmax(axis=1)
    elif out.ndim == 1 and np.issubdtype(out.dtype, np.integer):
        pred = out
    else:
        raise LandscapeError(f"outputs must be N x K scores or N integer predictions, got shape {out.shape} dtype {out.dtype}")
    y = _labels(labels, len(pred))
    if len(y) == 0:
        raise LandscapeError("accuracy of zero samples is undefined: got empty inputs")
    return float(np.mean(pred == y))


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion ``successes / n`` (Wilson 1927).

    Unlike the normal approximation it stays inside [0, 1] and keeps its coverage near
    0 and 1 (robust accuracies of 0% or 99%).
    """
    from scipy.stats import norm

    if n <= 0 or not 0 <= successes <= n:
        raise LandscapeError(f"the Wilson interval needs 0 <= successes <= n and n > 0, got {successes} of {n}")
    if not 0.0 < confidence < 1.0:
        raise LandscapeError(f"confidence must lie strictly between 0 and 1, got {confidence!r}")
    z = float(norm.ppf(0.5 + confidence / 2.0))
    p = successes / n
    denom = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1.0 - p) / n + z * z / (4 * n * n)) / denom
    lo = 0.0 if successes == 0 else max(0.0, centre - half)  # exactly 0 and 1 at the ends (no rounding residue)
    hi = 1.0 if successes == n else min(1.0, centre + half)
    return lo, hi


def confidences(probs, labels) -> tuple[np.ndarray, np.ndarray]:
    """Top-label confidence ``max_k p_ik`` and correctness of ``argmax_k p_ik`` for ``N x K`` probabilities."""
    p = _array(probs, "probs").astype(np.float64)
    if p.ndim != 2 or p.shape[1] < 2:
        raise LandscapeError(f"probs must be N x K probabilities with K >= 2, got shape {p.shape}")
    if p.size and (p.min() < -1e-6 or p.max() > 1 + 1e-6 or np.abs(p.sum(1) - 1).max() > 1e-4):
        raise LandscapeError("probs must be probabilities (rows in [0, 1] summing to 1); pass softmax(logits), "
                             f"got values in [{p.min():.3g}, {p.max():.3g}] with row sums up to {p.sum(1).max():.4g}")
    y = _labels(labels, len(p))
    return p.max(axis=1), p.argmax(axis=1) == y


def _check_bins(n_bins) -> int:
    if isinstance(n_bins, bool) or not isinstance(n_bins, (int, np.integer)) or n_bins < 1:
        raise LandscapeError(f"n_bins must be a positive integer, got {n_bins!r}")
    return int(n_bins)


def calibration_bins(conf, correct, n_bins: int = ECE_BINS) -> pd.DataFrame:
    """The reliability table: one row per equal-width bin ``(lo, hi]`` of confidence.

    Columns: ``bin``, ``lo``, ``hi``, ``count``, ``fraction`` (of all samples),
    ``accuracy`` and ``confidence`` (mean, NaN for an empty bin) and ``gap``
    (``accuracy - confidence``).
    """
    n_bins = _check_bins(n_bins)
    c = _array(conf, "confidences").astype(np.float64).ravel()
    ok = _array(correct, "correct").astype(bool).ravel()
    if len(c) != len(ok):
        raise LandscapeError(f"confidences and correct must have the same length, got {len(c)} and {len(ok)}")
    if len(c) == 0:
        raise LandscapeError("calibration of zero samples is undefined: got empty inputs")
    if not np.all(np.isfinite(c)) or c.min() < 0 or c.max() > 1:
        raise LandscapeError(f"confidences must lie in [0, 1], got values in [{np.nanmin(c):.3g}, {np.nanmax(c):.3g}]")
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    # bin m holds (edges[m], edges[m+1]]: the number of inner edges strictly below c
    idx = np.searchsorted(edges[1:-1], c, side="left")
    count = np.bincount(idx, minlength=n_bins)
    hits = np.bincount(idx, weights=ok.astype(np.float64), minlength=n_bins)
    csum = np.bincount(idx, weights=c, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        acc = np.where(count > 0, hits / np.maximum(count, 1), np.nan)
        mean_conf = np.where(count > 0, csum / np.maximum(count, 1), np.nan)
    return pd.DataFrame({"bin": np.arange(n_bins), "lo": edges[:-1], "hi": edges[1:], "count": count,
                         "fraction": count / len(c), "accuracy": acc, "confidence": mean_conf,
                         "gap": acc - mean_conf})


def expected_calibration_error(probs, labels, n_bins: int = ECE_BINS) -> float:
    """Top-label ECE with ``n_bins`` equal-width bins (see the module docstring), in [0, 1].

    ``probs`` are ``N x K`` class probabilities (use :func:`softmax` on logits).
    """
    conf, ok = confidences(probs, labels)
    table = calibration_bins(conf, ok, n_bins)
    used = table["count"] > 0
    return float((table.loc[used, "fraction"] * table.loc[used, "gap"].abs()).sum())


def plot_reliability_diagram(table: pd.DataFrame, out_dir, *, name: str = "reliability", title: str = "",
                             formats: Sequence[str] = ("png", "svg"), dpi: int = 150) -> list[Path]:
    """Reliability diagram of a :func:`calibration_bins` table, as ``out_dir/NAME.png`` and ``.svg``.

    Top: the accuracy of each confidence bin (bars) against the diagonal of
    perfect calibration, the gap to the bin's mean confidence shaded; the ECE in
    the legend. Bottom: the share of samples in each bin. Drawn on a fresh
    matplotlib Figure (no pyplot), written atomically; returns the paths.
    """
    from matplotlib.colors import to_rgba
    from matplotlib.figure import Figure

    from ..analyses.figures import SOURCE_COLORS, save_figure

    needed = {"lo", "hi", "count", "fraction", "accuracy", "confidence"}
    if not isinstance(table, pd.DataFrame) or not needed <= set(table.columns):
        raise LandscapeError(f"a reliability diagram needs a calibration_bins table with columns {sorted(needed)}, "
                             f"got {type(table).__name__}")
    lo, hi = table["lo"].to_numpy(), table["hi"].to_numpy()
    width = hi - lo
    used = table["count"].to_numpy() > 0
    acc = np.nan_to_num(table["accuracy"].to_numpy())
    conf = table["confidence"].to_numpy()
    ece = float((table.loc[used, "fraction"] * (table.loc[used, "accuracy"] - table.loc[used, "confidence"]).abs()).sum())
    n = int(table["count"].sum())

    fig = Figure(figsize=(4.8, 5.6), layout="constrained")
    top, bottom = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    blue, red = SOURCE_COLORS["clean"], SOURCE_COLORS["pgd"]
    top.plot([0, 1], [0, 1], linestyle="--", color="#7F7F7F", linewidth=1, label="perfect calibration")
    top.bar(lo[used], acc[used], width=width[used], align="edge", color=blue, alpha=0.85, edgecolor="white",
            linewidth=0.6, label=f"accuracy (ECE {100 * ece:.2f}%, {len(table)} bins)")
    gap_lo = np.minimum(acc, conf)[used]
    gap_h = np.abs(acc - conf)[used]
    top.bar(lo[used], gap_h, bottom=gap_lo, width=width[used], align="edge", facecolor=to_rgba(red, 0.18),
            edgecolor=red, linewidth=0.8, hatch="///", label="gap to mean confidence")
    top.set_xlim(0, 1)
    top.set_ylim(0, 1)
    top.set_ylabel("accuracy")
    top.legend(loc="upper left", frameon=True, framealpha=0.9, edgecolor="none")
    top.set_title(title or f"reliability diagram (n={n})")
    bottom.bar(lo, table["fraction"].to_numpy(), width=width, align="edge", color=blue, alpha=0.5,
               edgecolor="white", linewidth=0.6)
    bottom.set_xlabel("confidence (top-label softmax probability)")
    bottom.set_ylabel("share of samples")
    return save_figure(fig, out_dir, name, formats=formats, dpi=dpi)
