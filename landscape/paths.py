"""Where the project's own files are: the bundled analyses and checkpoints, found one way.

In a source checkout or an editable install they are the repository's ``analyses/``
and ``checkpoints/`` folders (beside the package); a wheel carries copies of them as
package data under ``landscape/_bundled/`` (see pyproject.toml), so a non-editable
``pip install`` finds them there. Every module that needs one of these files asks
this one.
"""

from __future__ import annotations

import os
from pathlib import Path

from .errors import ConfigError

PACKAGE_DIR = Path(__file__).resolve().parent
#: the repository, when the package is imported from a checkout (else None)
PROJECT_ROOT: Path | None = PACKAGE_DIR.parent if (PACKAGE_DIR.parent / "pyproject.toml").is_file() else None
_BUNDLED = PACKAGE_DIR / "_bundled"


def bundled_dir(name: str) -> Path:
    """The folder ``analyses`` or ``checkpoints``: the checkout's, else the installed package's copy."""
    if name not in ("analyses", "checkpoints"):
        raise ValueError(f"bundled folders are 'analyses' and 'checkpoints', got {name!r}")
    if PROJECT_ROOT is not None and (PROJECT_ROOT / name).is_dir():
        return PROJECT_ROOT / name
    return _BUNDLED / name


ANALYSES_DIR = bundled_dir("analyses")
CHECKPOINTS_DIR = bundled_dir("checkpoints")


def analysis_path(name_or_path: str | os.PathLike) -> Path:
    """A TOML path as given, or ``analyses/<name>.toml`` of the project."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    candidate = ANALYSES_DIR / f"{path.name}.toml" if path.suffix != ".toml" else ANALYSES_DIR / path.name
    if candidate.is_file():
        return candidate
    known = sorted(p.stem for p in ANALYSES_DIR.glob("*.toml")) if ANALYSES_DIR.is_dir() else []
    raise ConfigError(f"analysis {str(name_or_path)!r} not found (not a file, not in {ANALYSES_DIR}); "
                      f"known: {', '.join(known) or 'none'}")
