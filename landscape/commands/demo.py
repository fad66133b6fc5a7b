"""``landscape demo``: the main job, the report of analyses/fmnist-demo.toml."""

from __future__ import annotations

DEFAULT_OUT = "landscape-demo"


def add_parser(sub) -> None:
    p = sub.add_parser("demo", help="the bundled Fashion-MNIST models x {clean, PGD, replay, SGLD}: energy-gap report",
                       description="Run analyses/fmnist-demo.toml: the bundled Fashion-MNIST models (standard, PGD-AT, "
                                   "TRADES, JEM, EB-JDAT) x {clean, PGD-20, the JEM-family models' replay-buffer samples, "
                                   "SGLD-20 from noise} on the test split, and write the report.")
    p.add_argument("--out", default=DEFAULT_OUT, help=f"report folder (default: ./{DEFAULT_OUT})")
    p.add_argument("--n", type=int, default=None, help="test images (default: the analysis file's)")
    p.add_argument("--device", default=None, help="auto, cpu, cuda, cuda:N (default: the analysis file's)")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..analyses.runner import run_analysis
    from ..errors import ConfigError
    from ..paths import analysis_path

    if args.n is not None and args.n < 1:
        raise ConfigError(f"--n must be >= 1, got {args.n}")
    result = run_analysis(analysis_path("fmnist-demo"), args.out, n=args.n, device=args.device)
    print_result(result)
    return 0


def print_result(result) -> None:
    """The gap table (raw gaps beside scale-free statistics: energy scales differ between
    models) and where the report went, from the analysis result itself."""
    if "index.html" not in result.paths:  # a rank other than 0 under torchrun: rank 0 reports
        return
    gaps = result.gaps
    cols = [c for c in ("model", "pair", "gap", "gap_lo", "gap_hi", "cohens_d", "auroc") if c in gaps.columns]
    print(gaps[cols].to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print(f"report written to {result.paths['index.html']} ({result.seconds:.0f} s)")
