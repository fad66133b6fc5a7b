"""The energy model: a classifier read as an energy-based model.

This file is the one place the sign convention is written. For logits ``f(x)``:

* marginal energy     ``E(x)    = -T * logsumexp_y(f(x)[y] / T)``
* conditional energy  ``E(x, y) = -f(x)[y]``

Low energy means the model finds ``x`` likely. Every other module calls
:func:`energy_from_logits` (or :meth:`EnergyModel.energy`) instead of writing the
formula again.

:class:`EnergyModel` wraps a network together with its input normalisation, so
every caller passes pixels in ``[0, 1]`` of shape ``N x C x H x W`` and never has to
remember whether a checkpoint wanted ``[-1, 1]`` (JEM family) or mean/std inputs.
"""

from __future__ import annotations

import contextlib
from typing import Iterator, Sequence

import torch
from torch import nn

from .errors import LandscapeError

__all__ = [
    "EnergyModel",
    "Normalization",
    "energy_from_logits",
    "conditional_energy_from_logits",
    "eval_mode",
]

RANGE_TOLERANCE = 1e-4


def energy_from_logits(logits: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """Marginal energy ``E(x) = -T * logsumexp(logits / T)``, in float32 (or float64)."""
    logits = logits if logits.dtype == torch.float64 else logits.float()
    if temperature == 1.0:
        return -torch.logsumexp(logits, dim=-1)
    return -temperature * torch.logsumexp(logits / temperature, dim=-1)


def conditional_energy_from_logits(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Conditional energy ``E(x, y) = -logits[y]``, in float32 (or float64)."""
    logits = logits if logits.dtype == torch.float64 else logits.float()
    return -logits.gather(-1, y.long().view(-1, 1)).squeeze(-1)


class Normalization(nn.Module):
    """Maps pixels in [0, 1] to what the network was trained on.

    ``kind`` is ``"identity"`` (the network normalises inside, or wants [0, 1]),
    ``"jem"`` (``2x - 1``, i.e. [-1, 1], the JEM family) or ``"meanstd"``
    (``(x - mean) / std`` per channel).
    """

    KINDS = ("identity", "jem", "meanstd")

    def __init__(self, kind: str = "identity", mean: Sequence[float] | None = None,
                 std: Sequence[float] | None = None):
        super().__init__()
        if kind not in self.KINDS:
            raise LandscapeError(f"normalization must be one of {', '.join(self.KINDS)}, got {kind!r}")
        if kind == "meanstd":
            if mean is None or std is None or len(mean) != len(std) or len(mean) == 0:
                raise LandscapeError(
                    f"normalization 'meanstd' needs mean and std of the same non-zero length, got mean={mean!r} std={std!r}"
                )
            if any(s <= 0 for s in std):
                raise LandscapeError(f"normalization std must be positive, got {list(std)!r}")
        elif mean is not None or std is not None:
            raise LandscapeError(f"normalization {kind!r} takes no mean/std, got mean={mean!r} std={std!r}")
        self.kind = kind
        if kind == "jem":
            mean, std = [0.5], [0.5]
        if kind == "identity":
            mean, std = [0.0], [1.0]
        self.register_buffer("mean", torch.tensor(list(mean), dtype=torch.float32).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(list(std), dtype=torch.float32).view(1, -1, 1, 1), persistent=False)

    @classmethod
    def from_config(cls, config: "Normalization | dict | str | None") -> "Normalization":
        if isinstance(config, Normalization):
            return config
        if config is None:
            return cls("identity")
        if isinstance(config, str):
            return cls(config)
        if isinstance(config, dict):
            unknown = set(config) - {"kind", "mean", "std"}
            if unknown or "kind" not in config:
                raise LandscapeError(f"normalization config needs 'kind' (and 'mean'/'std' for meanstd), got keys {sorted(config)}")
            return cls(config["kind"], config.get("mean"), config.get("std"))
        raise LandscapeError(f"normalization must be a name, a dict or a Normalization, got {type(config).__name__}")

    def to_config(self) -> dict:
        if self.kind == "meanstd":
            return {"kind": self.kind, "mean": self.mean.flatten().tolist(), "std": self.std.flatten().tolist()}
        return {"kind": self.kind}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.kind == "identity":
            return x
        if self.kind == "jem":
            return x * 2.0 - 1.0
        return (x - self.mean.to(x.dtype)) / self.std.to(x.dtype)

    def extra_repr(self) -> str:
        if self.kind == "meanstd":
            return f"kind=meanstd, mean={self.mean.flatten().tolist()}, std={self.std.flatten().tolist()}"
        return f"kind={self.kind}"


class EnergyModel(nn.Module):
    """A classifier ``f`` with its input normalisation, read as an energy-based model.

    Args:
        net: the network; maps normalised inputs ``N x C x H x W`` to logits ``N x K``.
        normalization: ``"identity"``, ``"jem"`` (2x-1), ``"meanstd"`` config dict, or
            a :class:`Normalization`.
        temperature: ``T`` of the marginal energy.
        input_shape: ``(C, H, W)`` the network expects; inputs of another shape are
            rejected with a clear error (``None``: only the rank is checked).
        n_classes: number of classes (checked against the logits when given).
        check_inputs: validate shape, dtype and the [0, 1] range on every call.
        metadata: free-form description (architecture, dataset, provenance...).

    Inputs are always pixels in [0, 1]. Outputs of :meth:`energy` are float32 even
    under autocast. No method changes ``self.training``: use :func:`eval_mode` to
    evaluate a model temporarily in eval mode.
    """

    def __init__(self, net: nn.Module, normalization="identity", temperature: float = 1.0,
                 input_shape: Sequence[int] | None = None, n_classes: int | None = None,
                 check_inputs: bool = True, metadata: dict | None = None):
        super().__init__()
        if not isinstance(net, nn.Module):
            raise LandscapeError(f"net must be a torch.nn.Module, got {type(net).__name__}")
        if not (temperature > 0):
            raise LandscapeError(f"temperature must be > 0, got {temperature!r}")
        if input_shape is not None:
            input_shape = tuple(int(s) for s in input_shape)
            if len(input_shape) != 3 or min(input_shape) <= 0:
                raise LandscapeError(f"input_shape must be (C, H, W) with positive sizes, got {input_shape!r}")
        self.net = net
        self.normalization = Normalization.from_config(normalization)
        self.temperature = float(temperature)
        self.input_shape = input_shape
        self.n_classes = n_classes
        self.check_inputs = check_inputs
        self.metadata = dict(metadata or {})

    # -- validation ---------------------------------------------------------------
    @property
    def input_dtype(self) -> torch.dtype:
        """The dtype inputs must have: the network's floating parameters' (float32 unless converted)."""
        for p in self.net.parameters():
            if p.is_floating_point():
                return p.dtype
        return torch.float32

    def validate_input(self, x: torch.Tensor) -> None:
        """Raise :class:`LandscapeError` unless ``x`` is an N x C x H x W batch of pixels in [0, 1]
        with the network's parameter dtype (float32 unless the network was converted);
        other float dtypes are refused rather than cast, so no precision is lost or
        gained silently."""
        if not isinstance(x, torch.Tensor):
            raise LandscapeError(f"input must be a torch.Tensor of pixels in [0, 1], got {type(x).__name__}")
        if not x.is_floating_point():
            raise LandscapeError(
                f"input must be a floating-point tensor of pixels in [0, 1], got dtype {x.dtype} "
                "(convert uint8 images with x.float() / 255)"
            )
        want = self.input_dtype
        if x.dtype != want:
            raise LandscapeError(
                f"input must be {str(want).replace('torch.', '')} pixels in [0, 1] (the network's parameter dtype), got "
                f"dtype {str(x.dtype).replace('torch.', '')}; convert with x.to({want}) (for lower precision "
                "use precision='bf16', which runs the network under autocast)"
            )
        expected = "N x " + " x ".join(str(s) for s in self.input_shape) if self.input_shape else "N x C x H x W"
        if x.dim() != 4 or (self.input_shape is not None and tuple(x.shape[1:]) != self.input_shape):
            raise LandscapeError(f"input must have shape {expected}, got {tuple(x.shape)}")
        if x.numel() == 0:
            return
        lo, hi = torch.aminmax(x.detach())
        lo, hi = float(lo), float(hi)
        if not (lo >= -RANGE_TOLERANCE and hi <= 1.0 + RANGE_TOLERANCE):
            raise LandscapeError(
                f"input pixels must lie in [0, 1] (tolerance {RANGE_TOLERANCE:g}), got values in [{lo:.4g}, {hi:.4g}]"
                + ("; inputs look normalised to [-1, 1]: pass pixels in [0, 1], the model normalises inside" if lo < -0.5 else "")
            )

    # -- outputs ------------------------------------------------------------------
    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``f(x)`` for pixels ``x`` in [0, 1] (dtype follows autocast)."""
        if self.check_inputs:
            self.validate_input(x)
        out = self.net(self.normalization(x))
        if out.dim() != 2 or (self.n_classes is not None and out.shape[1] != self.n_classes):
            raise LandscapeError(
                f"the network must return logits of shape N x {self.n_classes or 'K'}, got {tuple(out.shape)}"
            )
        return out

    forward = logits

    def energy(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """``E(x)`` (``y`` is None) or ``E(x, y)``, as a float32 vector of length N."""
        logits = self.logits(x)
        if y is None:
            return energy_from_logits(logits, self.temperature)
        y = self._check_labels(y, logits)
        return conditional_energy_from_logits(logits, y)

    def energies(self, x: torch.Tensor, y: torch.Tensor | None = None) -> dict:
        """One forward pass: ``logits``, ``energy`` and (with ``y``) ``conditional_energy``."""
        logits = self.logits(x)
        out = {"logits": logits, "energy": energy_from_logits(logits, self.temperature)}
        if y is not None:
            out["conditional_energy"] = conditional_energy_from_logits(logits, self._check_labels(y, logits))
        return out

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """Predicted class indices (int64)."""
        return self.logits(x).argmax(dim=-1)

    def _check_labels(self, y, logits: torch.Tensor) -> torch.Tensor:
        y = torch.as_tensor(y, device=logits.device)
        if y.dim() != 1 or y.shape[0] != logits.shape[0] or y.is_floating_point():
            raise LandscapeError(f"labels must be an integer vector of length {logits.shape[0]}, got shape {tuple(y.shape)} dtype {y.dtype}")
        if y.numel() and (int(y.min()) < 0 or int(y.max()) >= logits.shape[1]):
            raise LandscapeError(f"labels must lie in [0, {logits.shape[1] - 1}], got values in [{int(y.min())}, {int(y.max())}]")
        return y

    def extra_repr(self) -> str:
        return f"temperature={self.temperature}, input_shape={self.input_shape}, n_classes={self.n_classes}"


@contextlib.contextmanager
def eval_mode(model: nn.Module, mode: bool = False) -> Iterator[nn.Module]:
    """Temporarily put ``model`` (and every submodule) in eval (or train) mode.

    The previous ``training`` flag of every submodule is restored on exit, even
    when the body raises, so callers never find their model switched behind
    their back.
    """
    saved = [(m, m.training) for m in model.modules()]
    model.train(mode)
    try:
        yield model
    finally:
        for m, flag in saved:
            m.training = flag
