"""The analysis pipeline: an energy table in, an :class:`AnalysisResult` out.

:func:`analyse` computes everything a report shows (per-source summaries, the gap
table with bootstrap intervals, the alignment summary, the breakdowns by class and by
correctness) and holds it, with the trajectories, sample grids and settings, in one
object. :mod:`landscape.analyses.report` only writes such a result
(:func:`~landscape.analyses.report.write_result`); the command line prints from it
without reading files back.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import pandas as pd

from .stats import alignment_summary, class_breakdown, correctness_breakdown, describe, gap_table, validate_energy_table

__all__ = ["AnalysisResult", "analyse"]


@dataclass
class AnalysisResult:
    """Everything an analysis produced: tables, figure inputs and the settings that made them."""

    energies: pd.DataFrame
    gaps: pd.DataFrame
    summary: pd.DataFrame
    alignment: pd.DataFrame
    tables: dict = field(default_factory=dict)          # breakdowns and extra tables, by title
    trajectories: pd.DataFrame | None = None
    samples: Mapping[str, Any] | None = None
    sensitivity: pd.DataFrame | None = None
    title: str = "Energy landscape report"
    settings: dict = field(default_factory=dict)
    column: str = "energy"
    bins: Any = "fd"
    paths: dict = field(default_factory=dict)          # the report's files, once written
    seconds: float | None = None

    def __getitem__(self, key: str):
        """``result["index.html"]``, ``result["seconds"]``, ``result["energies"]``: the
        mapping :func:`~landscape.analyses.runner.run_analysis` used to return."""
        if key == "seconds":
            return self.seconds
        if key == "energies":
            return self.energies
        if key in self.paths:
            return self.paths[key]
        raise KeyError(key)

    def __contains__(self, key: str) -> bool:
        return key in ("seconds", "energies") or key in self.paths

    @property
    def report_dir(self) -> Path | None:
        return self.paths.get("dir")


def analyse(energies: pd.DataFrame, *, trajectories: pd.DataFrame | None = None, samples=None,
            sensitivity: pd.DataFrame | None = None, title: str = "Energy landscape report",
            settings: Mapping | None = None, column: str = "energy", n_boot: int = 1000, ci: float = 0.95,
            seed: int = 0, bins="fd", interval: str = "percentile", breakdowns: bool = True,
            breakdown_n_boot: int | None = None, extra_tables: Mapping[str, pd.DataFrame] | None = None,
            class_names=None) -> AnalysisResult:
    """The statistics of an energy table (see :mod:`landscape.analyses.stats`), as one result.

    With ``breakdowns``, the gap tables by class (when ``label`` is present) and by
    correctness (when ``correct`` is present) are bootstrapped ``breakdown_n_boot``
    times (default ``n_boot``); ``class_names`` (the dataset's) name the classes.
    """
    validate_energy_table(energies, column)
    gaps = gap_table(energies, column=column, n_boot=n_boot, ci=ci, seed=seed, bins=bins, interval=interval)
    tables: dict[str, pd.DataFrame] = dict(extra_tables or {})  # the caller's tables first, then the breakdowns
    nb = n_boot if breakdown_n_boot is None else breakdown_n_boot
    common = dict(column=column, n_boot=nb, ci=ci, seed=seed, bins=bins, interval=interval)
    if breakdowns and "label" in energies.columns:
        tables["Gaps by class (label)"] = class_breakdown(energies, class_names=class_names, **common)
    if breakdowns and "correct" in energies.columns:
        tables["Gaps by correctness of the prediction"] = correctness_breakdown(energies, **common)
    return AnalysisResult(energies=energies, gaps=gaps, summary=describe(energies, column=column),
                          alignment=alignment_summary(gaps), tables=tables, trajectories=trajectories,
                          samples=samples, sensitivity=sensitivity, title=title, settings=dict(settings or {}),
                          column=column, bins=bins)
