"""On-disk cache of energy tables, keyed by everything that determines them.

A key is the SHA-256 of a JSON document naming every input: the model's weights
hash and configuration, the source's settings, the data selection, the precision,
the seed and the toolkit version. Entries are Parquet files written atomically,
so a crash never leaves a half-written entry and concurrent readers see either
nothing or a whole file.

The cache lives under ``$LANDSCAPE_HOME/cache`` (default ``~/.cache/landscape``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Callable

import pandas as pd
import torch

from .utils import atomic_path, landscape_home

log = logging.getLogger(__name__)

__all__ = ["landscape_home", "EnergyCache", "model_fingerprint", "tensor_digest", "key_digest"]


def key_digest(parts: dict) -> str:
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def tensor_digest(*tensors: torch.Tensor) -> str:
    h = hashlib.sha256()
    for t in tensors:
        t = t.detach().to("cpu").contiguous()
        h.update(str((t.dtype, tuple(t.shape))).encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def model_fingerprint(model) -> str:
    """A hash of a model's weights, buffers and energy configuration.

    A checkpoint's own SHA-256 (``model.metadata['sha256']``, set by the loaders)
    is used when present; otherwise the state_dict is hashed.
    """
    cached = getattr(model, "_landscape_fingerprint", None)
    if cached is not None:
        return cached
    h = hashlib.sha256()
    file_hash = model.metadata.get("sha256") if hasattr(model, "metadata") else None
    if file_hash:
        h.update(f"file:{file_hash}".encode())
    else:
        for name, t in sorted(model.state_dict().items()):
            h.update(name.encode())
            h.update(tensor_digest(t).encode())
    config = {
        "normalization": model.normalization.to_config() if hasattr(model, "normalization") else None,
        "temperature": getattr(model, "temperature", None),
        "class": type(getattr(model, "net", model)).__name__,
    }
    h.update(json.dumps(config, sort_keys=True).encode())
    return h.hexdigest()


class EnergyCache:
    """Parquet files named by the digest of their key."""

    def __init__(self, root: str | os.PathLike | None = None):
        self.root = Path(root) if root is not None else landscape_home() / "cache" / "energies"

    def path(self, key: dict) -> Path:
        digest = key_digest(key)
        return self.root / digest[:2] / f"{digest}.parquet"

    def get(self, key: dict, validate: Callable[[pd.DataFrame], str | None] | None = None) -> pd.DataFrame | None:
        """The table cached under ``key``, or None.

        An entry that cannot be read, or that ``validate(table)`` rejects (it returns
        the reason as a string), is a miss: the caller recomputes and overwrites it,
        and a warning names the entry and the reason.
        """
        path = self.path(key)
        if not path.is_file():
            return None
        try:
            table = pd.read_parquet(path)
        except Exception as exc:  # a corrupt entry is a miss, never a crash
            log.warning("ignoring unreadable cache entry %s (%s); recomputing it", path, exc)
            return None
        problem = validate(table) if validate is not None else None
        if problem:
            log.warning("ignoring cache entry %s (%s); recomputing it", path, problem)
            return None
        log.info("cache hit: %s", path)
        return table

    def put(self, key: dict, table: pd.DataFrame) -> Path | None:
        """Store ``table`` under ``key``; a cache that cannot be written is a warning, not an error."""
        path = self.path(key)
        try:
            with atomic_path(path) as tmp:
                table.to_parquet(tmp, index=False)
            # the key is stored next to the data, for inspection
            with atomic_path(path.with_suffix(".json")) as tmp:
                tmp.write_text(json.dumps(key, sort_keys=True, indent=1, default=str))
        except OSError as exc:
            log.warning("could not write the energy cache entry %s (%s); the result is not cached", path, exc)
            return None
        log.debug("cached %d rows at %s", len(table), path)
        return path
