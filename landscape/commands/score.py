"""``landscape score``: the energy table of one model on one dataset."""

from __future__ import annotations


def add_parser(sub) -> None:
    p = sub.add_parser("score", help="score energies of clean, adversarial and generated samples",
                       description="Score E(x) and E(x,y) of the samples each source makes from a dataset, "
                                   "and write the energy table (one row per sample and source).")
    p.add_argument("model", help="checkpoint path, registry name or URL")
    p.add_argument("--data", required=True, help="dataset name (fashion-mnist, cifar10, digits, ...)")
    p.add_argument("--split", default="test", help="dataset split (default: test)")
    p.add_argument("--root", default=None, help="dataset folder (default: the standard search path)")
    p.add_argument("--n", type=int, default=None, help="score a deterministic random subset of N samples")
    p.add_argument("--sources", default="clean", help="comma-separated: clean,pgd,sgld,noise,autoattack (default: clean)")
    p.add_argument("--out", default=None, help="write the table here (.parquet or .csv)")
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda, cuda:N")
    p.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-cache", action="store_true", help="do not read or write the energy cache")
    p.add_argument("--checks", default="error", choices=["error", "warn", "off"],
                   help="pre-scoring sanity checks: fail, only warn, or skip (default: error)")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..data import load_dataset, subset
    from ..engine import score
    from ..errors import LandscapeError
    from ..checkpoints.load import load_model
    from ..utils import check_output_file, is_main_process, write_table

    if args.out:
        check_output_file(args.out, "--out", (".parquet", ".csv"))
    if args.n is not None and args.n < 1:
        raise LandscapeError(f"--n must be >= 1, got {args.n}")
    model = load_model(args.model)
    ds = load_dataset(args.data, args.split, root=args.root)
    if args.n is not None:
        ds = subset(ds, min(args.n, len(ds)), seed=args.seed)
    table = score(model, ds, args.sources, batch_size=args.batch_size, device=args.device,
                  precision=args.precision, seed=args.seed, cache=not args.no_cache, checks=args.checks)
    g = table.groupby("source", sort=False)
    summary = g.agg(n=("energy", "size"), accuracy=("correct", "mean"), mean_energy=("energy", "mean"),
                    std_energy=("energy", "std"), mean_conditional_energy=("conditional_energy", "mean"))
    print(f"{table['model'].iloc[0]} on {args.data} ({args.split}, n={len(ds)}, {args.precision})")
    print(summary.to_string(float_format=lambda v: f"{v:.4f}"))
    if args.out and is_main_process():
        write_table(table, args.out)
        print(f"energy table ({len(table)} rows) written to {args.out}")
    return 0
