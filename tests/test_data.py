import gzip
from pathlib import Path

import numpy as np
import pytest
import torch

from landscape.data import (DEBIAN_FASHION_MNIST, load_dataset, subset, to_tensors, train_val_split)
from landscape.errors import DatasetNotFoundError, LandscapeError


def test_fashion_mnist_test_split_loads_offline():
    ds = load_dataset("fashion-mnist", "test")
    assert len(ds) == 10000
    x, y = to_tensors(ds)
    assert x.shape == (10000, 1, 28, 28) and x.dtype == torch.float32
    assert float(x.min()) >= 0.0 and float(x.max()) <= 1.0 and float(x.max()) > 0.99
    assert torch.bincount(y, minlength=10).tolist() == [1000] * 10
    assert ds.classes[9] == "Ankle boot"
    x0, y0 = ds[0]
    assert x0.shape == (1, 28, 28) and isinstance(y0, int)
    assert torch.equal(x0, x[0])


def test_fashion_mnist_train_split():
    ds = load_dataset("fmnist", "train")
    assert len(ds) == 60000 and ds.split == "train"


def write_idx(path: Path, array: np.ndarray):
    header = bytes([0, 0, 8, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    with gzip.open(path, "wb") as fh:
        fh.write(header + array.astype(np.uint8).tobytes())


def make_fake_fmnist(folder: Path, n=20):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    write_idx(folder / "t10k-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28)))
    write_idx(folder / "t10k-labels-idx1-ubyte.gz", np.arange(n) % 10)


def test_root_then_env_take_precedence(tmp_path, monkeypatch):
    make_fake_fmnist(tmp_path / "mine" / "FashionMNIST" / "raw", n=20)
    make_fake_fmnist(tmp_path / "env", n=30)
    monkeypatch.setenv("LANDSCAPE_DATA", str(tmp_path / "env"))
    assert len(load_dataset("fashion-mnist", "test", root=tmp_path / "mine")) == 20  # torchvision layout
    assert len(load_dataset("fashion-mnist", "test")) == 30
    monkeypatch.setenv("LANDSCAPE_DATA", str(tmp_path / "nothing-here"))
    assert len(load_dataset("fashion-mnist", "test")) == 10000  # falls through to Debian's copy


def test_missing_dataset_error_names_where_it_looked(tmp_path, monkeypatch):
    monkeypatch.setenv("LANDSCAPE_DATA", str(tmp_path / "env"))
    monkeypatch.setenv("TORCHVISION_DATA", str(tmp_path / "tv"))
    (tmp_path / "root").mkdir()  # an existing but empty root (a missing one is refused outright)
    with pytest.raises(DatasetNotFoundError) as info:
        load_dataset("mnist", "test", root=tmp_path / "root")
    msg = str(info.value)
    for where in ("root", "env", "tv"):
        assert str(tmp_path / where) in msg
    assert "download=True" in msg and "\n" not in msg
    with pytest.raises(DatasetNotFoundError, match="cifar-10-batches-py"):
        load_dataset("cifar10", "test", root=tmp_path)


def test_truncated_idx_file_is_reported(tmp_path):
    make_fake_fmnist(tmp_path, n=20)
    data = gzip.open(tmp_path / "t10k-images-idx3-ubyte.gz").read()
    with gzip.open(tmp_path / "t10k-images-idx3-ubyte.gz", "wb") as fh:
        fh.write(data[:-100])
    with pytest.raises(LandscapeError, match="truncated or corrupt"):
        load_dataset("fashion-mnist", "test", root=tmp_path)


def test_unknown_dataset_and_split():
    with pytest.raises(LandscapeError, match="unknown dataset 'imagenette'"):
        load_dataset("imagenette")
    with pytest.raises(LandscapeError, match="has splits train, test, got 'valid'"):
        load_dataset("digits", "valid")


def test_digits():
    train, test = load_dataset("digits", "train"), load_dataset("digits", "test")
    assert len(train) + len(test) == 1797 and len(test) == 360
    x, y = to_tensors(test)
    assert x.shape == (360, 1, 8, 8) and 0 <= float(x.min()) and float(x.max()) <= 1
    assert set(y.tolist()) == set(range(10))
    xtr, _ = to_tensors(train)
    # the two splits are disjoint
    flat_tr = {tuple(r) for r in xtr.flatten(1).mul(16).round().int().tolist()}
    overlap = sum(tuple(r) in flat_tr for r in x.flatten(1).mul(16).round().int().tolist())
    assert overlap < 5  # sklearn's digits has a handful of exact duplicate images


def test_subset_is_deterministic_and_sorted():
    ds = load_dataset("digits", "test")
    a, b, c = subset(ds, 50, seed=1), subset(ds, 50, seed=1), subset(ds, 50, seed=2)
    assert a.indices == b.indices and a.indices != c.indices
    assert a.indices == sorted(a.indices) and len(set(a.indices)) == 50
    assert torch.equal(to_tensors(a)[0], torch.stack([ds[i][0] for i in a.indices]))
    assert subset(ds, None) is ds
    with pytest.raises(LandscapeError, match="only 360"):
        subset(ds, 1000)
    with pytest.raises(LandscapeError, match="positive integer"):
        subset(ds, 0)


def test_train_val_split_is_disjoint_stratified_and_refuses_test():
    train = load_dataset("digits", "train")
    tr, va = train_val_split(train, 0.2, seed=0)
    assert set(tr.indices).isdisjoint(va.indices) and len(tr) + len(va) == len(train)
    counts = torch.bincount(to_tensors(va)[1], minlength=10)
    assert counts.min() >= 26 and counts.max() <= 30  # about 144/5 per class
    tr2, va2 = train_val_split(train, 0.2, seed=0)
    assert va2.indices == va.indices
    with pytest.raises(LandscapeError, match="training split, got the test split"):
        train_val_split(load_dataset("digits", "test"))
    with pytest.raises(LandscapeError, match="training split, got the test split"):
        train_val_split(subset(load_dataset("digits", "test"), 100))


def test_debian_path_is_the_documented_one():
    assert DEBIAN_FASHION_MNIST == Path("/usr/share/datasets/fashion-mnist")


def test_download_respects_offline_and_failures_are_clear(tmp_path, monkeypatch):
    monkeypatch.setenv("LANDSCAPE_OFFLINE", "1")
    monkeypatch.setenv("TORCHVISION_DATA", str(tmp_path / "tv"))
    with pytest.raises(DatasetNotFoundError, match="cifar-10-batches-py"):
        load_dataset("cifar10", "test", root=tmp_path, download=True)
    assert not any(tmp_path.iterdir())  # nothing was fetched or created
