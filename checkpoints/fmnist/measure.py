"""Measure a bundled model on the Fashion-MNIST test split (run after training, never for selection).

    python checkpoints/fmnist/measure.py checkpoints/fmnist/standard.safetensors [more.safetensors ...]

Clean accuracy and PGD-20 accuracy (Linf eps 0.1, step 0.01, one random start,
landscape.sources.PGD, fp32) on all 10,000 test images; writes <model>.test.json.
Also the same attack under bf16 (landscape.precision.autocast) on the first 500 test
images (``bf16_check``), beside the fp32 result on the same images: they must agree
within 1.5 points. (Before the autocast-cache fix a bf16 search was frozen at its
start; a PGD-AT model then held 74% against bf16 PGD-20 and 47% against fp32.)

For a model that carries its replay buffer (JEM, EB-JDAT): ``generation``, the
Frechet distance in the penultimate features of the bundled standard classifier
(trained independently; "FD (reference-classifier features), not FID") between the
test images and (a) the buffer samples, (b) samples of the chains' initialisation
(per-class Gaussians fitted on the training split, as the trainer re-initialises
from), (c) uniform noise, all of the buffer's size; and the classes the reference
classifier assigns to the buffer samples (``classes_covered``: classes holding at
least 2.5% of them).
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


BF16_N = 500


def measure(path: Path, batch: int = 500, bf16_check: bool = True, attack: bool = True) -> dict:
    """Clean and PGD-20 accuracy in percent (``attack=False``: clean accuracy only)."""
    model = landscape.load_model(path)
    x, y = to_tensors(load_dataset("fashion-mnist", "test"))
    pgd = PGD("Linf", eps=0.1, step=0.01, steps=20, loss="ce", random_start=True)
    t = time.time()
    clean = adv = adv_bf16 = adv_first = 0
    for i in range(0, len(x), batch):
        xb, yb = x[i:i + batch], y[i:i + batch]
        keys = torch.arange(i, i + len(xb))
        with torch.no_grad():
            clean += int((model.predict(xb) == yb).sum())
        if not attack:
            continue
        xa = pgd(model, xb, yb, keys=keys, seed=0)
        with torch.no_grad():
            hits = model.predict(xa) == yb
        adv += int(hits.sum())
        if bf16_check and i < BF16_N:
            m = min(BF16_N - i, len(xb))
            adv_first += int(hits[:m].sum())
            with autocast("cpu", "bf16"):
                xa16 = pgd(model, xb[:m], yb[:m], keys=keys[:m], seed=0)
            with torch.no_grad():
                adv_bf16 += int((model.predict(xa16) == yb[:m]).sum())
    out = {"model": path.name, "split": "test", "n": len(x), "clean_acc": round(100 * clean / len(x), 2)}
    if not attack:
        return out
    out["pgd20_acc"] = round(100 * adv / len(x), 2)
    if bf16_check:
        n16 = min(BF16_N, len(x))
        out["bf16_check"] = {"n": n16, "pgd20_fp32_acc": round(100 * adv_first / n16, 2),
                             "pgd20_bf16_acc": round(100 * adv_bf16 / n16, 2)}
    out["attack"] = "PGD-20 Linf eps 0.1 step 0.01, 1 random start (landscape.sources.PGD, CE, fp32)"
    if getattr(model, "replay_buffer", None) is not None:
        out["generation"] = generation(model.replay_buffer, x)
    out["seconds"] = round(time.time() - t, 1)
    return out


def generation(buffer: torch.Tensor, test: torch.Tensor, seed: int = 0) -> dict:
    """FD of buffer samples, the chains' initialisation and uniform noise against the test images."""
    from landscape.evaluation.generation import FD_LABEL, reference_classifier, reference_fd
    from landscape.sources import fit_class_gaussians

    n = buffer.shape[0]
    g = torch.Generator().manual_seed(seed)
    ref = test[torch.randperm(len(test), generator=g)[:n]]
    feature_model = reference_classifier("fashion-mnist")
    xtr, ytr = to_tensors(load_dataset("fashion-mnist", "train"))
    gauss = fit_class_gaussians(xtr, ytr, n_classes=10)
    init = gauss.sample(torch.arange(n) % 10, generator=g).clamp(0, 1)
    noise = torch.rand(buffer.shape, generator=g)
    fd = {name: round(reference_fd(s, ref, feature_model=feature_model)[0], 2)
          for name, s in (("buffer", buffer), ("class_gaussian_init", init), ("uniform_noise", noise))}
    with torch.no_grad():
        counts = torch.bincount(feature_model.predict(buffer), minlength=10)
    share = (counts.float() / n).tolist()
    return {"measure": FD_LABEL, "n": n, "fd": fd,
            "fd_ratio_to_init": round(fd["buffer"] / fd["class_gaussian_init"], 3),
            "fd_ratio_to_uniform": round(fd["buffer"] / fd["uniform_noise"], 3),
            "class_share": [round(s, 4) for s in share], "classes_covered": int(sum(s >= 0.025 for s in share))}


if __name__ == "__main__":
    torch.set_num_threads(1)
    for p in map(Path, sys.argv[1:]):
        res = measure(p)
        atomic_write_text(p.with_suffix(".test.json"), json.dumps(res, indent=1) + "\n")
        print(json.dumps(res))
