"""Helpers shared by the evaluation modules: data selections, batched forward passes.

Not part of the public API.
"""

from __future__ import annotations

import contextlib
import logging
import os
from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np
import torch
from torch.utils.data import Dataset, Subset

from ..energy import EnergyModel, eval_mode
from ..sources.base import make_samples
from ..errors import LandscapeError
from ..precision import autocast
from ..utils import progress, resolve_device

log = logging.getLogger(__name__)


@dataclass
class Selection:
    """Evaluation data as a fixed list of samples.

    ``keys`` are the samples' indices in their base dataset (the keys of the keyed
    random draws, as in :mod:`landscape.engine`), ``fetch(positions)`` returns the
    ``(x, y)`` tensors of those rows.
    """

    keys: np.ndarray
    fetch: Callable[[np.ndarray], tuple[torch.Tensor, torch.Tensor]]
    dataset: str | None
    split: str | None
    data: object

    def __len__(self) -> int:
        return len(self.keys)

    def describe(self) -> str:
        if self.dataset:
            return f"{self.dataset} {self.split}".strip() if self.split else self.dataset
        return "tensors" if isinstance(self.data, tuple) else type(self.data).__name__


def selection(data) -> Selection:
    """A :class:`Selection` of a Dataset (possibly nested Subsets) or an ``(x, y)`` tuple of tensors."""
    from ..data import to_tensors

    if isinstance(data, (tuple, list)) and len(data) == 2 and all(isinstance(t, torch.Tensor) for t in data):
        x, y = data
        if x.dim() != 4 or y.dim() != 1 or len(x) != len(y):
            raise LandscapeError(f"data must be (x N x C x H x W, y N), got shapes {tuple(x.shape)} and {tuple(y.shape)}")
        return Selection(np.arange(len(x)), lambda pos: (x[torch.as_tensor(pos)], y[torch.as_tensor(pos)].long()),
                         None, None, (x, y))
    if not isinstance(data, Dataset) or not hasattr(data, "__len__"):
        raise LandscapeError(f"data must be a dataset name, a torch Dataset or a tuple (x, y) of tensors, "
                             f"got {type(data).__name__}")
    base, idx = data, np.arange(len(data))
    while isinstance(base, Subset):
        idx = np.asarray(base.indices)[idx]
        base = base.dataset
    return Selection(idx.astype(np.int64), lambda pos: to_tensors(data, pos.tolist()),
                     getattr(base, "name", None), getattr(base, "split", None), data)


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


def model_name(model: EnergyModel) -> str:
    """The name of a model in tables (as :func:`landscape.engine.score` names it)."""
    meta = getattr(model, "metadata", {}) or {}
    if meta.get("name"):
        return str(meta["name"])
    if "source" in meta:
        return os.path.splitext(os.path.basename(str(meta["source"])))[0]
    return type(getattr(model, "net", model)).__name__


@contextlib.contextmanager
def on_device(model: torch.nn.Module, device) -> Iterator[torch.device]:
    """Move ``model`` to ``device`` (``None``: CUDA when present) and back afterwards, in eval mode."""
    dev = resolve_device(device)
    original = next(iter(model.parameters()), torch.empty(0)).device
    model.to(dev)
    try:
        with eval_mode(model):
            yield dev
    finally:
        model.to(original)


def iterate(sel: Selection, batch_size: int, device: torch.device, *, desc: str = "",
            progress_bar: bool | None = None):
    """Yield ``(x, y, keys)`` batches on ``device``."""
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise LandscapeError(f"batch_size must be a positive integer, got {batch_size!r}")
    positions = np.arange(len(sel))
    for start in progress(range(0, len(sel), batch_size), enabled=progress_bar, desc=desc, unit="batch"):
        pos = positions[start:start + batch_size]
        x, y = sel.fetch(pos)
        keys = torch.as_tensor(sel.keys[pos], dtype=torch.int64, device=device)
        yield x.to(device), y.to(device).long(), keys


def source_logits(model: EnergyModel, sel: Selection, source=None, *, batch_size: int = 256, device=None,
                  precision: str = "fp32", seed: int = 0, progress_bar: bool | None = None,
                  desc: str = "logits") -> tuple[torch.Tensor, torch.Tensor]:
    """Float32 CPU logits of the samples ``source`` makes from ``sel`` (``None``: the clean images), and the labels.

    The source is called as in :func:`landscape.engine.score` (keys = dataset
    indices, so keyed random draws do not depend on the batch size).
    """
    logits, labels = [], []
    with on_device(model, device) as dev:
        for x, y, keys in iterate(sel, batch_size, dev, desc=desc, progress_bar=progress_bar):
            with autocast(dev, precision):
                if source is None:
                    samples = x
                elif getattr(source, "needs_grad", False):
                    samples = source(model, x, y, keys=keys, seed=seed)
                else:
                    with torch.no_grad():
                        samples = source(model, x, y, keys=keys, seed=seed)
                with torch.no_grad():
                    out = model.logits(samples)
            logits.append(out.float().cpu())
            labels.append(y.cpu())
    if not logits:
        raise LandscapeError("data is empty: nothing to evaluate")
    out = torch.cat(logits)
    if not torch.isfinite(out).all():
        raise LandscapeError(f"the model returned non-finite logits on {int((~torch.isfinite(out)).any(1).sum())} "
                             f"of {len(out)} samples ({desc})")
    return out, torch.cat(labels)


def source_samples(model: EnergyModel, sel: Selection, source, *, batch_size: int = 256, device=None,
                   precision: str = "fp32", seed: int = 0, progress_bar: bool | None = None,
                   desc: str = "samples") -> torch.Tensor:
    """The samples (float32, CPU) ``source`` makes from ``sel``, keyed like the engine."""
    chunks = []
    with on_device(model, device) as dev:
        for x, y, keys in iterate(sel, batch_size, dev, desc=desc, progress_bar=progress_bar):
            with autocast(dev, precision):
                samples = make_samples(source, model, x, y, keys=keys, seed=seed)
            chunks.append(samples.detach().float().cpu())
    return torch.cat(chunks)
