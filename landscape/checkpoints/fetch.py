"""Downloading checkpoints into the cache, safely and verifiably.

* The cache lives in ``$LANDSCAPE_HOME`` (default ``$XDG_CACHE_HOME/landscape``,
  i.e. ``~/.cache/landscape``): registry checkpoints under
  ``checkpoints/<name>/<file>``, other URLs under ``downloads/<hash>-<file>``,
  RobustBench's model directory under ``robustbench/``.
* A download streams into a temporary file beside its destination and is renamed
  into place only when complete and verified, so the cache never holds half a file.
* The SHA-256 is computed while streaming and checked when the registry (or the
  caller) knows it; a cached file with a known hash is checked again on use.
* An HTML page (what Google Drive and OneDrive return instead of a large file,
  a quota page or a login page) is detected from the Content-Type and the first
  bytes, reported, and never cached.
* ``LANDSCAPE_OFFLINE=1`` never touches the network: a file that is not in the
  cache is an error naming the file and where it was expected.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Iterator

from .._version import __version__
from ..errors import CheckpointError
from ..utils import atomic_path, file_sha256, landscape_home, offline, progress  # offline: re-exported
from .safety import looks_like_html

log = logging.getLogger(__name__)

__all__ = ["landscape_home", "offline", "url_cache_path", "fetch", "verify_sha256", "CHUNK"]

CHUNK = 1 << 20  # 1 MiB: one progress-bar step


def url_cache_path(url: str) -> Path:
    """Where a checkpoint downloaded from an arbitrary ``url`` is cached."""
    name = Path(urllib.parse.urlparse(url).path).name or "checkpoint"
    digest = hashlib.sha256(url.encode("utf-8")).hexdigest()[:12]
    return landscape_home() / "downloads" / f"{digest}-{name}"


def verify_sha256(path: str | os.PathLike, expected: str | None) -> str:
    """SHA-256 of ``path``; a :class:`CheckpointError` when ``expected`` is given and differs."""
    actual = file_sha256(path)
    if expected and actual != expected.lower():
        raise CheckpointError(
            f"{path} has sha256 {actual}, the registry expects {expected.lower()}; "
            "the file is corrupt or a different version: delete it to download it again"
        )
    return actual


def _chunks(response) -> Iterator[bytes]:
    while True:
        block = response.read(CHUNK)
        if not block:
            return
        yield block


def fetch(url: str, dest: str | os.PathLike, sha256: str | None = None, *, what: str | None = None,
          timeout: float = 60.0) -> Path:
    """Return ``dest``, downloading ``url`` there first when it is not cached yet.

    Args:
        url: an ``http://`` or ``https://`` URL.
        dest: the cache path (its folder is created).
        sha256: the expected SHA-256 (hex); checked for fresh and cached files.
        what: a name for messages (default: the URL).
        timeout: socket timeout in seconds.
    """
    dest = Path(dest)
    what = what or url
    sha256 = (sha256 or "").strip().lower() or None
    if dest.is_file():
        if sha256:
            verify_sha256(dest, sha256)
        log.debug("using cached %s", dest)
        return dest
    if offline():
        raise CheckpointError(
            f"LANDSCAPE_OFFLINE is set and {what} is not in the cache: expected the file {dest} "
            f"(download {url} there by hand, or unset LANDSCAPE_OFFLINE)"
        )
    scheme = urllib.parse.urlparse(url).scheme
    if scheme not in ("http", "https"):
        raise CheckpointError(f"can only download http(s) URLs, got {url!r}")
    request = urllib.request.Request(url, headers={"User-Agent": f"landscape/{__version__}"})
    log.info("downloading %s to %s", url, dest)
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        raise CheckpointError(f"downloading {what} from {url} failed: HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise CheckpointError(
            f"downloading {what} from {url} failed ({reason}); without a network, put the file at {dest} "
            "and set LANDSCAPE_OFFLINE=1"
        ) from None
    with response:
        ctype = (response.headers.get("Content-Type") or "").lower()
        length = response.headers.get("Content-Length")
        total = int(length) if length and length.isdigit() else None
        html_error = CheckpointError(
            f"{url} returned an HTML page instead of the weights of {what} (Google Drive and OneDrive do this for "
            f"large files, quotas or private links); nothing was cached: download it in a browser and put it at {dest}"
        )
        if "text/html" in ctype:
            raise html_error
        digest = hashlib.sha256()
        size = 0
        with atomic_path(dest) as tmp:
            with open(tmp, "wb") as out:
                steps = math.ceil(total / CHUNK) if total else None
                try:
                    for block in progress(_chunks(response), total=steps, unit="MiB", desc=f"download {dest.name}"):
                        if size == 0 and looks_like_html(block[:2048]):
                            raise html_error
                        digest.update(block)
                        out.write(block)
                        size += len(block)
                except (OSError, urllib.error.URLError) as exc:
                    raise CheckpointError(f"downloading {what} from {url} was interrupted after {size} bytes ({exc}); nothing was cached") from None
            if size == 0:
                raise CheckpointError(f"{url} returned an empty response for {what}; nothing was cached")
            if total is not None and size != total:
                raise CheckpointError(f"downloading {what} from {url} stopped after {size} of {total} bytes; nothing was cached")
            actual = digest.hexdigest()
            if sha256 and actual != sha256:
                raise CheckpointError(
                    f"the file downloaded from {url} has sha256 {actual}, the registry expects {sha256}; nothing was cached"
                )
    log.info("saved %s (%.1f MB, sha256 %s)", dest, size / 1e6, actual)
    return dest
