"""The toolkit's own checkpoint format (``landscape.native``): see :mod:`landscape.checkpoints.native`.

Kept as the short public import path (``from landscape.native import save_model``);
the format is read and written by :mod:`landscape.checkpoints`, which owns every
checkpoint format.
"""

from .checkpoints.native import (BUFFER_KEY, FORMAT, FORMAT_VERSION, LABELS_KEY, META_KEY, is_native,
                                 load_native, read_native_header, save_model)

__all__ = ["save_model", "load_native", "read_native_header", "is_native", "BUFFER_KEY", "LABELS_KEY", "FORMAT",
           "FORMAT_VERSION", "META_KEY"]
