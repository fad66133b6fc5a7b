"""Channels-last in float32: how much faster the evaluation's passes run, and that they agree.

`landscape eval --channels-last` (``evaluate(..., channels_last=True)``) runs the
classification passes and the attacks with the network's weights in channels-last
memory format. This measures, on the bundled Fashion-MNIST standard classifier, the
time of each pass in the default (NCHW) format over its time in channels-last,
measured alternately in one run (a ratio above 1: channels-last is faster):

(1) a bare forward pass of the network (what AutoAttack's Square attack repeats);
(2) a forward + input-gradient pass (what PGD, APGD and FAB repeat);
(3) ``robust_accuracy`` with PGD-20 through the engine at eps 0.02 (where about
    half of the images survive, so the comparison means something), and the robust
    accuracies of both formats (they must agree within 1 point: only float rounding differs).

Run:  .venv/bin/python benchmarks/channels_last.py [--n 512] [--threads 1] [--device cuda]
"""

from __future__ import annotations

import argparse
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import compare, sync_for, trained_fmnist_model  # noqa: E402

from landscape.data import load_dataset, subset, to_tensors  # noqa: E402
from landscape.evaluation import robust_accuracy  # noqa: E402
from landscape.utils import resolve_device  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--n", type=int, default=512, help="test images (default 512)")
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    dev = resolve_device(args.device)
    sync = sync_for(dev)
    data = subset(load_dataset("fashion-mnist", "test"), args.n, seed=0)
    x, _ = to_tensors(data)
    x = x[:args.batch_size].to(dev)
    plain = trained_fmnist_model().to(dev).eval()
    fast = trained_fmnist_model().to(dev).eval().to(memory_format=torch.channels_last)
    for m in (plain, fast):
        m.requires_grad_(False)
    print(f"device {dev}, torch {torch.__version__}, threads {torch.get_num_threads()}, "
          f"batch {x.shape[0]}, float32; ratio = NCHW time / channels-last time")

    def forward(m):
        with torch.no_grad():
            m.logits(x)

    def gradient(m):
        xi = x.clone().requires_grad_(True)
        torch.autograd.grad(m.logits(xi).logsumexp(1).sum(), xi)

    for name, fn in (("(1) forward", forward), ("(2) forward + input gradient", gradient)):
        t_plain, t_fast = compare(lambda: fn(plain), lambda: fn(fast), repeat=args.repeat, sync=sync)
        print(f"{name:<46} {t_plain / t_fast:6.2f}x")

    model = trained_fmnist_model().to(dev).eval()
    results = {}

    def run(cl):
        results[cl] = robust_accuracy(model, data, aa=False, eps=0.02, batch_size=args.batch_size, device=dev,
                                      channels_last=cl, progress_bar=False).accuracy("pgd20")

    t_plain, t_fast = compare(lambda: run(False), lambda: run(True), repeat=max(1, args.repeat // 2), sync=sync)
    print(f"{'(3) robust_accuracy, PGD-20 eps 0.02, n=' + str(args.n):<46} {t_plain / t_fast:6.2f}x")
    diff = abs(results[False] - results[True]) * 100
    print(f"    PGD-20 accuracy NCHW {results[False]:.2%}, channels-last {results[True]:.2%} "
          f"({diff:.2f} points; target <= 1: {'ok' if diff <= 1 else 'MISS'})")
    return 0 if diff <= 1 else 1


if __name__ == "__main__":
    raise SystemExit(main())
