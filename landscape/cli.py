"""The ``landscape`` command line. Only this module (and commands/) prints."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from ._version import __version__
from .commands import COMMANDS
from .errors import LandscapeError


class _Parser(argparse.ArgumentParser):
    """argparse, with usage errors as the one-line ``landscape: error: ...`` (exit 2) every other error uses."""

    def error(self, message: str):  # noqa: D401 - argparse's hook
        self.exit(2, f"landscape: error: {self.prog}: {' '.join(message.split())} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="landscape",
        description="Energy landscape toolkit for classifiers read as energy-based models.",
    )
    parser.add_argument("--version", action="version", version=f"landscape {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv: debug)")
    parser.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")
    parser.add_argument("--no-progress", action="store_true", help="turn progress bars off")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f".commands.{name}", __package__).add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    level = logging.WARNING if args.quiet else (logging.DEBUG if args.verbose > 1 else logging.INFO)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    if args.no_progress:
        from .utils import set_progress

        set_progress(False)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    dist = _join_torchrun(args)
    try:
        return int(args.func(args) or 0)
    except LandscapeError as exc:
        msg = " ".join(str(exc).split())
        print(f"landscape: error: {msg}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # the reader went away (landscape ... | head): stop quietly
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except OSError as exc:  # a file or folder the checks up front could not foresee (disk full, a race...)
        where = f": {exc.filename}" if getattr(exc, "filename", None) else ""
        print(f"landscape: error: {exc.strerror or type(exc).__name__}{where}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("landscape: interrupted", file=sys.stderr)
        return 130
    finally:
        if dist is not None:
            dist.close()


#: commands that shard their samples across the ranks of a torchrun launch (train runs DDP itself)
SHARDED = ("score", "report", "demo", "eval")


def _join_torchrun(args):
    """Under ``torchrun`` (WORLD_SIZE > 1), join the process group for a sharded command:
    gloo on the CPU, NCCL on GPUs. Every rank scores its shard of the samples and the
    tables are gathered; only rank 0 prints and writes (the others' stdout is discarded)."""
    import os

    if args.command not in SHARDED or int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return None
    from .train.ddp import init_distributed

    dist = init_distributed(getattr(args, "device", None) or "auto")
    logging.getLogger(__name__).info("torchrun: rank %d of %d", dist.rank, dist.world_size)
    if dist.rank != 0:
        sys.stdout = open(os.devnull, "w")
    return dist


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
