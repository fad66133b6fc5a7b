"""``landscape report``: run a declarative analysis (TOML) and write its report."""

from __future__ import annotations


def add_parser(sub) -> None:
    p = sub.add_parser("report", help="run an analysis file (models x data x sources) and write its report",
                       description="Run a declarative analysis (see analyses/*.toml) and write DIR/index.html, "
                                   "index.md, summary.json, energies.parquet, gaps.csv and figures/.")
    p.add_argument("analysis", nargs="?", help="analysis TOML file, or the name of one in analyses/ (e.g. fmnist-demo)")
    p.add_argument("--init", metavar="FILE", default=None,
                   help="write a commented starter analysis file to FILE (refuses to overwrite) and exit")
    p.add_argument("--schema", action="store_true",
                   help="print every key an analysis file takes (what it accepts, its default) and exit")
    p.add_argument("--out", default=None, help="report folder (default: report/<analysis name>)")
    p.add_argument("--n", type=int, default=None, help="override the number of samples")
    p.add_argument("--device", default=None, help="override the device (auto, cpu, cuda, cuda:N)")
    p.set_defaults(func=run)


def run(args) -> int:
    from pathlib import Path

    from ..analyses.runner import run_analysis
    from ..errors import ConfigError
    from ..paths import analysis_path
    from .demo import print_result

    if args.schema:
        from ..analyses.config import schema

        print(schema())
        return 0
    if args.init:
        from ..analyses.config import starter
        from ..utils import atomic_write_text, check_output_file

        target = check_output_file(args.init, "--init", (".toml",))
        if target.exists():
            raise ConfigError(f"--init {args.init!r} exists; choose a new file (it is never overwritten)")
        atomic_write_text(target, starter())
        print(f"starter analysis written to {target}; run it with: landscape report {target}")
        return 0
    if not args.analysis:
        raise ConfigError("report needs an analysis file (or --init FILE, or --schema)")
    if args.n is not None and args.n < 1:
        raise ConfigError(f"--n must be >= 1, got {args.n}")
    path = analysis_path(args.analysis)
    out = args.out or str(Path("report") / path.stem)
    print_result(run_analysis(path, out, n=args.n, device=args.device))
    return 0
