"""``landscape eval``: accuracy, robustness, calibration, OOD and generation metrics of models, as one table."""

from __future__ import annotations

METRIC_HELP = ("comma-separated out of accuracy,ece,pgd20,autoattack,ood,fd,fid, or 'all' "
               "(default: accuracy,ece,pgd20,autoattack,ood)")


def add_parser(sub) -> None:
    p = sub.add_parser("eval", help="accuracy, PGD-20/AutoAttack, ECE, OOD AUROC, FD/FID of models as one table",
                       description="Evaluate one or more models on a dataset: clean accuracy, PGD-20 and AutoAttack "
                                   "robust accuracy (same samples), expected calibration error (15 bins), OOD AUROC "
                                   "of the energy score and of max-softmax, and the generation quality of SGLD "
                                   "samples (FD in a reference classifier's features, FID/IS with local Inception "
                                   "weights). Every value is printed with its settings.")
    p.add_argument("models", nargs="+", metavar="MODEL", help="checkpoint paths, registry names or URLs")
    p.add_argument("--data", required=True, help="dataset name (fashion-mnist, cifar10, digits, ...)")
    p.add_argument("--split", default="test", help="dataset split (default: test)")
    p.add_argument("--root", default=None, help="dataset folder (default: the standard search path)")
    p.add_argument("--n", type=int, default=None, help="evaluate a deterministic random subset of N samples (default: all)")
    p.add_argument("--metrics", default=None, help=METRIC_HELP)
    p.add_argument("--n-attack", type=int, default=1000,
                   help="samples attacked by PGD-20 and AutoAttack, the same for both (default: 1000)")
    p.add_argument("--eps", type=float, default=None, help="attack radius in [0, 1] pixel units (default: the dataset's)")
    p.add_argument("--restarts", type=int, default=1, help="PGD-20 random restarts (default: 1)")
    p.add_argument("--aa-version", default="standard", choices=["standard", "plus", "rand", "custom"],
                   help="AutoAttack version (default: standard)")
    p.add_argument("--aa-attacks", default=None, help="with --aa-version custom: e.g. apgd-ce,apgd-t")
    p.add_argument("--ood", default="gaussian",
                   help="comma-separated OOD sets: dataset names, gaussian[:sigma=S], uniform (default: gaussian)")
    p.add_argument("--n-gen", type=int, default=1000, help="SGLD samples for fd/fid (default: 1000)")
    p.add_argument("--sgld-steps", type=int, default=None, help="SGLD steps for fd/fid (default: 20)")
    p.add_argument("--sgld-init", default="auto", choices=["auto", "uniform", "gaussian", "buffer"],
                   help="where SGLD chains start: the model's replay buffer if any else uniform noise (auto), "
                        "uniform noise, per-class Gaussians fitted on the train split (gaussian), the buffer")
    p.add_argument("--feature-model", default=None,
                   help="reference classifier for fd (default: the bundled Fashion-MNIST one)")
    p.add_argument("--inception-weights", default=None,
                   help="torch-fidelity's Inception weights file for fid (or $LANDSCAPE_INCEPTION_WEIGHTS)")
    p.add_argument("--figures", default=None, help="write reliability diagrams (PNG + SVG) into this folder")
    p.add_argument("--json", action="store_true", help="print the table as JSON instead of text")
    p.add_argument("--out", default=None, help="also write the table here (.csv or .json)")
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda, cuda:N")
    p.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
    p.add_argument("--channels-last", action="store_true", default=None,
                   help="run the models in channels-last memory format (default: only with bf16); "
                        "often faster for convnets on CPUs too (1.3-1.6x for the bundled models); "
                        "results change only by float rounding")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=run)


def run(args) -> int:
    import json
    import math
    import sys

    from ..errors import LandscapeError
    from ..evaluation import evaluate, format_table, parse_metrics
    from ..utils import check_output_dir, check_output_file, is_main_process

    metrics = parse_metrics(args.metrics)  # validates before any model is loaded
    if args.out:
        check_output_file(args.out, "--out", (".csv", ".json"))
    if args.figures:
        check_output_dir(args.figures, "--figures")
    for flag, value in (("--n", args.n), ("--n-attack", args.n_attack), ("--n-gen", args.n_gen),
                        ("--restarts", args.restarts), ("--batch-size", args.batch_size)):
        if value is not None and value < 1:
            raise LandscapeError(f"{flag} must be >= 1, got {value}")
    attacks = [a.strip() for a in args.aa_attacks.split(",") if a.strip()] if args.aa_attacks else None
    ood = [s.strip() for s in args.ood.split(",") if s.strip()]
    sgld = {"init": args.sgld_init}
    if args.sgld_steps is not None:
        if args.sgld_steps < 0:
            raise LandscapeError(f"--sgld-steps must be >= 0, got {args.sgld_steps}")
        sgld["steps"] = args.sgld_steps
    table = evaluate(args.models, args.data, metrics, n=args.n, n_attack=args.n_attack, n_gen=args.n_gen,
                     split=args.split, root=args.root, eps=args.eps, restarts=args.restarts,
                     aa_version=args.aa_version, aa_attacks=attacks, ood=ood, sgld=sgld,
                     feature_model=args.feature_model, inception_weights=args.inception_weights,
                     batch_size=args.batch_size, device=args.device, precision=args.precision,
                     channels_last=args.channels_last, seed=args.seed, figures=args.figures, out=args.out)
    if args.json:
        rows = [{"model": r.model, "metric": r.metric, "value": r.value if math.isfinite(r.value) else None, "n": int(r.n),
                 "settings": json.loads(r.settings)} for r in table.itertuples()]
        print(json.dumps(rows, indent=2))
    else:
        print(format_table(table))
    if not is_main_process():
        return 0
    if args.out:
        print(f"evaluation table ({len(table)} rows) written to {args.out}", file=sys.stderr)
    if args.figures and "ece" in metrics:
        print(f"reliability diagrams written to {args.figures}", file=sys.stderr)
    return 0
