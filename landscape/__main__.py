"""``python -m landscape``: the command line (the same as the ``landscape`` script)."""

import sys

from .cli import main

sys.exit(main())
