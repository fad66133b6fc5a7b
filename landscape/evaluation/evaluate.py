"""``landscape.evaluate``: accuracy, robustness, calibration, OOD detection and
generation quality of several models, as one table.

The result is a *long* table, one row per model and metric, with columns

``model``     the model's name;
``metric``    a metric id (see :data:`METRICS` for what each selection adds);
``value``     the number: accuracies, ECE and AUROC as fractions in [0, 1],
              distances and scores as they are;
``n``         how many samples the value is computed from;
``settings``  every setting the value depends on, as JSON (eps in pixel units,
              step, steps, restarts, seed, data, bins, OOD set, feature model...).

so that a value never travels without its settings (nobody reports 4/255 as
8/255 again). :func:`wide_table` pivots it to models x metrics, :func:`format_table`
prints it like a paper's table (percentages) with the settings under it, and
:func:`write_table` writes it as CSV or JSON.

Metric selections (``metrics=``):

============  ==========================================================================
accuracy      ``clean_acc``: clean accuracy on the ``n`` evaluation samples
ece           ``ece``: top-label expected calibration error, 15 equal-width bins
              (:mod:`landscape.evaluation.metrics`); with ``figures=`` a reliability
              diagram per model
pgd20         ``pgd20_acc``: robust accuracy under PGD-20 (Linf, dataset-default eps,
              random start, ``restarts``) on the first ``n_attack`` samples
autoattack    ``autoattack_acc``: AutoAttack (standard) robust accuracy on the *same*
              ``n_attack`` samples; with pgd20 also ``worst_case_acc`` (robust under both)
ood           ``auroc_energy:SET`` and ``auroc_msp:SET``: AUROC of ``-E(x)`` and of
              max-softmax, in-distribution vs each OOD set of ``ood=``
fd            ``fd_reference``: FD (reference-classifier features), not FID, of
              ``n_gen`` SGLD samples against ``n_gen`` evaluation images
fid           ``fid`` and ``is``: FID and Inception Score by torch-fidelity (needs the
              Inception weights locally), same samples as fd
============  ==========================================================================

The evaluation samples are a deterministic subset (``n``, ``seed``) of the data,
the same for every model; the attacked samples are a deterministic subset of
those (``n_attack``), the same for both attacks and every model.
"""

from __future__ import annotations

import json
import logging
import math
import os
from pathlib import Path
from types import SimpleNamespace
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from .._version import __version__
from ..energy import EnergyModel
from ..errors import LandscapeError
from ..validate import check_int
from ..utils import atomic_write_text, check_output_dir, check_output_file, is_main_process, slug
from . import generation as G
from .metrics import (ECE_BINS, calibration_bins, confidences, expected_calibration_error, plot_reliability_diagram,
                      softmax, wilson_interval)
from ..sources import Dataset as DatasetSource
from .ood import auroc, ood_scores, ood_source
from .robustness import PGD_STEPS, eps_text, robust_accuracy

log = logging.getLogger(__name__)

__all__ = ["METRICS", "DEFAULT_METRICS", "COLUMNS", "evaluate", "wide_table", "format_table", "write_table",
           "read_table", "parse_metrics"]

#: metric selections, in table order
METRICS = ("accuracy", "ece", "pgd20", "autoattack", "ood", "fd", "fid")
#: what runs when ``metrics`` is not given (generation metrics are opt-in: they need SGLD and a reference)
DEFAULT_METRICS = ("accuracy", "ece", "pgd20", "autoattack", "ood")
COLUMNS = ["model", "metric", "value", "n", "settings"]
TABLE_FORMAT = "landscape-evaluation"

_PERCENT = ("clean_acc", "ece", "pgd20_acc", "autoattack_acc", "worst_case_acc", "auroc_energy", "auroc_msp")
_DISPLAY = {"clean_acc": "clean", "ece": "ECE", "pgd20_acc": "PGD-20", "autoattack_acc": "AutoAttack",
            "worst_case_acc": "worst case", "auroc_energy": "AUROC E(x)", "auroc_msp": "AUROC MSP",
            "fd_reference": "FD ref-clf", "fid": "FID", "is": "IS"}


# ----------------------------------------------------------------------------- arguments
def parse_metrics(metrics) -> list[str]:
    """``"all"``, ``"accuracy,ece"`` or a list -> validated metric selections in table order."""
    if metrics is None:
        return list(DEFAULT_METRICS)
    if isinstance(metrics, str):
        metrics = [m.strip() for m in metrics.split(",") if m.strip()]
    metrics = list(metrics)
    if metrics == ["all"]:
        return list(METRICS)
    bad = [m for m in metrics if m not in METRICS]
    if bad or not metrics:
        raise LandscapeError(f"metrics must be 'all' or a list out of {', '.join(METRICS)}, got {metrics!r}")
    return [m for m in METRICS if m in metrics]


def _models(models) -> list[tuple[str, EnergyModel]]:
    from ..checkpoints.load import load_model
    from ..engine import default_model_name as model_name

    if isinstance(models, (EnergyModel, str, os.PathLike)):
        models = [models]
    items = list(models.items()) if isinstance(models, Mapping) else [(None, m) for m in models]
    if not items:
        raise LandscapeError("evaluate needs at least one model, got none")
    out, seen = [], {}
    for name, m in items:
        if isinstance(m, (str, os.PathLike)):
            m = load_model(m)
        if not isinstance(m, EnergyModel):
            raise LandscapeError(f"models must be EnergyModels or checkpoint paths/names, got {type(m).__name__}")
        name = str(name) if name is not None else model_name(m)
        if name in seen:
            seen[name] += 1
            name = f"{name}#{seen[name]}"
        else:
            seen[name] = 1
        out.append((name, m))
    return out


def _data(data, split: str, root):
    from ..data import load_dataset

    if isinstance(data, str):
        return load_dataset(data, split, root=root)
    return data


def _json(settings: dict) -> str:
    return json.dumps(settings, default=_default)


def _default(v):
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (np.floating,)):
        return float(v)
    if isinstance(v, (Path,)):
        return str(v)
    return str(v)


# ----------------------------------------------------------------------------- evaluate
def evaluate(models, data, metrics=None, *, n: int | None = None, n_attack: int | None = 1000,
             n_gen: int = 1000, split: str = "test", root=None, dataset: str | None = None,
             eps: float | None = None, step: float | None = None, restarts: int = 1, norm: str = "Linf",
             aa_version: str = "standard", aa_attacks: Sequence[str] | None = None, ood: Sequence = ("gaussian",),
             ece_bins: int = ECE_BINS, sgld=None, feature_model=None, inception_weights=None,
             batch_size: int = 256, device=None, precision: str = "fp32", channels_last: bool | None = None,
             seed: int = 0, checks: str = "error", figures=None, out=None,
             progress_bar: bool | None = None) -> pd.DataFrame:
    """Evaluate ``models`` on ``data``: one long table of metrics with their settings.

    Args:
        models: an EnergyModel, a checkpoint path/name, a list of them, or ``{name: model}``.
        data: a dataset name (loaded with ``split`` and ``root``), a Dataset, or ``(x, y)`` tensors.
        metrics: selections out of :data:`METRICS` (``"all"``, a comma list or a list);
            default :data:`DEFAULT_METRICS`.
        n: evaluation samples (a deterministic subset under ``seed``; ``None``: all).
        n_attack: samples attacked by PGD-20 and AutoAttack: a deterministic subset (``seed``)
            of the evaluation samples, the same for both attacks and every model
            (``None``: all of them).
        n_gen: SGLD samples (and reference images) for ``fd`` / ``fid``.
        dataset: the dataset whose attack defaults apply (default: the data's own name).
        eps, step, restarts, norm: attack radius (pixel units; default the dataset's),
            PGD step (default keeps the dataset's step/eps ratio), PGD random restarts, norm.
        aa_version, aa_attacks: AutoAttack version (``"custom"`` with attacks, e.g. ``["apgd-ce"]``).
        ood: OOD sets (dataset names, ``"gaussian"``, ``"uniform"``, Sources), see
            :func:`landscape.evaluation.ood.ood_source`.
        ece_bins: number of ECE bins (15).
        sgld: the SGLD sampler for generation: an SGLD source, or a dict of SGLD settings
            (``steps``, ``step_size``, ``noise``...) plus ``init``: ``"auto"`` (the model's
            replay buffer when it has one, else uniform noise), ``"uniform"``, ``"buffer"``
            or ``"gaussian"`` (per-class Gaussians fitted once on the train split of
            the data, JEM++'s informative initialisation); see
            :func:`landscape.evaluation.generation.default_sampler`.
        feature_model: the reference classifier of ``fd`` (EnergyModel or path; default
            the bundled one for Fashion-MNIST).
        inception_weights: path of torch-fidelity's Inception weights for ``fid``.
        batch_size, device, precision, checks: as :func:`landscape.engine.score`.
        channels_last: run the classification passes and the attacks in channels-last
            memory format (default: as :func:`landscape.engine.score`, on for bf16 only).
            For convnets it is often faster on CPUs in float32 as well (the bundled
            ``smallcnn`` on an AVX2 CPU: forward 1.4-1.6x, forward + input gradient 1.3x,
            ``benchmarks/channels_last.py``); results change only by float rounding.
            Recorded in the attack rows' settings when on.
        seed: seeds the subsets and every random draw (attack starts, SGLD, OOD noise).
        figures: a folder for reliability diagrams (``reliability-MODEL.png/.svg``).
        out: also write the table to this ``.csv`` or ``.json`` file.

    Returns:
        the long table (columns :data:`COLUMNS`), models in the given order, metrics
        in table order.
    """
    from ..engine import selection, use_channels_last
    from ._common import take

    chosen = parse_metrics(metrics)
    seed = check_int("seed", seed)
    if n is not None:
        n = check_int("n", n, low=1)
    if n_attack is not None:
        n_attack = check_int("n_attack", n_attack, low=1)
    n_gen = check_int("n_gen", n_gen, low=2)
    ece_bins = check_int("ece_bins", ece_bins, low=1)
    restarts = check_int("restarts", restarts, low=1)
    # output locations are checked before any work (a folder named like the file, a
    # read-only parent), so a long evaluation is never lost at the end
    if out is not None:
        check_output_file(out, "out", (".csv", ".json"))
    if figures is not None:
        check_output_dir(figures, "figures")
    named = _models(models)
    base = _data(data, split, root)
    eval_data = take(base, n, seed)
    sel = selection(eval_data)
    if len(sel) == 0:
        raise LandscapeError("data is empty: nothing to evaluate")
    dataset = dataset or sel.dataset
    data_text = sel.describe()

    # fail early: everything that can be checked before any model runs
    ood_sets = [ood_source(s) for s in (ood if "ood" in chosen else [])]
    if "ood" in chosen and not ood_sets:
        raise LandscapeError("metric 'ood' needs at least one OOD set (ood=['gaussian'], a dataset name...)")
    labels = [label for label, _ in ood_sets]
    if len(set(labels)) != len(labels):
        raise LandscapeError(f"OOD sets must have distinct names, got {labels}")
    for _, src in ood_sets:
        if isinstance(src, DatasetSource):
            src.data  # noqa: B018 - load the OOD dataset now: a missing one fails before any model runs
    feature = None
    if "fd" in chosen:
        feature = feature_model if isinstance(feature_model, EnergyModel) else G.reference_classifier(dataset, feature_model)
    if "fid" in chosen:
        G.inception_weights_path(inception_weights)
    attack_data = take(eval_data, n_attack, seed) if {"pgd20", "autoattack"} & set(chosen) else None
    gen_ref = None
    sgld_kwargs, class_gaussians = {}, None
    if {"fd", "fid"} & set(chosen) and not isinstance(sgld, G.SGLDSource):
        if sgld is not None and not isinstance(sgld, Mapping):
            raise LandscapeError(f"sgld must be an SGLD source or a dict of its settings, got {type(sgld).__name__}")
        sgld_kwargs = dict(sgld or {})
        if sgld_kwargs.get("init", "auto") not in G.SGLD_INITS:
            raise LandscapeError(f"the SGLD init must be one of {', '.join(G.SGLD_INITS)}, got {sgld_kwargs['init']!r}")
        if sgld_kwargs.get("init") == "gaussian" and "class_gaussians" not in sgld_kwargs:
            if not dataset:
                raise LandscapeError("SGLD init 'gaussian' fits class Gaussians on the data's train split, "
                                     "but the data has no dataset name; pass sgld={'init': 'gaussian', 'class_gaussians': ...}")
            class_gaussians = G.class_gaussians_for(dataset, root)
            sgld_kwargs["class_gaussians"] = class_gaussians
    if {"fd", "fid"} & set(chosen):
        ref_sel = selection(take(eval_data, n_gen, seed))
        gen_ref, _ = ref_sel.fetch(np.arange(len(ref_sel)))
        if len(ref_sel) < n_gen:
            log.warning("only %d reference images for %d generated samples", len(ref_sel), n_gen)

    ctx = SimpleNamespace(chosen=chosen, sel=sel, data_text=data_text, dataset=dataset, seed=seed,
                          batch_size=batch_size, device=device, precision=precision, progress_bar=progress_bar,
                          channels_last=use_channels_last(precision, channels_last),
                          checks=checks, ece_bins=ece_bins, figures=figures, ood_sets=ood_sets, attack_data=attack_data,
                          eps=eps, step=step, restarts=restarts, norm=norm, aa_version=aa_version, aa_attacks=aa_attacks,
                          gen_ref=gen_ref, sgld=sgld, sgld_kwargs=sgld_kwargs, class_gaussians=class_gaussians,
                          n_gen=n_gen, feature=feature, inception_weights=inception_weights)
    rows = _Rows()
    for name, model in named:
        log.info("evaluating %s on %s (%d samples): %s", name, data_text, len(sel), ", ".join(chosen))
        if {"accuracy", "ece", "ood"} & set(chosen):
            _clean_metrics(rows, name, model, ctx)
        if attack_data is not None:
            _robust_metrics(rows, name, model, ctx)
        if gen_ref is not None:
            _generation_metrics(rows, name, model, ctx)
    rows = rows.rows
    table = pd.DataFrame(rows, columns=COLUMNS)
    order = {m: i for i, m in enumerate(_metric_order(table["metric"]))}
    table = (table.assign(_m=table["model"].map({name: i for i, (name, _) in enumerate(named)}),
                          _k=table["metric"].map(order))
             .sort_values(["_m", "_k"], kind="stable").drop(columns=["_m", "_k"]).reset_index(drop=True))
    if out is not None and is_main_process():  # under torchrun every rank holds the table; rank 0 writes it
        write_table(table, out)
    return table


class _Rows:
    """The long table's rows; accuracies get their Wilson 95% interval in their settings."""

    def __init__(self):
        self.rows: list[dict] = []

    def add(self, model: str, metric: str, value: float, count: int, settings: dict) -> None:
        if metric.endswith("_acc") and count > 0 and math.isfinite(value):
            # accuracies are binomial proportions: give their Wilson 95% interval with them
            lo, hi = wilson_interval(round(value * count), int(count))
            settings = {**settings, "wilson95": f"[{lo:.4f}, {hi:.4f}]"}
        self.rows.append({"model": model, "metric": metric, "value": float(value), "n": int(count),
                          "settings": _json(settings)})


def _clean_metrics(rows: _Rows, name: str, model, ctx) -> None:
    """Clean accuracy, ECE (and its reliability diagram) and OOD AUROCs, from one pass of clean logits."""
    from ._common import source_logits

    common = {"data": ctx.data_text, "seed": ctx.seed}
    run = dict(batch_size=ctx.batch_size, device=ctx.device, precision=ctx.precision,
               channels_last=ctx.channels_last, seed=ctx.seed, progress_bar=ctx.progress_bar)
    logits, y = source_logits(model, ctx.sel, None, desc=f"clean {name}", **run)
    if "accuracy" in ctx.chosen:
        rows.add(name, "clean_acc", float((logits.argmax(1) == y).double().mean()), len(y), {**common, "n": len(y)})
    if "ece" in ctx.chosen:
        probs = softmax(logits)
        ece = expected_calibration_error(probs, y.numpy(), ctx.ece_bins)
        rows.add(name, "ece", ece, len(y), {**common, "n": len(y), "bins": ctx.ece_bins, "binning": "equal-width",
                                            "confidence": "top-label softmax (T=1)"})
        if ctx.figures is not None and is_main_process():
            conf, ok = confidences(probs, y.numpy())
            plot_reliability_diagram(calibration_bins(conf, ok, ctx.ece_bins), ctx.figures,
                                     name=f"reliability-{slug(name)}", title=f"{name} on {ctx.data_text} (n={len(y)})")
    if "ood" in ctx.chosen:
        t = float(getattr(model, "temperature", 1.0))
        ins = ood_scores(logits, t)
        for label, src in ctx.ood_sets:
            out_logits, _ = source_logits(model, ctx.sel, src, desc=f"ood {label} {name}", **run)
            outs = ood_scores(out_logits, t)
            for score_name, what in (("energy", f"-E(x), T={t:g}"), ("msp", "max softmax (T=1)")):
                rows.add(name, f"auroc_{score_name}:{label}", auroc(ins[score_name], outs[score_name]), len(y),
                         {**common, "n_in": len(y), "n_out": len(out_logits), "ood": label,
                          "ood_source": src.config() | {"name": getattr(src, "name", label)}, "score": what,
                          "positive": "in-distribution"})


def _robust_metrics(rows: _Rows, name: str, model, ctx) -> None:
    """PGD-20, AutoAttack and their worst case on the attacked subset."""
    ra = robust_accuracy(model, ctx.attack_data, dataset=ctx.dataset, pgd="pgd20" in ctx.chosen,
                         aa="autoattack" in ctx.chosen, eps=ctx.eps, step=ctx.step, steps=PGD_STEPS,
                         restarts=ctx.restarts, norm=ctx.norm, aa_version=ctx.aa_version, aa_attacks=ctx.aa_attacks,
                         batch_size=ctx.batch_size, device=ctx.device, precision=ctx.precision,
                         channels_last=ctx.channels_last, seed=ctx.seed, checks=ctx.checks,
                         progress_bar=ctx.progress_bar, model_name=name)
    for key, metric in (("pgd20", "pgd20_acc"), ("autoattack", "autoattack_acc"), ("worst_case", "worst_case_acc")):
        if key in ra.samples.columns:
            rows.add(name, metric, ra.accuracy(key), ra.n, ra.settings[key])


def _generation_metrics(rows: _Rows, name: str, model, ctx) -> None:
    """FD in the reference classifier's features and FID/IS of the model's SGLD samples."""
    sgld = ctx.sgld
    sampler = sgld if isinstance(sgld, G.SGLDSource) else G.default_sampler(model, seed=ctx.seed, **ctx.sgld_kwargs)
    samples = G.generate(model, ctx.n_gen, sampler=sampler, batch_size=ctx.batch_size, device=ctx.device,
                         precision=ctx.precision, seed=ctx.seed, progress_bar=ctx.progress_bar)
    gen = {"sampler": {k: v for k, v in sampler.config().items() if k != "record_trajectory"},
           **({"class_gaussians_fit_on": f"{ctx.dataset} train"} if ctx.class_gaussians is not None else {}),
           "n_samples": len(samples), "reference": ctx.data_text, "seed": ctx.seed}
    if "fd" in ctx.chosen:
        value, s = G.reference_fd(samples, ctx.gen_ref, feature_model=ctx.feature, dataset=ctx.dataset,
                                  batch_size=ctx.batch_size, device=ctx.device, precision=ctx.precision,
                                  progress_bar=ctx.progress_bar)
        rows.add(name, "fd_reference", value, len(samples), {**gen, **s})
    if "fid" in ctx.chosen:
        values, s = G.inception_metrics(samples, ctx.gen_ref, weights=ctx.inception_weights, device=ctx.device,
                                        seed=ctx.seed)
        rows.add(name, "fid", values["fid"], len(samples), {**gen, **s})
        rows.add(name, "is", values["is_mean"], len(samples), {**gen, **s, "is_std": values["is_std"]})


# ----------------------------------------------------------------------------- presentation
def _check_table(table) -> None:
    if not isinstance(table, pd.DataFrame) or not set(COLUMNS) <= set(table.columns):
        raise LandscapeError(f"an evaluation table needs columns {COLUMNS}, got "
                             f"{list(table.columns) if isinstance(table, pd.DataFrame) else type(table).__name__}")


_ORDER = ["clean_acc", "ece", "pgd20_acc", "autoattack_acc", "worst_case_acc", "auroc", "fd_reference", "fid", "is"]


def _metric_order(metrics) -> list[str]:
    """Table order: accuracy, calibration, robustness, OOD (grouped by set, energy before MSP), generation."""
    def key(m):
        base, _, target = m.partition(":")
        group = "auroc" if base.startswith("auroc_") else base
        rank = _ORDER.index(group) if group in _ORDER else len(_ORDER)
        return (rank, target, 0 if base == "auroc_energy" else 1, base)
    return sorted(dict.fromkeys(metrics), key=key)


def wide_table(table: pd.DataFrame) -> pd.DataFrame:
    """Models x metrics (raw values: fractions for accuracies, ECE and AUROC)."""
    _check_table(table)
    wide = table.pivot_table(index="model", columns="metric", values="value", aggfunc="first", sort=False)
    wide = wide.reindex(index=list(dict.fromkeys(table["model"])), columns=_metric_order(table["metric"]))
    wide.columns.name = None
    return wide


def metric_header(metric: str) -> str:
    """Column header of a metric: ``PGD-20 (%)``, ``AUROC E(x) gaussian (%)``, ``FD ref-clf``..."""
    base, _, target = metric.partition(":")
    text = _DISPLAY.get(base, base)
    if target:
        text += f" {target}"
    return text + (" (%)" if base in _PERCENT else "")


def settings_text(settings: Mapping) -> str:
    """One line of ``key=value`` settings (eps also in 255ths)."""
    norm = settings.get("norm", "Linf")
    parts = []
    for key, value in settings.items():
        if key == "eps":
            parts.append(f"eps={eps_text(float(value), norm)}")
        elif isinstance(value, Mapping):
            inner = ", ".join(f"{k}={v}" for k, v in value.items() if v is not None)
            parts.append(f"{key}=({inner})")
        elif isinstance(value, (list, tuple)):
            parts.append(f"{key}={'+'.join(str(v) for v in value)}")
        elif isinstance(value, float):
            parts.append(f"{key}={value:.6g}")
        else:
            parts.append(f"{key}={value}")
    return ", ".join(parts)


def format_table(table: pd.DataFrame, digits: int = 2) -> str:
    """The table as text: models x metrics (accuracies, ECE, AUROC in percent), then each metric's settings."""
    _check_table(table)
    if len(table) == 0:
        return "(no metrics)"
    wide = wide_table(table)
    headers = ["model"] + [metric_header(m) for m in wide.columns]
    body = []
    for model, row in wide.iterrows():
        cells = [str(model)]
        for metric, v in row.items():
            base = metric.split(":")[0]
            if v is None or (isinstance(v, float) and math.isnan(v)):
                cells.append("-")
            else:
                cells.append(f"{100 * v:.{digits}f}" if base in _PERCENT else f"{v:.{digits}f}")
        body.append(cells)
    widths = [max(len(h), *(len(r[i]) for r in body)) for i, h in enumerate(headers)]
    line = lambda cells: "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))  # noqa: E731
    lines = [line(headers), line(["-" * w for w in widths]), *(line(r) for r in body), "", "settings:"]
    for metric in wide.columns:
        sub = table[table["metric"] == metric]
        distinct = list(dict.fromkeys(sub["settings"]))
        if len(distinct) == 1:
            lines.append(f"  {metric_header(metric)}: {settings_text(json.loads(distinct[0]))}")
        else:
            for _, r in sub.iterrows():
                lines.append(f"  {metric_header(metric)} [{r['model']}]: {settings_text(json.loads(r['settings']))}")
    if any(m.startswith("fd_reference") for m in wide.columns):
        lines.append(f"  FD ref-clf = {G.FD_LABEL}: Fréchet distance in a reference classifier's penultimate features")
    return "\n".join(lines)


def write_table(table: pd.DataFrame, path) -> Path:
    """Write the long table as ``.csv`` (settings as JSON text) or ``.json`` (settings as objects), atomically."""
    _check_table(table)
    path = Path(path)
    if path.suffix == ".csv":
        atomic_write_text(path, table[COLUMNS].to_csv(index=False))
    elif path.suffix == ".json":
        records = [{"model": r.model, "metric": r.metric, "value": None if not math.isfinite(r.value) else r.value,
                    "n": int(r.n), "settings": json.loads(r.settings)} for r in table[COLUMNS].itertuples()]
        doc = {"format": TABLE_FORMAT, "version": __version__, "rows": records}
        atomic_write_text(path, json.dumps(doc, indent=2, sort_keys=False) + "\n")
    else:
        raise LandscapeError(f"an evaluation table is written as .csv or .json, got {str(path)!r}")
    return path


def read_table(path) -> pd.DataFrame:
    """Read a table written by :func:`write_table` back (settings as JSON text)."""
    path = Path(path)
    if path.suffix == ".csv":
        table = pd.read_csv(path, keep_default_na=False, na_values=[""])
    elif path.suffix == ".json":
        doc = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(doc, dict) or doc.get("format") != TABLE_FORMAT:
            raise LandscapeError(f"{path} is not a landscape evaluation table (format {TABLE_FORMAT!r})")
        table = pd.DataFrame([{**r, "value": np.nan if r["value"] is None else r["value"],
                               "settings": _json(r["settings"])} for r in doc["rows"]], columns=COLUMNS)
    else:
        raise LandscapeError(f"an evaluation table is read from .csv or .json, got {str(path)!r}")
    _check_table(table)
    return table
