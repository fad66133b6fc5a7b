"""Is a bf16 training search as good as an fp32 one? Trains the same PGD-AT (or TRADES)
run twice, with the inner search in float32 and under bf16 autocast (``attack_bf16``),
and prints, measured in the same run:

* robust accuracy of each model against fp32 PGD-20 and bf16 PGD-20 (test split), and
  the ratio bf16-search model / fp32-search model (target: >= 0.98, i.e. no weaker);
* the bf16 - fp32 attack gap of each model (a bf16-trained model that masked bf16
  gradients would hold far more against bf16 PGD than against fp32 PGD);
* the cost ratio of the two training runs (wall time, same machine, one after the other).

Run:  .venv/bin/python benchmarks/attack_precision.py [--dataset digits] [--objective pgdat] [--epochs 20] [--eps 0.05] [--seeds 0 1]
On CPUs without native bf16 (no AMX / AVX512-BF16) the bf16 run is slower, not faster.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time

import torch

from landscape.data import load_dataset, to_tensors
from landscape.precision import autocast
from landscape.sources import PGD
from landscape.train import fit


def robust(model, x, y, precision: str, eps: float) -> float:
    pgd = PGD("Linf", eps=eps, step=eps / 10, steps=20, loss="ce")
    keys = torch.arange(len(x))
    with autocast("cpu", precision):
        xa = pgd(model, x, y, keys=keys, seed=0)
    with torch.no_grad():
        return float((model.logits(xa).argmax(1) == y).float().mean())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="digits")
    ap.add_argument("--objective", default="pgdat", choices=("pgdat", "trades"))
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--eps", type=float, default=0.05)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    x, y = to_tensors(load_dataset(args.dataset, "test"))
    rows = []
    for seed in args.seeds:
        for attack_bf16 in (False, True):
            with tempfile.TemporaryDirectory() as tmp:
                t = time.perf_counter()
                res = fit({"dataset": args.dataset, "objective": args.objective, "epochs": args.epochs,
                           "arch_kwargs": {"width": 16, "hidden": 64}, "optimizer": "adam", "lr": 1e-3,
                           "batch_size": 64, "eps": args.eps, "attack_step": args.eps / 4, "attack_steps": 5,
                           "val_size": 200, "val_pgd_size": 0, "sgld_steps": 0, "bf16": True, "attack_bf16": attack_bf16,
                           "seed": seed, "num_threads": args.threads}, out_dir=f"{tmp}/run", show_progress=False)
                seconds = time.perf_counter() - t
                model = res.model.eval()
            rows.append({"seed": seed, "search": "bf16" if attack_bf16 else "fp32", "train_s": seconds,
                         "clean": float((model.predict(x) == y).float().mean()),
                         "pgd20_fp32": robust(model, x, y, "fp32", args.eps),
                         "pgd20_bf16": robust(model, x, y, "bf16", args.eps)})
            print(json.dumps(rows[-1]), flush=True)

    def mean(search, key):
        return statistics.mean(r[key] for r in rows if r["search"] == search)

    print(f"\n{args.objective} on {args.dataset}, {args.epochs} epochs, seeds {args.seeds}, eps {args.eps}")
    print(f"{'search':8s} {'clean':>7s} {'PGD-20 fp32':>12s} {'PGD-20 bf16':>12s} {'train s':>8s}")
    for s in ("fp32", "bf16"):
        print(f"{s:8s} {mean(s, 'clean'):7.3f} {mean(s, 'pgd20_fp32'):12.3f} {mean(s, 'pgd20_bf16'):12.3f} "
              f"{mean(s, 'train_s'):8.1f}")
    ratio = mean("bf16", "pgd20_fp32") / max(mean("fp32", "pgd20_fp32"), 1e-9)
    print(f"robust accuracy (fp32 PGD-20), bf16-search model / fp32-search model: {ratio:.3f}   target >= 0.98 "
          f"{'ok' if ratio >= 0.98 else 'MISS'}")
    for s in ("fp32", "bf16"):
        gap = mean(s, "pgd20_bf16") - mean(s, "pgd20_fp32")
        print(f"{s}-search model: bf16 PGD-20 minus fp32 PGD-20 accuracy {gap:+.3f}   target <= 0.015 "
              f"{'ok' if gap <= 0.015 else 'MISS'}")
    print(f"training time, bf16 search / fp32 search: {mean('bf16', 'train_s') / mean('fp32', 'train_s'):.2f}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(rows, fh, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
