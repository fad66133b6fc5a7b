"""Device check: the engine on the paper's network, as ratios against peers and bounds.

    .venv/bin/python benchmarks/device_check.py [--device cuda] [--json device_check.json]
    .venv/bin/python benchmarks/device_check.py --device cpu --small        # the CPU smoke run (< 3 min)

One ratio per line, and the same numbers in a JSON file:

(a) ``landscape.score`` throughput on WRN-28-10 against a bare forward loop over the
    same batches, in the same precision (bf16 autocast + channels-last where bf16 is
    native: CUDA or AMX/AVX512-BF16 CPUs; else fp32); target >= 0.95;
(b) PGD-10 against ``torchattacks.PGD`` (same model, data, precision), their time /
    ours, target >= 1.0 (skipped when torchattacks is not installed);
(c) PGD-10 and SGLD-20 against k forward + input-gradient backward passes of the
    bare network, target <= 1.10;
(d) one EB-JDAT training step (the default saddle search, K = 10 PGD steps, SGLD 20
    steps; --small: 3 and 5) against its bound, one JEM step plus K PGD steps, target <= 1.10;
(e) the achieved TFLOP/s of the bf16 forward loop as a share of the GPU's bf16 dense
    peak (FLOPs counted with torch.utils.flop_counter; peaks from the table below),
    target >= 0.40 on a GPU; printed as n/a elsewhere.

``--small`` uses WRN-16-2 and small batches (a smoke run of every measurement, not a
speed claim). Absolute times are printed for reference only.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from landscape.energy import EnergyModel, energy_from_logits  # noqa: E402
from landscape.engine import score  # noqa: E402
from landscape.models import create_model  # noqa: E402
from landscape.precision import autocast, native_bf16  # noqa: E402
from landscape.sources import PGD, SGLD  # noqa: E402
from landscape.train import Objective, TrackingBuffer, TrainConfig  # noqa: E402
from landscape.train.objectives import InnerMax  # noqa: E402
from landscape.utils import resolve_device  # noqa: E402

#: dense bf16 tensor-core peaks (TFLOP/s) by a substring of torch.cuda.get_device_name
BF16_PEAK_TFLOPS = {
    "H200": 989.0, "H100 SXM": 989.0, "H100 NVL": 835.0, "H100 PCIe": 756.0, "H100": 756.0,
    "A100": 312.0, "L40S": 362.0, "L40": 181.0, "L4": 121.0, "A10G": 70.0, "A10": 125.0, "RTX 4090": 165.0,
    "RTX 3090": 71.0, "A6000": 155.0,
}


def bf16_peak(name: str) -> float | None:
    for key in sorted(BF16_PEAK_TFLOPS, key=len, reverse=True):  # the most specific match first
        if key in name:
            return BF16_PEAK_TFLOPS[key]
    return None


def timed(fn, repeat: int, sync) -> float:
    fn()  # warm-up
    sync()
    out = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        sync()
        out.append(time.perf_counter() - t)
    return statistics.median(out)


def interleaved(fns: dict, repeat: int, sync) -> dict:
    """Median time of each function, measured round-robin (load spreads over all of them)."""
    for fn in fns.values():
        fn()
    sync()
    times = {k: [] for k in fns}
    for _ in range(repeat):
        for k, fn in fns.items():
            t = time.perf_counter()
            fn()
            sync()
            times[k].append(time.perf_counter() - t)
    return {k: statistics.median(v) for k, v in times.items()}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--small", action="store_true", help="WRN-16-2 and small batches: a smoke run")
    ap.add_argument("--n", type=int, default=None, help="images scored (default 4096; --small 128)")
    ap.add_argument("--batch-size", type=int, default=None, help="default 512; --small 32")
    ap.add_argument("--repeat", type=int, default=None, help="default 5; --small 2")
    ap.add_argument("--json", default="device_check.json", help="where to write the numbers")
    args = ap.parse_args()
    dev = resolve_device(args.device)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    small = args.small
    n = args.n or (64 if small else 4096)
    bs = args.batch_size or (16 if small else 512)
    repeat = args.repeat or (2 if small else 5)
    depth, width = (16, 2) if small else (28, 10)
    bf16 = native_bf16(dev)
    precision = "bf16" if bf16 else "fp32"
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu"
    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = True
    torch.manual_seed(0)
    net = create_model("wrn", depth=depth, width=width, n_classes=10)
    model = EnergyModel(net, normalization="identity", input_shape=(3, 32, 32), n_classes=10).to(dev).eval()
    x = torch.rand(n, 3, 32, 32, device=dev)
    y = torch.randint(10, (n,), device=dev)
    batches = [(x[i:i + bs], y[i:i + bs]) for i in range(0, n, bs)]
    rows: list[dict] = []

    def report(key, label, value, target, better="higher", note=""):
        ok = None if value is None or target is None else (value >= target if better == "higher" else value <= target)
        rows.append({"key": key, "label": label, "value": value, "target": target, "better": better, "ok": ok,
                     "note": note})
        shown = "     n/a" if value is None else f"{value:8.3f}"
        goal = "" if target is None else f"target {'>=' if better == 'higher' else '<='} {target:g}"
        verdict = "" if ok is None else ("ok" if ok else "MISS")
        print(f"{label:58s} {shown}   {goal:14s} {verdict} {note}".rstrip(), flush=True)

    print(f"device {name} ({dev}), torch {torch.__version__}, WRN-{depth}-{width}, n={n}, batch {bs}, "
          f"precision {precision} (native bf16: {bf16}), threads {torch.get_num_threads()}")

    # (a) scoring throughput vs a bare forward loop --------------------------------------
    def bare_forward():
        model.net.to(memory_format=torch.channels_last if bf16 else torch.contiguous_format)
        with torch.no_grad(), autocast(dev, precision):
            for xb, _ in batches:
                xb = xb.contiguous(memory_format=torch.channels_last) if bf16 else xb
                energy_from_logits(model.net(xb).float()).cpu()
        model.net.to(memory_format=torch.contiguous_format)

    def ours():
        score(model, (x, y), "clean", batch_size=bs, device=dev, precision=precision, cache=False, checks="off",
              progress_bar=False)

    t = interleaved({"bare": bare_forward, "ours": ours}, repeat, sync)
    report("scoring", f"(a) scoring throughput / bare forward loop, {precision}", t["bare"] / t["ours"], 0.95)

    # (e) achieved TFLOP/s of the bare forward, share of the bf16 peak -------------------
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model.net(x[:1])
    flops = counter.get_total_flops() * n
    tflops = flops / t["bare"] / 1e12
    peak = bf16_peak(name) if dev.type == "cuda" else None
    print(f"    forward: {counter.get_total_flops() / 1e9:.2f} GFLOP per image, {tflops:.2f} TFLOP/s achieved "
          f"({n / t['bare']:.0f} images/s)")
    report("peak_share", "(e) achieved bf16 TFLOP/s / the GPU's bf16 peak", None if peak is None else tflops / peak,
           None if peak is None else 0.40, note="" if peak is not None else "(no GPU peak known for this device)")

    # (c) searches vs the fwd+bwd bound ---------------------------------------------------
    xb, yb = batches[0]
    keys = torch.arange(len(xb), device=dev)

    def bound(k):
        def run():
            xi = xb.clone().requires_grad_(True)
            for p in model.net.parameters():
                p.requires_grad_(False)
            with autocast(dev, precision):
                for _ in range(k):
                    (g,) = torch.autograd.grad(model.net(xi).float().logsumexp(1).sum(), xi)
            for p in model.net.parameters():
                p.requires_grad_(True)
        return run

    pgd, sgld = PGD("Linf", eps=8 / 255, step=2 / 255, steps=10), SGLD(steps=20)

    def search(src):
        def run():
            with autocast(dev, precision):
                src(model, xb, yb, keys=keys, seed=0)
        return run

    t = interleaved({"pgd": search(pgd), "b10": bound(10), "sgld": search(sgld), "b20": bound(20)}, repeat, sync)
    report("pgd_bound", "(c) PGD-10 / 10 fwd+bwd of the bare network", t["pgd"] / t["b10"], 1.10, "lower")
    report("sgld_bound", "(c) SGLD-20 / 20 fwd+bwd of the bare network", t["sgld"] / t["b20"], 1.10, "lower")

    # (b) PGD-10 vs torchattacks ----------------------------------------------------------
    try:
        import torchattacks
    except ImportError:
        report("torchattacks", "(b) PGD-10 speed vs torchattacks.PGD (their time / ours)", None, 1.0,
               note="(skipped: torchattacks is not installed)")
    else:
        ta = torchattacks.PGD(model, eps=8 / 255, alpha=2 / 255, steps=10, random_start=True)

        def theirs():
            with autocast(dev, precision):
                ta(xb, yb)

        t = interleaved({"ta": theirs, "ours": search(pgd)}, repeat, sync)
        report("torchattacks", "(b) PGD-10 speed vs torchattacks.PGD (their time / ours)", t["ta"] / t["ours"], 1.0)

    # (d) one EB-JDAT training step vs one JEM step + K PGD steps ---------------------------
    k_steps = 3 if small else 10
    common = dict(dataset="cifar10", eps=8 / 255, attack_step=2 / 255, attack_steps=k_steps,
                  sgld_steps=5 if small else 20, n_negatives=len(xb), bf16=bf16)
    steps = {}
    for objective in ("jem", "ebjdat"):
        cfg = TrainConfig(objective=objective, **common)
        m = EnergyModel(create_model("wrn", depth=depth, width=width, n_classes=10), input_shape=(3, 32, 32),
                        n_classes=10, check_inputs=False).to(dev).train()
        obj = Objective(cfg, TrackingBuffer(size=max(4 * len(xb), 64), shape=(3, 32, 32)))
        opt = torch.optim.SGD(m.parameters(), lr=1e-3)

        def step(m=m, obj=obj, opt=opt):
            with autocast(dev, precision):
                loss, _ = obj(m, xb, yb, keys=keys, seed=0)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

        steps[objective] = step
    inner = InnerMax("saddle", 8 / 255, 2 / 255, k_steps, w_adv=0.1, w_advce=1.0)
    steps["pgd_k"] = lambda: inner(model, xb, yb, keys, 0)
    t = interleaved(steps, repeat, sync)
    report("ebjdat_bound", f"(d) EB-JDAT step / (JEM step + {k_steps} PGD steps)", t["ebjdat"] / (t["jem"] + t["pgd_k"]),
           1.10, "lower")

    missed = [r["label"] for r in rows if r["ok"] is False]
    measured = [r for r in rows if r["ok"] is not None]
    print(f"{len(measured) - len(missed)} of {len(measured)} targets met" + (f"; missed: {'; '.join(missed)}" if missed else ""))
    doc = {"device": name, "device_type": dev.type, "torch": torch.__version__, "network": f"WRN-{depth}-{width}",
           "n": n, "batch_size": bs, "precision": precision, "native_bf16": bf16, "small": small,
           "gflop_per_image": counter.get_total_flops() / 1e9, "tflops": tflops, "ratios": rows}
    with open(args.json, "w", encoding="utf-8") as fh:
        json.dump(doc, fh, indent=2)
    print(f"numbers written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
