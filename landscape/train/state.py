"""The resumable run state of a training run: everything needed to continue it exactly.

``train_state.pt`` (in the run folder) is a ``torch.save`` of plain containers
only (tensors, dicts, lists, numbers, strings, None), so it loads with
``torch.load(path, weights_only=True)``::

    {"format": "landscape-train-state", "format_version": 1,
     "config": {...TrainConfig...}, "epoch": int, "step_in_epoch": int, "step": int,
     "model": state_dict, "optimizer": optimizer.state_dict(),
     "scheduler": {"lr_scale": float, "rollbacks": int},
     "ranks": [{"torch_rng": uint8 tensor, "cuda_rng": [...], "buffer": {...} or None}, ...],
     "history": [per-epoch metrics], "running": {...}, "best": {...}, "events": [...],
     "world_size": int, "landscape_version": str}

The model itself is also written, next to it, as a native ``model.safetensors``
(see :mod:`landscape.native`) at every checkpoint, so ``landscape.load_model(run_dir /
"model.safetensors")`` needs no flags. Every write is atomic (temporary file, then
rename): a run killed at any moment, even by ``kill -9``, leaves the previous
run state intact.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import torch

from .._version import __version__
from ..errors import CheckpointError
from ..utils import atomic_path

log = logging.getLogger(__name__)

STATE_FORMAT = "landscape-train-state"
STATE_VERSION = 1
STATE_FILE = "train_state.pt"
MODEL_FILE = "model.safetensors"
BEST_FILE = "best.safetensors"

__all__ = ["save_train_state", "load_train_state", "rng_state", "set_rng_state", "STATE_FILE", "MODEL_FILE",
           "BEST_FILE"]


def rng_state() -> dict:
    """This process's torch RNG states (CPU and, when present, every CUDA device)."""
    state = {"torch_rng": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda_rng"] = [s for s in torch.cuda.get_rng_state_all()]
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch_rng"].cpu())
    if state.get("cuda_rng") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda_rng"]])


def save_train_state(path: str | os.PathLike, state: dict) -> Path:
    """Write ``state`` (plain containers only) atomically with ``torch.save``."""
    state = {"format": STATE_FORMAT, "format_version": STATE_VERSION, "landscape_version": __version__, **state}
    path = Path(path)
    with atomic_path(path) as tmp:
        torch.save(state, tmp)
    return path


def load_train_state(path: str | os.PathLike) -> dict:
    """Read a training state onto the CPU with the safe loader (``torch.load(weights_only=True)``).

    Errors are those of :func:`landscape.checkpoints.safety.safe_torch_load`: a file
    that would import code is refused naming the import, never with advice to turn
    the safe loader off.
    """
    from ..checkpoints.safety import safe_torch_load

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"training state {path} does not exist")
    state = safe_torch_load(path)
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
        got = state.get("format") if isinstance(state, dict) else type(state).__name__
        raise CheckpointError(f"{path} is not a landscape training state (format {got!r}, expected {STATE_FORMAT!r})")
    if int(state.get("format_version", 0)) > STATE_VERSION:
        raise CheckpointError(f"{path} was written by a newer landscape (training state version "
                              f"{state['format_version']}, this is {STATE_VERSION}); upgrade landscape")
    return state
