"""Energy-gap statistics: pure functions from energy tables to tidy DataFrames.

Input: an *energy table*, one row per sample and source, with at least the columns
``model``, ``source`` and the energy column analysed (``energy`` = E(x) by default,
or ``conditional_energy`` = E(x, y)); breakdowns also use ``label`` and ``correct``.

Outputs (pandas DataFrames, one row per observation, one column per variable):

* :func:`describe` -- per model and source: ``n``, ``accuracy`` (when the table has
  ``correct``), ``mean``, ``std`` (ddof 1), ``median``, ``q05``, ``q25``, ``q75``,
  ``q95``, ``min``, ``max``.
* :func:`gap_table` -- per model and pair of sources ``(A, B)``, the statistics of
  :data:`STATISTICS`, each with a seeded bootstrap percentile interval
  (``<stat>_lo``, ``<stat>_hi``), plus ``ks_pvalue``.
* :func:`alignment_summary` -- per model, the pair with the largest ``|gap|`` (and
  the largest ``|cohens_d|``).
* :func:`class_breakdown`, :func:`correctness_breakdown` -- :func:`gap_table` grouped
  additionally by ``label`` or by ``correct``.

For a pair ``(A, B)``, ``A`` comes first in the canonical source order, so ``A`` is
``clean`` whenever clean is one of the two. Every statistic is defined in words in :data:`DEFINITIONS`, the one text that the
reports show and ``summary.json`` stores: ``gap`` is ``mean(E_B) - mean(E_A)`` (the
paper's energy gap, positive when the model finds ``B`` less likely), ``cohens_d``
the gap over the pooled standard deviation, ``wasserstein`` the W1 distance,
``ks_stat``/``ks_pvalue`` the two-sample KS test, ``js_divergence`` (base 2) and
``overlap`` plug-in estimates on shared histogram bins (:func:`shared_bin_edges`),
``auroc`` the Mann-Whitney AUROC of telling ``B`` from ``A`` by energy.

Bootstrap: each group is resampled with replacement independently (``n_boot``
times, vectorised), every statistic is recomputed on the same resamples with the
bin edges of the original data, and the ``ci`` percentile interval is reported
(or the basic interval, ``interval="basic"``; see :func:`two_sample_stats` for
which to trust for the biased plug-in distances). The
random stream of a pair is seeded by ``(seed, crc32 of the group key and pair)``,
so a pair's interval does not depend on which other models or pairs are present.
"""

from __future__ import annotations

import logging
import math
import warnings
import zlib
from typing import Iterable, Sequence

import numpy as np
import pandas as pd

from ..errors import LandscapeError
from ..sources import REGISTRY, source_kind

log = logging.getLogger(__name__)

__all__ = [
    "STATISTICS",
    "KNOWN_SOURCES",
    "order_sources",
    "source_pairs",
    "shared_bin_edges",
    "two_sample_stats",
    "describe",
    "gap_table",
    "alignment_summary",
    "class_breakdown",
    "correctness_breakdown",
    "validate_energy_table",
    "trajectory_frame",
]

#: the two-sample statistics of :func:`gap_table`, in column order
STATISTICS = ("gap", "cohens_d", "wasserstein", "ks_stat", "js_divergence", "auroc", "overlap")

#: what each statistic means, in words: shown in every report and stored in summary.json
DEFINITIONS = {
    "gap": "mean E(B) - mean E(A) for the pair 'A vs B' (A is clean whenever clean is in the pair); "
           "positive: B sits at higher energy, i.e. the model finds B less likely. The paper's energy gap.",
    "cohens_d": "gap divided by the pooled standard deviation sqrt(((n_A-1) s_A^2 + (n_B-1) s_B^2) / (n_A+n_B-2)); "
                "same sign as the gap, scale-free.",
    "wasserstein": "Wasserstein-1 distance of the two empirical distributions, integral of |F_A - F_B| "
                   "(scipy.stats.wasserstein_distance), in energy units.",
    "ks_stat": "two-sample Kolmogorov-Smirnov statistic sup |F_A - F_B|; ks_pvalue is its two-sided p-value "
               "(scipy.stats.ks_2samp).",
    "js_divergence": "Jensen-Shannon divergence, base 2 (in [0, 1]), of the two normalised histograms on shared "
                     "equal-width bins over the pooled range (width: the smaller Freedman-Diaconis width of the "
                     "two samples, 10 to 200 bins). A plug-in estimate: slightly above 0 for two samples of the same "
                     "distribution.",
    "auroc": "P(E_B > E_A) + 0.5 P(E_B = E_A) for random B and A (Mann-Whitney U / (n_A n_B)): the AUROC of telling "
             "B from A by thresholding energy. 0.5 = indistinguishable.",
    "overlap": "overlap coefficient of the two normalised histograms on the same shared bins, sum of min(p, q) "
               "(1 = identical, 0 = disjoint).",
    "intervals": "[lo, hi]: bootstrap interval (its kind is stated at the top of the report); each group resampled "
                 "with replacement independently, seeded per comparison. KS, JS, overlap (and W1 near 0) are biased "
                 "plug-in estimates when two distributions are close: their percentile intervals then sit beside "
                 "the population value; gap, Cohen's d and AUROC intervals cover it about 95% of the time.",
}


#: sources with a fixed place in the canonical order: the sources registry's order
KNOWN_SOURCES = tuple(k.name for k in REGISTRY)

ENERGY_COLUMNS = ("energy", "conditional_energy")
#: bootstrap interval methods of :func:`two_sample_stats`
INTERVALS = ("percentile", "basic")
_RANGES = {"wasserstein": (0.0, np.inf), "ks_stat": (0.0, 1.0), "js_divergence": (0.0, 1.0), "auroc": (0.0, 1.0),
           "overlap": (0.0, 1.0)}

#: bound on (bootstrap replicates x pooled sample size) per vectorised chunk
_CHUNK_ELEMENTS = 400_000


# -- validation and ordering ---------------------------------------------------------

def validate_energy_table(table: pd.DataFrame, column: str = "energy",
                          extra: Sequence[str] = ()) -> None:
    """Raise :class:`LandscapeError` unless ``table`` is an energy table with ``column``."""
    if not isinstance(table, pd.DataFrame):
        raise LandscapeError(f"energy table must be a pandas DataFrame, got {type(table).__name__}")
    needed = ["model", "source", column, *extra]
    missing = [c for c in needed if c not in table.columns]
    if missing:
        raise LandscapeError(f"energy table must have columns {needed}, missing {missing} (has {list(table.columns)})")
    if not pd.api.types.is_numeric_dtype(table[column]) or pd.api.types.is_bool_dtype(table[column]):
        raise LandscapeError(f"energy column {column!r} must be numeric, got dtype {table[column].dtype}")
    if len(table) == 0:
        raise LandscapeError("energy table is empty (0 rows)")


def has_labels(source: str) -> bool:
    """Whether a source's samples keep the true class of the image they came from (clean,
    adversarial, corrupted: yes; generated and out-of-distribution samples: no). Unknown
    sources are taken to keep it."""
    kind = source_kind(source)
    return kind is None or kind.role not in ("generated", "out-of-distribution")


def order_sources(sources: Iterable) -> list[str]:
    """The canonical order of sources: the registered ones in the registry's order
    (``clean``, ``pgd``, ``autoattack``, ``replay``, ``sgld``, ``noise``, ``ood``...; see
    :data:`landscape.sources.REGISTRY`), then the rest in order of first appearance.
    Duplicates are dropped."""
    seen: list[str] = []
    for s in sources:
        s = str(s)
        if s not in seen:
            seen.append(s)
    rank = {k: i for i, k in enumerate(KNOWN_SOURCES)}

    def place(s: str):  # registered names, and specs of them ("pgd:steps=20"), in the registry's order
        kind = source_kind(s)
        return (rank[kind.name], s != kind.name) if kind is not None else (len(rank), False)

    return sorted(seen, key=lambda s: place(s))  # stable: the rest keep their order of appearance


def source_pairs(sources: Iterable) -> list[tuple[str, str]]:
    """Every unordered pair ``(A, B)`` of the sources, ``A`` before ``B`` in the
    canonical order: clean vs adversarial, clean vs generated, adversarial vs generated..."""
    ordered = order_sources(sources)
    return [(a, b) for i, a in enumerate(ordered) for b in ordered[i + 1:]]


def pair_name(a: str, b: str) -> str:
    return f"{a} vs {b}"


def _finite(values, what: str) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64).ravel()
    ok = np.isfinite(arr)
    if not ok.all():
        log.warning("%s: dropped %d non-finite energies of %d", what, int((~ok).sum()), arr.size)
        arr = arr[ok]
    return arr


# -- binning --------------------------------------------------------------------------

def shared_bin_edges(*samples, bins="fd", min_bins: int = 10, max_bins: int = 200) -> np.ndarray:
    """Equal-width bin edges over the pooled range ``[min, max]`` of ``samples``.

    ``bins``: ``"fd"`` (default) -- the smallest Freedman-Diaconis width
    ``2 IQR n^(-1/3)`` of the samples taken one by one (so the sharpest distribution
    is resolved; the square-root rule on the pooled sample when every IQR is 0), the
    number of bins clipped to ``[min_bins, max_bins]``; an integer -- that many bins; an array --
    used as the edges. A pooled sample with a single value gets one bin of width 1
    centred on it.
    """
    if not isinstance(bins, str) and np.ndim(bins) == 1:
        edges = np.asarray(bins, dtype=np.float64)
        if edges.size < 2 or not np.all(np.diff(edges) > 0):
            raise LandscapeError(f"bin edges must be an increasing array of at least 2 values, got {edges.size} values")
        return edges
    pooled = np.concatenate([np.asarray(s, dtype=np.float64).ravel() for s in samples]) if samples else np.empty(0)
    pooled = pooled[np.isfinite(pooled)]
    if pooled.size == 0:
        raise LandscapeError("cannot choose bins for an empty sample")
    lo, hi = float(pooled.min()), float(pooled.max())
    if hi <= lo:
        return np.array([lo - 0.5, lo + 0.5])
    if isinstance(bins, str):
        if bins != "fd":
            raise LandscapeError(f"bins must be 'fd', an integer or an array of edges, got {bins!r}")
        widths = []
        for s in samples:
            s = np.asarray(s, dtype=np.float64).ravel()
            s = s[np.isfinite(s)]
            if s.size > 1:
                q75, q25 = np.percentile(s, [75, 25])
                if q75 > q25:
                    widths.append(2.0 * (q75 - q25) * s.size ** (-1.0 / 3.0))
        k = math.ceil((hi - lo) / min(widths)) if widths else math.ceil(math.sqrt(pooled.size))
        k = int(min(max(k, min_bins), max_bins))
    else:
        try:
            k = int(bins)
        except (TypeError, ValueError) as exc:
            raise LandscapeError(f"bins must be 'fd', an integer or an array of edges, got {bins!r}") from exc
        if k < 1 or k != bins:
            raise LandscapeError(f"bins must be a positive integer, got {bins!r}")
    return np.linspace(lo, hi, k + 1)


# -- the vectorised two-sample core ---------------------------------------------------

def _core(a: np.ndarray, b: np.ndarray, edges: np.ndarray) -> dict[str, np.ndarray]:
    """Every statistic for each row of ``a`` (m x n_A) against the same row of ``b`` (m x n_B)."""
    m, na = a.shape
    nb = b.shape[1]
    n = na + nb
    with np.errstate(invalid="ignore", divide="ignore"):
        ma, mb = a.mean(1), b.mean(1)
        gap = mb - ma
        if n > 2:
            va = a.var(1, ddof=1) if na > 1 else np.zeros(m)
            vb = b.var(1, ddof=1) if nb > 1 else np.zeros(m)
            sp = np.sqrt(((na - 1) * va + (nb - 1) * vb) / (n - 2))
            d = np.where(sp > 0, gap / np.where(sp > 0, sp, 1.0), np.where(gap == 0, 0.0, np.nan))
        else:
            d = np.full(m, np.nan)

    v = np.concatenate([a, b], axis=1)
    order = np.argsort(v, axis=1)
    vs = np.take_along_axis(v, order, axis=1)
    del v
    isb = order >= na
    del order
    cum_b = np.cumsum(isb, axis=1)
    cdf_diff = (np.arange(1, n + 1) - cum_b) / na - cum_b / nb  # F_A - F_B just after each sorted value
    dv = np.diff(vs, axis=1)
    run_end = dv > 0  # position i ends a run of tied values (the last position always does)
    absdiff = np.abs(cdf_diff[:, :-1])
    w1 = (absdiff * dv).sum(1)
    ks = np.where(run_end, absdiff, 0.0).max(1) if n > 1 else np.zeros(m)
    del absdiff, cdf_diff, cum_b

    # average ranks (ties share the mean of their positions) -> Mann-Whitney U of B
    idx = np.arange(n)
    starts = np.concatenate([np.ones((m, 1), bool), run_end], axis=1)
    first = np.maximum.accumulate(np.where(starts, idx, 0), axis=1)
    ends = np.concatenate([run_end, np.ones((m, 1), bool)], axis=1)
    last = np.minimum.accumulate(np.where(ends, idx, n - 1)[:, ::-1], axis=1)[:, ::-1]
    rank_sum_b = np.where(isb, (first + last) / 2.0 + 1.0, 0.0).sum(1)
    auroc = (rank_sum_b - nb * (nb + 1) / 2.0) / (na * nb)
    del first, last, starts, ends, isb, vs, dv

    k = edges.size - 1
    rows = np.arange(m)[:, None] * k
    ia = np.clip(np.searchsorted(edges, a, side="right") - 1, 0, k - 1)
    ib = np.clip(np.searchsorted(edges, b, side="right") - 1, 0, k - 1)
    p = np.bincount((ia + rows).ravel(), minlength=m * k).reshape(m, k) / na
    q = np.bincount((ib + rows).ravel(), minlength=m * k).reshape(m, k) / nb
    mid = (p + q) / 2.0
    with np.errstate(invalid="ignore", divide="ignore"):
        kl_p = np.where(p > 0, p * np.log2(np.where(p > 0, p, 1.0) / np.where(mid > 0, mid, 1.0)), 0.0).sum(1)
        kl_q = np.where(q > 0, q * np.log2(np.where(q > 0, q, 1.0) / np.where(mid > 0, mid, 1.0)), 0.0).sum(1)
    js = np.clip(0.5 * kl_p + 0.5 * kl_q, 0.0, 1.0)
    overlap = np.minimum(p, q).sum(1)
    return {"gap": gap, "cohens_d": d, "wasserstein": w1, "ks_stat": ks, "js_divergence": js,
            "auroc": auroc, "overlap": overlap, "mean_a": ma, "mean_b": mb}


def two_sample_stats(a, b, *, n_boot: int = 1000, ci: float = 0.95, seed: int = 0, bins="fd",
                     interval: str = "percentile", key: str = "", paired: bool = False) -> dict[str, float]:
    """All statistics of :data:`STATISTICS` for samples ``a`` (``A``) and ``b`` (``B``).

    Returns a flat dict: ``n_a``, ``n_b``, ``mean_a``, ``mean_b``, each statistic and
    its interval ``<stat>_lo``/``<stat>_hi`` (NaN when ``n_boot`` is 0), and
    ``ks_pvalue``. Non-finite values are dropped (with a warning). ``key`` names the
    comparison in the seed of its bootstrap stream (see the module docstring).

    ``paired``: ``a[i]`` and ``b[i]`` belong to the same unit (the same test image, e.g.
    clean vs its adversarial example): the bootstrap resamples units, both values of a
    unit together, which keeps their correlation (a positive one narrows the gap's
    interval). Pairs with a non-finite side are dropped together.

    ``interval``: ``"percentile"`` (default) -- the ``ci`` quantiles of the bootstrap
    replicates; ``"basic"`` -- ``2 * estimate - those quantiles`` (swapped), clipped
    to the statistic's range. The plug-in distances (KS, JS, overlap, and W1 near 0)
    are biased when the two distributions are close, and resampling adds the same
    bias again, so their percentile intervals sit beside the population value
    (e.g. overlap of N(0,1) vs N(0.2,1), n=150: 0.5% coverage); basic intervals
    undo that shift (89%). For gap, Cohen's d and AUROC both cover about 94%.
    """
    if paired:
        a, b = np.asarray(a, dtype=np.float64).ravel(), np.asarray(b, dtype=np.float64).ravel()
        if a.size != b.size:
            raise LandscapeError(f"paired samples must have the same length, got n_A={a.size}, n_B={b.size}")
        ok = np.isfinite(a) & np.isfinite(b)
        if not ok.all():
            log.warning("%s: dropped %d pair(s) with a non-finite energy", key or "paired samples", int((~ok).sum()))
        a, b = a[ok], b[ok]
    a = _finite(a, f"sample A {key}".strip())
    b = _finite(b, f"sample B {key}".strip())
    if a.size == 0 or b.size == 0:
        raise LandscapeError(f"both samples need at least one finite energy, got n_A={a.size}, n_B={b.size}")
    if not (0.0 < ci < 1.0):
        raise LandscapeError(f"ci must lie strictly between 0 and 1, got {ci!r}")
    if int(n_boot) != n_boot or n_boot < 0:
        raise LandscapeError(f"n_boot must be a non-negative integer, got {n_boot!r}")
    n_boot = int(n_boot)
    if interval not in INTERVALS:
        raise LandscapeError(f"interval must be one of {', '.join(INTERVALS)}, got {interval!r}")
    edges = shared_bin_edges(a, b, bins=bins)
    point = _core(a[None, :], b[None, :], edges)
    out: dict[str, float] = {"n_a": int(a.size), "n_b": int(b.size),
                             "mean_a": float(point["mean_a"][0]), "mean_b": float(point["mean_b"][0])}
    lo_q, hi_q = 50.0 * (1.0 - ci), 50.0 * (1.0 + ci)
    if n_boot > 0:
        rng = np.random.default_rng(np.random.SeedSequence([int(seed) % 2**63, zlib.crc32(key.encode("utf-8"))]))
        chunk = max(1, _CHUNK_ELEMENTS // (a.size + b.size))
        reps: dict[str, list[np.ndarray]] = {s: [] for s in STATISTICS}
        for start in range(0, n_boot, chunk):
            m = min(chunk, n_boot - start)
            ia = rng.integers(0, a.size, size=(m, a.size))
            ra = a[ia]
            rb = b[ia] if paired else b[rng.integers(0, b.size, size=(m, b.size))]
            res = _core(ra, rb, edges)
            for s in STATISTICS:
                reps[s].append(res[s])
        boots = {s: np.concatenate(v) for s, v in reps.items()}
    for s in STATISTICS:
        out[s] = float(point[s][0])
        if n_boot > 0 and np.isfinite(boots[s]).any():
            lo, hi = np.nanpercentile(boots[s], [lo_q, hi_q])
            if interval == "basic":
                lo, hi = np.clip([2 * out[s] - hi, 2 * out[s] - lo], *_RANGES.get(s, (-np.inf, np.inf)))
            out[f"{s}_lo"], out[f"{s}_hi"] = float(lo), float(hi)
        else:
            out[f"{s}_lo"] = out[f"{s}_hi"] = float("nan")
    out["ks_pvalue"] = _ks_pvalue(a, b)
    return out


def _ks_pvalue(a: np.ndarray, b: np.ndarray) -> float:
    from scipy import stats

    if np.array_equal(np.sort(a), np.sort(b)):
        return 1.0
    with warnings.catch_warnings():
        # scipy falls back from the exact to the asymptotic p-value (and says so) on ties
        warnings.filterwarnings("ignore", message=".*Exact calculation unsuccessful", category=RuntimeWarning)
        return float(stats.ks_2samp(a, b, alternative="two-sided", method="auto").pvalue)


# -- tables ---------------------------------------------------------------------------

def _groups(table: pd.DataFrame, by: Sequence[str]):
    """(key tuple, sub-table) for each group of ``by`` in order of first appearance."""
    if not by:
        yield (), table
        return
    for key, sub in table.groupby(list(by), sort=False, observed=True, dropna=False):
        yield (key if isinstance(key, tuple) else (key,)), sub


def _check_by(table: pd.DataFrame, by: Sequence[str]) -> list[str]:
    by = [by] if isinstance(by, str) else list(by)
    missing = [c for c in by if c not in table.columns]
    if missing:
        raise LandscapeError(f"cannot group by {missing}: the energy table has columns {list(table.columns)}")
    if "source" in by:
        raise LandscapeError("'source' is always a grouping column; do not pass it in by")
    return by


def describe(table: pd.DataFrame, column: str = "energy", by: Sequence[str] = ("model",)) -> pd.DataFrame:
    """Per group of ``by`` and source: n, accuracy, mean, std, median, quantiles, min, max.

    Sources are listed in the canonical order within each group; non-finite energies
    are dropped (with a warning) and not counted in ``n``.
    """
    validate_energy_table(table, column)
    by = _check_by(table, by)
    rows = []
    for key, sub in _groups(table, by):
        for src in order_sources(sub["source"].astype(str).unique()):
            part = sub[sub["source"].astype(str) == src]
            vals = np.asarray(part[column], dtype=np.float64)
            ok = np.isfinite(vals)
            if not ok.all():
                log.warning("%s %s: dropped %d non-finite values of %s", key, src, int((~ok).sum()), column)
            vals = vals[ok]
            row = dict(zip(by, key))
            row["source"] = src
            row["n"] = int(vals.size)
            if "correct" in part.columns:
                # a generated or out-of-distribution sample has no true class: no accuracy
                row["accuracy"] = (float(np.asarray(part["correct"], dtype=float)[ok].mean())
                                   if vals.size and has_labels(src) else np.nan)
            if vals.size:
                q = np.percentile(vals, [5, 25, 50, 75, 95])
                row.update(mean=float(vals.mean()), std=float(vals.std(ddof=1)) if vals.size > 1 else np.nan,
                           median=float(q[2]), q05=float(q[0]), q25=float(q[1]), q75=float(q[3]),
                           q95=float(q[4]), min=float(vals.min()), max=float(vals.max()))
            else:
                row.update({k: np.nan for k in ("mean", "std", "median", "q05", "q25", "q75", "q95", "min", "max")})
            rows.append(row)
    out = pd.DataFrame(rows)
    out.attrs.update(column=column)
    return out


def _paired(sub: pd.DataFrame, src: pd.Series, a_name: str, b_name: str, column: str):
    """The two sources' values ordered by sample ``index`` when both have exactly the
    same unique indices (one row per sample each), else None."""
    if "index" not in sub.columns:
        return None
    ia, ib = sub.loc[src == a_name, "index"].to_numpy(), sub.loc[src == b_name, "index"].to_numpy()
    if ia.size != ib.size or np.unique(ia).size != ia.size or not np.array_equal(np.sort(ia), np.sort(ib)):
        return None
    a = sub.loc[src == a_name, column].to_numpy()[np.argsort(ia, kind="stable")]
    b = sub.loc[src == b_name, column].to_numpy()[np.argsort(ib, kind="stable")]
    return a, b


def gap_table(table: pd.DataFrame, column: str = "energy", by: Sequence[str] = ("model",),
              pairs: Sequence[tuple[str, str]] | None = None, n_boot: int = 1000, ci: float = 0.95,
              seed: int = 0, bins="fd", interval: str = "percentile", paired: str | bool = "auto") -> pd.DataFrame:
    """Two-sample statistics for every pair of sources within each group of ``by``.

    Pairs are all unordered pairs of the sources present in the group (see
    :func:`source_pairs`), or the given ``pairs`` ``(A, B)`` (kept as given, so a pair
    may also be listed against the canonical order; groups lacking one of its
    sources skip it). Columns: the ``by`` columns, ``source_a``, ``source_b``,
    ``pair``, ``column``, ``n_a``, ``n_b``, ``mean_a``, ``mean_b``, then each
    statistic of :data:`STATISTICS` followed by ``_lo``/``_hi``, and ``ks_pvalue``.
    The settings are stored in ``.attrs`` (``column``, ``n_boot``, ``ci``, ``seed``,
    ``interval``, ``bins``). ``interval``: see :func:`two_sample_stats`.

    ``paired``: ``"auto"`` (default) bootstraps a pair of sources by sample -- both
    rows of a sample ``index`` resampled together -- when the two sources hold exactly
    the same samples (clean vs PGD of the same images; every source the engine makes
    from a batch is keyed by the image's index, so a sample is the natural unit of
    resampling), else independently; ``True`` requires pairing, ``False`` never pairs.
    The ``paired`` column says which was used.
    """
    if paired not in ("auto", True, False):
        raise LandscapeError(f"paired must be 'auto', True or False, got {paired!r}")
    validate_energy_table(table, column)
    by = _check_by(table, by)
    if pairs is not None:
        pairs = [tuple(map(str, p)) for p in pairs]
        if any(len(p) != 2 or p[0] == p[1] for p in pairs):
            raise LandscapeError(f"pairs must be (A, B) tuples of two different sources, got {pairs!r}")
        present = set(table["source"].astype(str).unique())
        unknown = sorted({s for p in pairs for s in p} - present)
        if unknown:
            raise LandscapeError(f"pairs name sources {unknown} absent from the energy table (sources: {sorted(present)})")
    rows = []
    for key, sub in _groups(table, by):
        src = sub["source"].astype(str)
        present = order_sources(src.unique())
        todo = source_pairs(present) if pairs is None else [p for p in pairs if p[0] in present and p[1] in present]
        for a_name, b_name in todo:
            a = sub.loc[src == a_name, column].to_numpy()
            b = sub.loc[src == b_name, column].to_numpy()
            tag = "|".join(map(str, key)) + f"|{column}|{a_name}|{b_name}"
            matched = _paired(sub, src, a_name, b_name, column) if paired is not False else None
            if paired is True and matched is None:
                raise LandscapeError(f"paired=True but {a_name!r} and {b_name!r} of {key} do not hold the same samples "
                                     "(the same unique 'index' values)")
            if matched is not None:
                a, b = matched
            a_f, b_f = a[np.isfinite(a.astype(float))], b[np.isfinite(b.astype(float))]
            if a_f.size == 0 or b_f.size == 0:
                log.warning("%s: skipped %s vs %s, a side has no finite energies", key, a_name, b_name)
                continue
            res = two_sample_stats(a, b, n_boot=n_boot, ci=ci, seed=seed, bins=bins, interval=interval, key=tag,
                                   paired=matched is not None)
            row = dict(zip(by, key))
            row.update(source_a=a_name, source_b=b_name, pair=pair_name(a_name, b_name), column=column,
                       paired=matched is not None)
            row.update(res)
            rows.append(row)
    cols = [*by, "source_a", "source_b", "pair", "column", "paired", "n_a", "n_b", "mean_a", "mean_b"]
    for s in STATISTICS:
        cols += [s, f"{s}_lo", f"{s}_hi"]
    cols.append("ks_pvalue")
    out = pd.DataFrame(rows, columns=cols)
    out.attrs.update(column=column, n_boot=int(n_boot), ci=float(ci), seed=int(seed), interval=interval,
                     bins=bins if isinstance(bins, (str, int)) else "edges", paired=str(paired))
    return out


def alignment_summary(gaps: pd.DataFrame, by: Sequence[str] = ("model",)) -> pd.DataFrame:
    """Per group (model): the pair with the largest ``|gap|`` and the one with the
    largest ``|cohens_d|``.

    Columns: the ``by`` columns, ``n_pairs``, ``max_abs_gap``, ``max_gap_pair``,
    ``gap``, ``gap_lo``, ``gap_hi``, ``max_abs_d``, ``max_d_pair``, ``mean_abs_gap``.
    A small ``max_abs_gap`` means the model's energy distributions are aligned.
    """
    by = [by] if isinstance(by, str) else list(by)
    needed = [*by, "pair", "gap", "gap_lo", "gap_hi", "cohens_d"]
    missing = [c for c in needed if c not in gaps.columns]
    if missing:
        raise LandscapeError(f"alignment_summary needs a gap_table with columns {needed}, missing {missing}")
    rows = []
    for key, sub in _groups(gaps, by):
        absgap = sub["gap"].abs()
        absd = sub["cohens_d"].abs()
        row = dict(zip(by, key))
        row["n_pairs"] = int(len(sub))
        if absgap.notna().any():
            i = absgap.idxmax()
            row.update(max_abs_gap=float(absgap[i]), max_gap_pair=sub.at[i, "pair"], gap=float(sub.at[i, "gap"]),
                       gap_lo=float(sub.at[i, "gap_lo"]), gap_hi=float(sub.at[i, "gap_hi"]))
        else:
            row.update(max_abs_gap=np.nan, max_gap_pair=None, gap=np.nan, gap_lo=np.nan, gap_hi=np.nan)
        if absd.notna().any():
            j = absd.idxmax()
            row.update(max_abs_d=float(absd[j]), max_d_pair=sub.at[j, "pair"])
        else:
            row.update(max_abs_d=np.nan, max_d_pair=None)
        row["mean_abs_gap"] = float(absgap.mean()) if len(sub) else np.nan
        rows.append(row)
    return pd.DataFrame(rows, columns=[*by, "n_pairs", "max_abs_gap", "max_gap_pair", "gap", "gap_lo", "gap_hi",
                                       "max_abs_d", "max_d_pair", "mean_abs_gap"])


def class_breakdown(table: pd.DataFrame, column: str = "energy", class_names: Sequence[str] | None = None,
                    **kwargs) -> pd.DataFrame:
    """:func:`gap_table` per model and class (``label``); with ``class_names`` (index ->
    name, e.g. the dataset's), a ``class`` column names each label.

    For generated sources the label is whatever the engine recorded (the label of
    the image the chain started from, or the class it was conditioned on).
    """
    validate_energy_table(table, column, extra=("label",))
    out = _sorted_within_models(gap_table(table, column=column, by=("model", "label"), **kwargs), "label")
    if class_names is not None and not out.empty:
        names = list(class_names)
        out.insert(out.columns.get_loc("label") + 1, "class",
                   [names[int(v)] if 0 <= int(v) < len(names) else str(v) for v in out["label"]])
    return out


def correctness_breakdown(table: pd.DataFrame, column: str = "energy", **kwargs) -> pd.DataFrame:
    """:func:`gap_table` per model and ``correct`` (whether the model's prediction on
    *that* sample equals its label: for an adversarial sample, whether the attack failed)."""
    validate_energy_table(table, column, extra=("correct",))
    return _sorted_within_models(gap_table(table, column=column, by=("model", "correct"), **kwargs), "correct")


def _sorted_within_models(out: pd.DataFrame, key: str) -> pd.DataFrame:
    """Rows ordered by model (first appearance), then ``key`` (ascending, missing last), then pair."""
    if out.empty:
        return out
    attrs = dict(out.attrs)
    model_rank = {m: i for i, m in enumerate(pd.unique(out["model"]))}
    order = sorted(range(len(out)), key=lambda i: (model_rank[out["model"].iat[i]], pd.isna(out[key].iat[i]),
                                                   out[key].iat[i] if not pd.isna(out[key].iat[i]) else 0, i))
    out = out.iloc[order].reset_index(drop=True)
    out.attrs.update(attrs)
    return out


def trajectory_frame(energies, model: str, source: str) -> pd.DataFrame:
    """Summarise per-sample energies along the steps of an iterative source.

    ``energies``: an ``N x (steps + 1)`` array or tensor (column 0 = the start, as
    recorded by e.g. ``SGLD(record_trajectory=True).last_trajectory``). Returns the
    tidy trajectories table the figures read: ``model``, ``source``, ``step``,
    ``energy_mean``, ``energy_std`` (ddof 1; NaN for one sample) and ``n`` (finite
    values at that step). Concatenate the frames of several models and sources.
    """
    if hasattr(energies, "detach"):
        energies = energies.detach().float().cpu().numpy()
    arr = np.asarray(energies, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise LandscapeError(f"trajectory energies must be an N x (steps + 1) array with N, steps + 1 >= 1, got shape {arr.shape}")
    ok = np.isfinite(arr)
    n = ok.sum(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(n > 0, np.where(ok, arr, 0.0).sum(0) / np.maximum(n, 1), np.nan)
        sq = np.where(ok, (arr - mean) ** 2, 0.0).sum(0)
        std = np.where(n > 1, np.sqrt(sq / np.maximum(n - 1, 1)), np.nan)
    return pd.DataFrame({"model": str(model), "source": str(source), "step": np.arange(arr.shape[1]),
                         "energy_mean": mean, "energy_std": std, "n": n.astype(int)})
