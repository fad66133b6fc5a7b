"""Per-dataset attack defaults: the one table.

Radii and step sizes are in [0, 1] pixel units (never in a model's normalised
space). ``steps`` is the number of PGD iterations used by default (PGD-10).

| dataset | Linf eps | Linf step | L2 eps | L2 step |
|---|---|---|---|---|
| cifar10, cifar100, svhn | 8/255 | 2/255 | 0.5 | 0.125 |
| fashion-mnist, mnist | 0.1 | 0.01 | 1.5 (F-MNIST) / 2.0 (MNIST) | 0.375 / 0.5 |
| digits (8x8) | 0.1 | 0.01 | 0.5 | 0.125 |
| imagefolder (ImageNet, 224) | 4/255 | 1/255 | 3.0 | 0.75 |

Where they come from:

* Linf: the standard threat models (RobustBench: CIFAR-10/100 8/255, ImageNet
  4/255; Madry et al. 2018 used 8/255 with step 2/255 on CIFAR-10). For
  Fashion-MNIST/MNIST the toolkit uses 0.1 with step 0.01 (the setting the energy
  analyses of this project are reported at; MNIST's usual 0.3 is available as an
  override). digits shares the MNIST-like setting.
* L2: RobustBench's CIFAR-10 L2 radius 0.5; 2.0 for MNIST (Croce & Hein 2020);
  1.5 for Fashion-MNIST; ImageNet 3.0 (Madry lab's robustness library). digits
  images have 64 pixels, 12 times fewer than MNIST's 784, so its radius is about
  MNIST's divided by sqrt(12): 0.5. L2 steps follow the rule step = 2.5 * eps /
  steps of Madry et al.'s robustness library (which also gives CIFAR's Linf 2/255).
"""

from __future__ import annotations

from ..data import dataset_info
from ..errors import LandscapeError

__all__ = ["ATTACK_DEFAULTS", "attack_defaults", "NORMS"]

NORMS = ("Linf", "L2")

_CIFAR = {"Linf": {"eps": 8 / 255, "step": 2 / 255, "steps": 10},
          "L2": {"eps": 0.5, "step": 0.125, "steps": 10}}

#: dataset name (as in :func:`landscape.load_dataset`) -> norm -> {eps, step, steps}
ATTACK_DEFAULTS: dict[str, dict[str, dict[str, float]]] = {
    "cifar10": _CIFAR,
    "cifar100": _CIFAR,
    "svhn": _CIFAR,
    "fashion-mnist": {"Linf": {"eps": 0.1, "step": 0.01, "steps": 10},
                      "L2": {"eps": 1.5, "step": 0.375, "steps": 10}},
    "mnist": {"Linf": {"eps": 0.1, "step": 0.01, "steps": 10},
              "L2": {"eps": 2.0, "step": 0.5, "steps": 10}},
    "digits": {"Linf": {"eps": 0.1, "step": 0.01, "steps": 10},
               "L2": {"eps": 0.5, "step": 0.125, "steps": 10}},
    "imagefolder": {"Linf": {"eps": 4 / 255, "step": 1 / 255, "steps": 10},
                    "L2": {"eps": 3.0, "step": 0.75, "steps": 10}},
}


def attack_defaults(dataset: str, norm: str = "Linf") -> dict[str, float]:
    """``{"eps", "step", "steps"}`` for ``dataset`` (aliases such as ``"fmnist"`` work) and ``norm``."""
    if norm not in NORMS:
        raise LandscapeError(f"norm must be one of {', '.join(repr(n) for n in NORMS)}, got {norm!r}")
    if not isinstance(dataset, str):
        raise LandscapeError(f"dataset must be a dataset name, got {type(dataset).__name__}")
    try:
        key = dataset_info(dataset).name
    except LandscapeError:
        key = dataset.lower()
    if key not in ATTACK_DEFAULTS:
        raise LandscapeError(f"no attack defaults for dataset {dataset!r}; known: {', '.join(sorted(ATTACK_DEFAULTS))} "
                             "(pass eps and step explicitly)")
    return dict(ATTACK_DEFAULTS[key][norm])
