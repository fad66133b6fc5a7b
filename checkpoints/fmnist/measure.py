"""Measure a bundled model on the Fashion-MNIST test split (run after training, never for selection).

    python checkpoints/fmnist/measure.py checkpoints/fmnist/standard.safetensors [more.safetensors ...]

Clean accuracy and PGD-20 accuracy (Linf eps 0.1, step 0.01, one random start,
landscape.sources.PGD, fp32) on all 10,000 test images; writes <model>.test.json.
"""

import json
import sys
import time
from pathlib import Path

import torch

import landscape
from landscape.data import load_dataset, to_tensors
from landscape.sources import PGD
from landscape.utils import atomic_write_text


def measure(path: Path, batch: int = 500) -> dict:
    model = landscape.load_model(path)
    x, y = to_tensors(load_dataset("fashion-mnist", "test"))
    pgd = PGD("Linf", eps=0.1, step=0.01, steps=20, loss="ce", random_start=True)
    t = time.time()
    clean = adv = 0
    for i in range(0, len(x), batch):
        xb, yb = x[i:i + batch], y[i:i + batch]
        with torch.no_grad():
            clean += int((model.predict(xb) == yb).sum())
        xa = pgd(model, xb, yb, keys=torch.arange(i, i + len(xb)), seed=0)
        with torch.no_grad():
            adv += int((model.predict(xa) == yb).sum())
    return {"model": path.name, "split": "test", "n": len(x), "clean_acc": round(100 * clean / len(x), 2),
            "pgd20_acc": round(100 * adv / len(x), 2),
            "attack": "PGD-20 Linf eps 0.1 step 0.01, 1 random start (landscape.sources.PGD, CE, fp32)",
            "seconds": round(time.time() - t, 1)}


if __name__ == "__main__":
    torch.set_num_threads(1)
    for p in map(Path, sys.argv[1:]):
        res = measure(p)
        atomic_write_text(p.with_suffix(".test.json"), json.dumps(res, indent=1) + "\n")
        print(json.dumps(res))
