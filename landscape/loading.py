"""``load_model(source)``: one entry point for every checkpoint the toolkit reads."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from .energy import EnergyModel
from .errors import CheckpointError
from .native import load_native

__all__ = ["load_model"]


def load_model(source: str | os.PathLike, device: str | torch.device = "cpu") -> EnergyModel:
    """Load a checkpoint as an :class:`EnergyModel` in eval mode.

    ``source`` is a path to a native checkpoint (``.safetensors`` written by
    :func:`landscape.save_model`).
    """
    path = Path(source)
    if not path.exists():
        raise CheckpointError(f"checkpoint {path} does not exist")
    return load_native(path, device=device)
