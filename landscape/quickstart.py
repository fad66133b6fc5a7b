"""A first look at an energy landscape, from scratch, in about a minute on a CPU.

:func:`quick_landscape` trains the small conv net briefly on Fashion-MNIST (or any
dataset the toolkit loads), then scores the marginal energy ``E(x)`` and the
conditional energy ``E(x, y)`` of the test images, of the same images corrupted by
Gaussian noise, and of uniform-noise images. It returns one row per sample, the
shape every analysis of the toolkit consumes.
"""

from __future__ import annotations

import logging

import pandas as pd
import torch
from torch.nn import functional as F

from .data import dataset_info, load_dataset, subset, to_tensors
from .energy import EnergyModel
from .engine import score
from .models import create_model
from .precision import autocast
from .sources import Clean, Noise, UniformImages
from .utils import progress, seed_everything

log = logging.getLogger(__name__)


def quick_landscape(dataset: str = "fashion-mnist", n_train: int = 20000, n_test: int = 2000,
                    epochs: int = 2, batch_size: int = 128, noise_sigma: float = 0.3,
                    seed: int = 0, root=None, bf16: bool = True,
                    progress_bar: bool | None = None) -> tuple[EnergyModel, pd.DataFrame]:
    """Train a small classifier briefly and score three kinds of inputs.

    Training runs under bf16 autocast on the CPU when ``bf16`` (3-5x faster on
    CPUs with AMX/AVX-512); scoring is in fp32.

    Returns ``(model, table)`` where ``table`` has columns ``source``, ``index``,
    ``label``, ``prediction``, ``correct``, ``energy``, ``conditional_energy``.
    """
    seed_everything(seed)
    info = dataset_info(dataset)
    train = subset(load_dataset(dataset, "train", root=root), min(n_train, 10**9), seed=seed) if n_train else None
    test = load_dataset(dataset, "test", root=root)
    test = subset(test, min(n_test, len(test)), seed=seed)
    xtr, ytr = to_tensors(train)
    xte, yte = to_tensors(test)
    c, h, w = xte.shape[1:]
    net = create_model("smallcnn", in_channels=c, n_classes=info.n_classes or int(ytr.max()) + 1)
    model = EnergyModel(net, "identity", input_shape=(c, h, w), n_classes=net.arch_kwargs["n_classes"],
                        metadata={"dataset": info.name, "trained": f"{epochs} epoch(s) on {len(xtr)} images"})
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    g = torch.Generator().manual_seed(seed)
    model.train()
    steps = [(e, b) for e in range(epochs) for b in range((len(xtr) + batch_size - 1) // batch_size)]
    perm = None
    for epoch, b in progress(steps, enabled=progress_bar, desc="training"):
        if b == 0:
            perm = torch.randperm(len(xtr), generator=g)
        idx = perm[b * batch_size:(b + 1) * batch_size]
        with autocast("cpu", bf16):
            loss = F.cross_entropy(model(xtr[idx]), ytr[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    model.eval()

    # scored by the engine's batch loop; the noise is keyed by test index like every source's
    sources = {"clean": Clean(), f"gaussian-noise(sigma={noise_sigma:g})": Noise(noise_sigma),
               "uniform-noise": UniformImages()}
    table = score(model, test, sources, batch_size=500, device="cpu", seed=seed, checks="off",
                  progress_bar=progress_bar).drop(columns="model")
    log.info("scored %d rows from %d sources", len(table), len(sources))
    return model, table


def summarise(table: pd.DataFrame) -> pd.DataFrame:
    """Per source: n, accuracy, mean/std of E(x), mean E(x,y), gap to clean."""
    g = table.groupby("source", sort=False)
    out = pd.DataFrame({
        "n": g.size(),
        "accuracy": g["correct"].mean(),
        "mean_E(x)": g["energy"].mean(),
        "std_E(x)": g["energy"].std(),
        "mean_E(x,y)": g["conditional_energy"].mean(),
    })
    if "clean" in out.index:
        out["gap_to_clean"] = out["mean_E(x)"] - out.loc["clean", "mean_E(x)"]
    return out
