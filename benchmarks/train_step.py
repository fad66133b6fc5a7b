"""Time per training step of every objective on the same model and batch, as ratios.

    .venv/bin/python benchmarks/train_step.py [--batch 128] [--repeat 5] [--threads 1] [--bf16 auto|on|off] [--attack-bf16]

The model is the bundled recipes' small CNN (width 32, hidden 128) on a Fashion-MNIST
sized batch (random pixels: speed does not depend on content); settings as the
fmnist-* recipes (PGD K = 5, SGLD 20 steps on 32 chains, EB-JDAT's saddle search),
with the trainer's precision: the update under bf16 autocast where bf16 is native
(``--bf16 auto``, the default; see landscape.precision.native_bf16) and the inner
search in float32 unless ``--attack-bf16``. Every step is one full
optimiser update (inner search, SGLD, forward, backward, step). The objectives are
timed round-robin (one step of each, repeated) so machine load spreads over all of
them; the medians are reported relative to the standard CE step, and EB-JDAT's step
against its bound: one JEM step plus K PGD steps on the batch.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from landscape.energy import EnergyModel
from landscape.models import create_model
from landscape.precision import autocast, native_bf16
from landscape.train import Objective, TrackingBuffer, TrainConfig
from landscape.train.objectives import InnerMax


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--bf16", choices=("auto", "on", "off"), default="auto",
                    help="bf16 autocast of the update (auto: where bf16 is native)")
    ap.add_argument("--attack-bf16", action="store_true", help="inner search under the bf16 autocast too")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    bf16 = native_bf16("cpu") if args.bf16 == "auto" else args.bf16 == "on"
    torch.manual_seed(0)
    x = torch.rand(args.batch, 1, 28, 28).contiguous(memory_format=torch.channels_last)
    y = torch.randint(10, (args.batch,))
    keys = torch.arange(args.batch)
    common = dict(dataset="fashion-mnist", eps=0.1, attack_step=0.025, attack_steps=5, sgld_steps=20, n_negatives=32,
                  bf16=bf16, attack_bf16=args.attack_bf16)

    steps = {}
    for name in ("standard", "pgdat", "trades", "jem", "ebjdat"):
        cfg = TrainConfig(objective=name, **common)
        net = create_model("smallcnn", in_channels=1, n_classes=10, width=32, hidden=128)
        model = EnergyModel(net, input_shape=(1, 28, 28), n_classes=10, check_inputs=False)
        model = model.to(memory_format=torch.channels_last).train()
        buf = TrackingBuffer(size=10000, shape=(1, 28, 28)) if cfg.needs_sgld else None
        obj = Objective(cfg, buf)
        opt = torch.optim.SGD(model.parameters(), lr=1e-3)

        def step(model=model, obj=obj, opt=opt):
            with autocast("cpu", bf16):
                loss, _ = obj(model, x, y, keys=keys, seed=0)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

        steps[name] = step
    # the bound's second part: K PGD steps of EB-JDAT's inner search alone
    pgd_model = EnergyModel(create_model("smallcnn", in_channels=1, n_classes=10, width=32, hidden=128),
                            input_shape=(1, 28, 28), n_classes=10, check_inputs=False).to(memory_format=torch.channels_last)
    inner = InnerMax("saddle", 0.1, 0.025, 5, w_adv=0.1, w_advce=1.0)

    def pgd_k():
        with autocast("cpu", bf16 and args.attack_bf16):
            inner(pgd_model, x, y, keys, 0)

    steps["pgd_k"] = pgd_k

    for fn in steps.values():  # warm-up
        fn()
    times = {k: [] for k in steps}
    for _ in range(args.repeat):
        for k, fn in steps.items():
            t = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - t)
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"batch {args.batch}, {args.threads} thread(s), bf16={bf16}, attack_bf16={args.attack_bf16}, median of {args.repeat} round-robin repeats")
    print(f"{'objective':10s} {'ms/step':>9s} {'x standard':>11s}")
    for k in ("standard", "pgdat", "trades", "jem", "ebjdat"):
        print(f"{k:10s} {1000 * med[k]:9.1f} {med[k] / med['standard']:11.2f}")
    bound = med["jem"] + med["pgd_k"]
    print(f"PGD-K search alone (K=5): {1000 * med['pgd_k']:.1f} ms")
    print(f"EB-JDAT step / (JEM step + K PGD steps) = {med['ebjdat'] / bound:.2f}")


if __name__ == "__main__":
    main()
