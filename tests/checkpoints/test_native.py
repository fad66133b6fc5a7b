import json
import os

import pytest
import torch

from landscape import load_model, save_model
from landscape.energy import EnergyModel
from landscape.errors import CheckpointError, LandscapeError
from landscape.models import create_model
from landscape.native import read_native_header


@pytest.mark.parametrize("arch,kwargs,shape,norm", [
    ("smallcnn", {"in_channels": 1, "width": 8}, (1, 28, 28), "identity"),
    ("wrn", {"depth": 10, "width": 1, "norm": "batch"}, (3, 32, 32), "jem"),
    ("wrn", {"depth": 10, "width": 1}, (3, 32, 32), {"kind": "meanstd", "mean": [0.4, 0.5, 0.6], "std": [0.2, 0.3, 0.25]}),
])
def test_round_trip_gives_identical_logits(tmp_path, arch, kwargs, shape, norm):
    torch.manual_seed(0)
    net = create_model(arch, **kwargs)
    if arch == "wrn":  # non-trivial BatchNorm statistics must survive too
        net.train()
        with torch.no_grad():
            net(torch.rand(8, *shape) * 2 - 1)
    model = EnergyModel(net, norm, temperature=1.5, input_shape=shape, n_classes=10).eval()
    path = save_model(model, tmp_path / "m.safetensors", dataset="unit-test", class_names=list("abcdefghij"),
                      training={"epochs": 0}, provenance={"by": "test"})
    loaded = load_model(path)
    x = torch.rand(4, *shape)
    assert torch.equal(loaded.logits(x), model.logits(x))
    assert torch.equal(loaded.energy(x), model.energy(x))
    assert not loaded.training
    assert loaded.temperature == 1.5 and loaded.input_shape == shape and loaded.n_classes == 10
    assert loaded.normalization.to_config() == model.normalization.to_config()
    assert loaded.metadata["dataset"] == "unit-test" and loaded.metadata["class_names"][9] == "j"
    header = read_native_header(path)
    assert header["architecture"] == arch and header["arch_kwargs"] == net.arch_kwargs
    assert header["landscape_version"]


def test_save_is_atomic_and_leaves_no_partial_file(tmp_path):
    model = EnergyModel(create_model("smallcnn", width=4, hidden=8), input_shape=(1, 8, 8))
    target = tmp_path / "m.safetensors"
    with pytest.raises(LandscapeError, match="JSON-serialisable"):
        save_model(model, target, bad=object())
    assert os.listdir(tmp_path) == []
    save_model(model, target)
    before = target.read_bytes()
    with pytest.raises(LandscapeError):
        save_model(model, target, bad={1, 2})
    assert target.read_bytes() == before and os.listdir(tmp_path) == ["m.safetensors"]


def test_save_needs_a_registered_architecture(tmp_path):
    with pytest.raises(LandscapeError, match="create_model"):
        save_model(EnergyModel(torch.nn.Linear(2, 2)), tmp_path / "x.safetensors")


def test_corrupt_and_foreign_files_give_clear_errors(tmp_path):
    model = EnergyModel(create_model("smallcnn", width=4, hidden=8), input_shape=(1, 8, 8))
    good = save_model(model, tmp_path / "good.safetensors")
    truncated = tmp_path / "trunc.safetensors"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="trunc.safetensors"):
        load_model(truncated)
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match="not a readable safetensors file"):
        load_model(garbage)
    from safetensors.torch import save_file
    save_file({"w": torch.zeros(2)}, str(tmp_path / "plain.safetensors"))
    with pytest.raises(CheckpointError, match="not a landscape native checkpoint"):
        load_model(tmp_path / "plain.safetensors")
    with pytest.raises(CheckpointError, match="does not exist"):
        load_model(tmp_path / "missing.safetensors")


def test_wrong_weights_for_the_architecture(tmp_path):
    from safetensors.torch import load_file, save_file
    model = EnergyModel(create_model("smallcnn", width=4, hidden=8), input_shape=(1, 8, 8))
    path = save_model(model, tmp_path / "m.safetensors")
    header = read_native_header(path)
    header["arch_kwargs"]["width"] = 8  # now the weights are the wrong shape
    save_file(load_file(str(path)), str(tmp_path / "w.safetensors"), metadata={"landscape": json.dumps(header)})
    with pytest.raises(CheckpointError, match="has shape"):
        load_model(tmp_path / "w.safetensors")
