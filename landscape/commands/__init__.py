"""CLI subcommands: one module each, with ``add_parser(subparsers)``.

A module's ``add_parser`` registers its subparser and sets ``func`` to a
function ``(args) -> int``. Import torch and friends inside ``func`` only, so
``landscape --help`` stays fast.
"""

COMMANDS = ["demo", "quickstart", "info", "score", "compare", "report", "eval", "checkpoints", "train"]
