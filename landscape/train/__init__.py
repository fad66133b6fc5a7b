"""Training: EB-JDAT and the baselines it is compared with, in one loop.

::

    from landscape.train import fit
    result = fit(recipe="fmnist-ebjdat", out_dir="runs/ebjdat")
    result = fit({"dataset": "digits", "objective": "jem", "epochs": 2}, out_dir="runs/jem")
    result = fit(out_dir="runs/jem", resume=True)          # after a crash or kill -9
    model = landscape.load_model("runs/jem/model.safetensors")

* :mod:`~landscape.train.config`: :class:`TrainConfig`, every setting of a run;
* :mod:`~landscape.train.objectives`: the loss terms (CE, PGD-AT, TRADES, JEM,
  EB-JDAT energy alignment) and the inner maximisations;
* :mod:`~landscape.train.loop`: :func:`fit`;
* :mod:`~landscape.train.state`: the resumable run state (train_state.pt);
* :mod:`~landscape.train.recipes`: named configs (``fmnist-standard``,
  ``fmnist-pgdat``, ``fmnist-trades``, ``fmnist-jem``, ``fmnist-ebjdat``...);
* :mod:`~landscape.train.ddp`: the same loop under ``torchrun``.
"""

from .config import INNER_MODES, OBJECTIVES, TERMS, WEIGHT_PRESETS, TrainConfig
from .loop import TrainResult, fit, resolve_config
from .objectives import InnerMax, Objective, TrackingBuffer
from .recipes import list_recipes, load_recipe

__all__ = ["fit", "TrainConfig", "TrainResult", "resolve_config", "Objective", "InnerMax", "TrackingBuffer",
           "list_recipes", "load_recipe", "OBJECTIVES", "INNER_MODES", "WEIGHT_PRESETS", "TERMS"]
