"""Out-of-distribution images taken from another dataset."""

from __future__ import annotations

import logging
import os

import torch
import torch.nn.functional as F
from torch.utils.data import Dataset as TorchDataset

from ..data import dataset_info, load_dataset, to_tensors
from ..errors import LandscapeError
from ._common import check_batch, check_int
from .base import Source

log = logging.getLogger(__name__)

__all__ = ["Dataset", "OODDataset", "match_shape"]

_LUMA = (0.299, 0.587, 0.114)  # ITU-R BT.601, as PIL's convert("L")


def match_shape(images: torch.Tensor, shape) -> torch.Tensor:
    """Bring ``images`` (``N x C' x H' x W'`` in [0, 1]) to ``shape`` ``(C, H, W)``.

    Channels: gray to C channels by repetition, RGB to gray by BT.601 luminance
    (0.299 R + 0.587 G + 0.114 B); other mismatches are an error. Size: bilinear
    interpolation with antialiasing (so shrinking 28x28 to 8x8 averages instead of
    aliasing). The result is clamped to [0, 1].
    """
    c, h, w = (int(s) for s in shape)
    src = images.shape[1]
    if src != c:
        if src == 1:
            images = images.expand(-1, c, -1, -1)
        elif src == 3 and c == 1:
            weights = torch.tensor(_LUMA, dtype=images.dtype, device=images.device).view(1, 3, 1, 1)
            images = (images * weights).sum(1, keepdim=True)
        else:
            raise LandscapeError(f"cannot turn {src}-channel images into {c}-channel ones (only gray <-> RGB)")
    if tuple(images.shape[2:]) != (h, w):
        images = F.interpolate(images, size=(h, w), mode="bilinear", align_corners=False, antialias=True)
    return images.clamp(0.0, 1.0).contiguous()


class Dataset(Source):
    """Out-of-distribution (OOD) images: samples of another dataset, matched to ``x``.

    Energy-based OOD detection (Liu et al., "Energy-based Out-of-distribution
    Detection", NeurIPS 2020; JEM's OOD experiments) compares the energies of
    in-distribution images with those of another dataset's images (e.g. SVHN or
    CIFAR-100 against a CIFAR-10 model).

    Args:
        dataset: a dataset name for :func:`landscape.load_dataset` (``"svhn"``,
            ``"cifar100"``, ``"mnist"``, ``"fashion-mnist"``, ``"digits"``...) or a
            Dataset of ``(x, y)`` with ``x`` a ``C x H x W`` tensor in [0, 1].
        split: the split to draw from (names only).
        root: where to look for the files (names only; see :func:`landscape.load_dataset`).

    Call: ``ood(model, x, y=None, keys=None, seed=0)`` returns, for each row of ``x``,
    an image of the other dataset brought to ``x``'s shape (see :func:`match_shape`),
    float32 in [0, 1] on ``x``'s device. With ``keys`` the image for key ``k`` is
    item ``perm[k mod n]`` of a permutation of the ``n`` items seeded by ``seed``,
    so distinct keys get distinct images (up to ``n``) whatever the batches;
    without keys the items are drawn at random (global RNG). The dataset is loaded
    on the first call and kept; the model is not called.
    """

    needs_grad = False

    def __init__(self, dataset: "str | TorchDataset" = "svhn", split: str = "test",
                 root: str | os.PathLike | None = None):
        self._data = None
        self._perms: dict[int, torch.Tensor] = {}
        if isinstance(dataset, str):
            info = dataset_info(dataset)
            if split not in info.splits:
                raise LandscapeError(f"dataset {info.name!r} has splits {', '.join(info.splits)}, got {split!r}")
            self.dataset = info.name
            self.split = split
            self.root = None if root is None else str(root)
        elif isinstance(dataset, TorchDataset) and hasattr(dataset, "__len__"):
            if len(dataset) == 0:
                raise LandscapeError("the out-of-distribution dataset is empty")
            self._data = dataset
            self.dataset = getattr(dataset, "name", None) or type(dataset).__name__
            self.split = getattr(dataset, "split", None) or split
            self.root = None
            self.n = len(dataset)  # part of the settings: names the object in cache keys
        else:
            raise LandscapeError(f"dataset must be a dataset name or a torch Dataset of (x, y), got {type(dataset).__name__}")

    @property
    def name(self) -> str:
        return f"ood-{self.dataset}"

    @property
    def data(self) -> TorchDataset:
        """The dataset images are drawn from (loaded on first use)."""
        if self._data is None:
            self._data = load_dataset(self.dataset, self.split, root=self.root)
            log.debug("loaded %s %s (%d items) as out-of-distribution data", self.dataset, self.split, len(self._data))
        return self._data

    def _perm(self, seed: int, n: int) -> torch.Tensor:
        if seed not in self._perms:
            g = torch.Generator().manual_seed(int(seed) ^ 0x5EED_00D)
            self._perms[seed] = torch.randperm(n, generator=g)
        return self._perms[seed]

    def __call__(self, model, x: torch.Tensor, y: torch.Tensor | None = None,
                 keys: torch.Tensor | None = None, seed: int = 0) -> torch.Tensor:
        x, _, keys = check_batch(x, y, keys)
        seed = check_int("seed", seed)
        ds = self.data
        n = len(ds)
        if keys is None:
            idx = torch.randint(n, (x.shape[0],))
        else:
            idx = self._perm(seed, n)[keys.cpu().remainder(n)]
        images, _ = to_tensors(ds, idx.tolist())
        return match_shape(images.float(), x.shape[1:]).to(device=x.device, dtype=torch.float32)


OODDataset = Dataset
