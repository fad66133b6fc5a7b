"""``landscape compare``: the gap table, figures and report of saved energy tables, without a TOML file."""

from __future__ import annotations


def add_parser(sub) -> None:
    p = sub.add_parser("compare", help="turn saved energy tables (landscape score --out) into the gap table and report",
                       description="Read one or more energy tables written by `landscape score --out` (Parquet or "
                                   "CSV), compute the gap statistics with bootstrap intervals and write the report "
                                   "(index.html, gaps.csv, figures/...). The tables' recorded settings become the "
                                   "report's settings.")
    p.add_argument("tables", nargs="+", metavar="TABLE", help=".parquet or .csv energy tables")
    p.add_argument("--out", required=True, help="report folder")
    p.add_argument("--title", default="Energy landscape comparison")
    p.add_argument("--column", default="energy", choices=["energy", "conditional_energy"])
    p.add_argument("--n-boot", type=int, default=1000, help="bootstrap replicates (default 1000)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=run)


def run(args) -> int:
    import time
    from pathlib import Path

    import pandas as pd

    from ..analyses.pipeline import analyse
    from ..analyses.report import check_report_target, write_result
    from ..analyses.stats import validate_energy_table
    from ..engine import merge_tables
    from ..errors import LandscapeError
    from .demo import print_result

    if args.n_boot < 1:
        raise LandscapeError(f"--n-boot must be >= 1, got {args.n_boot}")
    check_report_target(args.out)
    start = time.perf_counter()
    tables = []
    for path in map(Path, args.tables):
        if path.suffix not in (".parquet", ".csv"):
            raise LandscapeError(f"energy tables are .parquet or .csv files, got {str(path)!r}")
        if not path.is_file():
            raise LandscapeError(f"energy table {str(path)!r} does not exist")
        try:
            table = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
        except Exception as exc:  # pyarrow and pandas raise many types for a corrupt file
            raise LandscapeError(f"{path} could not be read as a table ({type(exc).__name__}: {exc})") from None
        try:
            validate_energy_table(table, args.column, extra=("index",))
        except LandscapeError as exc:
            raise LandscapeError(f"{path}: {exc}") from None
        tables.append(table)
    energies = merge_tables(tables)
    dup = energies.duplicated(["model", "source", "index"])
    if dup.any():
        first = energies[dup].iloc[0]
        raise LandscapeError(f"the tables overlap: model {first['model']!r}, source {first['source']!r} and sample "
                             f"{int(first['index'])} appear twice; label models apart with `landscape score --name`")
    settings = {"tables": [str(p) for p in args.tables], **(energies.attrs.get("landscape") or {})}
    result = analyse(energies, title=args.title, settings=settings, column=args.column, n_boot=args.n_boot,
                     seed=args.seed)
    result.paths = write_result(args.out, result)
    result.seconds = time.perf_counter() - start
    print_result(result)
    return 0
