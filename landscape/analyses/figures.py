"""Figures of energy landscapes (matplotlib, Agg; PNG and SVG).

Every figure function draws on a fresh :class:`matplotlib.figure.Figure` (never the
pyplot state machine, so nothing stays open and no global backend is changed),
writes ``NAME.png`` and ``NAME.svg`` atomically into ``out_dir`` and returns the
written paths ``[png, svg]``.

Colours: one colour per source in every figure. Known sources have fixed colours
(:data:`SOURCE_COLORS`, from the Okabe-Ito colour-blind-safe palette); any other
source gets a colour of :data:`FALLBACK_COLORS` chosen from a hash of its name
(:func:`source_palette` resolves clashes deterministically within a set of sources).
Pass one ``palette`` (built from every source of a report) to all figure functions
to keep unknown sources consistent across figures too.
"""

from __future__ import annotations

import logging
import math
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from ..errors import LandscapeError
from ..sources import REGISTRY, source_kind
from ..utils import atomic_path, slug
from .stats import STATISTICS, order_sources, shared_bin_edges, validate_energy_table

log = logging.getLogger(__name__)

__all__ = [
    "SOURCE_COLORS",
    "FALLBACK_COLORS",
    "ReportFigure",
    "source_color",
    "source_palette",
    "energy_label",
    "save_figure",
    "plot_energy_histograms",
    "plot_models_grid",
    "plot_trajectories",
    "plot_sample_grid",
    "plot_sampler_sensitivity",
    "plot_gap_heatmap",
    "make_figures",
    "provenance_note",
]

#: fixed colours of the registered sources (from :data:`landscape.sources.REGISTRY`)
SOURCE_COLORS = {k.name: k.color for k in REGISTRY}
#: colours for other sources (Paul Tol's muted palette and sky blue)
FALLBACK_COLORS = ("#332288", "#000000", "#44AA99", "#999933", "#882255", "#AA4499", "#117733",
                   "#CC6677", "#661100", "#6699CC")

DISPLAY_NAMES = {k.name: k.display for k in REGISTRY}

#: colours of models where a panel shows one source (Paul Tol's bright scheme, then muted)
MODEL_COLORS = ("#4477AA", "#EE6677", "#228833", "#CCBB44", "#66CCEE", "#AA3377", "#332288", "#117733",
                "#882255", "#999933")


def model_color(i: int) -> str:
    """The colour of the ``i``-th model in figures that colour by model."""
    return MODEL_COLORS[i % len(MODEL_COLORS)]

STAT_LABELS = {
    "gap": "energy gap mean E(B) - mean E(A) (energy units)",
    "cohens_d": "Cohen's d of B vs A (pooled SD)",
    "wasserstein": "Wasserstein-1 distance (energy units)",
    "ks_stat": "Kolmogorov-Smirnov statistic",
    "js_divergence": "Jensen-Shannon divergence (base 2, shared bins)",
    "auroc": "AUROC of telling B from A by energy, P(E_B > E_A)",
    "overlap": "histogram overlap, sum of min(p, q)",
}

_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "<", ">")
_LINESTYLES = ("-", "--", "-.", ":")
_RC = {"svg.hashsalt": "landscape", "svg.fonttype": "path", "pdf.fonttype": 42, "font.size": 10, "axes.titlesize": 11,
       "axes.labelsize": 10, "legend.fontsize": 9, "figure.titlesize": 12}


@dataclass(frozen=True)
class ReportFigure:
    """A written figure: its file stem, a caption, and its files (PNG first)."""

    name: str
    caption: str
    paths: tuple[Path, ...] = field(default_factory=tuple)


# -- colours and labels ----------------------------------------------------------------

def source_color(source: str) -> str:
    """The colour of one source: fixed for registered sources, a hash of the name otherwise
    (:func:`source_palette` also gives a spec such as ``pgd:steps=20`` its kind's colour)."""
    source = str(source)
    if source in SOURCE_COLORS:
        return SOURCE_COLORS[source]
    return FALLBACK_COLORS[zlib.crc32(source.encode("utf-8")) % len(FALLBACK_COLORS)]


def source_palette(sources: Iterable) -> dict[str, str]:
    """Colours for a set of sources: known ones fixed, unknown ones by name hash with
    clashes among them resolved by taking the next free fallback colour (names in
    sorted order), so the result depends only on the set of names."""
    names = order_sources(sources)
    palette = {s: SOURCE_COLORS[s] for s in names if s in SOURCE_COLORS}
    for s in names:  # a spec of a registered source takes its colour unless that colour is taken
        kind = source_kind(s)
        if s not in palette and kind is not None and kind.color not in palette.values():
            palette[s] = kind.color
    used: set[str] = set(palette.values())
    for s in sorted(s for s in names if s not in palette):
        slot = zlib.crc32(s.encode("utf-8")) % len(FALLBACK_COLORS)
        for step in range(len(FALLBACK_COLORS)):
            c = FALLBACK_COLORS[(slot + step) % len(FALLBACK_COLORS)]
            if c not in used:
                break
        else:
            c = FALLBACK_COLORS[slot]
        used.add(c)
        palette[s] = c
    return {s: palette[s] for s in names}


def _palette(sources, palette: Mapping[str, str] | None) -> dict[str, str]:
    base = source_palette(sources)
    if palette:
        base.update({k: v for k, v in palette.items() if k in base})
    return base


def display_name(source: str) -> str:
    return DISPLAY_NAMES.get(str(source), str(source))


def energy_label(column: str = "energy") -> str:
    """Axis label (with the direction of 'likely') for an energy column."""
    if column == "energy":
        return "energy E(x) (lower = more likely)"
    if column == "conditional_energy":
        return "conditional energy E(x, y) (lower = more likely)"
    return f"{column} (lower = more likely)"


def _new_figure(width: float, height: float):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def save_figure(fig, out_dir, name: str, formats: Sequence[str] = ("png", "svg", "pdf"), dpi: int = 150) -> list[Path]:
    """Write ``fig`` as ``out_dir/NAME.<format>`` for each format, atomically; returns the paths
    (PNG for the HTML page, SVG, and PDF with its text as editable TrueType text)."""
    import matplotlib

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    try:
        with matplotlib.rc_context(_RC):
            for fmt in formats:
                path = out_dir / f"{name}.{fmt}"
                meta = {"Date": None} if fmt == "svg" else ({"CreationDate": None} if fmt == "pdf" else None)
                with atomic_path(path) as tmp:
                    fig.savefig(tmp, format=fmt, dpi=dpi, metadata=meta)
                paths.append(path)
    finally:
        fig.clear()
    return paths


# -- histograms -------------------------------------------------------------------------

def _values(sub: pd.DataFrame, column: str) -> np.ndarray:
    v = np.asarray(sub[column], dtype=np.float64)
    return v[np.isfinite(v)]


def _per_group(table: pd.DataFrame, by: list[str], column: str) -> list[np.ndarray]:
    return [_values(g, column) for _, g in table.groupby(by, sort=False, observed=True)]


def _draw_hist(ax, table: pd.DataFrame, column: str, edges: np.ndarray, palette: Mapping[str, str],
               legend: bool = True, kde: bool = False) -> None:
    src = table["source"].astype(str)
    for s in order_sources(src.unique()):
        vals = _values(table[src == s], column)
        if vals.size == 0:
            continue
        c = palette[s]
        label = f"{display_name(s)} (n={vals.size}, mean {vals.mean():.2f})"
        ax.hist(vals, bins=edges, density=True, histtype="stepfilled", color=c, alpha=0.28, linewidth=0)
        ax.hist(vals, bins=edges, density=True, histtype="step", color=c, linewidth=1.4, label=label)
        ax.axvline(vals.mean(), color=c, linestyle="--", linewidth=1.0)
        if kde and vals.size > 1 and float(vals.std()) > 0:
            from scipy.stats import gaussian_kde

            grid = np.linspace(edges[0], edges[-1], 256)
            ax.plot(grid, gaussian_kde(vals)(grid), color=c, linewidth=1.0, alpha=0.9)  # Scott's bandwidth
    ax.set_ylabel("density")
    ax.grid(alpha=0.25, linewidth=0.5)
    if legend:
        ax.legend(title="source (dashed: mean)", frameon=False, loc="upper left", bbox_to_anchor=(1.01, 1.0))


def plot_energy_histograms(energies: pd.DataFrame, model: str, out_dir, *, column: str = "energy",
                           palette: Mapping[str, str] | None = None, bins="fd", name: str | None = None,
                           edges: np.ndarray | None = None, kde: bool = False) -> list[Path]:
    """One model: overlaid density histograms of each source's energies on shared bins
    (the pooled range of that model's sources, :func:`shared_bin_edges` rule); ``kde``
    adds a Gaussian kernel density estimate (Scott's bandwidth) of each source."""
    validate_energy_table(energies, column)
    sub = energies[energies["model"].astype(str) == str(model)]
    if sub.empty:
        raise LandscapeError(f"model {model!r} is not in the energy table (models: {sorted(energies['model'].astype(str).unique())})")
    pal = _palette(sub["source"].astype(str).unique(), palette)
    if edges is None:
        edges = shared_bin_edges(*_per_group(sub, ["source"], column), bins=bins)
    fig = _new_figure(9.0, 4.2)
    ax = fig.add_subplot()
    _draw_hist(ax, sub, column, edges, pal, kde=kde)
    ax.set_xlabel(energy_label(column))
    ax.set_title(f"{model}: {energy_label(column).split(' (')[0]} of each source")
    return save_figure(fig, out_dir, name or f"hist_{slug(model)}")


def plot_models_grid(energies: pd.DataFrame, out_dir, *, column: str = "energy",
                     palette: Mapping[str, str] | None = None, bins="fd", name: str = "energy_grid",
                     ncols: int | None = None, kde: bool = False) -> list[Path]:
    """All models side by side, one panel each; each panel has its own x axis and bins (chosen
    for that model's sources by the Freedman-Diaconis rule): energy scales differ between
    models by orders of magnitude, and on one shared axis the adversarially trained
    models would be slivers. Compare models across panels with the scale-free statistics
    (Cohen's d, AUROC) of the gap table."""
    validate_energy_table(energies, column)
    models = list(pd.unique(energies["model"].astype(str)))
    sources = order_sources(energies["source"].astype(str).unique())
    pal = _palette(sources, palette)
    ncols = ncols or min(3, len(models))
    nrows = math.ceil(len(models) / ncols)
    fig = _new_figure(4.2 * ncols, 3.0 * nrows + 0.8)
    axes = fig.subplots(nrows, ncols, sharex=False, squeeze=False)
    for i, ax in enumerate(axes.flat):
        if i >= len(models):
            ax.set_axis_off()
            continue
        sub = energies[energies["model"].astype(str) == models[i]]
        edges = shared_bin_edges(*_per_group(sub, ["source"], column), bins=bins)
        _draw_hist(ax, sub, column, edges, pal, legend=False, kde=kde)
        means = ", ".join(f"{display_name(s)} {_values(sub[sub['source'].astype(str) == s], column).mean():.1f}"
                          for s in order_sources(sub["source"].astype(str).unique())
                          if _values(sub[sub["source"].astype(str) == s], column).size)
        ax.set_title(f"{models[i]}\nmeans: {means}", fontsize=9)
        if i // ncols == nrows - 1 or i + ncols >= len(models):
            ax.set_xlabel(energy_label(column))
            ax.tick_params(labelbottom=True)
        if i % ncols:
            ax.set_ylabel("")
    from matplotlib.patches import Patch

    handles = [Patch(facecolor=pal[s], edgecolor=pal[s], alpha=0.6, label=display_name(s)) for s in sources]
    fig.legend(handles=handles, loc="outside lower center", ncols=min(len(handles), 6), frameon=False,
               title="source (dashed lines: means)")
    fig.suptitle(f"{energy_label(column).split(' (')[0]} of every model (each on its own axis)")
    return save_figure(fig, out_dir, name)


# -- trajectories -------------------------------------------------------------------------

def plot_trajectories(trajectories: pd.DataFrame, out_dir, *, sources: Sequence[str] | None = None,
                      energies: pd.DataFrame | None = None,
                      column: str = "energy", name: str = "trajectories") -> list[Path]:
    """Mean energy along the steps of iterative sources (PGD, SGLD...), one panel per
    source, one line per model with a band of +-1 std (when ``energy_std`` is given).

    Each model has its own colour (:data:`MODEL_COLORS`, the same in every panel) and
    marker; the panel says the source. With ``energies``, each model's clean mean is
    drawn as a dotted line of the model's colour for reference.
    """
    needed = ["model", "source", "step", "energy_mean"]
    if not isinstance(trajectories, pd.DataFrame):
        raise LandscapeError(f"trajectories must be a pandas DataFrame, got {type(trajectories).__name__}")
    missing = [c for c in needed if c not in trajectories.columns]
    if missing:
        raise LandscapeError(f"trajectories must have columns {needed} (and optionally energy_std), missing {missing}")
    present = order_sources(trajectories["source"].astype(str).unique())
    sources = present if sources is None else [str(s) for s in sources]
    absent = [s for s in sources if s not in present]
    if absent or not sources:
        raise LandscapeError(f"no trajectories for sources {absent or sources} (have {present})")
    models = list(pd.unique(trajectories["model"].astype(str)))
    clean_means = {}
    if energies is not None and "clean" in set(energies["source"].astype(str)):
        e = energies[energies["source"].astype(str) == "clean"]
        clean_means = {str(m): float(np.nanmean(np.asarray(g[column], float))) for m, g in e.groupby("model", sort=False)}
    fig, cells = _step_panels(trajectories, sources, models)
    for ax, s, lines in cells:
        for i, m, tm in lines:
            c = model_color(i)
            x = np.asarray(tm["step"], float)
            y = np.asarray(tm["energy_mean"], float)
            every = max(1, len(x) // 10)
            ax.plot(x, y, color=c, marker=_MARKERS[i % len(_MARKERS)], markevery=every, markersize=4,
                    linestyle=_LINESTYLES[i % len(_LINESTYLES)], linewidth=1.5, label=m)
            if "energy_std" in tm.columns:
                sd = np.asarray(tm["energy_std"], float)
                ax.fill_between(x, y - sd, y + sd, color=c, alpha=0.10, linewidth=0)
            if m in clean_means:
                ref = c
                ax.axhline(clean_means[m], color=ref, linestyle=":", linewidth=1.0)
                ax.annotate(f"{m} clean", xy=(0.995, clean_means[m]), xycoords=("axes fraction", "data"),
                            ha="right", va="bottom", fontsize=7, color=ref)
        ax.set_xlabel(f"{display_name(s)} step (0 = start)")
        ax.set_ylabel(f"mean {energy_label(column)}")
        title = f"{display_name(s)}: mean energy along the steps (band: +-1 std)"
        ax.set_title(title + ("\ndotted: clean mean of each model" if clean_means else ""), fontsize=10)
        _step_legend(ax, len(models))
    return save_figure(fig, out_dir, name)


def _step_panels(table: pd.DataFrame, panels: Sequence[str], models: Sequence[str], **subplot_kw):
    """A figure with one panel per ``source`` value in ``panels``; returns it and, per
    panel, ``(ax, panel, [(i, model, rows sorted by step), ...])`` for the models present."""
    fig = _new_figure(5.6 * len(panels), 4.4 + 0.25 * math.ceil(len(models) / 4))
    axes = fig.subplots(1, len(panels), squeeze=False, **subplot_kw)[0]
    cells = []
    for ax, p in zip(axes, panels):
        t = table[table["source"].astype(str) == p]
        rows = [(i, m, t[t["model"].astype(str) == m].sort_values("step")) for i, m in enumerate(models)]
        cells.append((ax, p, [r for r in rows if not r[2].empty]))
    return fig, cells


def _step_legend(ax, n_models: int) -> None:
    ax.grid(alpha=0.25, linewidth=0.5)
    ax.legend(title="model", frameon=False, fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.14),
              ncols=min(n_models, 4))


def plot_sampler_sensitivity(sensitivity: pd.DataFrame, out_dir, *, name: str = "sampler_sensitivity") -> list[Path]:
    """The clean-generated gap along SGLD chains: one panel per initialisation (from
    noise, from the replay buffer), one line per model, y = mean E(chain at step t) -
    mean E(clean). A gap that closes as the chains grow is the sampler's, not the model's.

    ``sensitivity``: the table of :func:`landscape.analyses.runner.sampler_sensitivity`
    (trajectory columns plus ``clean_mean``).
    """
    needed = ["model", "source", "step", "energy_mean", "clean_mean"]
    if not isinstance(sensitivity, pd.DataFrame) or any(c not in sensitivity.columns for c in needed):
        raise LandscapeError(f"sensitivity must be a DataFrame with columns {needed}")
    inits = list(pd.unique(sensitivity["source"].astype(str)))
    models = list(pd.unique(sensitivity["model"].astype(str)))
    colors = {m: FALLBACK_COLORS[i % len(FALLBACK_COLORS)] for i, m in enumerate(models)}
    fig, cells = _step_panels(sensitivity, inits, models, sharey=True)
    for ax, init, lines in cells:
        for i, m, tm in lines:
            x = np.asarray(tm["step"], float)
            gap = np.asarray(tm["energy_mean"], float) - np.asarray(tm["clean_mean"], float)
            ax.plot(x, gap, color=colors[m], marker=_MARKERS[i % len(_MARKERS)], markevery=max(1, len(x) // 8),
                    markersize=4, linestyle=_LINESTYLES[i % len(_LINESTYLES)], linewidth=1.5, label=m)
        ax.axhline(0.0, color="black", linewidth=0.8, linestyle=":")
        ax.set_xlabel("SGLD steps (JEM's step 1, noise 0.01)")
        ax.set_ylabel("gap: mean E(chain) - mean E(clean)")
        ax.set_title(f"chains {init}: clean-generated gap vs chain length", fontsize=10)
        _step_legend(ax, len(models))
    return save_figure(fig, out_dir, name)


# -- sample grids ----------------------------------------------------------------------------

def _to_numpy_images(samples) -> np.ndarray:
    if hasattr(samples, "detach"):
        samples = samples.detach().float().cpu().numpy()
    arr = np.asarray(samples, dtype=np.float64)
    if arr.ndim == 3:
        arr = arr[:, None]
    if arr.ndim != 4 or arr.shape[1] not in (1, 3) or arr.shape[0] == 0:
        raise LandscapeError(f"samples must be a non-empty N x C x H x W array with C = 1 or 3, got shape {arr.shape}")
    if not np.isfinite(arr).all() or arr.min() < -1e-4 or arr.max() > 1 + 1e-4:
        raise LandscapeError(f"sample pixels must be finite and lie in [0, 1], got values in [{np.nanmin(arr):.4g}, {np.nanmax(arr):.4g}]")
    return np.clip(arr, 0.0, 1.0)


def plot_sample_grid(samples, out_dir, *, name: str = "samples", title: str = "samples",
                     nrow: int | None = None, max_samples: int = 64, pad: int = 1) -> list[Path]:
    """A grid of images (``N x C x H x W`` in [0, 1], grayscale or RGB; a tensor or an array).

    The first ``max_samples`` are shown, ``nrow`` per row (default: a square grid),
    separated by ``pad`` white pixels, without interpolation.
    """
    arr = _to_numpy_images(samples)[:max_samples]
    n, c, h, w = arr.shape
    ncol = nrow or math.ceil(math.sqrt(n))
    rows = math.ceil(n / ncol)
    mosaic = np.ones((rows * (h + pad) + pad, ncol * (w + pad) + pad, c))
    for k in range(n):
        r, q = divmod(k, ncol)
        y0, x0 = pad + r * (h + pad), pad + q * (w + pad)
        mosaic[y0:y0 + h, x0:x0 + w] = arr[k].transpose(1, 2, 0)
    side = min(8.0, max(3.0, 0.45 * ncol + 1))
    fig = _new_figure(side, side * mosaic.shape[0] / mosaic.shape[1] + 0.5)
    ax = fig.add_subplot()
    if c == 1:
        ax.imshow(mosaic[..., 0], cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
    else:
        ax.imshow(mosaic, interpolation="nearest")
    ax.set_axis_off()
    ax.set_title(f"{title} ({n} shown)")
    return save_figure(fig, out_dir, name)


# -- heatmap ----------------------------------------------------------------------------------

def plot_gap_heatmap(gaps: pd.DataFrame, out_dir, *, statistic: str = "gap", row: str = "model",
                     name: str | None = None) -> list[Path]:
    """A heatmap of one statistic of a :func:`~landscape.analyses.stats.gap_table`:
    ``row`` values (models) x source pairs, each cell annotated with the value and its
    bootstrap interval. Signed statistics use a diverging map centred on their
    neutral value (0, or 0.5 for AUROC)."""
    if statistic not in STATISTICS:
        raise LandscapeError(f"statistic must be one of {', '.join(STATISTICS)}, got {statistic!r}")
    missing = [c for c in (row, "source_a", "source_b", statistic) if c not in gaps.columns]
    if missing:
        raise LandscapeError(f"plot_gap_heatmap needs a gap_table with columns {row}, source_a, source_b, {statistic}; missing {missing}")
    if gaps.empty:
        raise LandscapeError("the gap table is empty: nothing to plot")
    rows = list(pd.unique(gaps[row].astype(str)))
    pairs = list(dict.fromkeys(zip(gaps["source_a"].astype(str), gaps["source_b"].astype(str))))
    order = {p: i for i, p in enumerate((a, b) for a, b in _pair_order(pairs))}
    pairs.sort(key=order.get)
    val = np.full((len(rows), len(pairs)), np.nan)
    lo = np.full_like(val, np.nan)
    hi = np.full_like(val, np.nan)
    for rec in gaps.itertuples(index=False):
        r = rows.index(str(getattr(rec, row)))
        p = pairs.index((str(rec.source_a), str(rec.source_b)))
        val[r, p] = getattr(rec, statistic)
        lo[r, p] = getattr(rec, f"{statistic}_lo", np.nan)
        hi[r, p] = getattr(rec, f"{statistic}_hi", np.nan)
    from matplotlib.colors import TwoSlopeNorm, Normalize

    finite = val[np.isfinite(val)]
    if statistic in ("gap", "cohens_d", "auroc"):
        centre = 0.5 if statistic == "auroc" else 0.0
        span = float(np.max(np.abs(finite - centre))) if finite.size else 1.0
        span = span or 1.0
        norm = TwoSlopeNorm(vcenter=centre, vmin=centre - span, vmax=centre + span)
        cmap = "RdBu_r"
    else:
        top = float(finite.max()) if finite.size else 1.0
        norm = Normalize(vmin=0.0, vmax=top if top > 0 else 1.0)
        cmap = "viridis"
    import matplotlib

    cmap = matplotlib.colormaps[cmap].with_extremes(bad="#DDDDDD")
    fig = _new_figure(max(5.0, 1.9 * len(pairs) + 2.5), max(2.6, 0.75 * len(rows) + 1.8))
    ax = fig.add_subplot()
    im = ax.imshow(np.ma.masked_invalid(val), cmap=cmap, norm=norm, aspect="auto")
    ax.set_xticks(range(len(pairs)), [f"{a} vs {b}" for a, b in pairs], rotation=20, ha="right")
    ax.set_yticks(range(len(rows)), rows)
    ax.set_xlabel("source pair A vs B")
    ax.set_ylabel(row)
    for r in range(len(rows)):
        for p in range(len(pairs)):
            if not np.isfinite(val[r, p]):
                ax.text(p, r, "n/a", ha="center", va="center", fontsize=8, color="#444444")
                continue
            text = f"{val[r, p]:.2f}"
            if np.isfinite(lo[r, p]) and np.isfinite(hi[r, p]):
                text += f"\n[{lo[r, p]:.2f}, {hi[r, p]:.2f}]"
            rgba = im.cmap(norm(val[r, p]))
            lum = 0.299 * rgba[0] + 0.587 * rgba[1] + 0.114 * rgba[2]
            ax.text(p, r, text, ha="center", va="center", fontsize=8, color="black" if lum > 0.5 else "white")
    cbar = fig.colorbar(im, ax=ax)
    cbar.set_label(STAT_LABELS[statistic], fontsize=8)
    ax.set_title(f"{STAT_LABELS[statistic].split(' (')[0]} per model and source pair\n(95% bootstrap interval in brackets)")
    return save_figure(fig, out_dir, name or f"heatmap_{statistic}")


def _pair_order(pairs):
    names = order_sources([s for p in pairs for s in p])
    rank = {s: i for i, s in enumerate(names)}
    return sorted(pairs, key=lambda p: (rank[p[0]], rank[p[1]]))


# -- the standard set ---------------------------------------------------------------------------

def make_figures(out_dir, energies: pd.DataFrame, gaps: pd.DataFrame | None = None,
                 trajectories: pd.DataFrame | None = None, samples: Mapping[str, object] | None = None, *,
                 column: str = "energy", palette: Mapping[str, str] | None = None, bins="fd",
                 heatmap_statistics: Sequence[str] = ("gap",),
                 sensitivity: pd.DataFrame | None = None, kde: bool = False) -> list[ReportFigure]:
    """Every standard figure of a report, written into ``out_dir``.

    In order: the all-models grid, one histogram per model, a gap heatmap per
    statistic in ``heatmap_statistics`` (when ``gaps`` is given), the trajectories
    (when given), the sampler sensitivity panel (when ``sensitivity`` is given), one
    sample grid per entry of ``samples`` (model -> ``N x C x H x W`` in [0, 1], or
    ``(what, images)`` to say what the images are). One palette, built from every
    source in ``energies`` and ``trajectories``, is used throughout.
    """
    validate_energy_table(energies, column)
    all_sources = list(energies["source"].astype(str).unique())
    if trajectories is not None:
        all_sources += list(trajectories["source"].astype(str).unique())
    pal = _palette(all_sources, palette)
    figs: list[ReportFigure] = []
    used: set[str] = set()

    def unique(stem: str) -> str:
        out, k = stem, 2
        while out in used:
            out, k = f"{stem}-{k}", k + 1
        used.add(out)
        return out

    label = energy_label(column).split(" (")[0]
    note = provenance_note(energies)
    stem = unique("energy_grid")
    figs.append(ReportFigure(stem, f"{label} of every source for every model (each on its own axis).",
                             tuple(plot_models_grid(energies, out_dir, column=column, palette=pal, bins=bins, name=stem, kde=kde))))
    for m in pd.unique(energies["model"].astype(str)):
        stem = unique(f"hist_{slug(m)}")
        figs.append(ReportFigure(stem, f"{m}: {label} of each source (densities on shared bins; dashed: means).",
                                 tuple(plot_energy_histograms(energies, m, out_dir, column=column, palette=pal,
                                                              bins=bins, name=stem, kde=kde))))
    if gaps is not None and not gaps.empty:
        for s in heatmap_statistics:
            stem = unique(f"heatmap_{s}")
            figs.append(ReportFigure(stem, f"{STAT_LABELS[s]} for each model and source pair A vs B.",
                                     tuple(plot_gap_heatmap(gaps, out_dir, statistic=s, name=stem))))
    if trajectories is not None and not trajectories.empty:
        stem = unique("trajectories")
        figs.append(ReportFigure(stem, "Mean energy along the steps of the iterative sources (band: +-1 std).",
                                 tuple(plot_trajectories(trajectories, out_dir, energies=energies,
                                                         column=column, name=stem))))
    if sensitivity is not None and not sensitivity.empty:
        stem = unique("sampler_sensitivity")
        figs.append(ReportFigure(stem, "How much of the clean-generated gap is the sampler: the gap along SGLD chains "
                                       "started from uniform noise and from each model's replay buffer.",
                                 tuple(plot_sampler_sensitivity(sensitivity, out_dir, name=stem))))
    for m, x in (samples or {}).items():
        what = "SGLD samples"
        if isinstance(x, tuple):
            what, x = x
        stem = unique(f"samples_{slug(m)}")
        figs.append(ReportFigure(stem, f"{m}: {what}.",
                                 tuple(plot_sample_grid(x, out_dir, name=stem, title=f"{m}: {what.split(' (')[0]}"))))
    if note:  # every caption says what made the samples
        figs = [ReportFigure(f.name, f"{f.caption} {note}", f.paths) for f in figs]
    return figs


def provenance_note(energies: pd.DataFrame) -> str:
    """One sentence of the settings behind an energy table (from ``attrs["landscape"]``, as
    the engine records them): each source's kind and settings (radii also as k/255),
    precision, seed and n; empty when the table carries none."""
    models = (energies.attrs.get("landscape") or {}).get("models") or {}
    if not models:
        return ""
    first = next(iter(models.values()))
    parts = []
    for name, cfg in first.get("sources", {}).items():
        kind = cfg.get("kind", name)
        if kind == "clean":
            continue
        bits = []
        if "eps" in cfg:
            bits.append(f"{cfg.get('norm', '')} eps {cfg['eps']:.4g} ({cfg.get('eps_255', cfg['eps'] * 255):.3g}/255)".strip())
        for key in ("step", "steps", "step_size", "noise", "init", "loss", "restarts", "dataset", "sigma"):
            if key in ("step_size", "noise") and cfg.get("steps") == 0:
                continue  # no chain was run
            if key in cfg and cfg[key] is not None and not (key == "restarts" and cfg[key] == 1):
                value = cfg[key]
                bits.append(f"{key} {value:.4g}" if isinstance(value, float) else f"{key} {value}")
        parts.append(f"{name} = {display_name(kind)}" + (f" ({', '.join(bits)})" if bits else ""))
    tail = f"{first.get('precision', '?')}, seed {first.get('seed', '?')}, n {first.get('n', '?')} per model"
    return ("Sources: " + "; ".join(parts) + f"; {tail}.") if parts else f"Settings: {tail}."
