"""From what the user typed (a path, a URL, a registry or zoo name) to a file or a zoo model.

Order: an existing local path wins; then ``http(s)://`` URLs (downloaded into
the cache); then, with ``family="robustbench"``, a RobustBench zoo name; then a
registry name from ``checkpoints/manifest.toml``. A registry entry with a
``local`` file (the bundled models, shipped next to the manifest) is read from
there after its sha256 is checked; other entries come from the cache or their
download link. Anything else is an error
that says which of these it is not.
"""

from __future__ import annotations

import difflib
import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import CheckpointError
from .detect import FAMILIES, Options
from .families import JEM_FAMILIES
from .fetch import fetch, landscape_home, offline, url_cache_path
from ..utils import file_sha256
from .manifest import ManifestEntry, find_entry, load_manifest, manifest_path

__all__ = ["Source", "resolve_source", "entry_cache_path", "entry_local_path"]

_PATH_SUFFIXES = (".pt", ".pth", ".pkl", ".ckpt", ".tar", ".bin", ".safetensors")


@dataclass
class Source:
    display: str                       # for messages and metadata
    path: Path | None = None           # the local file (None: zoo model, or not downloaded)
    family: str | None = None          # explicit or from the registry
    entry: ManifestEntry | None = None
    zoo: object | None = None          # a robustbench.ZooModel
    expected_path: Path | None = None  # where a registry/URL file is (or would be) cached
    url: str | None = None


def entry_cache_path(entry: ManifestEntry) -> Path:
    return landscape_home() / "checkpoints" / entry.name / entry.cache_filename


def entry_local_path(entry: ManifestEntry) -> Path | None:
    """The shipped file of a registry entry (``local``, relative to the manifest's folder), or None."""
    return manifest_path().resolve().parent / entry.local if entry.local else None


def _check_family(family: str | None) -> None:
    if family is not None and family not in FAMILIES:
        raise CheckpointError(f"family must be one of {', '.join(FAMILIES)} (or None to detect it), got {family!r}")


def _entry_family(entry: ManifestEntry, family: str | None) -> str:
    if family is None or family == entry.family:
        return entry.family
    if entry.family in JEM_FAMILIES and family in JEM_FAMILIES:
        return family  # relabel within the JEM family (e.g. an EB-JDAT model on a SADA-JEM base)
    raise CheckpointError(f"registry entry {entry.name!r} is a {entry.family} checkpoint, family={family!r} was asked for")


def resolve_source(source, family: str | None, opts: Options, download: bool = True) -> Source:
    """Resolve ``source``; with ``download=False`` nothing is fetched (``path`` stays None if not cached)."""
    from . import robustbench as rbz

    _check_family(family)
    if isinstance(source, os.PathLike) or (isinstance(source, str) and Path(source).expanduser().exists()):
        path = Path(source).expanduser()
        if not path.exists():
            raise CheckpointError(f"checkpoint {path} does not exist")
        if path.is_dir():
            raise CheckpointError(f"{path} is a folder; expected a checkpoint file (or, for RobustBench, model_dir={str(path)!r} with a zoo name)")
        return Source(str(path), path=path, family=family)
    if not isinstance(source, str) or not source.strip():
        raise CheckpointError(f"source must be a path, an http(s) URL or a checkpoint name, got {source!r}")
    source = source.strip()
    if source.startswith(("http://", "https://")):
        dest = url_cache_path(source)
        path = fetch(source, dest, opts.sha256) if download else (dest if dest.is_file() else None)
        return Source(source, path=path, family=family, expected_path=dest, url=source)
    if family == "robustbench":
        zm = rbz.zoo_model(source, opts.dataset, opts.threat_model, opts.model_dir)
        return Source(zm.describe(), family="robustbench", zoo=zm)
    if source.endswith(_PATH_SUFFIXES) or os.sep in source or "/" in source:
        raise CheckpointError(f"checkpoint {source} does not exist")
    entry = find_entry(source)
    if entry is not None:
        fam = _entry_family(entry, family)
        if entry.family == "robustbench":
            zm = rbz.zoo_model(entry.zoo_name or entry.name, entry.dataset, entry.threat_model, opts.model_dir)
            return Source(entry.name, family="robustbench", entry=entry, zoo=zm)
        local = entry_local_path(entry)
        if local is not None and local.is_file():
            actual = file_sha256(local)
            if entry.sha256 and actual != entry.sha256:
                raise CheckpointError(f"{local} has sha256 {actual}, the registry entry {entry.name!r} expects "
                                      f"{entry.sha256}: the bundled file and {manifest_path()} disagree (update the entry)")
            return Source(entry.name, path=local, family=fam, entry=entry, expected_path=local)
        dest = entry_cache_path(entry)
        src = Source(entry.name, family=fam, entry=entry, expected_path=dest, url=entry.url or None)
        if dest.is_file() and not download:
            src.path = dest
        elif download:
            if not entry.url:
                if not dest.is_file():
                    raise CheckpointError(
                        f"{entry.name} has no direct download link: get {entry.cache_filename} from "
                        f"{entry.page or entry.code or entry.paper_url} and put it at {dest}"
                        + (" (LANDSCAPE_OFFLINE is set)" if offline() else "")
                    )
                src.path = dest
            else:
                src.path = fetch(entry.url, dest, entry.sha256, what=entry.name)
        return src
    names = list(load_manifest())
    close = difflib.get_close_matches(source, names, n=3, cutoff=0.5)
    hint = f"did you mean {', '.join(close)}?" if close else f"registry names: {', '.join(names)}"
    raise CheckpointError(
        f"{source!r} is not a file, an http(s) URL or a registry checkpoint name ({hint}; "
        "for a RobustBench zoo model pass family='robustbench')"
    )
