"""Measure a bundled model on the Fashion-MNIST test split (run after training, never for selection).

    python checkpoints/fmnist/measure.py checkpoints/fmnist/standard.safetensors [more.safetensors ...]

Clean accuracy and PGD-20 accuracy (Linf eps 0.1, step 0.01, one random start,
landscape.sources.PGD, fp32) on all 10,000 test images; writes <model>.test.json.
Also the same attack run under bf16 autocast (``pgd20_bf16_acc``): far above the fp32
number means the model masks bf16 gradients (what a PGD-AT model trained against
bf16 searches did: 74% against bf16 PGD-20, 47% against fp32).
"""

import json
import sys
import time
from pathlib import Path

import torch

import landscape
from landscape.data import load_dataset, to_tensors
from landscape.precision import autocast
from landscape.sources import PGD
from landscape.utils import atomic_write_text


def measure(path: Path, batch: int = 500, bf16_check: bool = True, attack: bool = True) -> dict:
    """Clean and PGD-20 accuracy in percent (``attack=False``: clean accuracy only)."""
    model = landscape.load_model(path)
    x, y = to_tensors(load_dataset("fashion-mnist", "test"))
    pgd = PGD("Linf", eps=0.1, step=0.01, steps=20, loss="ce", random_start=True)
    t = time.time()
    clean = adv = adv_bf16 = 0
    for i in range(0, len(x), batch):
        xb, yb = x[i:i + batch], y[i:i + batch]
        keys = torch.arange(i, i + len(xb))
        with torch.no_grad():
            clean += int((model.predict(xb) == yb).sum())
        if not attack:
            continue
        xa = pgd(model, xb, yb, keys=keys, seed=0)
        with torch.no_grad():
            adv += int((model.predict(xa) == yb).sum())
        if bf16_check:
            with autocast("cpu", "bf16"):
                xa16 = pgd(model, xb, yb, keys=keys, seed=0)
            with torch.no_grad():
                adv_bf16 += int((model.predict(xa16) == yb).sum())
    out = {"model": path.name, "split": "test", "n": len(x), "clean_acc": round(100 * clean / len(x), 2)}
    if not attack:
        return out
    out["pgd20_acc"] = round(100 * adv / len(x), 2)
    if bf16_check:
        out["pgd20_bf16_acc"] = round(100 * adv_bf16 / len(x), 2)
    out["attack"] = "PGD-20 Linf eps 0.1 step 0.01, 1 random start (landscape.sources.PGD, CE, fp32)"
    out["seconds"] = round(time.time() - t, 1)
    return out


if __name__ == "__main__":
    torch.set_num_threads(1)
    for p in map(Path, sys.argv[1:]):
        res = measure(p)
        atomic_write_text(p.with_suffix(".test.json"), json.dumps(res, indent=1) + "\n")
        print(json.dumps(res))
