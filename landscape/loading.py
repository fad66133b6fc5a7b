"""``landscape.loading``: the short import path of the checkpoint loaders.

Loading lives in :mod:`landscape.checkpoints.load` (the checkpoints package owns
every format, reading and writing); ``landscape.load_model`` is the usual entry point.
"""

from .checkpoints.load import LoadedCheckpoint, buffer_to_pixels, load_checkpoint, load_model

__all__ = ["load_model", "load_checkpoint", "LoadedCheckpoint", "buffer_to_pixels"]
