"""The report writer: tables and figures -> one folder a reader can open offline.

:func:`write_report` writes, into ``out_dir``:

* ``index.html`` -- one self-contained page (inline CSS, figures embedded as base64
  PNG data URIs, every table as an HTML table) that opens offline in a browser;
* ``index.md`` -- the same content in Markdown, figures linked as ``figures/NAME.png``;
* ``summary.json`` -- the settings and every table, machine-readable (NaN -> null);
* ``energies.parquet`` -- the energy table; ``gaps.csv`` -- the gap table;
* ``figures/NAME.png`` and ``figures/NAME.svg``.

Every file is written atomically, and the whole folder is built in a hidden
staging folder beside ``out_dir`` and moved into place only when complete: an
error midway leaves ``out_dir`` as it was (absent, or the previous report) and no
staging folder behind. An existing ``out_dir`` is replaced only when it is empty or
holds a previous landscape report (its ``summary.json`` says so), never a folder
of other files.

:func:`build_report` is the one-call path: statistics, breakdowns, figures, report.
"""

from __future__ import annotations

import base64
import html
import json
import logging
import math
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from .._version import __version__
from ..errors import LandscapeError
from ..utils import atomic_path, atomic_write_text, umask
from .figures import ReportFigure, make_figures
from .stats import DEFINITIONS, STATISTICS, alignment_summary, describe, order_sources, validate_energy_table

log = logging.getLogger(__name__)

__all__ = ["REPORT_FORMAT", "REPORT_FILES", "write_report", "write_result", "build_report", "is_report_dir",
           "check_report_target", "clean_stale_staging"]

REPORT_FORMAT = "landscape-report"
REPORT_FORMAT_VERSION = 1
#: the files every report folder holds (besides ``figures/``)
REPORT_FILES = ("index.html", "index.md", "summary.json", "energies.parquet", "gaps.csv")

_HEADERS = {
    "n_a": "n A", "n_b": "n B", "mean_a": "mean A", "mean_b": "mean B", "gap": "gap (B - A)",
    "cohens_d": "Cohen's d", "wasserstein": "W1", "ks_stat": "KS", "ks_pvalue": "KS p",
    "js_divergence": "JS (base 2)", "auroc": "AUROC", "overlap": "overlap", "max_abs_gap": "max |gap|",
    "max_gap_pair": "pair of max |gap|", "max_abs_d": "max |d|", "max_d_pair": "pair of max |d|",
    "mean_abs_gap": "mean |gap|", "n_pairs": "pairs", "energy_mean": "mean E", "energy_std": "std E",
}

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;margin:0 auto;
max-width:1200px;padding:1.5rem;color:#1d1d1f;line-height:1.45}
h1{font-size:1.6rem;margin-bottom:.2rem}h2{font-size:1.25rem;margin-top:2rem;border-bottom:1px solid #ddd;
padding-bottom:.2rem}h3{font-size:1.05rem}
.lead{color:#444;margin-top:0}
.table-wrap{overflow-x:auto;margin:.6rem 0 1.2rem}
table{border-collapse:collapse;font-size:.85rem;font-variant-numeric:tabular-nums}
th,td{border:1px solid #d0d0d0;padding:.25rem .5rem;text-align:right;white-space:nowrap}
th{background:#f2f2f5;position:sticky;top:0}
td.text,th.text{text-align:left}
tr:nth-child(even) td{background:#fafafa}
caption{caption-side:top;text-align:left;font-weight:600;padding:.3rem 0}
figure{margin:1rem 0 2rem}figure img{max-width:100%;height:auto;border:1px solid #eee}
figcaption{font-size:.9rem;color:#333}
dl.defs dt{font-weight:600;margin-top:.4rem}dl.defs dd{margin-left:1.2rem}
.muted{color:#666;font-size:.85rem}
details.settings summary{cursor:pointer}details.settings summary h2{display:inline-block;border:0}
"""


# -- value formatting ------------------------------------------------------------------------

def _fmt(value: Any, column: str = "") -> str:
    if value is None:
        return "n/a"
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        v = float(value)
        if math.isnan(v):
            return "n/a"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        if column.endswith("pvalue"):
            return f"{v:.2e}" if v < 1e-3 else f"{v:.3f}"
        if v != 0 and (abs(v) >= 1e5 or abs(v) < 1e-3):
            return f"{v:.3g}"
        return f"{v:.3f}"
    return str(value)


_EPS_KEY = re.compile(r"(^|[_.\-\s])(eps|epsilon)($|[_.\-\s])", re.IGNORECASE)


def _setting_text(key: str, value: Any) -> str | None:
    """Pixel-unit values: eps keys say so, and fractions k/255 are shown as such."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        return None
    v = float(value)
    k = v * 255.0
    frac = f" = {int(round(k))}/255" if 0 < v < 1 and abs(k - round(k)) < 1e-4 else ""
    if _EPS_KEY.search(str(key)):
        return f"{v:.6g}{frac} (pixel units, [0, 1] scale)"
    return f"{_fmt(value)}{frac}" if frac else None


def _flatten_settings(settings: Mapping, prefix: str = "") -> list[tuple[str, str]]:
    rows = []
    for key, value in settings.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            rows += _flatten_settings(value, prefix=f"{name}.")
            continue
        text = _setting_text(str(key), value)
        if text is not None:
            rows.append((name, text))
        elif isinstance(value, (list, tuple)) and all(not isinstance(v, (Mapping, list, tuple)) for v in value):
            rows.append((name, ", ".join(_fmt(v) for v in value)))
        elif isinstance(value, (list, tuple, Mapping)):
            rows.append((name, json.dumps(_jsonable(value))))
        else:
            rows.append((name, _fmt(value)))
    return rows


def _display_frame(df: pd.DataFrame) -> tuple[list[str], list[list[str]], list[bool]]:
    """Headers, string cells and which columns are text, with ``x``/``x_lo``/``x_hi``
    merged into one ``x [lo, hi]`` column; ``source_a``/``source_b``/``column`` are
    dropped when a ``pair`` column names them."""
    cols = list(df.columns)
    drop = set()
    if "pair" in cols:
        drop |= {"source_a", "source_b", "column"}
    merged = {c for c in cols if f"{c}_lo" in cols and f"{c}_hi" in cols}
    drop |= {f"{c}_lo" for c in merged} | {f"{c}_hi" for c in merged}
    shown = [c for c in cols if c not in drop]
    headers, is_text = [], []
    for c in shown:
        label = _HEADERS.get(c, c)
        headers.append(f"{label} [95% CI]" if c in merged and c in STATISTICS else label)
        dtype = df[c].dtype
        is_text.append(not (pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype)))
    rows = []
    for rec in df.to_dict("records"):
        row = []
        for c in shown:
            cell = _fmt(rec[c], c)
            if c in merged:
                lo, hi = rec[f"{c}_lo"], rec[f"{c}_hi"]
                if lo is not None and hi is not None and not (pd.isna(lo) or pd.isna(hi)):
                    cell += f" [{_fmt(lo, c)}, {_fmt(hi, c)}]"
            row.append(cell)
        rows.append(row)
    return headers, rows, is_text


def _html_table(df: pd.DataFrame, caption: str = "") -> str:
    headers, rows, is_text = _display_frame(df)
    cls = lambda t: ' class="text"' if t else ""  # noqa: E731
    out = ['<div class="table-wrap"><table>']
    if caption:
        out.append(f"<caption>{html.escape(caption)}</caption>")
    out.append("<thead><tr>" + "".join(f"<th{cls(t)}>{html.escape(h)}</th>" for h, t in zip(headers, is_text))
               + "</tr></thead><tbody>")
    for row in rows:
        out.append("<tr>" + "".join(f"<td{cls(t)}>{html.escape(v)}</td>" for v, t in zip(row, is_text)) + "</tr>")
    if not rows:
        out.append(f'<tr><td colspan="{max(1, len(headers))}" class="text">(no rows)</td></tr>')
    out.append("</tbody></table></div>")
    return "\n".join(out)


def _md_cell(text: str) -> str:
    return str(text).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def _md_table(headers: Sequence[str], rows: Sequence[Sequence[str]], is_text: Sequence[bool] | None = None) -> str:
    if not headers:
        return "(empty table)\n"
    is_text = is_text or [True] * len(headers)
    lines = ["| " + " | ".join(_md_cell(h) for h in headers) + " |",
             "|" + "|".join(":---" if t else "---:" for t in is_text) + "|"]
    lines += ["| " + " | ".join(_md_cell(v) for v in row) + " |" for row in rows]
    if not rows:
        lines.append("| " + " | ".join(["(no rows)"] + [""] * (len(headers) - 1)) + " |")
    return "\n".join(lines) + "\n"


def _md_frame(df: pd.DataFrame) -> str:
    headers, rows, is_text = _display_frame(df)
    return _md_table(headers, rows, is_text)


# -- JSON ------------------------------------------------------------------------------------

def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return [_jsonable(v) for v in value.tolist()]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        v = float(value)
        return v if math.isfinite(v) else None
    if value is None or isinstance(value, str):
        return value
    if value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, Path):
        return str(value)
    return str(value)


def _records(df: pd.DataFrame) -> list[dict]:
    return [_jsonable(r) for r in df.to_dict("records")]


# -- inputs ------------------------------------------------------------------------------------

def _normalise_figures(figures) -> list[ReportFigure]:
    if figures is None:
        return []
    if isinstance(figures, Mapping):
        figures = [ReportFigure(str(k), str(k), tuple(Path(p) for p in v)) for k, v in figures.items()]
    out, seen = [], set()
    for f in figures:
        if not isinstance(f, ReportFigure):
            raise LandscapeError(f"figures must be ReportFigure objects or a mapping name -> paths, got {type(f).__name__}")
        paths = [Path(p) for p in f.paths]
        pngs = [p for p in paths if p.suffix.lower() == ".png"]
        if not pngs:
            raise LandscapeError(f"figure {f.name!r} needs a .png file to embed, got {[str(p) for p in paths]}")
        missing = [str(p) for p in paths if not p.is_file()]
        if missing:
            raise LandscapeError(f"figure {f.name!r}: files not found: {missing}")
        if f.name in seen or not f.name or "/" in f.name or f.name.startswith("."):
            raise LandscapeError(f"figure names must be unique plain file stems, got {f.name!r}")
        seen.add(f.name)
        out.append(ReportFigure(f.name, f.caption, tuple(paths)))
    return out


def is_report_dir(path) -> bool:
    """Whether ``path`` is a folder written by :func:`write_report`."""
    summary = Path(path) / "summary.json"
    try:
        return json.loads(summary.read_text(encoding="utf-8")).get("format") == REPORT_FORMAT
    except (OSError, ValueError, AttributeError):
        return False


#: staging and backup folders older than this are left-overs of a killed run (a live
#: run publishes within seconds of creating them) and are removed by the next run
STALE_STAGING_S = 15 * 60


def clean_stale_staging(out_dir: str | os.PathLike, max_age_s: float = STALE_STAGING_S) -> list[Path]:
    """Remove the hidden staging (``.NAME.*.tmp``) and backup (``.NAME.old-*``) folders that a
    killed run left beside ``out_dir``; returns what was removed."""
    import time

    out_dir = Path(out_dir).absolute()
    parent = out_dir.parent
    if not parent.is_dir():
        return []
    removed = []
    now = time.time()
    for pattern in (f".{out_dir.name}.*.tmp", f".{out_dir.name}.old-*"):
        for p in parent.glob(pattern):
            try:
                if p.is_dir() and not p.is_symlink() and now - p.stat().st_mtime > max_age_s:
                    shutil.rmtree(p)
                    removed.append(p)
            except OSError as exc:
                log.warning("could not remove the stale staging folder %s (%s)", p, exc)
    for p in removed:
        log.info("removed %s, left behind by an interrupted report", p)
    return removed


def check_report_target(out_dir: str | os.PathLike, overwrite: bool = True) -> Path:
    """Fail now, before any work, unless a report can be published at ``out_dir``:
    it must be absent, empty or an old report (when ``overwrite``), and it and its
    parent writable. Creates nothing."""
    from ..utils import check_output_dir

    out_dir = Path(out_dir).absolute()
    _check_target(out_dir, overwrite)
    check_output_dir(out_dir, "the report folder", replaced=True)
    return out_dir


def _check_target(out_dir: Path, overwrite: bool) -> None:
    if not out_dir.exists():
        return
    if not out_dir.is_dir():
        raise LandscapeError(f"report folder {str(out_dir)!r} exists and is not a folder; choose another --out")
    if not any(out_dir.iterdir()):
        return
    if not is_report_dir(out_dir):
        raise LandscapeError(f"report folder {str(out_dir)!r} exists and is not a landscape report; "
                             "choose an empty or new folder (it would be replaced)")
    if not overwrite:
        raise LandscapeError(f"report folder {str(out_dir)!r} already holds a report and overwrite is off")


def _publish(staging: Path, out_dir: Path) -> None:
    """Move the finished staging folder to ``out_dir``, replacing an old report."""
    mask = umask()
    for root, dirs, files in os.walk(staging):
        os.chmod(root, 0o777 & ~mask)
        for name in files:
            os.chmod(os.path.join(root, name), 0o666 & ~mask)
    if not out_dir.exists():
        os.rename(staging, out_dir)
        return
    if not any(out_dir.iterdir()):
        out_dir.rmdir()
        os.rename(staging, out_dir)
        return
    backup = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.old-", dir=out_dir.parent))
    backup.rmdir()
    os.rename(out_dir, backup)
    try:
        os.rename(staging, out_dir)
    except BaseException:
        os.rename(backup, out_dir)
        raise
    shutil.rmtree(backup, ignore_errors=True)


# -- the writer ----------------------------------------------------------------------------------

def write_report(out_dir, energies: pd.DataFrame, *, gaps: pd.DataFrame, summary: pd.DataFrame | None = None,
                 alignment: pd.DataFrame | None = None, figures=None, title: str = "Energy landscape report",
                 settings: Mapping | None = None, extra_tables: Mapping[str, pd.DataFrame] | None = None,
                 column: str | None = None, overwrite: bool = True) -> dict[str, Path]:
    """Write a complete report folder (see the module docstring) and return its paths.

    Args:
        out_dir: the report folder; created, or replaced when it holds an old report.
        energies: the energy table (written to ``energies.parquet``).
        gaps: a :func:`~landscape.analyses.stats.gap_table` (written to ``gaps.csv``).
        summary: per model and source statistics (default: :func:`describe` of
            ``energies``).
        alignment: the per-model alignment summary (default: computed from ``gaps``).
        figures: :class:`~landscape.analyses.figures.ReportFigure` objects (as made by
            :func:`make_figures`) or a mapping ``name -> [paths]``; each needs a PNG
            (embedded in the HTML page); all files are copied to ``figures/``.
        title: the page title.
        settings: what produced the report, shown in the header and stored in
            ``summary.json``: e.g. models, data, split, n, sources with their eps (in
            [0, 1] pixel units; shown also as k/255), steps, seed. The toolkit version
            is added when absent.
        extra_tables: more tables (name -> DataFrame), e.g. the breakdowns by class
            and by correctness; shown after the main tables and stored in the JSON.
        column: the energy column analysed (default: ``gaps.attrs['column']`` or
            ``"energy"``).
        overwrite: replace an existing report in ``out_dir``.

    Returns:
        ``{"dir": out_dir, "index.html": ..., "index.md": ..., "summary.json": ...,
        "energies.parquet": ..., "gaps.csv": ..., "figures/NAME.png": ..., ...}``
        (final paths).
    """
    out_dir = Path(out_dir).absolute()
    column = column or gaps.attrs.get("column", "energy")
    validate_energy_table(energies, column)
    if not isinstance(gaps, pd.DataFrame):
        raise LandscapeError(f"gaps must be a pandas DataFrame (a gap_table), got {type(gaps).__name__}")
    if summary is None:
        summary = describe(energies, column=column)
    if alignment is None:
        alignment = alignment_summary(gaps) if "model" in gaps.columns else pd.DataFrame()
    extra_tables = dict(extra_tables or {})
    for name, tbl in extra_tables.items():
        if not isinstance(tbl, pd.DataFrame):
            raise LandscapeError(f"extra table {name!r} must be a pandas DataFrame, got {type(tbl).__name__}")
    figs = _normalise_figures(figures)
    settings = dict(settings or {})
    settings.setdefault("toolkit version", __version__)
    _check_target(out_dir, overwrite)
    clean_stale_staging(out_dir)

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".tmp", dir=out_dir.parent))
    try:
        rel = _write_contents(staging, energies=energies, gaps=gaps, summary=summary, alignment=alignment,
                              figs=figs, title=title, settings=settings, extra_tables=extra_tables, column=column)
        _publish(staging, out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    log.info("report written to %s (%d files)", out_dir, len(rel))
    return {"dir": out_dir, **{r: out_dir / r for r in rel}}


def _write_contents(root: Path, *, energies, gaps, summary, alignment, figs, title, settings, extra_tables,
                    column) -> list[str]:
    written: list[str] = []
    fig_dir = root / "figures"
    fig_dir.mkdir()
    fig_files: dict[str, list[str]] = {}
    for f in figs:
        fig_files[f.name] = []
        for p in f.paths:
            rel = f"figures/{f.name}{p.suffix.lower()}"
            with atomic_path(root / rel) as tmp:
                shutil.copyfile(p, tmp)
            fig_files[f.name].append(rel)
            written.append(rel)

    with atomic_path(root / "energies.parquet") as tmp:
        energies.to_parquet(tmp, index=False)
    written.append("energies.parquet")
    with atomic_path(root / "gaps.csv") as tmp:
        gaps.to_csv(tmp, index=False)
    written.append("gaps.csv")

    models = [str(m) for m in pd.unique(energies["model"].astype(str))]
    sources = order_sources(energies["source"].astype(str).unique())
    stats_meta = {k: _jsonable(v) for k, v in gaps.attrs.items()}
    tables = {"summary": summary, "alignment": alignment, "gaps": gaps, **extra_tables}
    doc = {
        "format": REPORT_FORMAT,
        "format_version": REPORT_FORMAT_VERSION,
        "title": title,
        "toolkit_version": __version__,
        "settings": _jsonable(settings),
        "column": column,
        "models": models,
        "sources": sources,
        "n_rows": int(len(energies)),
        "statistics": {"names": list(STATISTICS), **stats_meta, "definitions": DEFINITIONS},
        "tables": {name: _records(t) for name, t in tables.items()},
        "figures": [{"name": f.name, "caption": f.caption, "files": fig_files[f.name]} for f in figs],
        "files": sorted(written + ["index.html", "index.md", "summary.json"]),
    }
    atomic_write_text(root / "summary.json", json.dumps(doc, indent=2, allow_nan=False) + "\n")
    written.append("summary.json")

    context = dict(title=title, settings=settings, models=models, sources=sources, n_rows=len(energies),
                   column=column, summary=summary, alignment=alignment, gaps=gaps, extra_tables=extra_tables,
                   figs=figs, fig_files=fig_files, stats_meta=stats_meta)
    atomic_write_text(root / "index.md", _render_markdown(**context))
    written.append("index.md")
    atomic_write_text(root / "index.html", _render_html(root=root, **context))
    written.append("index.html")
    return written


def _intro(column: str, stats_meta: Mapping) -> str:
    which = "E(x, y) = -f(x)[y]" if column == "conditional_energy" else "E(x) = -logsumexp_y f(x)[y]"
    boot = ""
    if stats_meta.get("n_boot"):
        boot = (f" Intervals: {int(round(100 * stats_meta.get('ci', 0.95)))}% "
                f"{stats_meta.get('interval', 'percentile')} bootstrap, "
                f"{stats_meta['n_boot']} resamples, seed {stats_meta.get('seed', 0)}.")
    return (f"Energies analysed: {column}, {which}; lower energy = the model finds the input more likely. "
            f"Gap of a pair 'A vs B' = mean E(B) - mean E(A).{boot}")


def _settings_rows(settings, models, sources, n_rows) -> list[tuple[str, str]]:
    rows = _flatten_settings(settings)
    rows += [("energy table", f"{n_rows} rows; models: {', '.join(models)}; sources: {', '.join(sources)}")]
    return rows


def _sections(alignment, gaps, summary, extra_tables):
    out = []
    if alignment is not None and len(alignment.columns):
        out.append(("Alignment summary", "Per model, the source pair with the largest |gap| (a small value: the "
                    "energy distributions of the sources line up) and the pair with the largest |Cohen's d|.",
                    alignment))
    out.append(("Gap table", "Every pair of sources of every model (A vs B, gap = mean E(B) - mean E(A)).", gaps))
    out.append(("Energies per model and source", "n, accuracy on that source, mean, std, median and quantiles.",
                summary))
    for name, tbl in extra_tables.items():
        out.append((name, "", tbl))
    return out


def _render_markdown(*, title, settings, models, sources, n_rows, column, summary, alignment, gaps,
                     extra_tables, figs, fig_files, stats_meta) -> str:
    parts = [f"# {title}\n", _intro(column, stats_meta) + "\n", "## Settings\n",
             _md_table(["setting", "value"], _settings_rows(settings, models, sources, n_rows))]
    sections = _sections(alignment, gaps, summary, extra_tables)
    for heading, text, tbl in sections[:2]:
        parts += [f"## {heading}\n", (text + "\n") if text else "", _md_frame(tbl)]
    if figs:
        parts.append("## Figures\n")
        for f in figs:
            png = next(r for r in fig_files[f.name] if r.endswith(".png"))
            svg = next((r for r in fig_files[f.name] if r.endswith(".svg")), None)
            parts.append(f"![{_md_cell(f.caption)}]({png})\n\n*{f.caption}*" + (f" ([SVG]({svg}))" if svg else "") + "\n")
    for heading, text, tbl in sections[2:]:
        parts += [f"## {heading}\n", (text + "\n") if text else "", _md_frame(tbl)]
    parts.append("## Definitions\n")
    parts += [f"- **{k}**: {v}" for k, v in DEFINITIONS.items()]
    parts.append(f"\nFiles: `energies.parquet` (the energy table), `gaps.csv`, `summary.json`, `figures/`. "
                 f"Written by landscape {__version__}.\n")
    return "\n".join(parts)


def _render_html(*, root: Path, title, settings, models, sources, n_rows, column, summary, alignment, gaps,
                 extra_tables, figs, fig_files, stats_meta) -> str:
    e = html.escape
    # results first (the alignment summary and the gap table), the settings collapsed at the end
    body = [f"<h1>{e(title)}</h1>", f'<p class="lead">{e(_intro(column, stats_meta))}</p>']
    sections = _sections(alignment, gaps, summary, extra_tables)
    for heading, text, tbl in sections[:2]:
        body += [f"<h2>{e(heading)}</h2>", f"<p>{e(text)}</p>" if text else "", _html_table(tbl)]
    if figs:
        body.append("<h2>Figures</h2>")
        for f in figs:
            png = next(r for r in fig_files[f.name] if r.endswith(".png"))
            svg = next((r for r in fig_files[f.name] if r.endswith(".svg")), None)
            data = base64.b64encode((root / png).read_bytes()).decode("ascii")
            link = f' (<a href="{e(svg)}">SVG</a>)' if svg else ""
            body.append(f'<figure id="fig-{e(f.name)}"><img alt="{e(f.caption)}" src="data:image/png;base64,{data}">'
                        f"<figcaption>{e(f.caption)}{link}</figcaption></figure>")
    for heading, text, tbl in sections[2:]:
        body += [f"<h2>{e(heading)}</h2>", f"<p>{e(text)}</p>" if text else "", _html_table(tbl)]
    body.append('<details class="settings"><summary><h2>Settings</h2></summary>')
    body.append(_html_table(pd.DataFrame(_settings_rows(settings, models, sources, n_rows),
                                         columns=["setting", "value"])))
    body.append("</details>")
    body.append('<h2>Definitions</h2><dl class="defs">')
    body += [f"<dt>{e(k)}</dt><dd>{e(v)}</dd>" for k, v in DEFINITIONS.items()]
    body.append("</dl>")
    body.append(f'<p class="muted">Files beside this page: energies.parquet (the energy table), gaps.csv, '
                f"summary.json, figures/. Written by landscape {e(__version__)}.</p>")
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
            f"<title>{e(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
            + "\n".join(b for b in body if b) + "\n</body>\n</html>\n")


# -- one call ------------------------------------------------------------------------------------

def build_report(out_dir, energies: pd.DataFrame, *, trajectories: pd.DataFrame | None = None,
                 samples: Mapping[str, Any] | None = None, title: str = "Energy landscape report",
                 settings: Mapping | None = None, column: str = "energy", n_boot: int = 1000, ci: float = 0.95,
                 seed: int = 0, bins="fd", interval: str = "percentile", breakdowns: bool = True,
                 breakdown_n_boot: int | None = None,
                 extra_tables: Mapping[str, pd.DataFrame] | None = None,
                 heatmap_statistics: Sequence[str] = ("gap", "auroc"), overwrite: bool = True,
                 sensitivity: pd.DataFrame | None = None) -> dict[str, Path]:
    """Statistics, breakdowns, figures and the report folder, in one call:
    :func:`landscape.analyses.pipeline.analyse` then :func:`write_result`.
    Returns :func:`write_report`'s paths."""
    from .pipeline import analyse

    result = analyse(energies, trajectories=trajectories, samples=samples, sensitivity=sensitivity, title=title,
                     settings=settings, column=column, n_boot=n_boot, ci=ci, seed=seed, bins=bins, interval=interval,
                     breakdowns=breakdowns, breakdown_n_boot=breakdown_n_boot, extra_tables=extra_tables)
    return write_result(out_dir, result, heatmap_statistics=heatmap_statistics, overwrite=overwrite)


def write_result(out_dir, result, *, heatmap_statistics: Sequence[str] = ("gap", "auroc"),
                 overwrite: bool = True, kde: bool = False) -> dict[str, Path]:
    """Draw the figures of an :class:`~landscape.analyses.pipeline.AnalysisResult` and write
    its report folder (see :func:`write_report`); computes no statistics."""
    Path(out_dir).absolute().parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".landscape-figures-") as scratch:
        figs = make_figures(scratch, result.energies, result.gaps, result.trajectories, result.samples,
                            column=result.column, bins=result.bins, heatmap_statistics=heatmap_statistics,
                            sensitivity=result.sensitivity, kde=kde)
        return write_report(out_dir, result.energies, gaps=result.gaps, summary=result.summary,
                            alignment=result.alignment, figures=figs, title=result.title, settings=result.settings,
                            extra_tables=result.tables, column=result.column, overwrite=overwrite)
