"""Run a declarative analysis: models x data x sources -> energies -> report.

:func:`run_analysis` loads each model, scores every source on the selected data
with :func:`landscape.score` (so re-running reuses the engine's cache), follows
the energy of a few samples along the steps of the iterative sources (PGD, SGLD),
keeps a grid of generated samples (the model's replay buffer when a ``replay``
source is scored and the model carries one, else SGLD's), optionally measures how
the clean-generated gap depends on the sampler (chain length and initialisation),
computes the statistics (:func:`landscape.analyses.pipeline.analyse`) and writes the
report (:func:`landscape.analyses.report.write_result`). It returns the
:class:`~landscape.analyses.pipeline.AnalysisResult`.

A ``replay`` source applies only to models that carry a replay buffer (JEM-family
models); it is skipped, with a log line, for the others.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import pandas as pd
import torch

from ..data import load_dataset, subset, to_tensors
from ..energy import eval_mode
from ..engine import dataset_indices, merge_tables, score
from ..precision import autocast
from ..errors import CheckpointError, ConfigError, LandscapeError
from ..checkpoints.describe import TRAINING_COLUMNS, training_summary
from ..checkpoints.load import load_model
from ..sources import SGLD, Replay, create_source
from ..utils import is_main_process, resolve_device
from .config import AnalysisConfig, load_analysis
from .pipeline import AnalysisResult, analyse

log = logging.getLogger(__name__)

__all__ = ["run_analysis", "build_sources"]

ITERATIVE = ("pgd", "sgld")
#: the report's table of how each model was trained (:func:`landscape.checkpoints.describe.training_summary`)
MODELS_TITLE = "How each model was trained (from its file's header; files of other code bases do not record it)"


def build_sources(config: AnalysisConfig, record_trajectory: bool = False) -> dict:
    """``{name: Source}`` for the analysis (dataset defaults fill what is not given)."""
    out = {}
    for spec in config.sources:
        options = dict(spec.options)
        if record_trajectory and spec.kind in ITERATIVE:
            options["record_trajectory"] = True
        if spec.kind == "ood" and "dataset" not in options:
            raise ConfigError(f"[sources.{spec.name}]: kind \"ood\" needs the out-of-distribution dataset, "
                              f"e.g. dataset = \"mnist\"")
        try:
            out[spec.name] = create_source(spec.kind, config.data.name, **options)
        except ConfigError:
            raise
        except ValueError as exc:  # LandscapeError from a source's constructor
            raise ConfigError(f"[sources.{spec.name}]: {exc}") from exc
    return out


def applies(source, model) -> bool:
    """Whether ``source`` can be scored on ``model`` (a ``replay`` source needs the model's buffer)."""
    return not isinstance(source, Replay) or getattr(model, "replay_buffer", None) is not None


def _records(scored, name: str, config: AnalysisConfig, applied: dict) -> tuple[list[pd.DataFrame], tuple | None]:
    """Trajectory frames of the iterative sources and the sample grid, from what the
    engine recorded while scoring (``scored``: a :class:`landscape.engine.Scored`):
    energies along the PGD/SGLD steps of the first ``config.trajectories`` samples, and
    the first ``config.samples`` generated samples as ``(what, images)``, from the
    replay buffer when a ``replay`` source applies, else from SGLD."""
    from .stats import trajectory_frame

    frames, grid = [], None
    for spec in config.sources:
        sname = spec.name
        if sname not in applied:
            continue
        src = applied[sname]
        if config.trajectories and spec.kind in ITERATIVE and sname in scored.trajectories:
            frames.append(trajectory_frame(scored.trajectories[sname][: config.trajectories], name, sname))
        if not config.samples or sname not in scored.samples:
            continue
        if spec.kind == "replay":
            grid = (f"replay-buffer samples ({sname})", scored.samples[sname][: config.samples])
        elif spec.kind == "sgld" and grid is None:  # a replay grid, when there is one, replaces it
            grid = (f"SGLD samples ({sname}: {src.steps} steps from {src.init} init)",
                    scored.samples[sname][: config.samples])
    return frames, grid


def sampler_sensitivity(model, name: str, x: torch.Tensor, y: torch.Tensor, keys: torch.Tensor, *, steps: int,
                        seed: int, device, precision: str = "fp32") -> pd.DataFrame:
    """Mean energy along SGLD chains of ``steps`` steps (JEM's step 1, noise 0.01) from
    two initialisations: uniform noise, and the model's replay buffer (when it has one).

    Returns the tidy trajectories table (``model``, ``source`` = ``"from noise"`` /
    ``"from replay buffer"``, ``step``, ``energy_mean``, ``energy_std``, ``n``) plus
    ``clean_mean``, the mean energy of the clean ``x`` under the same model: a gap
    that shrinks with the chain length is the sampler's, not the model's.
    """
    from .stats import trajectory_frame

    x, y, keys = x.to(device), y.to(device), keys.to(device)
    frames = []
    with eval_mode(model):
        with torch.no_grad(), autocast(device, precision):
            clean_mean = float(model.energy(x).float().mean())
        noise = SGLD(steps=steps, init="uniform", record_trajectory=True)
        with autocast(device, precision):
            noise(model, x, y, keys=keys, seed=seed)
        frames.append(trajectory_frame(noise.last_trajectory, name, "from noise"))
        if getattr(model, "replay_buffer", None) is not None:
            start = Replay()(model, x, y, keys=keys, seed=seed)
            chain = SGLD(steps=steps, record_trajectory=True)
            with autocast(device, precision):
                chain.run(model, start, keys=keys, seed=seed)
            frames.append(trajectory_frame(chain.last_trajectory, name, "from replay buffer"))
    out = pd.concat(frames, ignore_index=True)
    out["clean_mean"] = clean_mean
    return out


def _class_names(ds) -> list[str] | None:
    """The class names of a (possibly subset) dataset, when it has them."""
    while hasattr(ds, "dataset") and not hasattr(ds, "classes"):
        ds = ds.dataset
    names = getattr(ds, "classes", None)
    return [str(c) for c in names] if names is not None else None


def run_analysis(config: AnalysisConfig | str | os.PathLike, out_dir: str | os.PathLike, *, n: int | None = None,
                 device=None, progress_bar: bool | None = None) -> AnalysisResult:
    """Run ``config`` (an :class:`AnalysisConfig` or a TOML path) and write the report to ``out_dir``.

    ``n`` and ``device`` override the file's data size and device. Returns the
    :class:`~landscape.analyses.pipeline.AnalysisResult` (its tables, ``paths`` of the
    report's files, ``seconds``); ``result["index.html"]``, ``result["energies"]`` and
    ``result["seconds"]`` also work.
    """
    start = time.perf_counter()
    if not isinstance(config, AnalysisConfig):
        config = load_analysis(config)
    if n is not None:
        if n < 1:
            raise ConfigError(f"n must be >= 1, got {n}")
        from dataclasses import replace

        config = replace(config, data=replace(config.data, n=n))
    dev = resolve_device(device or config.device)
    sources = build_sources(config)  # validate every source before any work
    from ..checkpoints.describe import check_loadable
    from .report import check_report_target

    check_report_target(out_dir)  # and the output folder
    for spec in config.models:  # and every model's file (read safely, nothing is built or run)
        try:
            check_loadable(spec.checkpoint, family=spec.family, **spec.options)
        except LandscapeError as exc:
            raise CheckpointError(f"model {spec.name!r}: {exc}") from None
    ds = load_dataset(config.data.name, config.data.split, root=config.data.root, download=config.data.download)
    if config.data.n is not None:
        ds = subset(ds, min(config.data.n, len(ds)), seed=config.seed)
    n_follow = min(max(config.trajectories, config.samples), len(ds))
    follow_pos = list(range(n_follow))
    follow_keys = torch.as_tensor(dataset_indices(ds)[follow_pos], dtype=torch.int64)

    tables, traj_frames, samples, sens_frames, trained = [], [], {}, [], []
    for spec in config.models:
        log.info("analysing model %s (%s)", spec.name, spec.checkpoint)
        model = load_model(spec.checkpoint, family=spec.family, **spec.options)
        trained.append({"model": spec.name, **training_summary(model.metadata)})
        mine = {k: s for k, s in sources.items() if applies(s, model)}
        for k in sources.keys() - mine.keys():
            log.info("model %s has no replay buffer: source %r skipped", spec.name, k)
        # one run per source: the engine records the trajectories and samples the figures need
        scored = score(model, ds, mine, model_name=spec.name, batch_size=config.batch_size, device=dev,
                       precision=config.precision, seed=config.seed, cache=config.cache, progress_bar=progress_bar,
                       record=("samples", "trajectory") if n_follow else (), record_n=max(n_follow, 1))
        if n_follow:
            tables.append(scored.table)
            frames, grid = _records(scored, spec.name, config, mine)
            traj_frames += frames
            if grid is not None:
                samples[spec.name] = grid
        else:
            tables.append(scored)
        if config.sensitivity_steps and config.trajectories:
            m = min(config.trajectories, len(ds))
            x, y = to_tensors(ds, list(range(m)))
            sens_frames.append(sampler_sensitivity(model, spec.name, x, y, follow_keys[:m],
                                                   steps=config.sensitivity_steps, seed=config.seed, device=dev,
                                                   precision=config.precision))
    energies = merge_tables(tables)
    trajectories = pd.concat(traj_frames, ignore_index=True) if traj_frames else None
    sensitivity = pd.concat(sens_frames, ignore_index=True) if sens_frames else None

    from .report import write_result

    settings = config.settings()
    settings["device"] = str(dev)
    result = analyse(energies, trajectories=trajectories, samples=samples or None, sensitivity=sensitivity,
                     title=config.title, settings=settings, column=config.column, n_boot=config.n_boot, ci=config.ci,
                     seed=config.seed, interval=config.interval, breakdowns=config.breakdowns,
                     breakdown_n_boot=config.breakdown_n_boot, class_names=_class_names(ds),
                     extra_tables={MODELS_TITLE: pd.DataFrame(trained, columns=["model", *TRAINING_COLUMNS])})
    if is_main_process():  # under torchrun every rank holds the gathered tables; rank 0 writes the report
        result.paths = write_result(out_dir, result, kde=config.kde)
    result.seconds = time.perf_counter() - start
    log.info("report written to %s in %.1f s", Path(out_dir), result.seconds)
    return result
