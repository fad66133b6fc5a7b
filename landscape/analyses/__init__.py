"""Analyses of energy tables: statistics, figures and reports.

* :mod:`landscape.analyses.stats` -- pure functions from energy tables to tidy
  DataFrames (per-source summaries, pairwise gap statistics with bootstrap
  intervals, alignment summary, breakdowns by class and by correctness).
* :mod:`landscape.analyses.figures` -- histograms, the all-models grid,
  trajectories, sample grids and gap heatmaps (PNG + SVG, one colour per source).
* :mod:`landscape.analyses.pipeline` -- an energy table in, an ``AnalysisResult``
  (every table the report shows, the figures' inputs, the settings) out.
* :mod:`landscape.analyses.report` -- the report folder writer (HTML, Markdown,
  JSON, Parquet, CSV, figures), written atomically; it computes nothing.

Names are imported on first use, so that importing the statistics does not pull in
matplotlib.
"""

from __future__ import annotations

import importlib

_LAZY = {
    "STATISTICS": "stats",
    "order_sources": "stats",
    "source_pairs": "stats",
    "shared_bin_edges": "stats",
    "two_sample_stats": "stats",
    "describe": "stats",
    "gap_table": "stats",
    "alignment_summary": "stats",
    "class_breakdown": "stats",
    "correctness_breakdown": "stats",
    "validate_energy_table": "stats",
    "trajectory_frame": "stats",
    "SOURCE_COLORS": "figures",
    "ReportFigure": "figures",
    "source_color": "figures",
    "source_palette": "figures",
    "energy_label": "figures",
    "plot_energy_histograms": "figures",
    "plot_models_grid": "figures",
    "plot_trajectories": "figures",
    "plot_sample_grid": "figures",
    "plot_gap_heatmap": "figures",
    "make_figures": "figures",
    "write_report": "report",
    "write_result": "report",
    "AnalysisResult": "pipeline",
    "analyse": "pipeline",
    "build_report": "report",
    "is_report_dir": "report",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'landscape.analyses' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(__all__)
