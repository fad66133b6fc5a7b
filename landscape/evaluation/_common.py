"""Helpers shared by the evaluation modules: subsets, and the model passes they need (run by
the engine's one batch loop, :func:`landscape.engine.collect`; selections and model names
are the engine's :func:`~landscape.engine.selection` and :func:`~landscape.engine.default_model_name`).

Not part of the public API.
"""

from __future__ import annotations

import logging

import torch

from ..energy import EnergyModel
from ..engine import Selection, collect
from ..errors import LandscapeError
from ..sources import Clean

log = logging.getLogger(__name__)


def take(data, n: int | None, seed: int):
    """The first-level deterministic subset of ``n`` items (``None`` or more than there are: all)."""
    from ..data import subset

    if n is None or (isinstance(data, (tuple, list)) and n >= len(data[0])):
        return data
    if isinstance(data, (tuple, list)):
        g = torch.Generator().manual_seed(int(seed))
        idx = torch.randperm(len(data[0]), generator=g)[:n].sort().values
        return data[0][idx], data[1][idx]
    return subset(data, min(int(n), len(data)), seed=seed)


def source_logits(model: EnergyModel, sel: Selection, source=None, *, batch_size: int = 256, device=None,
                  precision: str = "fp32", channels_last: bool = False, seed: int = 0,
                  progress_bar: bool | None = None, desc: str = "logits") -> tuple[torch.Tensor, torch.Tensor]:
    """Float32 CPU logits of the samples ``source`` makes from ``sel`` (``None``: the clean images), and the labels.

    Run by the engine's batch loop (:func:`landscape.engine.collect`), so the keys,
    precision and device handling are those of :func:`landscape.engine.score`.
    """
    if len(sel) == 0:
        raise LandscapeError("data is empty: nothing to evaluate")
    part = collect(model, sel, {desc: source if source is not None else Clean()}, keep=("logits",),
                   batch_size=batch_size, device=device, precision=precision, channels_last=bool(channels_last),
                   seed=seed, progress_bar=progress_bar, label=desc, distributed=None)[desc]
    return part["logits"], torch.as_tensor(part["label"])


def source_samples(model: EnergyModel, sel: Selection, source, *, batch_size: int = 256, device=None,
                   precision: str = "fp32", channels_last: bool = False, seed: int = 0,
                   progress_bar: bool | None = None, desc: str = "samples") -> torch.Tensor:
    """The samples (float32, CPU) ``source`` makes from ``sel``, keyed like the engine."""
    return collect(model, sel, {desc: source}, keep=("samples",), batch_size=batch_size, device=device,
                   precision=precision, channels_last=bool(channels_last), seed=seed, progress_bar=progress_bar,
                   label=desc, distributed=None)[desc]["samples"]
