"""Energy engine benchmark: ratios against a peer or a bound, measured in one run.

(a) scoring throughput of ``landscape.score`` against a bare ``net(x)`` loop over
    the same batches, in the same precision (target >= 0.95);
(b) PGD-10 against ``torchattacks.PGD`` with the same model, data and settings,
    fp32 (target >= 1.0x as fast) and our bf16 path (target >= 2.5x where bf16 is
    native: CUDA, or CPUs with AMX / AVX512-BF16; elsewhere bf16 is emulated and the
    ratio is printed without a target), and the attack success of both (target:
    within 1 point of torchattacks, at two radii);
(c) PGD-10 and SGLD-20 against the bound of k forward + input-gradient backward
    passes of the bare network (target: within 1.10x).

Run:  .venv/bin/python benchmarks/engine.py [--device cuda] [--n 1024]
torchattacks is not a dependency; install it for (b) without letting it clobber
robustbench:  pip install --no-deps torchattacks==3.5.1 &&
              pip install --no-deps --force-reinstall robustbench==1.1.1
"""

from __future__ import annotations

import argparse
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import compare, sync_for, trained_fmnist_model  # noqa: E402

from landscape.data import load_dataset, subset, to_tensors  # noqa: E402
from landscape.engine import score  # noqa: E402
from landscape.precision import autocast, native_bf16  # noqa: E402
from landscape.sources import PGD, SGLD  # noqa: E402
from landscape.utils import resolve_device  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--n", type=int, default=1024, help="test images (default 1024)")
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    ap.add_argument("--time-bf16", action="store_true",
                    help="time bf16 also where it is emulated (slow; its speed targets do not apply there)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    dev = resolve_device(args.device)
    sync = sync_for(dev)
    model = trained_fmnist_model().to(dev).eval()
    net, norm = model.net, model.normalization
    x, y = to_tensors(subset(load_dataset("fashion-mnist", "test"), args.n, seed=0))
    x, y = x.to(dev), y.to(dev)
    bs = args.batch_size
    batches = [(x[i:i + bs], y[i:i + bs]) for i in range(0, len(x), bs)]
    rows = []

    def report(name, value, target, better="higher", applies=True):
        if not applies:
            shown = "      -" if value is None else f"{value:7.3f}"
            print(f"{name:62s} {shown}   n/a (bf16 is emulated on this device)", flush=True)
            return
        ok = value >= target if better == "higher" else value <= target
        rows.append((name, value, target, better, ok))
        print(f"{name:62s} {value:7.3f}   target {'>=' if better == 'higher' else '<='} {target:<5g} "
              f"{'ok' if ok else 'MISS'}", flush=True)

    native = native_bf16(dev)
    print(f"device {dev}, torch {torch.__version__}, threads {torch.get_num_threads()}, n={len(x)}, batch {bs}, "
          f"native bf16: {native}")

    # Where bf16 is emulated (no AMX / AVX512-BF16) its speed says nothing about the code
    # and a bf16 run costs ~14x fp32: bf16 timings are skipped there (--time-bf16 forces
    # them); bf16 attack success is measured everywhere.
    timed = ("fp32", "bf16") if native or args.time_bf16 else ("fp32",)
    if "bf16" not in timed:
        report("(a) scoring throughput vs bare net(x) loop, bf16", None, 0.95, applies=False)
        report("(c) PGD-10 time / 10 fwd+bwd of the bare net, bf16", None, 1.10, "lower", applies=False)
        report("(c) SGLD-20 time / 20 fwd+bwd of the bare net, bf16", None, 1.10, "lower", applies=False)

    # (a) scoring throughput ---------------------------------------------------------------
    for precision in timed:
        cl = precision == "bf16"

        def ours():
            score(model, (x, y), "clean", batch_size=bs, device=dev, precision=precision, cache=False,
                  checks="off", progress_bar=False)

        def bare():
            if cl:
                net.to(memory_format=torch.channels_last)
            with torch.no_grad(), autocast(dev, precision):
                for xb, _ in batches:
                    xb = xb.contiguous(memory_format=torch.channels_last) if cl else xb
                    net(norm(xb)).float().cpu()
            net.to(memory_format=torch.contiguous_format)

        t_ours, t_bare = compare(ours, bare, args.repeat, sync=sync)
        report(f"(a) scoring throughput vs bare net(x) loop, {precision}", t_bare / t_ours, 0.95)

    # (c) bounds: k forward + input-gradient backward passes of the bare network ---------------
    xb, yb = batches[0]

    def bound(k, precision):
        def run():
            cl = precision == "bf16"
            if cl:
                net.to(memory_format=torch.channels_last)
            xi = (xb.contiguous(memory_format=torch.channels_last) if cl else xb).clone().requires_grad_(True)
            for p in net.parameters():
                p.requires_grad_(False)
            with autocast(dev, precision):
                for _ in range(k):
                    (g,) = torch.autograd.grad(net(norm(xi)).float().logsumexp(1).sum(), xi)
            for p in net.parameters():
                p.requires_grad_(True)
            net.to(memory_format=torch.contiguous_format)
        return run

    pgd = PGD(norm="Linf", eps=0.1, step=0.01, steps=10)
    sgld = SGLD(steps=20)

    def run_source(src, precision):
        def run():
            cl = precision == "bf16"
            if cl:
                model.to(memory_format=torch.channels_last)
            xi = xb.contiguous(memory_format=torch.channels_last) if cl else xb
            keys = torch.arange(len(xi), device=dev)
            with autocast(dev, precision):
                src(model, xi, yb, keys=keys, seed=0)
            model.to(memory_format=torch.contiguous_format)
        return run

    for precision in timed:
        t_pgd, t_b10 = compare(run_source(pgd, precision), bound(10, precision), args.repeat, sync=sync)
        report(f"(c) PGD-10 time / 10 fwd+bwd of the bare net, {precision}", t_pgd / t_b10, 1.10, "lower")
        t_sgld, t_b20 = compare(run_source(sgld, precision), bound(20, precision), args.repeat, sync=sync)
        report(f"(c) SGLD-20 time / 20 fwd+bwd of the bare net, {precision}", t_sgld / t_b20, 1.10, "lower")

    # (b) PGD-10 against torchattacks -------------------------------------------------------
    try:
        import torchattacks
    except ImportError:
        print("(b) skipped: torchattacks is not installed (see this file's docstring)")
    else:
        ta = torchattacks.PGD(model, eps=0.1, alpha=0.01, steps=10, random_start=True)

        def run_ta():
            return torch.cat([ta(xi, yi) for xi, yi in batches])

        def run_ours(precision):
            def run():
                out = []
                cl = precision == "bf16"
                if cl:
                    model.to(memory_format=torch.channels_last)
                for i, (xi, yi) in enumerate(batches):
                    xi = xi.contiguous(memory_format=torch.channels_last) if cl else xi
                    with autocast(dev, precision):
                        out.append(pgd(model, xi, yi, keys=torch.arange(i * bs, i * bs + len(xi), device=dev)))
                model.to(memory_format=torch.contiguous_format)
                return torch.cat(out)
            return run

        t_ta, t32 = compare(run_ta, run_ours("fp32"), args.repeat, sync=sync)
        report("(b) PGD-10 speed vs torchattacks.PGD, fp32 (their time / ours)", t_ta / t32, 1.0)
        if "bf16" in timed:
            t_ta2, t16 = compare(run_ta, run_ours("bf16"), args.repeat, sync=sync)
            report("(b) PGD-10 speed, our bf16 vs torchattacks.PGD fp32", t_ta2 / t16, 2.5, applies=native)
        else:
            report("(b) PGD-10 speed, our bf16 vs torchattacks.PGD fp32", None, 2.5, applies=False)
        # Attack success at the dataset's radius and at a small one where PGD does not
        # break every sample of a standard model (so the comparison can tell them apart).
        with torch.no_grad():
            acc_clean = (model.predict(x) == y).float().mean().item()
        print(f"    clean accuracy {acc_clean:.2%}")
        for eps, step in ((0.1, 0.01), (0.02, 0.002)):
            ta = torchattacks.PGD(model, eps=eps, alpha=step, steps=10, random_start=True)
            pgd = PGD(norm="Linf", eps=eps, step=step, steps=10)
            torch.manual_seed(0)
            adv = {"ta": run_ta(), "32": run_ours("fp32")(), "16": run_ours("bf16")()}
            with torch.no_grad():
                acc = {k: (model.predict(v) == y).float().mean().item() for k, v in adv.items()}
            print(f"    PGD-10 eps {eps:g}: robust accuracy torchattacks {acc['ta']:.2%}, ours fp32 {acc['32']:.2%}, "
                  f"ours bf16 {acc['16']:.2%}")
            report(f"(b) |robust acc ours fp32 - torchattacks| at eps {eps:g} (points)",
                   abs(acc["32"] - acc["ta"]) * 100, 1.0, "lower")
            report(f"(b) |robust acc ours bf16 - torchattacks| at eps {eps:g} (points)",
                   abs(acc["16"] - acc["ta"]) * 100, 1.0, "lower")

    missed = [r[0] for r in rows if not r[4]]
    print(f"{len(rows) - len(missed)} of {len(rows)} targets met" + (f"; missed: {'; '.join(missed)}" if missed else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
