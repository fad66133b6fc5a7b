"""The energy engine: ``score(model, data, sources)`` -> an energy table.

One row per sample and source with columns ``model``, ``source``, ``index``
(the sample's index in its dataset), ``label``, ``prediction``, ``correct``,
``energy`` (E(x)) and ``conditional_energy`` (E(x, y)), computed from the samples
a source makes out of each clean batch.

* Batches are streamed: only one batch of images (and its samples) is in memory.
* ``device=None`` picks CUDA when present. ``precision="bf16"`` runs the network
  under autocast (energies are still computed in float32); ``channels_last``
  defaults to on for bf16.
* Determinism: every random draw is keyed by ``(seed, dataset index)``
  (:mod:`landscape.rng`), so the table does not depend on the batch size, on the
  subset a sample is scored in, or on how the data is sharded across processes.
* Caching: each source's table is cached on disk under a key naming the model's
  hash, the source's settings, the data selection, the precision, the seed and
  the toolkit version (:mod:`landscape.cache`). Stateful sources (SGLD from a
  replay buffer) are never cached.
* AutoAttack draws its random starts per batch (inside ``pyautoattack``), so its
  rows are the one exception to batch-size invariance.
* Sharding: under ``torchrun`` (an initialised ``torch.distributed`` process
  group), each rank scores a contiguous shard and the table is gathered, so every
  rank returns the same table as one process would.
* Checks (:mod:`landscape.checks`) run on the first batch.
"""

from __future__ import annotations

import contextlib
import logging
import numbers
import os
from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset, Subset

from ._version import __version__
from .cache import EnergyCache, model_fingerprint, tensor_digest
from .checks import check_finite, run_checks
from .energy import EnergyModel, eval_mode
from .errors import LandscapeError
from .precision import PRECISIONS, autocast, full_precision
from .sources.base import make_samples
from .utils import progress, resolve_device

log = logging.getLogger(__name__)

__all__ = ["score", "Scored", "collect", "KEEP", "selection", "Selection", "COLUMNS", "PRECISIONS", "use_channels_last",
           "resolve_sources", "parse_source_spec", "dataset_indices", "default_model_name", "provenance",
           "describe_source", "merge_tables"]

COLUMNS = ["model", "source", "index", "label", "prediction", "correct", "energy", "conditional_energy"]


# ----------------------------------------------------------------------------- sources
def parse_source_spec(spec: str, dataset: str | None = None):
    """Build a source from ``"name"`` or ``"name:key=value:key=value"``: see
    :func:`landscape.sources.parse_spec` (the sources package owns the spec syntax)."""
    from .sources import parse_spec

    return parse_spec(spec, dataset)


def resolve_sources(sources, dataset: str | None = None) -> dict[str, object]:
    """Turn ``"clean,pgd"``, a list of specs/Source objects, or a dict into ``{name: Source}``.

    Specs are parsed by :func:`parse_source_spec` (per-dataset defaults apply).
    """
    from . import sources as S

    if isinstance(sources, str):
        sources = [s.strip() for s in sources.split(",") if s.strip()]
    if isinstance(sources, S.Source):
        sources = [sources]
    if isinstance(sources, Mapping):
        items = list(sources.items())
    else:
        items = []
        for s in sources:
            src = parse_source_spec(s, dataset) if isinstance(s, str) else s
            label = s if isinstance(s, str) and ":" in s else getattr(src, "name", None)
            items.append((label, src))
    out: dict[str, object] = {}
    for name, src in items:
        if not isinstance(src, S.Source):
            raise LandscapeError(f"sources must be names or landscape.sources.Source objects, got {type(src).__name__}")
        if name in out:
            raise LandscapeError(f"two sources are named {name!r}; pass a dict {{name: source}} to tell them apart")
        out[name] = src
    if not out:
        raise LandscapeError("at least one source is needed, got none")
    return out


# ----------------------------------------------------------------------------- data
@dataclass
class Selection:
    """Data as a fixed list of samples: what every batch loop of the toolkit iterates.

    ``indices`` are the samples' indices in their base dataset (the ``index`` column
    of energy tables and the key of every keyed random draw); ``fetch(positions)``
    returns the ``(x, y)`` tensors of those rows; ``cache_key()`` names the selection
    in cache keys (computed only when a cache is used: it may hash the data).
    """

    indices: np.ndarray
    fetch: Callable[[np.ndarray], tuple[torch.Tensor, torch.Tensor]]
    cache_key: Callable[[], dict]
    dataset: str | None = None
    split: str | None = None
    data: object = None

    def __len__(self) -> int:
        return len(self.indices)

    def describe(self) -> str:
        """``"fashion-mnist test"``, ``"tensors"`` or the Dataset's class name."""
        if self.dataset:
            return f"{self.dataset} {self.split}".strip() if self.split else self.dataset
        return "tensors" if isinstance(self.data, tuple) else type(self.data).__name__


def _as_index(pos: np.ndarray):
    """A slice (a view, no copy) when ``pos`` is a contiguous run, else an index tensor."""
    if len(pos) and pos[-1] - pos[0] + 1 == len(pos) and (len(pos) == 1 or bool(np.all(np.diff(pos) == 1))):
        return slice(int(pos[0]), int(pos[-1]) + 1)
    return torch.as_tensor(pos, dtype=torch.long)


def selection(data) -> Selection:
    """The :class:`Selection` of a Dataset (possibly nested ``Subset``s) or an ``(x, y)`` tuple of tensors."""
    from .data import to_tensors

    if isinstance(data, Selection):
        return data
    if isinstance(data, (tuple, list)) and len(data) == 2 and all(isinstance(t, torch.Tensor) for t in data):
        x, y = data
        if x.dim() != 4 or y.dim() != 1 or len(x) != len(y):
            raise LandscapeError(f"data must be (x N x C x H x W, y N), got shapes {tuple(x.shape)} and {tuple(y.shape)}")
        if y.is_floating_point() or y.is_complex() or y.dtype == torch.bool:
            raise LandscapeError(f"labels y must be integer class indices (e.g. torch.int64), got dtype {y.dtype}; "
                                 "float labels are refused rather than truncated")
        return Selection(np.arange(len(x)), lambda pos: (x[_as_index(pos)], y[_as_index(pos)].long()),
                         lambda: {"tensors": tensor_digest(x, y)}, None, None, (x, y))
    if not isinstance(data, Dataset) or not hasattr(data, "__len__"):
        raise LandscapeError(f"data must be a torch Dataset or a tuple (x, y) of tensors, got {type(data).__name__}")
    base, idx = data, np.arange(len(data))
    while isinstance(base, Subset):
        idx = np.asarray(base.indices)[idx]
        base = base.dataset
    name = getattr(base, "name", None)
    if name:
        def key():
            return {"dataset": name, "split": getattr(base, "split", ""), "n_base": len(base),
                    "indices": tensor_digest(torch.as_tensor(idx, dtype=torch.int64))}
    else:  # an anonymous dataset: hash its content
        def key():
            return {"tensors": tensor_digest(*to_tensors(data))}
    return Selection(idx.astype(np.int64), lambda pos: to_tensors(data, pos.tolist()), key, name,
                     getattr(base, "split", None), data)


def dataset_indices(data) -> np.ndarray:
    """The dataset index of each item of ``data`` (through any ``Subset``s): the
    ``index`` column of energy tables and the key of every random draw."""
    return selection(data).indices


# ----------------------------------------------------------------------------- distributed
def _dist_info(distributed) -> tuple[int, int]:
    if distributed is False:
        return 0, 1
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    if distributed is True:
        raise LandscapeError("distributed=True but no torch.distributed process group is initialised "
                             "(launch with torchrun and call torch.distributed.init_process_group)")
    return 0, 1


def _gather(parts: dict[str, dict], world: int) -> dict[str, list[dict]]:
    import torch.distributed as dist

    gathered: list = [None] * world
    dist.all_gather_object(gathered, parts)
    return {name: [g[name] for g in gathered] for name in parts}


# ----------------------------------------------------------------------------- the batch loop
#: what :func:`collect` can keep besides the energy columns
KEEP = ("logits", "samples", "trajectory", "features")


def collect(model: EnergyModel, data, sources: Mapping[str, object], *, keep: Sequence[str] = (),
            record_n: int | None = None, batch_size: int = 256, device=None, precision: str = "fp32",
            channels_last: bool | None = None, seed: int = 0, checks: str = "off", distributed: bool | None = False,
            progress_bar: bool | None = None, label: str = "", features: Callable | None = None,
            positions: np.ndarray | None = None) -> dict[str, dict]:
    """The toolkit's one batch loop: run every source on every batch of ``data`` and collect what it made.

    Every model pass over data (``score``, the evaluation metrics, reports,
    quickstart) goes through here, so device placement, precision and
    channels-last, keyed randomness, input validation, checks and progress are
    handled once.

    Args:
        model: an EnergyModel (moved to ``device`` and back; ``model.training`` restored).
        data: a Dataset, an ``(x, y)`` tuple or a :class:`Selection`.
        sources: ``{name: Source}`` (see :func:`resolve_sources`).
        keep: besides the energy columns, keep ``"logits"`` (float32 ``N x K``),
            ``"samples"`` (float32 ``N x C x H x W``), ``"trajectory"`` (the energy
            after every step of an iterative source, ``N x (steps + 1)``; None for
            other sources) and ``"features"`` (``features(model, samples, logits)``, called
            right after the forward pass of each batch: e.g. what a forward hook caught).
        record_n: keep samples, trajectories and features only for the first
            ``record_n`` rows of the data (default: all rows).
        positions: score only these rows of the data (default: all; the keys, and so
            every random draw, stay those of the full data).
        checks: as :func:`score` (default ``"off"``).
        distributed: as :func:`score` (default ``False``: this process scores everything).

    Returns:
        ``{source name: {"index", "label", "prediction", "energy",
        "conditional_energy": numpy arrays, plus each kept output}}``, rows in
        data order.
    """
    unknown = sorted(set(keep) - set(KEEP))
    if unknown:
        raise LandscapeError(f"keep must be out of {', '.join(KEEP)}, got {unknown}")
    if "features" in keep and features is None:
        raise LandscapeError("keep=('features',) needs features=callable(model, samples, logits) -> N x D tensor")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise LandscapeError(f"batch_size must be a positive integer, got {batch_size!r}")
    if precision not in PRECISIONS:
        raise LandscapeError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    device = resolve_device(device)
    channels_last = use_channels_last(precision, channels_last)
    sel = selection(data)
    rank, world = _dist_info(distributed)
    everything = np.arange(len(sel)) if positions is None else np.asarray(positions, dtype=np.int64)
    mine = np.array_split(everything, world)[rank]
    if world > 1:
        log.info("rank %d of %d scores %d of %d samples (%s)", rank, world, len(mine), len(everything),
                 ", ".join(sources))
    limit = len(sel) if record_n is None else int(record_n)
    needs_grad = any(getattr(s, "needs_grad", False) for s in sources.values())
    rec = _Recorder(sources, keep)
    with _placed(model, device, channels_last), _trajectories(sources, "trajectory" in keep) as steps:
        for i, start in enumerate(progress(range(0, len(mine), batch_size), enabled=progress_bar,
                                           desc=f"scoring {label}".strip(), unit="batch")):
            pos = mine[start:start + batch_size]
            x, y = sel.fetch(pos)
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True).long()
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            model.validate_input(x)
            keys = torch.as_tensor(sel.indices[pos], dtype=torch.int64, device=device)
            if i == 0:
                with _in_precision(device, precision):
                    run_checks(model, x, needs_grad, checks)
            take = pos < limit  # rows whose samples / trajectories / features are kept
            for sname, src in sources.items():
                steps.want(sname, bool(take.any()))
                with _in_precision(device, precision):
                    samples = make_samples(src, model, x, y, keys=keys, seed=seed)
                    with torch.no_grad():
                        out = model.energies(samples, y)
                        feats = features(model, samples, out["logits"]) if "features" in keep else None
                check_finite(out["energy"], f"energies of source {sname!r}")
                rec.add(sname, sel.indices[pos], y, out, take, samples=samples, features=feats,
                        trajectory=steps.last(sname))
    return rec.merged(world)


_COLUMNS = ("index", "label", "prediction", "energy", "conditional_energy")


def _in_precision(device: torch.device, precision: str):
    """``precision`` exactly: bf16 autocast, or float32 even inside a caller's own autocast."""
    return autocast(device, precision) if precision == "bf16" else full_precision(device)


def use_channels_last(precision: str, channels_last: bool | None) -> bool:
    """Whether a pass runs in channels-last memory format: as asked, else on for bf16 only."""
    return precision == "bf16" if channels_last is None else bool(channels_last)


@contextlib.contextmanager
def _placed(model: EnergyModel, device: torch.device, channels_last: bool):
    """The model on ``device`` (channels-last when asked), in eval mode, its per-call input
    check off (the loop validates each clean batch once; sources return [0, 1] samples by
    contract); everything restored afterwards, also on error."""
    original_device = next(iter(model.parameters()), torch.empty(0)).device
    check_inputs, fmt_changed = model.check_inputs, False
    model.check_inputs = False
    try:
        model.to(device)
        if channels_last and device.type in ("cpu", "cuda"):
            model.to(memory_format=torch.channels_last)
            fmt_changed = True
        with eval_mode(model):
            yield model
    finally:
        model.check_inputs = check_inputs
        if fmt_changed:
            model.to(memory_format=torch.contiguous_format)
        model.to(original_device)


class _TrajectorySwitch:
    """Turns the iterative sources' trajectory recording on for the batches whose rows are kept."""

    def __init__(self, sources: Mapping[str, object], wanted: bool):
        self.sources, self.wanted = sources, wanted
        self.flags = {s: getattr(src, "record_trajectory", None) for s, src in sources.items()}
        self.on: dict[str, bool] = {}

    def want(self, sname: str, rows_kept: bool) -> None:
        flag = self.flags[sname]
        self.on[sname] = self.wanted and flag is not None and rows_kept
        if flag is not None:
            self.sources[sname].record_trajectory = bool(flag or self.on[sname])

    def last(self, sname: str) -> torch.Tensor | None:
        return getattr(self.sources[sname], "last_trajectory", None) if self.on.get(sname) else None

    def restore(self) -> None:
        for sname, flag in self.flags.items():
            if flag is not None:
                self.sources[sname].record_trajectory = flag


@contextlib.contextmanager
def _trajectories(sources: Mapping[str, object], wanted: bool):
    switch = _TrajectorySwitch(sources, wanted)
    try:
        yield switch
    finally:
        switch.restore()


class _Recorder:
    """What :func:`collect` keeps per source, batch by batch, then as arrays (gathered across ranks)."""

    def __init__(self, sources: Mapping[str, object], keep: Sequence[str]):
        self.keep = tuple(keep)
        self.acc = {s: {k: [] for k in (*_COLUMNS, *self.keep)} for s in sources}

    def add(self, sname: str, index: np.ndarray, y: torch.Tensor, out: dict, take: np.ndarray, *,
            samples: torch.Tensor, features: torch.Tensor | None, trajectory: torch.Tensor | None) -> None:
        rec = self.acc[sname]
        rec["index"].append(index)
        rec["label"].append(y.cpu().numpy())
        rec["prediction"].append(out["logits"].argmax(1).cpu().numpy())
        rec["energy"].append(out["energy"].float().cpu().numpy())
        rec["conditional_energy"].append(out["conditional_energy"].float().cpu().numpy())
        if "logits" in self.keep:
            rec["logits"].append(out["logits"].detach().float().cpu())
        if not take.any():
            return
        mask = torch.as_tensor(take)
        if "samples" in self.keep:
            rec["samples"].append(samples.detach().float().cpu()[mask].contiguous())
        if "features" in self.keep:
            rec["features"].append(features.detach().float().cpu()[mask])
        if trajectory is not None:
            rec["trajectory"].append(trajectory.detach().float().cpu()[mask])

    def parts(self) -> dict[str, dict]:
        dtypes = {"index": np.int64, "label": np.int64, "prediction": np.int64, "energy": np.float64,
                  "conditional_energy": np.float64}
        out = {}
        for sname, rec in self.acc.items():
            part = {k: np.concatenate(rec[k]).astype(t) if rec[k] else np.zeros(0, t) for k, t in dtypes.items()}
            part.update({k: torch.cat(rec[k]) if rec[k] else None for k in self.keep})
            out[sname] = part
        return out

    def merged(self, world: int) -> dict[str, dict]:
        parts = self.parts()
        if world == 1:
            return parts
        merged = {}
        for sname, pieces in _gather(parts, world).items():
            merged[sname] = {k: np.concatenate([p[k] for p in pieces]) for k in _COLUMNS}
            for k in self.keep:
                got = [p[k] for p in pieces if p[k] is not None]
                merged[sname][k] = torch.cat(got) if got else None
        return merged


# ----------------------------------------------------------------------------- score
def default_model_name(model) -> str:
    """A model's name in tables: ``metadata["name"]``, else its file's stem, else the network's class."""
    meta = getattr(model, "metadata", {}) or {}
    if meta.get("name"):
        return str(meta["name"])
    if "source" in meta:
        return os.path.splitext(os.path.basename(str(meta["source"])))[0]
    return type(getattr(model, "net", model)).__name__


@dataclass
class Scored:
    """What :func:`score` returns when asked to ``record``: the energy table, and for
    the first ``record_n`` samples the samples each source made and the energy after
    every step of each iterative source (``{source: tensor}``, float32 on the CPU;
    ``trajectories`` holds only the sources that have steps)."""

    table: pd.DataFrame
    samples: dict
    trajectories: dict
    indices: np.ndarray


def score(model, data, sources="clean", *, model_name: str | None = None, batch_size: int = 256,
          device=None, precision: str = "fp32", channels_last: bool | None = None, seed: int = 0,
          cache: bool | str | os.PathLike | EnergyCache = False, checks: str = "error",
          distributed: bool | None = None, progress_bar: bool | None = None,
          record: Sequence[str] = (), record_n: int = 128) -> "pd.DataFrame | Scored":
    """Score the energies of the samples each source makes from ``data``.

    Args:
        model: an :class:`EnergyModel`, or anything :func:`landscape.load_model` takes.
        data: a Dataset of ``(x in [0,1], y)`` (e.g. from :func:`landscape.load_dataset`,
            possibly a ``subset``), or a tuple ``(x, y)`` of tensors.
        sources: ``"clean,pgd,sgld"``, a list of names or Source objects, or ``{name: Source}``.
        model_name: the ``model`` column (default: the checkpoint's name or class).
        batch_size: clean images per batch (the table does not depend on it).
        device: ``None``/``"auto"`` (CUDA when present), ``"cpu"``, ``"cuda:N"``.
        precision: ``"fp32"`` or ``"bf16"`` (autocast; energies in float32).
        channels_last: channels-last memory format (default: on for bf16).
        seed: seed of every random draw (keyed per sample).
        cache: ``False``, ``True`` (``$LANDSCAPE_HOME/cache/energies``), a folder, or an EnergyCache.
        checks: ``"error"``, ``"warn"`` or ``"off"`` (see :mod:`landscape.checks`).
        distributed: ``None`` shards when a process group is initialised; ``False`` never.
        record: ``("samples", "trajectory")`` or either: also return, for the first
            ``record_n`` samples, the samples each source made and the energies along
            the steps of PGD and SGLD, from the same run that scored them (a source
            whose table came from the cache is rerun on those ``record_n`` samples
            only; keyed randomness makes that the same computation).

    Returns:
        a DataFrame with columns :data:`COLUMNS`, ordered by source then data order;
        with ``record``, a :class:`Scored` holding it.
    """
    if not isinstance(model, EnergyModel):
        from .checkpoints.load import load_model

        model = load_model(model)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise LandscapeError(f"batch_size must be a positive integer, got {batch_size!r}")
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise LandscapeError(f"seed must be an integer, got {seed!r}")
    seed = int(seed)
    record = tuple(record)
    if set(record) - {"samples", "trajectory"}:
        raise LandscapeError(f"record must be out of 'samples', 'trajectory', got {list(record)}")
    dev = resolve_device(device)
    if precision not in PRECISIONS:
        raise LandscapeError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    channels_last = use_channels_last(precision, channels_last)
    sel = selection(data)
    if len(sel) == 0:
        raise LandscapeError("data is empty: nothing to score")
    srcs = resolve_sources(sources, dataset=sel.dataset or model.metadata.get("dataset"))
    name = model_name or default_model_name(model)
    common = dict(batch_size=batch_size, device=dev, precision=precision, channels_last=channels_last, seed=seed,
                  progress_bar=progress_bar, label=name)

    store = None
    if cache is not False and cache is not None:
        store = cache if isinstance(cache, EnergyCache) else EnergyCache(None if cache is True else cache)
    keys, tables = {}, {}
    if store is not None:
        base_key = {"model": model_fingerprint(model), "data": sel.cache_key(), "precision": precision,
                    "channels_last": bool(channels_last), "seed": int(seed), "version": __version__}
        for sname, src in srcs.items():
            if getattr(src, "stateful", False):
                continue  # e.g. SGLD from a replay buffer: its output depends on the buffer's history
            keys[sname] = {**base_key, "source": src.cache_key()}
            hit = store.get(keys[sname], validate=lambda t: _table_problem(t, sel))
            if hit is not None:
                tables[sname] = hit.assign(model=name, source=sname)
    todo = {k: v for k, v in srcs.items() if k not in tables}
    rank = _dist_info(distributed)[0]
    parts = {}
    if todo:
        parts = collect(model, sel, todo, keep=record, record_n=record_n, checks=checks, distributed=distributed,
                        **common)
        for sname, part in parts.items():
            table = pd.DataFrame({k: part[k] for k in _COLUMNS})
            table.insert(3, "correct", table["prediction"].to_numpy() == table["label"].to_numpy())
            table.insert(0, "source", sname)
            table.insert(0, "model", name)
            tables[sname] = table[COLUMNS]
            if store is not None and rank == 0 and sname in keys:
                store.put(keys[sname], tables[sname])
    out = pd.concat([tables[s] for s in srcs], ignore_index=True)[COLUMNS]
    out.attrs["landscape"] = {"models": {name: provenance(model, sel, srcs, precision=precision, seed=seed)}}
    if not record:
        return out
    cached = {k: v for k, v in srcs.items() if k not in parts}
    if cached:  # rerun only the recorded rows of the sources that came from the cache
        n_rec = min(int(record_n), len(sel))
        parts.update(collect(model, sel, cached, keep=record, record_n=n_rec, positions=np.arange(n_rec),
                             distributed=False, **common))
    samples = {s: parts[s]["samples"] for s in srcs if "samples" in record and parts[s].get("samples") is not None}
    trajectories = {s: parts[s]["trajectory"] for s in srcs
                    if "trajectory" in record and parts[s].get("trajectory") is not None}
    return Scored(out, samples, trajectories, sel.indices[: min(int(record_n), len(sel))])


def describe_source(src) -> dict:
    """A source's settings for provenance: its kind and every hyper-parameter, radii also as k/255."""
    cfg = {"kind": getattr(src, "name", type(src).__name__)}
    for k, v in src.config().items():
        if k == "record_trajectory":
            continue
        cfg[k] = v if isinstance(v, (bool, int, float, str, type(None))) else repr(v)
    for k in ("eps", "step"):
        if isinstance(cfg.get(k), float):
            cfg[f"{k}_255"] = round(cfg[k] * 255, 4)
    return cfg


_FILE_HASHES: dict[tuple, str] = {}


def _file_hash(path) -> str | None:
    """SHA-256 of a checkpoint file, computed once per (path, size, mtime) in this process."""
    try:
        st = os.stat(path)
    except (OSError, TypeError, ValueError):
        return None
    key = (os.path.abspath(path), st.st_size, st.st_mtime_ns)
    if key not in _FILE_HASHES:
        from .utils import file_sha256

        _FILE_HASHES[key] = file_sha256(path)
    return _FILE_HASHES[key]


def provenance(model, data, sources: Mapping[str, object], *, precision: str, seed: int) -> dict:
    """What made an energy table: the model (its file and the file's SHA-256, computed once per
    file), the data, every source's settings, precision, seed and toolkit version. Stored in
    ``table.attrs["landscape"]`` (and so in the Parquet file's metadata). Cheap: the weights of
    a model that did not come from a file are not hashed here (the cache key does that)."""
    sel = selection(data)
    meta = getattr(model, "metadata", {}) or {}
    path = meta.get("path") or meta.get("source")
    return {
        "model_file": str(meta.get("source", "")) or None,
        "model_sha256": meta.get("sha256") or (_file_hash(path) if path else None),
        "family": meta.get("family"),
        "data": sel.describe(), "n": len(sel),
        "precision": precision, "seed": int(seed), "toolkit_version": __version__,
        "sources": {name: describe_source(src) for name, src in sources.items()},
    }


def merge_tables(tables: Sequence[pd.DataFrame]) -> pd.DataFrame:
    """Energy tables of several models as one, with every model's provenance kept in
    ``attrs["landscape"]["models"]`` (``pd.concat`` alone drops attrs that differ)."""
    models: dict = {}
    for t in tables:
        models.update((t.attrs.get("landscape") or {}).get("models", {}))
    out = pd.concat(list(tables), ignore_index=True)
    out.attrs = {"landscape": {"models": models}} if models else {}
    return out


def _table_problem(table: pd.DataFrame, sel: Selection) -> str | None:
    """Why a cached energy table cannot be the table of ``sel`` (None when it can)."""
    missing = [c for c in COLUMNS if c not in table.columns]
    if missing:
        return f"it lacks the column(s) {', '.join(missing)}"
    if len(table) != len(sel):
        return f"it has {len(table)} rows, the data has {len(sel)}"
    for col in ("index", "label", "prediction"):
        if not pd.api.types.is_integer_dtype(table[col]):
            return f"its column {col!r} has dtype {table[col].dtype}, expected integers"
    for col in ("energy", "conditional_energy"):
        if not pd.api.types.is_float_dtype(table[col]):
            return f"its column {col!r} has dtype {table[col].dtype}, expected floats"
    if not pd.api.types.is_bool_dtype(table["correct"]):
        return f"its column 'correct' has dtype {table['correct'].dtype}, expected booleans"
    if not np.array_equal(table["index"].to_numpy(), sel.indices):
        return "its sample indices differ from the data's"
    return None
