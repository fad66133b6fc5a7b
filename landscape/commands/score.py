"""``landscape score``: the energy table of one or more models on one dataset."""

from __future__ import annotations


def add_parser(sub) -> None:
    p = sub.add_parser("score", help="score energies of clean, adversarial and generated samples (one or more models)",
                       description="Score E(x) and E(x,y) of the samples each source makes from a dataset, for one or "
                                   "more models, and write one tidy energy table (one row per model, sample and "
                                   "source) whose metadata records every setting that made it.")
    p.add_argument("models", nargs="+", metavar="MODEL", help="checkpoint paths, registry names or URLs")
    p.add_argument("--data", required=True, help="dataset name (fashion-mnist, cifar10, digits, ...)")
    p.add_argument("--split", default="test", help="dataset split (default: test)")
    p.add_argument("--root", default=None, help="dataset folder (default: the standard search path)")
    p.add_argument("--n", type=int, default=None, help="score a deterministic random subset of N samples")
    p.add_argument("--sources", default="clean",
                   help="comma-separated specs: clean,pgd,sgld,replay,noise,autoattack,ood:dataset=NAME, "
                        "with settings as pgd:steps=20:eps=8/255 (default: clean)")
    p.add_argument("--name", action="append", default=None, metavar="LABEL",
                   help="the model column's label of each MODEL, in order (repeat once per model)")
    p.add_argument("--family", default=None,
                   help="the checkpoint family of every MODEL when detection needs help (jem, jempp, sadajem, "
                        "ebjdat, robustbench, state_dict, native)")
    p.add_argument("--threat-model", default=None, help="RobustBench threat model (Linf, L2) for zoo names outside "
                                                          "the registry")
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
    from ..checkpoints.describe import check_loadable
    from ..data import load_dataset, subset
    from ..engine import merge_tables, score
    from ..errors import LandscapeError
    from ..loading import load_model
    from ..utils import check_output_file, is_main_process, write_table

    if args.out:
        check_output_file(args.out, "--out", (".parquet", ".csv"))
    if args.n is not None and args.n < 1:
        raise LandscapeError(f"--n must be >= 1, got {args.n}")
    names = args.name or []
    if names and len(names) != len(args.models):
        raise LandscapeError(f"--name was given {len(names)} time(s) for {len(args.models)} model(s); "
                             "give one label per model, in order")
    if len(set(names)) != len(names):
        raise LandscapeError(f"--name labels must differ, got {names}")
    options = {k: v for k, v in (("threat_model", args.threat_model),) if v}
    for source in args.models:  # every input is checked before any model runs
        check_loadable(source, family=args.family, **options)
    ds = load_dataset(args.data, args.split, root=args.root)
    if args.n is not None:
        ds = subset(ds, min(args.n, len(ds)), seed=args.seed)
    tables = []
    for i, source in enumerate(args.models):
        model = load_model(source, family=args.family, **options)
        table = score(model, ds, args.sources, model_name=names[i] if names else None, batch_size=args.batch_size,
                      device=args.device, precision=args.precision, seed=args.seed, cache=not args.no_cache,
                      checks=args.checks)
        tables.append(table)
        _summary(table, args, len(ds))
    table = merge_tables(tables)
    if len(set(table["model"])) != len(tables):
        raise LandscapeError(f"two models have the same name {sorted(table['model'])}; label them with --name")
    if args.out and is_main_process():
        write_table(table, args.out)
        print(f"energy table ({len(table)} rows) written to {args.out} (settings in its metadata)")
    return 0


def _summary(table, args, n: int) -> None:
    prov = next(iter(table.attrs["landscape"]["models"].values()))
    g = table.groupby("source", sort=False)
    summary = g.agg(n=("energy", "size"), accuracy=("correct", "mean"), mean_energy=("energy", "mean"),
                    std_energy=("energy", "std"), mean_conditional_energy=("conditional_energy", "mean"))
    print(f"{table['model'].iloc[0]} on {args.data} ({args.split}, n={n}, {args.precision}, seed {args.seed})")
    print(summary.to_string(float_format=lambda v: f"{v:.4f}"))
    for name, cfg in prov["sources"].items():
        settings = ", ".join(f"{k} {v}" for k, v in cfg.items() if k != "kind")
        print(f"  {name}: {cfg['kind']}" + (f" ({settings})" if settings else ""))
