"""What a checkpoint file is: the one decision both loading and ``checkpoints info`` make.

:func:`identify` reads a file's first bytes (and, for safetensors, its header) and
says whether it is a landscape native checkpoint, a safetensors state_dict or a
PyTorch pickle (``torch.save``, zip or legacy); an HTML page saved in place of the
weights, an empty file or unreadable bytes are a :class:`CheckpointError` with the
same words for every caller. Typed errors, never matching on message text.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import CheckpointError, NotNativeError
from .native import read_native_header
from .safety import html_error, sniff_format

__all__ = ["Identified", "identify", "KINDS"]

#: what :func:`identify` can say a file is
KINDS = ("native", "safetensors", "pickle")


@dataclass(frozen=True)
class Identified:
    kind: str                 # one of KINDS
    format: str               # the byte-level format (see safety.sniff_format)
    header: dict | None = None  # the native header, for kind "native"


def identify(path: str | os.PathLike) -> Identified:
    """Identify the checkpoint file at ``path`` (which must exist)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    fmt = sniff_format(path)
    if fmt == "html":
        raise html_error(path)
    if fmt == "empty":
        raise CheckpointError(f"{path} is empty (0 bytes): an interrupted download or copy?")
    if fmt == "safetensors" or path.suffix == ".safetensors":
        try:
            return Identified("native", fmt, read_native_header(path))  # also the error for corrupt safetensors
        except NotNativeError:
            return Identified("safetensors", fmt)
    if fmt == "unknown":
        raise CheckpointError(
            f"{path} is not a readable PyTorch checkpoint (truncated or corrupt: it starts with neither a zip nor a pickle header)"
        )
    return Identified("pickle", fmt)
