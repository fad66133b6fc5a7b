"""``landscape quickstart``: a first energy landscape from scratch (trains a small model)."""

from __future__ import annotations


def add_parser(sub) -> None:
    p = sub.add_parser("quickstart", help="train a small model briefly on Fashion-MNIST and score its energy landscape",
                       description="Train the small conv net briefly on Fashion-MNIST, then score E(x) and E(x,y) "
                                   "of clean test images, noise-corrupted images and uniform noise.")
    p.add_argument("--data", default="fashion-mnist", help="dataset name (default: fashion-mnist)")
    p.add_argument("--root", default=None, help="dataset folder (default: the standard search path)")
    p.add_argument("--n-train", type=int, default=20000, help="training images (default: 20000)")
    p.add_argument("--n", type=int, default=2000, help="test images to score (default: 2000)")
    p.add_argument("--epochs", type=int, default=2, help="training epochs (default: 2)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="write the energy table here (.csv or .parquet)")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..errors import LandscapeError
    from ..quickstart import quick_landscape, summarise
    from ..utils import check_output_file, write_table

    if args.out:
        check_output_file(args.out, "--out", (".csv", ".parquet"))
    for name in ("n_train", "n", "epochs"):
        if getattr(args, name) < 1:
            raise LandscapeError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    _, table = quick_landscape(args.data, n_train=args.n_train, n_test=args.n, epochs=args.epochs,
                               seed=args.seed, root=args.root)
    summary = summarise(table)
    print(f"Energy landscape of a small CNN trained {args.epochs} epoch(s) on {args.n_train} {args.data} images "
          f"(E(x) = -logsumexp f(x); lower = more likely under the model)")
    print(summary.to_string(float_format=lambda v: f"{v:.3f}"))
    if args.out:
        write_table(table, args.out)
        print(f"energy table ({len(table)} rows) written to {args.out}")
    return 0
