"""Where SGLD chains start: a JEM replay buffer and per-class Gaussians.

* :class:`ReplayBuffer` is the persistent buffer of Grathwohl et al., "Your
  Classifier is Secretly an Energy Based Model and You Should Treat it Like One"
  (JEM, ICLR 2020): SGLD chains start from samples drawn out of the buffer, a
  fraction ``reinit_prob`` (5%) of them is re-initialised from fresh noise, and the
  chains' end points are written back. A trainer uses it as
  ``x, idx = buffer.sample(n)``; ``x = sgld_steps(x)``; ``buffer.update(idx, x)``
  (:class:`~landscape.sources.sgld.SGLD` with ``init="buffer"`` does exactly this).
* :class:`ClassGaussians` / :func:`fit_class_gaussians` give the "informative
  initialisation" of JEM++ (Yang & Ji, "JEM++: Improved Techniques for Training
  JEM", ICCV 2021), also used by SADA-JEM (Yang et al., "Towards Bridging the
  Performance Gaps of Joint Energy-based Models", CVPR 2023): one Gaussian per
  class fitted on the training images (flattened pixels), sampled and clamped to
  [0, 1].

Everything here is in [0, 1] pixel units, ``C x H x W`` per sample, float32.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
from typing import Sequence

import torch

from .._version import __version__
from ..errors import LandscapeError
from ..precision import full_precision
from ..utils import atomic_path
from ._common import check_choice, check_int, check_number
from .base import randn_like_keyed

log = logging.getLogger(__name__)

__all__ = ["ReplayBuffer", "ClassGaussians", "fit_class_gaussians"]

_BUFFER_FORMAT = "landscape.replay_buffer"
_GAUSS_FORMAT = "landscape.class_gaussians"


def _check_shape(shape) -> tuple[int, int, int]:
    try:
        shape = tuple(int(s) for s in shape)
    except (TypeError, ValueError):
        raise LandscapeError(f"shape must be (C, H, W) with positive sizes, got {shape!r}") from None
    if len(shape) != 3 or min(shape) <= 0:
        raise LandscapeError(f"shape must be (C, H, W) with positive sizes, got {shape!r}")
    return shape


# ============================================================================ class Gaussians
class ClassGaussians:
    """One Gaussian per class over flattened pixels (the JEM++ informative init).

    Attributes:
        means: ``K x D`` float32 (``D = C*H*W``).
        scale: ``K x D x D`` lower Cholesky factors of the covariances
            (``covariance="full"``), or ``K x D`` standard deviations (``"diag"``).
        shape: ``(C, H, W)``.

    A full factor takes ``4 K D^2`` bytes: 377 MB for CIFAR-10 (``D = 3072``),
    25 MB for Fashion-MNIST; use ``covariance="diag"`` for many classes or large
    images. Build with :func:`fit_class_gaussians`.
    """

    def __init__(self, means: torch.Tensor, scale: torch.Tensor, shape: Sequence[int], ridge: float = 0.0):
        shape = _check_shape(shape)
        dim = math.prod(shape)
        if means.dim() != 2 or means.shape[1] != dim:
            raise LandscapeError(f"means must be K x {dim} for shape {shape}, got {tuple(means.shape)}")
        k = means.shape[0]
        if tuple(scale.shape) not in ((k, dim, dim), (k, dim)):
            raise LandscapeError(f"scale must be K x D x D (full) or K x D (diag) with K={k}, D={dim}, got {tuple(scale.shape)}")
        self.means = means.float().contiguous()
        self.scale = scale.float().contiguous()
        self.shape = shape
        self.ridge = float(ridge)

    @property
    def n_classes(self) -> int:
        return self.means.shape[0]

    @property
    def covariance(self) -> str:
        return "full" if self.scale.dim() == 3 else "diag"

    @property
    def device(self) -> torch.device:
        return self.means.device

    def to(self, device) -> "ClassGaussians":
        """Move to ``device`` (in place; returns ``self``)."""
        self.means, self.scale = self.means.to(device), self.scale.to(device)
        return self

    def fingerprint(self) -> str:
        """A short hash of the parameters (names the fit in cache keys and saved buffers)."""
        h = hashlib.sha256()
        for t in (self.means, self.scale):
            h.update(t.detach().cpu().contiguous().numpy().tobytes())
        h.update(json.dumps(self.shape).encode())
        return h.hexdigest()[:16]

    def sample(self, y: torch.Tensor, keys: torch.Tensor | None = None, seed: int = 0, stream: int = 0,
               generator: torch.Generator | None = None, device=None, clamp: bool = True) -> torch.Tensor:
        """One sample per label in ``y``: ``N x C x H x W`` float32 (clamped to [0, 1] unless ``clamp=False``).

        The normals come from :mod:`landscape.rng` keyed by ``(seed, key, stream)``
        when ``keys`` is given, else from ``generator`` (CPU) or the global RNG.
        """
        device = torch.device(device) if device is not None else self.device
        y = torch.as_tensor(y).long().view(-1)
        n = y.shape[0]
        if n and (int(y.min()) < 0 or int(y.max()) >= self.n_classes):
            raise LandscapeError(f"class labels must lie in [0, {self.n_classes - 1}], got values in [{int(y.min())}, {int(y.max())}]")
        template = torch.empty((n, *self.shape), device=device)
        if keys is not None:
            eps = randn_like_keyed(template, torch.as_tensor(keys, device=device), seed, stream)
        elif generator is not None:
            eps = torch.randn(template.shape, generator=generator).to(device)
        else:
            eps = torch.randn(template.shape, device=device)
        eps = eps.view(n, -1)
        y = y.to(device)
        means, scale = self.means.to(device), self.scale.to(device)
        with full_precision(device):  # addmm would run in bf16 under the caller's autocast
            if self.covariance == "diag":
                out = torch.addcmul(means[y], eps, scale[y])
            else:
                out = torch.empty_like(eps)
                for c in torch.unique(y).tolist():
                    rows = (y == c).nonzero().view(-1)
                    out[rows] = torch.addmm(means[c], eps[rows], scale[c].T)
        out = out.view(n, *self.shape)
        return out.clamp_(0.0, 1.0) if clamp else out

    # -- files -------------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> None:
        """Write a ``.safetensors`` file (atomically)."""
        from safetensors.torch import save_file

        meta = {"format": _GAUSS_FORMAT, "shape": json.dumps(list(self.shape)), "ridge": repr(self.ridge),
                "toolkit_version": __version__}
        with atomic_path(path) as tmp:
            save_file({"means": self.means.cpu().contiguous(), "scale": self.scale.cpu().contiguous()}, str(tmp), metadata=meta)

    @classmethod
    def load(cls, path: str | os.PathLike, device="cpu") -> "ClassGaussians":
        tensors, meta = _read_safetensors(path, _GAUSS_FORMAT, "class Gaussians")
        try:
            return cls(tensors["means"], tensors["scale"], json.loads(meta["shape"]), float(meta.get("ridge", 0.0))).to(device)
        except KeyError as exc:
            raise LandscapeError(f"{path} is not a class-Gaussians file: missing {exc}") from None

    def __repr__(self) -> str:
        return (f"ClassGaussians(n_classes={self.n_classes}, shape={self.shape}, covariance={self.covariance!r}, "
                f"ridge={self.ridge:g}, fingerprint={self.fingerprint()!r})")


def fit_class_gaussians(x, y: torch.Tensor | None = None, n_classes: int | None = None, ridge: float = 1e-4,
                        covariance: str = "full") -> ClassGaussians:
    """Fit one Gaussian per class to training images (JEM++'s informative initialisation).

    Args:
        x: ``N x C x H x W`` pixels in [0, 1], or a Dataset of ``(x, y)`` (then ``y`` is None).
        y: integer labels ``N``.
        n_classes: number of classes (default: ``max(y) + 1``); every class needs at
            least two images.
        ridge: added to the diagonal of every covariance so it is positive definite
            (pixels that never vary, e.g. MNIST borders, have zero variance).
        covariance: ``"full"`` (Cholesky factor of the ``D x D`` covariance) or
            ``"diag"`` (per-pixel standard deviations).

    Means and covariances are the per-class sample mean and the unbiased sample
    covariance of the flattened pixels (``D = C*H*W``); the Cholesky factor is
    computed in float64.
    """
    if y is None:
        from ..data import to_tensors

        if isinstance(x, torch.Tensor):
            raise LandscapeError("fit_class_gaussians needs labels y with an image tensor, got y=None")
        x, y = to_tensors(x)
    if not isinstance(x, torch.Tensor) or not x.is_floating_point() or x.dim() != 4:
        raise LandscapeError(f"x must be a float tensor N x C x H x W of pixels in [0, 1], got {getattr(x, 'shape', type(x).__name__)}")
    y = torch.as_tensor(y)
    if y.dim() != 1 or y.shape[0] != x.shape[0] or y.is_floating_point():
        raise LandscapeError(f"y must be an integer vector of length {x.shape[0]}, got shape {tuple(y.shape)}")
    y = y.long().to(x.device)
    check_choice("covariance", covariance, ("full", "diag"))
    ridge = check_number("ridge", ridge, low=0.0)
    k = int(y.max()) + 1 if n_classes is None else check_int("n_classes", n_classes, low=1)
    if int(y.min()) < 0 or int(y.max()) >= k:
        raise LandscapeError(f"labels must lie in [0, {k - 1}], got values in [{int(y.min())}, {int(y.max())}]")
    counts = torch.bincount(y, minlength=k)
    few = [c for c in range(k) if counts[c] < 2]
    if few:
        raise LandscapeError(f"every class needs at least 2 images to fit a Gaussian, classes {few} have fewer")
    flat = x.detach().reshape(x.shape[0], -1).float()
    dim = flat.shape[1]
    means, scales = [], []
    for c in range(k):
        xc = flat[y == c]
        mu = xc.mean(0)
        centred = (xc - mu).double()
        if covariance == "diag":
            scales.append((centred.pow(2).sum(0) / (len(xc) - 1) + ridge).sqrt().float())
        else:
            cov = centred.T @ centred / (len(xc) - 1)
            cov.diagonal().add_(ridge)
            chol, info = torch.linalg.cholesky_ex(cov)
            if int(info) != 0:
                raise LandscapeError(f"the covariance of class {c} is not positive definite with ridge={ridge:g}; "
                                     "pass a larger ridge (e.g. 1e-3)")
            scales.append(chol.float())
        means.append(mu)
    log.debug("fitted %d class Gaussians (%s covariance) over %d pixels", k, covariance, dim)
    return ClassGaussians(torch.stack(means), torch.stack(scales), x.shape[1:], ridge)


# ============================================================================ replay buffer
class ReplayBuffer:
    """JEM's persistent SGLD replay buffer (Grathwohl et al. 2020), in [0, 1] pixels.

    Args:
        size: number of stored samples (JEM: 10,000).
        shape: ``(C, H, W)`` of a sample.
        reinit_prob: probability that a drawn sample is replaced by a fresh
            initialisation (JEM: 0.05).
        init: ``"uniform"`` (U[0, 1] pixels, JEM's uniform noise on [-1, 1]) or a
            :class:`ClassGaussians` (JEM++ / SADA-JEM informative init). Used for the
            initial fill and for every re-initialisation.
        n_classes: make the buffer class-conditional (JEM's conditional sampling):
            slot ``i`` belongs to class ``i // (size // n_classes)``; ``size`` must be
            a multiple of ``n_classes``; labels are stored. ``None``: unconditional.
        device: where the samples live (``to(device)`` moves them later).
        seed: seeds the buffer's own CPU generator (the initial fill, the slots
            drawn and the re-initialisations), so a run is reproducible; the
            generator's state is saved with the buffer.

    ``sample(n, y=None)`` returns ``(x, idx)``: ``n`` samples (copies) drawn with
    replacement, each replaced with probability ``reinit_prob`` by fresh noise;
    ``update(idx, x)`` writes SGLD's results back. ``save``/``load`` use one
    ``.safetensors`` file written atomically; ``from_tensor`` wraps an existing
    buffer, e.g. the ``replay_buffer`` of a JEM checkpoint (values in [-1, 1]).
    """

    def __init__(self, size: int = 10000, shape: Sequence[int] = (3, 32, 32), reinit_prob: float = 0.05,
                 init: "str | ClassGaussians" = "uniform", n_classes: int | None = None, device="cpu",
                 seed: int = 0, _data: torch.Tensor | None = None):
        self.size = check_int("size", size, low=1)
        self.shape = _check_shape(shape)
        self.reinit_prob = check_number("reinit_prob", reinit_prob, low=0.0, high=1.0)
        if not (init == "uniform" or isinstance(init, ClassGaussians)):
            raise LandscapeError(f"init must be 'uniform' or a ClassGaussians (see fit_class_gaussians), got {init!r}")
        if isinstance(init, ClassGaussians) and init.shape != self.shape:
            raise LandscapeError(f"the class Gaussians are for shape {init.shape}, the buffer for {self.shape}")
        self.init = init
        self.n_classes = None if n_classes is None else check_int("n_classes", n_classes, low=1)
        if self.n_classes is not None:
            if self.size % self.n_classes:
                raise LandscapeError(f"a class-conditional buffer needs size divisible by n_classes, got size={size} n_classes={n_classes}")
            if isinstance(init, ClassGaussians) and init.n_classes != self.n_classes:
                raise LandscapeError(f"the class Gaussians have {init.n_classes} classes, the buffer n_classes={self.n_classes}")
        self.seed = check_int("seed", seed)
        self.generator = torch.Generator().manual_seed(self.seed)
        self.labels = (torch.arange(self.size) // (self.size // self.n_classes)) if self.n_classes else None
        if _data is None:
            _data = self._fresh(self.labels if self.labels is not None else self.size)
        self.data = _data.to(device=torch.device(device), dtype=torch.float32)
        if self.labels is not None:
            self.labels = self.labels.to(self.data.device)

    # -- construction helpers --------------------------------------------------------
    @classmethod
    def from_tensor(cls, data: torch.Tensor, value_range: tuple[float, float] = (0.0, 1.0), **kwargs) -> "ReplayBuffer":
        """A buffer holding ``data`` (``size x C x H x W``); ``value_range=(-1, 1)`` for JEM checkpoints' buffers."""
        if not isinstance(data, torch.Tensor) or data.dim() != 4 or not data.is_floating_point():
            raise LandscapeError(f"data must be a float tensor size x C x H x W, got {getattr(data, 'shape', type(data).__name__)}")
        lo, hi = (float(v) for v in value_range)
        if not hi > lo:
            raise LandscapeError(f"value_range must be (low, high) with high > low, got {value_range!r}")
        pixels = ((data.detach().float() - lo) / (hi - lo)).clamp_(0.0, 1.0)
        for k in ("size", "shape", "_data"):
            if k in kwargs:
                raise LandscapeError(f"from_tensor takes the size and shape from data; got {k}=")
        return cls(size=data.shape[0], shape=data.shape[1:], _data=pixels, device=kwargs.pop("device", data.device), **kwargs)

    def _fresh(self, classes: "int | torch.Tensor") -> torch.Tensor:
        """Fresh initial samples on the CPU: ``classes`` is a count (random classes) or a label vector."""
        if isinstance(self.init, ClassGaussians):
            if isinstance(classes, int):
                classes = torch.randint(self.init.n_classes, (classes,), generator=self.generator)
            return self.init.sample(classes, generator=self.generator)
        n = classes if isinstance(classes, int) else classes.shape[0]
        return torch.rand((n, *self.shape), generator=self.generator)

    # -- the trainer's API -------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return self.data.device

    @property
    def conditional(self) -> bool:
        return self.n_classes is not None

    def __len__(self) -> int:
        return self.size

    def to(self, device) -> "ReplayBuffer":
        """Move the stored samples to ``device`` (in place; returns ``self``)."""
        self.data = self.data.to(device)
        if self.labels is not None:
            self.labels = self.labels.to(device)
        return self

    def sample(self, n: int, y: torch.Tensor | None = None, device=None) -> tuple[torch.Tensor, torch.Tensor]:
        """Draw ``n`` chain starts: ``(x n x C x H x W float32 copies, idx int64 slots)``.

        ``y`` (class-conditional buffers only) draws every sample from its class's
        slots. Each drawn sample is replaced, with probability ``reinit_prob``, by a
        fresh initialisation (of its slot's class when the buffer is conditional).
        Both tensors are on ``device`` (default: the buffer's).
        """
        n = check_int("n", n, low=0)
        g = self.generator
        if y is not None:
            if not self.conditional:
                raise LandscapeError("sampling by class needs a class-conditional buffer (ReplayBuffer(n_classes=...)), got y for an unconditional one")
            y = torch.as_tensor(y).long().view(-1).cpu()
            if y.shape[0] != n:
                raise LandscapeError(f"y must hold one label per sample ({n}), got {y.shape[0]}")
            if n and (int(y.min()) < 0 or int(y.max()) >= self.n_classes):
                raise LandscapeError(f"labels must lie in [0, {self.n_classes - 1}], got values in [{int(y.min())}, {int(y.max())}]")
            per = self.size // self.n_classes
            idx = y * per + torch.randint(per, (n,), generator=g)
        else:
            idx = torch.randint(self.size, (n,), generator=g)
        reinit = (torch.rand(n, generator=g) < self.reinit_prob).nonzero().view(-1)
        x = self.data[idx.to(self.device)]
        if reinit.numel():
            classes = self.labels[idx[reinit].to(self.device)].cpu() if self.conditional else int(reinit.numel())
            x[reinit.to(self.device)] = self._fresh(classes).to(self.device)
        device = self.device if device is None else torch.device(device)
        return x.to(device), idx.to(device)

    def update(self, idx: torch.Tensor, x: torch.Tensor) -> None:
        """Write samples ``x`` (``n x C x H x W``) back into slots ``idx``."""
        idx = torch.as_tensor(idx)
        if idx.dim() != 1 or idx.is_floating_point():
            raise LandscapeError(f"idx must be an integer vector, got shape {tuple(idx.shape)} dtype {idx.dtype}")
        if not isinstance(x, torch.Tensor) or tuple(x.shape) != (idx.shape[0], *self.shape):
            raise LandscapeError(f"x must have shape {(idx.shape[0], *self.shape)}, got {tuple(getattr(x, 'shape', ()))}")
        if idx.numel() and (int(idx.min()) < 0 or int(idx.max()) >= self.size):
            raise LandscapeError(f"idx must lie in [0, {self.size - 1}], got values in [{int(idx.min())}, {int(idx.max())}]")
        self.data[idx.to(self.device)] = x.detach().to(self.device, torch.float32)

    # -- files ---------------------------------------------------------------------
    def describe(self) -> dict:
        """The settings (not the contents), JSON-serialisable."""
        init = "uniform" if self.init == "uniform" else f"class_gaussians:{self.init.fingerprint()}"
        return {"size": self.size, "shape": list(self.shape), "reinit_prob": self.reinit_prob, "init": init,
                "n_classes": self.n_classes, "seed": self.seed}

    def state_dict(self) -> dict:
        """Tensors and settings, for embedding in a training checkpoint (see :meth:`load_state_dict`)."""
        sd = {"data": self.data.detach().cpu(), "rng_state": self.generator.get_state()}
        if self.labels is not None:
            sd["labels"] = self.labels.cpu()
        sd["settings"] = self.describe()
        return sd

    def load_state_dict(self, sd: dict) -> None:
        settings = sd.get("settings", {})
        mine = self.describe()
        for k in ("size", "shape", "n_classes"):
            if k in settings and settings[k] != mine[k]:
                raise LandscapeError(f"buffer state has {k}={settings[k]!r}, this buffer {k}={mine[k]!r}")
        data = sd["data"]
        if tuple(data.shape) != (self.size, *self.shape):
            raise LandscapeError(f"buffer state holds shape {tuple(data.shape)}, expected {(self.size, *self.shape)}")
        self.data = data.to(self.device, torch.float32).clone()
        if "rng_state" in sd:
            self.generator.set_state(sd["rng_state"].cpu())

    def save(self, path: str | os.PathLike) -> None:
        """Write the buffer (samples, labels, generator state, settings) to one ``.safetensors`` file, atomically."""
        from safetensors.torch import save_file

        tensors = {"data": self.data.detach().cpu().contiguous(), "rng_state": self.generator.get_state()}
        if self.labels is not None:
            tensors["labels"] = self.labels.cpu().contiguous()
        meta = {"format": _BUFFER_FORMAT, "settings": json.dumps(self.describe()), "toolkit_version": __version__}
        with atomic_path(path) as tmp:
            save_file(tensors, str(tmp), metadata=meta)

    @classmethod
    def load(cls, path: str | os.PathLike, init: "ClassGaussians | None" = None, device="cpu") -> "ReplayBuffer":
        """Read a buffer written by :meth:`save`.

        A buffer that re-initialises from class Gaussians needs them again as
        ``init`` (they are not stored in the file; their fingerprint is checked).
        """
        tensors, meta = _read_safetensors(path, _BUFFER_FORMAT, "replay buffer")
        try:
            s = json.loads(meta["settings"])
            data = tensors["data"]
        except (KeyError, ValueError) as exc:
            raise LandscapeError(f"{path} is not a replay buffer file: bad or missing {exc}") from None
        saved_init = s.get("init", "uniform")
        if saved_init == "uniform":
            if init is not None:
                raise LandscapeError(f"{path} holds a buffer re-initialised from uniform noise; init must be None, got {init!r}")
            init = "uniform"
        else:
            if not isinstance(init, ClassGaussians):
                raise LandscapeError(f"{path} holds a buffer re-initialised from class Gaussians ({saved_init}); "
                                     "pass them as init= (see fit_class_gaussians)")
            if saved_init != f"class_gaussians:{init.fingerprint()}":
                log.warning("%s was saved with class Gaussians %s, loading it with %s", path, saved_init, init.fingerprint())
        buf = cls(size=s["size"], shape=s["shape"], reinit_prob=s["reinit_prob"], init=init, n_classes=s["n_classes"],
                  device=device, seed=s["seed"], _data=data)
        if "rng_state" in tensors:
            buf.generator.set_state(tensors["rng_state"])
        return buf

    def __repr__(self) -> str:
        init = "'uniform'" if self.init == "uniform" else repr(self.init)
        return (f"ReplayBuffer(size={self.size}, shape={self.shape}, reinit_prob={self.reinit_prob}, init={init}, "
                f"n_classes={self.n_classes}, device={str(self.device)!r})")


def _read_safetensors(path, fmt: str, what: str) -> tuple[dict, dict]:
    from safetensors import SafetensorError, safe_open
    from safetensors.torch import load_file

    if not os.path.isfile(path):
        raise LandscapeError(f"{what} file {path} does not exist")
    try:
        with safe_open(str(path), framework="pt") as fh:
            meta = fh.metadata() or {}
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise LandscapeError(f"{path} is not a readable .safetensors file: {exc}") from None
    if meta.get("format") != fmt:
        raise LandscapeError(f"{path} is not a {what} file (format {meta.get('format')!r}, expected {fmt!r})")
    return tensors, meta
