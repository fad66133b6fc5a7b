"""Datasets as tensors of pixels in [0, 1], never normalised.

``load_dataset(name, split)`` returns a :class:`torch.utils.data.Dataset` of
``(x, y)`` with ``x`` a float32 tensor ``C x H x W`` in [0, 1] and ``y`` an int.
Normalisation is the model's business (see :mod:`landscape.energy`).

Where files are looked for (first hit wins):

* ``fashion-mnist``, ``mnist``: ``root``, ``$LANDSCAPE_DATA``, the torchvision
  cache (``$TORCHVISION_DATA`` or ``~/.cache/torchvision``), and for Fashion-MNIST
  ``/usr/share/datasets/fashion-mnist`` (Debian package ``dataset-fashion-mnist``).
  In each, the idx files (``.gz`` or not) may sit directly in the folder, in
  ``<folder>/fashion-mnist`` (``mnist``), or in torchvision's ``FashionMNIST/raw``.
* ``cifar10``, ``cifar100``, ``svhn``: torchvision's layouts under ``root``,
  ``$LANDSCAPE_DATA`` or the torchvision cache.
* ``imagefolder``: ``root`` is the folder (``root/<split>/<class>/*.png`` or
  ``root/<class>/*.png``); ImageNet subsets are read this way.
* ``digits``: scikit-learn's 8x8 digits (bundled with scikit-learn), split
  deterministically 80/20 (stratified, seed 0) into train and test.

``download=True`` fetches the torchvision datasets into the first of ``root``,
``$LANDSCAPE_DATA``, the torchvision cache (needs the network; ignored when
``LANDSCAPE_OFFLINE=1``).
"""

from __future__ import annotations

import gzip
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset, Subset

from .errors import DatasetNotFoundError, LandscapeError

log = logging.getLogger(__name__)

__all__ = [
    "load_dataset", "list_datasets", "dataset_info", "subset", "train_val_split",
    "ImageTensorDataset", "DatasetInfo", "to_tensors",
]

DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                         "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    shape: tuple[int, int, int] | None  # C, H, W (None: depends on the files)
    n_classes: int | None
    splits: tuple[str, ...]
    how_to_get: str


_INFO = {
    "fashion-mnist": DatasetInfo("fashion-mnist", (1, 28, 28), 10, ("train", "test"),
                                 "apt-get install dataset-fashion-mnist, set $LANDSCAPE_DATA, or pass download=True (needs the network)"),
    "mnist": DatasetInfo("mnist", (1, 28, 28), 10, ("train", "test"),
                         "put the idx files in $LANDSCAPE_DATA/mnist or pass download=True (needs the network)"),
    "cifar10": DatasetInfo("cifar10", (3, 32, 32), 10, ("train", "test"),
                           "pass root= a torchvision CIFAR-10 folder, set $LANDSCAPE_DATA, or pass download=True (needs the network)"),
    "cifar100": DatasetInfo("cifar100", (3, 32, 32), 100, ("train", "test"),
                            "pass root= a torchvision CIFAR-100 folder, set $LANDSCAPE_DATA, or pass download=True (needs the network)"),
    "svhn": DatasetInfo("svhn", (3, 32, 32), 10, ("train", "test", "extra"),
                        "pass root= a folder with the SVHN .mat files, set $LANDSCAPE_DATA, or pass download=True (needs the network)"),
    "imagefolder": DatasetInfo("imagefolder", None, None, ("train", "val", "test"),
                               "pass root= a folder of <class>/<image> files (e.g. an ImageNet subset)"),
    "digits": DatasetInfo("digits", (1, 8, 8), 10, ("train", "test"), "install scikit-learn"),
}

ALIASES = {"fmnist": "fashion-mnist", "fashion_mnist": "fashion-mnist", "fashionmnist": "fashion-mnist",
           "cifar-10": "cifar10", "cifar-100": "cifar100", "imagenet": "imagefolder"}


def list_datasets() -> list[str]:
    return sorted(_INFO)


def dataset_info(name: str) -> DatasetInfo:
    key = ALIASES.get(name.lower(), name.lower()) if isinstance(name, str) else name
    if key not in _INFO:
        raise LandscapeError(f"unknown dataset {name!r}; known: {', '.join(list_datasets())}")
    return _INFO[key]


class ImageTensorDataset(Dataset):
    """Images held in memory as a tensor (uint8 0..255 or float in [0, 1]).

    Items are ``(float32 C x H x W in [0, 1], int label)``; :meth:`get_batch`
    returns a whole batch at once without a Python loop.
    """

    def __init__(self, images: torch.Tensor, targets: torch.Tensor, classes: Sequence[str] | None = None,
                 name: str = "", split: str = ""):
        if images.dim() != 4:
            raise LandscapeError(f"images must be N x C x H x W, got shape {tuple(images.shape)}")
        if len(images) != len(targets):
            raise LandscapeError(f"{len(images)} images but {len(targets)} labels")
        self.images = images
        self.targets = torch.as_tensor(targets, dtype=torch.long)
        self.classes = list(classes) if classes is not None else [str(i) for i in range(int(self.targets.max()) + 1)]
        self.name = name
        self.split = split

    def __len__(self) -> int:
        return len(self.images)

    def _to_float(self, x: torch.Tensor) -> torch.Tensor:
        # always a new tensor: callers may modify a batch without touching the dataset
        return x.float().div_(255.0) if x.dtype == torch.uint8 else x.to(torch.float32, copy=True)

    def __getitem__(self, i):
        return self._to_float(self.images[i]), int(self.targets[i])

    def get_batch(self, indices) -> tuple[torch.Tensor, torch.Tensor]:
        idx = torch.as_tensor(indices, dtype=torch.long)
        if len(idx) > 1 and int(idx[-1]) - int(idx[0]) + 1 == len(idx) and bool((idx.diff() == 1).all()):
            idx = slice(int(idx[0]), int(idx[-1]) + 1)  # a contiguous run: slice, no gather
        return self._to_float(self.images[idx]), self.targets[idx]

    def __repr__(self) -> str:
        return f"ImageTensorDataset(name={self.name!r}, split={self.split!r}, n={len(self)}, shape={tuple(self.images.shape[1:])})"


# ----------------------------------------------------------------------------- paths
def torchvision_cache() -> Path:
    env = os.environ.get("TORCHVISION_DATA")
    if env:
        return Path(env)
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "torchvision"


def _search_roots(root) -> list[Path]:
    roots = []
    if root is not None:
        roots.append(Path(root))
    if os.environ.get("LANDSCAPE_DATA"):
        roots.append(Path(os.environ["LANDSCAPE_DATA"]))
    roots.append(torchvision_cache())
    return roots


def _download_root(root) -> Path:
    return _search_roots(root)[0]


# ----------------------------------------------------------------------------- idx
def _read_idx(path: Path) -> np.ndarray:
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as fh:
            data = fh.read()
    except (OSError, EOFError) as exc:
        raise LandscapeError(f"could not read idx file {path}: {exc}") from exc
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise LandscapeError(f"{path} is not an idx file of unsigned bytes (bad magic number)")
    ndim = data[3]
    dims = np.frombuffer(data, dtype=">u4", count=ndim, offset=4).astype(np.int64)
    expected = int(np.prod(dims))
    offset = 4 + 4 * ndim
    if len(data) - offset != expected:
        raise LandscapeError(f"{path} is truncated or corrupt: header says {expected} bytes of data, found {len(data) - offset}")
    return np.frombuffer(data, dtype=np.uint8, offset=offset).reshape(dims)


def _find_idx(candidates: list[Path], stem: str) -> Path | None:
    for folder in candidates:
        for name in (stem + ".gz", stem):
            if (folder / name).is_file():
                return folder / name
    return None


def _idx_files(name: str, split: str, root):
    """``(images file, labels file, searched bases, stems)`` of an idx dataset (files None when absent)."""
    prefix = "train" if split == "train" else "t10k"
    img_stem, lbl_stem = f"{prefix}-images-idx3-ubyte", f"{prefix}-labels-idx1-ubyte"
    tv_folder = "FashionMNIST" if name == "fashion-mnist" else "MNIST"
    bases = _search_roots(root)
    if name == "fashion-mnist":
        bases.append(DEBIAN_FASHION_MNIST)
    folders = []
    for base in bases:
        folders += [base, base / name, base / tv_folder / "raw"]
    return _find_idx(folders, img_stem), _find_idx(folders, lbl_stem), bases, (img_stem, lbl_stem)


_TV_MARKERS = {"cifar10": "cifar-10-batches-py", "cifar100": "cifar-100-python", "svhn": "{split}_32x32.mat"}


def dataset_location(name: str, split: str = "test", root: str | os.PathLike | None = None) -> str | None:
    """Where ``name``'s ``split`` would be read from (without reading it), or None when it is
    not present; searched as :func:`load_dataset` searches (``root``, ``$LANDSCAPE_DATA``,
    the torchvision cache; Debian's package for Fashion-MNIST)."""
    info = dataset_info(name)
    if info.name == "digits":
        return "bundled with scikit-learn"
    if info.name in ("fashion-mnist", "mnist"):
        img, lbl, _, _ = _idx_files(info.name, split, root)
        return str(img.parent) if img is not None and lbl is not None else None
    if info.name in _TV_MARKERS:
        marker = _TV_MARKERS[info.name].format(split=split)
        found = next((r for r in _search_roots(root) if (r / marker).exists()), None)
        return str(found) if found is not None else None
    return None  # imagefolder: wherever root= points


def _load_idx_dataset(name: str, split: str, root, download: bool) -> ImageTensorDataset:
    tv_folder = "FashionMNIST" if name == "fashion-mnist" else "MNIST"
    img, lbl, bases, (img_stem, lbl_stem) = _idx_files(name, split, root)
    if (img is None or lbl is None) and download:
        import torchvision

        target = _download_root(root)
        log.info("downloading %s into %s", name, target)
        cls = torchvision.datasets.FashionMNIST if name == "fashion-mnist" else torchvision.datasets.MNIST
        try:
            cls(str(target), train=(split == "train"), download=True)
        except (OSError, RuntimeError) as exc:
            raise DatasetNotFoundError(f"{name} ({split} split) could not be downloaded into {target}: {exc}") from exc
        img, lbl = _find_idx([target / tv_folder / "raw"], img_stem), _find_idx([target / tv_folder / "raw"], lbl_stem)
    if img is None or lbl is None:
        looked = ", ".join(str(b) for b in bases)
        raise DatasetNotFoundError(
            f"{name} ({split} split) not found: looked for {img_stem}[.gz] in {looked} "
            f"(and their {name}/ and {tv_folder}/raw/ subfolders); to get it: {dataset_info(name).how_to_get}"
        )
    images = torch.from_numpy(_read_idx(img).copy()).unsqueeze(1)
    labels = torch.from_numpy(_read_idx(lbl).astype(np.int64))
    if len(images) != len(labels):
        raise LandscapeError(f"{img} has {len(images)} images but {lbl} has {len(labels)} labels")
    classes = FASHION_MNIST_CLASSES if name == "fashion-mnist" else [str(i) for i in range(10)]
    log.debug("loaded %s %s from %s", name, split, img.parent)
    return ImageTensorDataset(images, labels, classes, name, split)


# ----------------------------------------------------------------------------- torchvision
def _load_torchvision(name: str, split: str, root, download: bool) -> ImageTensorDataset:
    import torchvision

    markers = {k: v.format(split=split) for k, v in _TV_MARKERS.items()}
    roots = _search_roots(root)
    found = next((r for r in roots if (r / markers[name]).exists()), None)
    if found is None and download:
        found = _download_root(root)
    if found is None:
        looked = ", ".join(str(r) for r in roots)
        raise DatasetNotFoundError(
            f"{name} ({split} split) not found: looked for {markers[name]} in {looked}; "
            f"to get it: {dataset_info(name).how_to_get}"
        )
    try:
        if name == "svhn":
            ds = torchvision.datasets.SVHN(str(found), split=split, download=download)
            images, labels, classes = torch.from_numpy(ds.data), torch.as_tensor(ds.labels), [str(i) for i in range(10)]
        else:
            cls = torchvision.datasets.CIFAR10 if name == "cifar10" else torchvision.datasets.CIFAR100
            ds = cls(str(found), train=(split == "train"), download=download)
            images = torch.from_numpy(ds.data).permute(0, 3, 1, 2).contiguous()
            labels, classes = torch.as_tensor(ds.targets), ds.classes
    except RuntimeError as exc:  # torchvision's "Dataset not found or corrupted"
        raise DatasetNotFoundError(f"{name} ({split} split) in {found} could not be read: {exc}") from exc
    except OSError as exc:  # a failed download (no network, HTTP error, full disk)
        raise DatasetNotFoundError(f"{name} ({split} split) could not be downloaded into {found}: {exc}") from exc
    return ImageTensorDataset(images, labels, classes, name, split)


class _ImageFolder(Dataset):
    """A torchvision ImageFolder with the toolkit's name/split/targets attributes."""

    def __init__(self, folder: Dataset, name: str, split: str):
        self.folder = folder
        self.classes = folder.classes
        self.targets = torch.as_tensor(folder.targets, dtype=torch.long)
        self.name, self.split = name, split

    def __len__(self):
        return len(self.folder)

    def __getitem__(self, i):
        return self.folder[i]



def _load_imagefolder(split: str, root, image_size: int | None) -> Dataset:
    import torchvision
    from torchvision import transforms as T

    if root is None:
        raise LandscapeError("dataset 'imagefolder' needs root= a folder of <class>/<image> files, got none")
    base = Path(root)
    folder = base / split if (base / split).is_dir() else base
    if not folder.is_dir():
        raise DatasetNotFoundError(f"imagefolder root {base} is not a folder")
    steps = []
    if image_size:
        # RobustBench's ImageNet preprocessing: resize to size * 8/7 (256 for 224), centre crop.
        steps += [T.Resize(int(round(image_size * 256 / 224))), T.CenterCrop(image_size)]
    steps.append(T.ToTensor())
    try:
        ds = torchvision.datasets.ImageFolder(str(folder), transform=T.Compose(steps))
    except (FileNotFoundError, RuntimeError) as exc:
        raise DatasetNotFoundError(f"no images found in {folder} (expected <class>/<image> subfolders): {exc}") from exc
    return _ImageFolder(ds, "imagefolder", split)


def _load_digits(split: str) -> ImageTensorDataset:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    idx = np.arange(len(d.target))
    train_idx, test_idx = train_test_split(idx, test_size=0.2, random_state=0, stratify=d.target)
    chosen = np.sort(train_idx if split == "train" else test_idx)
    images = torch.from_numpy(d.images[chosen] / 16.0).float().unsqueeze(1)
    labels = torch.from_numpy(d.target[chosen].astype(np.int64))
    return ImageTensorDataset(images, labels, [str(i) for i in range(10)], "digits", split)


def load_dataset(name: str, split: str = "test", root: str | os.PathLike | None = None,
                 download: bool = False, image_size: int | None = 224) -> Dataset:
    """Load ``name``'s ``split`` as a Dataset of ``(float C x H x W in [0, 1], int)``.

    ``image_size`` only applies to ``imagefolder`` (resize + centre crop; ``None``
    keeps the files' size).
    """
    info = dataset_info(name)
    if download:
        from .utils import offline

        download = not offline()  # LANDSCAPE_OFFLINE=1: never touch the network
    if split not in info.splits:
        raise LandscapeError(f"dataset {info.name!r} has splits {', '.join(info.splits)}, got {split!r}")
    if root is not None and not download and not Path(root).is_dir():
        # a given root is never silently replaced by the default search path
        what = "is a file" if Path(root).exists() else "does not exist"
        raise DatasetNotFoundError(f"dataset root {str(root)!r} {what}; expected a folder holding {info.name}'s files "
                                   "(or pass download=True / leave root out to use the standard search path)")
    if info.name in ("fashion-mnist", "mnist"):
        return _load_idx_dataset(info.name, split, root, download)
    if info.name in ("cifar10", "cifar100", "svhn"):
        return _load_torchvision(info.name, split, root, download)
    if info.name == "imagefolder":
        return _load_imagefolder(split, root, image_size)
    return _load_digits(split)


# ----------------------------------------------------------------------------- selections
def _targets(ds: Dataset) -> torch.Tensor | None:
    if isinstance(ds, Subset):
        parent = _targets(ds.dataset)
        return None if parent is None else parent[torch.as_tensor(ds.indices, dtype=torch.long)]
    t = getattr(ds, "targets", None)
    return None if t is None else torch.as_tensor(t, dtype=torch.long)


def _split_of(ds: Dataset) -> str:
    while isinstance(ds, Subset):
        ds = ds.dataset
    return getattr(ds, "split", "")


def subset(ds: Dataset, n: int | None, seed: int = 0) -> Dataset:
    """A deterministic random subset of ``n`` items (indices sorted); ``None``: all."""
    if n is None:
        return ds
    if not isinstance(n, (int, np.integer)) or n < 1:
        raise LandscapeError(f"subset size must be a positive integer, got {n!r}")
    if n > len(ds):
        raise LandscapeError(f"subset of {n} items asked for, but the dataset has only {len(ds)}")
    if n == len(ds):
        return ds
    g = torch.Generator().manual_seed(int(seed))
    idx = torch.randperm(len(ds), generator=g)[:n].sort().values
    return Subset(ds, idx.tolist())


def train_val_split(ds: Dataset, val_size: float | int = 0.1, seed: int = 0,
                    stratify: bool = True) -> tuple[Dataset, Dataset]:
    """Carve a validation set out of a *training* split (never the test split).

    ``val_size`` is a fraction in (0, 1) or a number of items. Stratified by label
    when the labels are known. Deterministic under ``seed``.
    """
    if _split_of(ds) == "test":
        raise LandscapeError("validation data must come from the training split, got the test split "
                             "(model selection on the test set is what this toolkit exists to avoid)")
    n = len(ds)
    n_val = int(round(val_size * n)) if isinstance(val_size, float) else int(val_size)
    if not 0 < n_val < n:
        raise LandscapeError(f"val_size must leave both parts non-empty, got {val_size!r} of {n} items")
    rng = np.random.default_rng(seed)
    targets = _targets(ds) if stratify else None
    if targets is None:
        perm = rng.permutation(n)
        val_idx = perm[:n_val]
    else:
        from sklearn.model_selection import train_test_split

        _, val_idx = train_test_split(np.arange(n), test_size=n_val, random_state=seed, stratify=targets.numpy())
    mask = np.zeros(n, dtype=bool)
    mask[val_idx] = True
    return Subset(ds, np.flatnonzero(~mask).tolist()), Subset(ds, np.flatnonzero(mask).tolist())


def to_tensors(ds: Dataset, indices: Sequence[int] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack ``ds`` (or the items at ``indices``) into ``(x float N x C x H x W, y long N)``."""
    if indices is None:
        indices = range(len(ds))
    indices = list(indices)
    base, mapped = ds, indices
    while isinstance(base, Subset):
        mapped = [base.indices[i] for i in mapped]
        base = base.dataset
    if isinstance(base, ImageTensorDataset):
        return base.get_batch(mapped)
    items = [ds[i] for i in indices]
    return torch.stack([x for x, _ in items]), _labels([y for _, y in items])


def _labels(values: list) -> torch.Tensor:
    """Class labels as int64; a float, bool or non-scalar label is an error, never truncated."""
    out = []
    for v in values:
        if isinstance(v, torch.Tensor):
            if v.numel() != 1 or v.is_floating_point() or v.is_complex() or v.dtype == torch.bool:
                raise LandscapeError(f"dataset labels must be integer class indices, got a tensor of dtype {v.dtype} "
                                     f"and shape {tuple(v.shape)}")
            v = v.item()
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)):
            raise LandscapeError(f"dataset labels must be integer class indices, got {v!r} ({type(v).__name__})")
        out.append(int(v))
    return torch.as_tensor(out, dtype=torch.long)
