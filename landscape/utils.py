"""Small shared helpers: atomic writes, progress bars, seeding, devices."""

from __future__ import annotations

import contextlib
import logging
import os
import random
import tempfile
from pathlib import Path
from typing import Iterable, Iterator, TypeVar

import numpy as np
import torch

log = logging.getLogger(__name__)
T = TypeVar("T")

_PROGRESS_DEFAULT: bool | None = None


def set_progress(enabled: bool | None) -> None:
    """Turn progress bars on or off for the whole process (``None``: automatic).

    Automatic means: on unless ``LANDSCAPE_PROGRESS=0`` is set.
    """
    global _PROGRESS_DEFAULT
    _PROGRESS_DEFAULT = enabled


def progress_enabled(enabled: bool | None = None) -> bool:
    if enabled is not None:
        return enabled
    if _PROGRESS_DEFAULT is not None:
        return _PROGRESS_DEFAULT
    return os.environ.get("LANDSCAPE_PROGRESS", "1").lower() not in ("0", "false", "no", "off")


def progress(iterable: Iterable[T], enabled: bool | None = None, **kwargs) -> Iterable[T]:
    """Wrap ``iterable`` in a tqdm bar unless progress bars are turned off."""
    if not progress_enabled(enabled):
        return iterable
    from tqdm.auto import tqdm

    kwargs.setdefault("dynamic_ncols", True)
    kwargs.setdefault("leave", False)
    return tqdm(iterable, **kwargs)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path``.

    On any exception the temporary file is removed and ``path`` is left as it was,
    so a reader never sees a half-written file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        if tmp_path.exists():  # mkstemp makes 0600 files: give the final file the usual mode
            os.chmod(tmp_path, 0o666 & ~umask())
        os.replace(tmp_path, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        raise


def _probe_writable(folder: Path, target: Path, what: str) -> None:
    """Raise unless a file can be created in ``folder`` (which exists); leaves nothing behind."""
    from .errors import LandscapeError

    try:
        fd, tmp = tempfile.mkstemp(prefix=".landscape-probe-", dir=folder)
    except OSError as exc:
        raise LandscapeError(f"cannot write {what} {str(target)!r}: {folder} is not writable "
                             f"({exc.strerror or type(exc).__name__})") from None
    os.close(fd)
    os.unlink(tmp)


def _existing_ancestor(path: Path, what: str) -> Path:
    """The nearest existing ancestor of ``path``, which must be a folder."""
    from .errors import LandscapeError

    parent = path.absolute().parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise LandscapeError(f"cannot write {what} {str(path)!r}: {parent} is a file, not a folder")
    return parent


def check_output_file(path: str | os.PathLike, what: str = "--out", suffixes: tuple[str, ...] = ()) -> Path:
    """Fail now, before any work, when a file cannot be written at ``path``.

    Checks the suffix (when ``suffixes`` are given), that ``path`` is not a folder,
    that no file stands where a parent folder must be created, and that the folder
    the file goes into can be written (probed with a temporary file that is removed).
    Creates nothing. Returns ``path`` as a Path.
    """
    from .errors import LandscapeError

    path = Path(path)
    if suffixes and path.suffix not in suffixes:
        raise LandscapeError(f"{what} must end in {' or '.join(suffixes)}, got {str(path)!r}")
    if path.is_dir():
        raise LandscapeError(f"{what} {str(path)!r} is a folder; expected a file path"
                             + (f" such as {str(path / ('out' + suffixes[0]))!r}" if suffixes else ""))
    _probe_writable(_existing_ancestor(path, what), path, what)
    return path


def check_output_dir(path: str | os.PathLike, what: str = "--out", replaced: bool = False) -> Path:
    """Fail now, before any work, when the folder ``path`` cannot be created or written.

    ``replaced``: the folder is published by renaming a sibling into place (reports),
    so its parent must be writable too. Creates nothing. Returns ``path`` as a Path.
    """
    from .errors import LandscapeError

    path = Path(path)
    if path.exists():
        if not path.is_dir():
            raise LandscapeError(f"{what} {str(path)!r} is a file; expected a folder")
        _probe_writable(path, path, what)
        if replaced:
            _probe_writable(path.absolute().parent, path, what)
    else:
        _probe_writable(_existing_ancestor(path, what), path, what)
    return path


def is_main_process() -> bool:
    """False on every rank but 0 of an initialised ``torch.distributed`` process group: only
    the main process writes files and prints results (the command line under torchrun)."""
    import torch.distributed as dist

    return not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == 0


def offline() -> bool:
    """True when ``LANDSCAPE_OFFLINE`` is set to 1/true/yes/on: nothing is downloaded."""
    return os.environ.get("LANDSCAPE_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def landscape_home() -> Path:
    """``$LANDSCAPE_HOME``, else ``$XDG_CACHE_HOME/landscape``, else ``~/.cache/landscape``."""
    env = os.environ.get("LANDSCAPE_HOME")
    if env:
        return Path(env).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser() / "landscape"


def umask() -> int:
    """The process's file-creation mask (read without changing it)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def slug(name: str) -> str:
    """``name`` as a file-name stem: runs of characters other than letters, digits, ``.``, ``_`` and ``-`` become ``-``."""
    import re

    out = re.sub(r"[^A-Za-z0-9._-]+", "-", str(name)).strip("-.")
    return out or "figure"


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_table(table, path: str | os.PathLike) -> Path:
    """Write a DataFrame atomically as Parquet or CSV, chosen by the file's suffix."""
    from .errors import LandscapeError

    path = Path(path)
    if path.suffix not in (".parquet", ".csv"):
        raise LandscapeError(f"table files must end in .parquet or .csv, got {str(path)!r}")
    with atomic_path(path) as tmp:
        if path.suffix == ".csv":
            table.to_csv(tmp, index=False)
        else:
            table.to_parquet(tmp, index=False)
    return path


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """``None`` or ``"auto"``: CUDA when present, else CPU; otherwise validated."""
    from .errors import LandscapeError

    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise LandscapeError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {device!r}") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise LandscapeError(f"device {device!r} was asked for but CUDA is not available on this machine")
    return dev


def file_sha256(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk), b""):
            h.update(block)
    return h.hexdigest()

