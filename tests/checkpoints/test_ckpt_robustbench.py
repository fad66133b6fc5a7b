"""RobustBench zoo models load offline from a model_dir, through robustbench.utils.load_model."""

import builtins

import pytest
import torch

from landscape import load_model
from landscape.checkpoints.describe import inspect_checkpoint
from landscape.errors import CheckpointError
from landscape.loading import load_checkpoint


@pytest.fixture(scope="module")
def zoo():
    from landscape.checkpoints.robustbench import _robustbench

    _robustbench()  # the import (via landscape._compat) takes a few seconds; once per module
    from robustbench.model_zoo import model_dicts
    from robustbench.model_zoo.enums import BenchmarkDataset, ThreatModel

    return lambda dataset, threat: model_dicts[BenchmarkDataset(dataset)][ThreatModel(threat)]


@pytest.fixture(autouse=True)
def _offline(tmp_path, monkeypatch, zoo):
    import robustbench.utils

    def no_network(*args, **kwargs):
        raise AssertionError("RobustBench tried to download")

    monkeypatch.setattr(robustbench.utils, "download_gdrive_new", no_network)
    monkeypatch.setenv("LANDSCAPE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("LANDSCAPE_OFFLINE", "1")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _save_zoo_model(zoo, model_dir, name, dataset="cifar10", threat="Linf", wrap=True):
    """A freshly initialised zoo network saved where RobustBench looks for it."""
    torch.manual_seed(0)
    net = zoo(dataset, threat)[name]["model"]().eval()
    state = net.state_dict()
    obj = {"state_dict": {"module." + k: v for k, v in state.items()}} if wrap else state
    path = model_dir / dataset / threat / f"{name}.pt"
    path.parent.mkdir(parents=True)
    torch.save(obj, path)
    return net, path


def test_zoo_model_loads_offline_from_model_dir_with_exact_logits(tmp_path, zoo):
    # Ding2020MMA: a WRN-28-4 (5.8 M parameters) in the CIFAR-10 Linf zoo
    net, path = _save_zoo_model(zoo, tmp_path / "models", "Ding2020MMA")
    loaded = load_checkpoint("Ding2020MMA", family="robustbench", model_dir=tmp_path / "models")
    model = loaded.model
    assert loaded.family == "robustbench" and loaded.replay_buffer is None and model.replay_buffer is None
    assert model.normalization.kind == "identity" and model.input_shape == (3, 32, 32) and model.n_classes == 10
    assert model.metadata["zoo"] == {"name": "Ding2020MMA", "dataset": "cifar10", "threat_model": "Linf",
                                     "model_dir": str(tmp_path / "models")}
    x = torch.rand(4, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(model.logits(x), net(x))
    assert not model.training
    # the same file, given by path: detected from RobustBench's folder layout
    by_path = load_model(path)
    assert by_path.metadata["family"] == "robustbench"
    with torch.no_grad():
        assert torch.equal(by_path.logits(x), net(x))
    info = inspect_checkpoint("Ding2020MMA", family="robustbench", model_dir=str(tmp_path / "models"))
    assert info.cached and info.n_parameters == sum(p.numel() for p in net.parameters())


def test_missing_zoo_file_offline_says_where_and_never_downloads(tmp_path):
    with pytest.raises(CheckpointError, match=r"LANDSCAPE_OFFLINE is set and RobustBench model Standard \(cifar10, Linf\) is not downloaded: "
                                              r"expected the file .*models/cifar10/Linf/Standard\.pt"):
        load_model("Standard", family="robustbench", model_dir=tmp_path / "models")
    # a registry name resolves to the zoo too, with RobustBench's default model_dir under $LANDSCAPE_HOME
    with pytest.raises(CheckpointError, match=r"expected the file .*home/robustbench/cifar10/Linf/Rice2020Overfitting\.pt"):
        load_model("Rice2020Overfitting")
    with pytest.raises(CheckpointError, match="'Standart' is not a RobustBench cifar10 Linf zoo model; did you mean Standard"):
        load_model("Standart", family="robustbench")
    with pytest.raises(CheckpointError, match=r"option\(s\) depth do not apply to family 'robustbench'"):
        load_model("Standard", family="robustbench", depth=28)


def test_malicious_file_in_model_dir_is_refused_before_robustbench_reads_it(tmp_path):
    marker = tmp_path / "PWNED"

    class Evil:
        def __reduce__(self):
            return (builtins.open, (str(marker), "w"))

    path = tmp_path / "models" / "cifar10" / "Linf" / "Ding2020MMA.pt"
    path.parent.mkdir(parents=True)
    torch.save({"state_dict": {}, "x": Evil()}, path)
    with pytest.raises(CheckpointError, match="refused to load .*Ding2020MMA.pt: it would import io.open"):
        load_model("Ding2020MMA", family="robustbench", model_dir=tmp_path / "models")
    assert not marker.exists()


def test_wrong_weights_for_the_zoo_architecture(tmp_path, zoo):
    from _ckpt_layouts import tiny_wrn

    path = tmp_path / "models" / "cifar10" / "Linf" / "Ding2020MMA.pt"
    path.parent.mkdir(parents=True)
    torch.save(tiny_wrn().state_dict(), path)
    with pytest.raises(CheckpointError, match="do not fit RobustBench model Ding2020MMA"):
        load_model("Ding2020MMA", family="robustbench", model_dir=tmp_path / "models")


def test_registry_robustbench_names_exist_in_the_zoo(zoo):
    from landscape.checkpoints.manifest import load_manifest

    for e in load_manifest().values():
        if e.family == "robustbench":
            record = zoo(e.dataset, e.threat_model)[e.zoo_name or e.name]
            assert record["gdrive_id"] == e.gdrive_id and e.gdrive_id in e.url


@pytest.mark.slow
def test_standard_wrn_28_10_loads_offline(tmp_path, zoo):
    net, _ = _save_zoo_model(zoo, tmp_path / "models", "Standard", wrap=False)
    model = load_model("Standard", model_dir=tmp_path / "models")  # the registry entry
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(model.logits(x), net(x))
    assert sum(p.numel() for p in model.parameters()) == 36_479_194
