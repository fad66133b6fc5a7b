"""The checkpoint registry: ``checkpoints/manifest.toml``.

One ``[[checkpoint]]`` table per known public or bundled checkpoint::

    [[checkpoint]]
    name = "jem-cifar10"                  # what load_model() and the CLI accept
    family = "jem"                        # a family of landscape.checkpoints.FAMILIES
    architecture = "wrn"                  # registered architecture, or the zoo's description
    arch_kwargs = { depth = 28, width = 10, norm = "none" }
    dataset = "cifar10"
    url = "http://..."                    # direct download; "" when there is none
    sha256 = ""                           # "" when not known (never guessed)
    paper = "Grathwohl et al. 2020, ..."
    [checkpoint.metrics]                  # what the authors report
    clean_acc = 92.9

Optional fields: ``filename`` (cache file name), ``page`` (where to download by
hand when there is no direct URL), ``threat_model`` / ``zoo_name`` /
``gdrive_id`` (RobustBench), ``paper_url``, ``code``, ``metrics_source``,
``notes``.

The file is found at ``$LANDSCAPE_MANIFEST`` when set, else at
``checkpoints/manifest.toml`` in the source tree the package runs from.
"""

from __future__ import annotations

import difflib
import functools
import os
import re
import tomllib
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..errors import CheckpointError

__all__ = ["ManifestEntry", "manifest_path", "load_manifest", "get_entry", "find_entry"]

REQUIRED = ("name", "family", "architecture", "dataset", "paper")
OPTIONAL = ("arch_kwargs", "url", "sha256", "metrics", "filename", "page", "threat_model", "zoo_name",
            "gdrive_id", "paper_url", "code", "metrics_source", "notes", "local")
_SHA = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class ManifestEntry:
    name: str
    family: str
    architecture: str
    dataset: str
    paper: str
    arch_kwargs: dict = field(default_factory=dict)
    url: str = ""
    sha256: str = ""
    metrics: dict = field(default_factory=dict)
    filename: str = ""
    page: str = ""
    threat_model: str = ""
    zoo_name: str = ""
    gdrive_id: str = ""
    paper_url: str = ""
    code: str = ""
    metrics_source: str = ""
    notes: str = ""
    local: str = ""  # a file shipped with the manifest, relative to the manifest's folder

    @property
    def cache_filename(self) -> str:
        """File name inside the cache folder of this entry."""
        if self.filename:
            return self.filename
        tail = self.url.rstrip("/").rsplit("/", 1)[-1] if self.url else ""
        return tail if tail and "." in tail else f"{self.name}.pt"

    def to_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if v not in ("", {}, None)}


def manifest_path() -> Path:
    env = os.environ.get("LANDSCAPE_MANIFEST")
    if env:
        return Path(env).expanduser()
    from ..paths import CHECKPOINTS_DIR

    return CHECKPOINTS_DIR / "manifest.toml"


def _entry(raw: dict, where: str) -> ManifestEntry:
    from .detect import FAMILIES

    if not isinstance(raw, dict):
        raise CheckpointError(f"{where}: each [[checkpoint]] must be a table, got {type(raw).__name__}")
    missing = [k for k in REQUIRED if not raw.get(k)]
    unknown = sorted(set(raw) - set(REQUIRED) - set(OPTIONAL))
    name = raw.get("name", "?")
    if missing or unknown:
        raise CheckpointError(f"{where}: entry {name!r} lacks {missing} or has unknown fields {unknown}")
    if raw["family"] not in FAMILIES:
        raise CheckpointError(f"{where}: entry {name!r} has family {raw['family']!r}, expected one of {', '.join(FAMILIES)}")
    sha = str(raw.get("sha256", "")).strip().lower()
    if sha and not _SHA.match(sha):
        raise CheckpointError(f"{where}: entry {name!r} has sha256 {raw['sha256']!r}, expected 64 hex digits or \"\"")
    for key in ("arch_kwargs", "metrics"):
        if not isinstance(raw.get(key, {}), dict):
            raise CheckpointError(f"{where}: entry {name!r}: {key} must be a table")
    local = raw.get("local", "")
    if local and (not isinstance(local, str) or Path(local).is_absolute() or ".." in Path(local).parts):
        raise CheckpointError(f"{where}: entry {name!r}: local must be a path inside the manifest's folder, got {local!r}")
    if raw["family"] == "robustbench" and not raw.get("threat_model"):
        raise CheckpointError(f"{where}: RobustBench entry {name!r} needs threat_model (Linf, L2, corruptions)")
    return ManifestEntry(**{**raw, "sha256": sha})


@functools.lru_cache(maxsize=8)
def _load(path: str, mtime: float) -> dict[str, ManifestEntry]:
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise CheckpointError(f"the checkpoint manifest {path} does not exist (set LANDSCAPE_MANIFEST to its path)") from None
    except tomllib.TOMLDecodeError as exc:
        raise CheckpointError(f"the checkpoint manifest {path} is not valid TOML: {exc}") from None
    unknown = sorted(set(data) - {"checkpoint"})
    if unknown:
        raise CheckpointError(f"{path}: unknown top-level keys {unknown}, expected only [[checkpoint]] tables")
    entries: dict[str, ManifestEntry] = {}
    for raw in data.get("checkpoint", []):
        entry = _entry(raw, path)
        if entry.name in entries:
            raise CheckpointError(f"{path}: checkpoint name {entry.name!r} appears twice")
        entries[entry.name] = entry
    return entries


def load_manifest(path: str | os.PathLike | None = None) -> dict[str, ManifestEntry]:
    """All registry entries by name, in file order (validated)."""
    path = Path(path) if path is not None else manifest_path()
    mtime = path.stat().st_mtime if path.exists() else 0.0
    return dict(_load(str(path), mtime))


def find_entry(name: str) -> ManifestEntry | None:
    """The entry called ``name`` (exactly, else case-insensitively), or None."""
    entries = load_manifest()
    if name in entries:
        return entries[name]
    folded = {k.lower(): v for k, v in entries.items()}
    return folded.get(name.lower())


def get_entry(name: str) -> ManifestEntry:
    entry = find_entry(name)
    if entry is None:
        names = list(load_manifest())
        close = difflib.get_close_matches(name, names, n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else f"; known: {', '.join(names)}"
        raise CheckpointError(f"{name!r} is not in the checkpoint registry{hint}")
    return entry
