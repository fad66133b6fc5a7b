"""User-facing errors.

Every error a user can cause (a wrong argument, a missing dataset, a bad checkpoint)
is raised as a :class:`LandscapeError` subclass with a one-line message that says
what was expected and what was given. The CLI turns these into ``landscape: error:
...`` and exit code 2; library callers can catch them like any ``ValueError``.
"""


class LandscapeError(ValueError):
    """Base class of the toolkit's user-facing errors (a ``ValueError``)."""


class DatasetNotFoundError(LandscapeError, FileNotFoundError):
    """A dataset's files were not found where the toolkit looked for them."""


class CheckpointError(LandscapeError):
    """A checkpoint file could not be read, recognised or loaded."""


class NotNativeError(CheckpointError):
    """A safetensors file that is not a landscape native checkpoint (no ``landscape`` header):
    loaders go on to read it as a plain state_dict."""


class ConfigError(LandscapeError):
    """A configuration (arguments, TOML analysis, recipe) is invalid."""
