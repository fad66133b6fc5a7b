"""Where the project's own files are: analyses/, checkpoints/ (beside the package)."""

from __future__ import annotations

import os
from pathlib import Path

from .errors import ConfigError

PROJECT_ROOT = Path(__file__).resolve().parents[1]
ANALYSES_DIR = PROJECT_ROOT / "analyses"
CHECKPOINTS_DIR = PROJECT_ROOT / "checkpoints"


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
