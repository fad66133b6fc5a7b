"""Architectures: a registry (``create_model``) and the networks in it."""

from .registry import ModelEntry, create_model, get_model_entry, list_models, register_model
from . import smallcnn as _smallcnn  # noqa: F401  (registers "smallcnn")
from . import wrn as _wrn  # noqa: F401  (registers "wrn")
from .smallcnn import SmallCNN
from .wrn import WideResNet

__all__ = ["create_model", "list_models", "register_model", "get_model_entry", "ModelEntry",
           "WideResNet", "SmallCNN"]
