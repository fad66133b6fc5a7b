"""landscape: an energy landscape toolkit for classifiers read as energy-based models.

Import what you need from the top level::

    import landscape
    model = landscape.load_model("checkpoints/fmnist/standard.safetensors")
    ds = landscape.load_dataset("fashion-mnist", "test")

Heavy modules (torch, pandas) are imported on first use of a name, so that
``import landscape`` and ``landscape --version`` stay fast.
"""

from __future__ import annotations

import importlib
import logging

from ._version import __version__
from .errors import CheckpointError, ConfigError, DatasetNotFoundError, LandscapeError

logging.getLogger(__name__).addHandler(logging.NullHandler())

_LAZY = {
    "EnergyModel": "landscape.energy",
    "Normalization": "landscape.energy",
    "energy_from_logits": "landscape.energy",
    "eval_mode": "landscape.energy",
    "create_model": "landscape.models",
    "list_models": "landscape.models",
    "register_model": "landscape.models",
    "load_dataset": "landscape.data",
    "list_datasets": "landscape.data",
    "subset": "landscape.data",
    "train_val_split": "landscape.data",
    "save_model": "landscape.checkpoints.native",
    "load_model": "landscape.checkpoints.load",
    "score": "landscape.engine",
    "set_progress": "landscape.utils",
    "seed_everything": "landscape.utils",
    "evaluate": "landscape.evaluation",
}

__all__ = ["__version__", "LandscapeError", "CheckpointError", "ConfigError", "DatasetNotFoundError", *_LAZY]


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'landscape' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(__all__)
