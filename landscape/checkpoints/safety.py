"""Reading checkpoint files without ever executing code from them.

PyTorch checkpoints are pickles, and unpickling can run arbitrary code. Every
``.pt`` file the toolkit reads goes through :func:`safe_torch_load`, which calls
``torch.load(..., weights_only=True)``: PyTorch's restricted unpickler only
rebuilds tensors, plain containers and a short allow-list of harmless types,
and stops at anything else *before* calling it. We add three harmless types that
research checkpoints often carry (``argparse.Namespace`` for saved flags, NumPy
scalars and dtypes for saved metrics); nothing that can execute code is allowed.

A file that would import anything else is refused with a :class:`CheckpointError`
naming what it asked for; there is no fallback to an unsafe load. Truncated or
corrupt files, HTML pages saved in place of weights (a known failure of Google
Drive and OneDrive links) and empty files each get their own one-line error.
"""

from __future__ import annotations

import argparse
import logging
import os
import pickle
import re
import warnings
from pathlib import Path

import torch

from ..errors import CheckpointError

log = logging.getLogger(__name__)

__all__ = ["safe_torch_load", "sniff_format", "looks_like_html", "html_error", "extra_safe_globals"]

# torch < 2.6: "Unsupported global: GLOBAL os.system"; torch >= 2.6: "Trying to load unsupported GLOBAL posix.system"
_UNSUPPORTED_GLOBAL = re.compile(r"[Uu]nsupported (?:global: )?GLOBAL ([\w.]+)")
_HTML_MARKERS = (b"<!doctype html", b"<html", b"<head", b"<body", b"<?xml", b"<script")


def extra_safe_globals() -> list:
    """Types allowed in addition to PyTorch's own weights-only allow-list.

    All of them are plain data holders: rebuilding them sets attributes or
    interprets bytes as a number, and never calls user code.
    """
    extra: list = [argparse.Namespace]
    try:
        import numpy as np

        try:
            from numpy._core.multiarray import scalar  # numpy >= 2
        except ImportError:  # pragma: no cover - numpy 1.x
            from numpy.core.multiarray import scalar
        extra += [scalar, np.dtype]
        dtypes = getattr(np, "dtypes", None)
        if dtypes is not None:
            extra += [getattr(dtypes, n) for n in dir(dtypes) if n.endswith("DType") and n != "StringDType"]
    except ImportError:  # pragma: no cover - numpy is a dependency
        pass
    return extra


def looks_like_html(head: bytes) -> bool:
    """True when the first bytes of a file or response are an HTML/XML page."""
    text = head[:2048].lstrip().lower()
    return text.startswith(_HTML_MARKERS) or (text.startswith(b"<") and b"<html" in text)


def sniff_format(path: str | os.PathLike) -> str:
    """What a file is, from its first bytes.

    One of ``"safetensors"``, ``"torch-zip"`` (``torch.save`` since 1.6),
    ``"pickle"`` (legacy ``torch.save`` or a plain pickle), ``"html"``,
    ``"empty"`` or ``"unknown"``.
    """
    path = Path(path)
    size = path.stat().st_size
    with open(path, "rb") as fh:
        head = fh.read(4096)
    if not head:
        return "empty"
    if head.startswith(b"PK\x03\x04") or head.startswith(b"PK\x05\x06"):
        return "torch-zip"
    if head[:1] == b"\x80" and len(head) > 1 and head[1] <= 5:
        return "pickle"
    if len(head) >= 9 and head[8:9] == b"{":
        header_len = int.from_bytes(head[:8], "little")
        if 0 < header_len <= size - 8:
            return "safetensors"
    if looks_like_html(head):
        return "html"
    return "unknown"


def html_error(path: Path) -> CheckpointError:
    return CheckpointError(
        f"{path} is an HTML page, not a checkpoint (a download link that returned a web page, as Google Drive "
        "and OneDrive do for large files, quotas or missing permissions); delete it and download the file by hand"
    )


def safe_torch_load(path: str | os.PathLike, mmap: bool = False):
    """``torch.load(path, weights_only=True)`` onto the CPU, with one clear error per failure.

    ``mmap=True`` maps the tensor data instead of reading it (zip files only),
    which makes inspecting a large file cheap.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    kind = sniff_format(path)
    if kind == "empty":
        raise CheckpointError(f"{path} is empty (0 bytes): an interrupted download or copy?")
    if kind == "html":
        raise html_error(path)
    if kind == "unknown":
        raise CheckpointError(
            f"{path} is not a readable PyTorch checkpoint (truncated or corrupt: it starts with neither a zip nor a pickle header)"
        )
    if kind == "safetensors":
        raise CheckpointError(f"{path} is a safetensors file, not a PyTorch pickle; read it with safetensors")
    try:
        with torch.serialization.safe_globals(extra_safe_globals()), warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap and kind == "torch-zip")
    except pickle.UnpicklingError as exc:
        text = str(exc)
        match = _UNSUPPORTED_GLOBAL.search(text)
        if match:
            raise CheckpointError(
                f"refused to load {path}: it would import {match.group(1)}, which is not plain data and could run "
                "code; nothing from the file was executed (load only state_dicts: torch.save(model.state_dict(), ...))"
            ) from None
        if "Weights only load failed" in text or "WeightsUnpickler" in text:
            reason = text.split("WeightsUnpickler error:")[-1].strip().splitlines()[0] if "WeightsUnpickler error:" in text else "unsupported content"
            raise CheckpointError(
                f"refused to load {path}: the safe loader stopped at {reason or 'unsupported content'!r}; the file is "
                "corrupt or holds more than plain weights; nothing from the file was executed"
            ) from None
        raise CheckpointError(f"{path} is not a readable PyTorch checkpoint (truncated or corrupt: {_first_line(text)})") from None
    except (RuntimeError, EOFError, KeyError, ValueError, OSError, IndexError, TypeError, AttributeError) as exc:
        raise CheckpointError(
            f"{path} is not a readable PyTorch checkpoint (truncated or corrupt: {type(exc).__name__}: {_first_line(str(exc))})"
        ) from None


def _first_line(text: str) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    line = line.split(". This is an internal")[0]
    return line[:200]
