"""load_model on every family's on-disk layout, and every way a checkpoint can be wrong."""

import argparse
import builtins
import json
import pickle

import re

import numpy as np
import pytest
import torch

from _ckpt_layouts import jem_layout, jem_reference_logits, jempp_layout, replay_buffer, tiny_wrn, with_prefix
from landscape import load_model, save_model
from landscape.errors import CheckpointError
from landscape.loading import load_checkpoint
from landscape.models import create_model


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("LANDSCAPE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("LANDSCAPE_OFFLINE", "1")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models: one thread is faster than two contended ones
    yield
    torch.set_num_threads(threads)


X = torch.rand(5, 3, 32, 32, generator=torch.Generator().manual_seed(3))


def _layout(kind, net, buf):
    """(object to torch.save, expected family, expected norm)."""
    if kind == "jem-dict":
        return {"model_state_dict": jem_layout(net), "replay_buffer": buf}, "jem"
    if kind == "jem-bare":
        return jem_layout(net), "jem"
    if kind == "jempp-dict-module":
        return {"model_state_dict": with_prefix(jempp_layout(net)), "replay_buffer": buf}, "jempp"
    if kind == "jempp-bare":
        return jempp_layout(net), "jempp"
    if kind == "sadajem-dict":
        return {"model_state_dict": dict(net.state_dict()), "replay_buffer": buf}, "sadajem"
    if kind == "sadajem-module-bare":
        return with_prefix(dict(net.state_dict())), "sadajem"
    raise AssertionError(kind)


@pytest.mark.parametrize("kind,norm", [
    ("jem-dict", "none"), ("jem-bare", "none"),
    ("jempp-dict-module", "batch"), ("jempp-bare", "batch"), ("jempp-bare", "none"),
    ("sadajem-dict", "batch"), ("sadajem-module-bare", "batch"),
])
def test_each_jem_family_layout_is_detected_and_reproduces_logits(tmp_path, kind, norm):
    net = tiny_wrn(norm)
    buf = replay_buffer()
    obj, family = _layout(kind, net, buf)
    path = tmp_path / "model.pt"
    torch.save(obj, path)

    loaded = load_checkpoint(path)
    model = loaded.model
    assert loaded.family == family and model.metadata["family"] == family
    assert model.metadata["arch_kwargs"] == net.arch_kwargs
    assert model.metadata["arch_kwargs"]["depth"] == 10 and model.metadata["arch_kwargs"]["width"] == 1
    assert model.metadata["arch_kwargs"]["norm"] == norm
    assert model.normalization.kind == "jem" and model.input_shape == (3, 32, 32) and model.n_classes == 10
    assert not model.training
    with torch.no_grad():
        got = model.logits(X)
        assert torch.equal(got, net(X * 2 - 1))  # exactly the network that wrote the file
        reference = jem_reference_logits(net.state_dict(), X, depth=10, norm=norm)
        assert torch.allclose(got, reference, atol=1e-5, rtol=1e-5)  # and the JEM forward, written out
    if "dict" in kind:
        assert torch.equal(loaded.replay_buffer, (buf + 1) / 2) and torch.equal(model.replay_buffer, loaded.replay_buffer)
        assert 0 <= float(model.replay_buffer.min()) and float(model.replay_buffer.max()) <= 1
        model.energy(model.replay_buffer[:3])  # the buffer is valid input as it comes
    else:
        assert loaded.replay_buffer is None and model.replay_buffer is None
    if "module" in kind:
        assert model.metadata["stripped_prefix"] == "module."
    dropped = model.metadata.get("dropped_keys", {})
    if family == "jem":
        assert list(dropped) == ["f.linear.*"] and dropped["f.linear.*"].startswith("2 key(s)")
    elif family == "jempp":
        assert set(dropped) == {"f.layer_one.*", "f.other_layers.*"}
    else:
        assert dropped == {}
    json.dumps(model.metadata)  # metadata stays JSON-serialisable (save_model stores it)


def test_detection_covers_depth_width_classes_channels_and_heads(tmp_path):
    torch.manual_seed(0)
    net = create_model("wrn", depth=16, width=2, norm="batch", n_classes=100, in_channels=1, energy_head=False).eval()
    path = tmp_path / "c100.pt"
    torch.save({"model_state_dict": net.state_dict(), "replay_buffer": replay_buffer(4, channels=1)}, path)
    model = load_model(path)
    kw = model.metadata["arch_kwargs"]
    assert (kw["depth"], kw["width"], kw["norm"], kw["n_classes"], kw["in_channels"], kw["energy_head"]) == (16, 2, "batch", 100, 1, False)
    assert model.input_shape == (1, 32, 32) and model.n_classes == 100  # from the buffer's shape
    x = torch.rand(3, 1, 32, 32)
    with torch.no_grad():
        assert torch.equal(model.logits(x), net(x * 2 - 1))


def test_ebjdat_is_its_base_layout_and_is_labelled_when_asked(tmp_path):
    net = tiny_wrn("batch")
    path = tmp_path / "ebjdat.pt"
    torch.save({"model_state_dict": jempp_layout(net), "replay_buffer": replay_buffer()}, path)
    assert load_model(path).metadata["family"] == "jempp"  # identical on disk: the base is what detection sees
    loaded = load_checkpoint(path, family="ebjdat")
    assert loaded.family == "ebjdat" and loaded.model.metadata["base_family"] == "jempp"
    with torch.no_grad():
        assert torch.equal(loaded.model.logits(X), net(X * 2 - 1))


def test_layouts_without_fingerprint_record_their_candidates(tmp_path):
    net = tiny_wrn("batch")
    torch.save(net.state_dict(), tmp_path / "m.pt")
    meta = load_model(tmp_path / "m.pt").metadata
    assert meta["family"] == "sadajem" and meta["family_candidates"] == ["sadajem", "jempp", "ebjdat"]


def test_old_saves_without_num_batches_tracked_and_half_precision(tmp_path):
    net = tiny_wrn("batch")
    sd = {k: (v.half() if v.is_floating_point() else v) for k, v in net.state_dict().items()
          if not k.endswith("num_batches_tracked")}
    torch.save({"model_state_dict": sd}, tmp_path / "old.pt")
    model = load_model(tmp_path / "old.pt")
    assert all(p.dtype == torch.float32 for p in model.parameters())
    ref = tiny_wrn("batch")
    ref.load_state_dict({k: v.float() for k, v in sd.items()}, strict=False)
    with torch.no_grad():
        assert torch.equal(model.logits(X), ref(X * 2 - 1))


def test_plain_safetensors_state_dicts_are_detected_too(tmp_path):
    from safetensors.torch import save_file

    net = tiny_wrn()
    save_file({k: v.contiguous() for k, v in jem_layout(net).items()}, str(tmp_path / "jem.safetensors"))
    model = load_model(tmp_path / "jem.safetensors")
    assert model.metadata["family"] == "jem" and model.normalization.kind == "jem"
    with torch.no_grad():
        assert torch.equal(model.logits(X), net(X * 2 - 1))


def test_loaded_model_converts_to_native_and_back(tmp_path):
    net = tiny_wrn("batch")
    torch.save({"model_state_dict": with_prefix(jempp_layout(net)), "replay_buffer": replay_buffer()}, tmp_path / "j.pt")
    model = load_model(tmp_path / "j.pt")
    native = save_model(model, tmp_path / "j.safetensors")
    again = load_model(native)
    with torch.no_grad():
        assert torch.equal(again.logits(X), model.logits(X))
    assert again.metadata["family"] == "jempp" and again.normalization.kind == "jem"
    assert load_checkpoint(native).family == "native"


def test_container_fields_namespace_and_numpy_scalars_are_safe_and_kept(tmp_path):
    net = tiny_wrn()
    obj = {"model_state_dict": jem_layout(net), "replay_buffer": replay_buffer(), "epoch": 150,
           "best_acc": np.float64(0.93), "args": argparse.Namespace(lr=0.1, depth=10),
           "optimizer_state_dict": {"state": {}, "param_groups": []}}
    torch.save(obj, tmp_path / "m.pt")
    meta = load_model(tmp_path / "m.pt").metadata
    assert meta["checkpoint_fields"] == {"epoch": 150, "best_acc": pytest.approx(0.93)}
    assert sorted(meta["ignored_entries"]) == ["args", "optimizer_state_dict"]


def test_replay_buffer_is_clamped_and_can_be_skipped(tmp_path):
    net = tiny_wrn()
    buf = replay_buffer()
    buf[0, 0, 0, 0] = 1.5
    buf[1, 0, 0, 0] = -1.2
    torch.save({"model_state_dict": jem_layout(net), "replay_buffer": buf}, tmp_path / "m.pt")
    loaded = load_checkpoint(tmp_path / "m.pt")
    assert float(loaded.replay_buffer.max()) == 1.0 and float(loaded.replay_buffer.min()) == 0.0
    assert loaded.metadata["replay_buffer_clamped_fraction"] == pytest.approx(2 / buf.numel())
    assert load_checkpoint(tmp_path / "m.pt", load_buffer=False).replay_buffer is None


def test_explicit_state_dict_family_with_any_architecture(tmp_path):
    torch.manual_seed(0)
    net = create_model("smallcnn", in_channels=1, width=8, hidden=32).eval()
    torch.save({"state_dict": with_prefix(net.state_dict(), "model.")}, tmp_path / "cnn.pt")
    with pytest.raises(CheckpointError, match="match no known layout"):
        load_model(tmp_path / "cnn.pt")
    with pytest.raises(CheckpointError, match="needs architecture="):
        load_model(tmp_path / "cnn.pt", family="state_dict")
    model = load_model(tmp_path / "cnn.pt", family="state_dict", architecture="smallcnn", in_channels=1, width=8,
                       hidden=32, input_shape=(1, 28, 28))
    x = torch.rand(4, 1, 28, 28)
    with torch.no_grad():
        assert torch.equal(model.logits(x), net(x))
    assert model.normalization.kind == "identity" and model.metadata["stripped_prefix"] == "model."
    assert model.n_classes == 10
    # an nn.Module instance works too
    target = create_model("smallcnn", in_channels=1, width=8, hidden=32)
    model = load_model(tmp_path / "cnn.pt", architecture=target, normalization={"kind": "meanstd", "mean": [0.5], "std": [0.25]})
    with torch.no_grad():
        assert torch.equal(model.logits(x), net((x - 0.5) / 0.25))


# ------------------------------------------------------------------------- errors
def test_truncated_and_corrupt_files(tmp_path):
    torch.save({"model_state_dict": jem_layout(tiny_wrn())}, tmp_path / "good.pt")
    data = (tmp_path / "good.pt").read_bytes()
    (tmp_path / "trunc.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=r"trunc\.pt is not a readable PyTorch checkpoint \(truncated or corrupt"):
        load_model(tmp_path / "trunc.pt")
    torch.save({"a": torch.zeros(100)}, tmp_path / "legacy.pt", _use_new_zipfile_serialization=False)
    data = (tmp_path / "legacy.pt").read_bytes()
    (tmp_path / "trunc_legacy.pt").write_bytes(data[: len(data) - 50])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load_model(tmp_path / "trunc_legacy.pt")
    (tmp_path / "garbage.pt").write_bytes(b"definitely not a checkpoint")
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load_model(tmp_path / "garbage.pt")
    (tmp_path / "empty.pt").write_bytes(b"")
    with pytest.raises(CheckpointError, match="is empty"):
        load_model(tmp_path / "empty.pt")
    (tmp_path / "page.pt").write_bytes(b"<!DOCTYPE html><html><head><title>Google Drive - Virus scan warning</title>")
    with pytest.raises(CheckpointError, match="is an HTML page, not a checkpoint"):
        load_model(tmp_path / "page.pt")


class _CreatesAFile:
    def __init__(self, target):
        self.target = str(target)

    def __reduce__(self):
        return (builtins.open, (self.target, "w"))


def test_malicious_pickles_are_refused_and_never_run(tmp_path):
    marker = tmp_path / "PWNED"
    torch.save({"model_state_dict": jem_layout(tiny_wrn()), "payload": _CreatesAFile(marker)}, tmp_path / "evil.pt")
    with pytest.raises(CheckpointError, match=r"refused to load .*evil\.pt: it would import io\.open"):
        load_model(tmp_path / "evil.pt")
    assert not marker.exists()
    with open(tmp_path / "evil.pkl", "wb") as fh:  # a plain pickle, as protocol 2 (GLOBAL opcode)
        pickle.dump({"x": _CreatesAFile(marker)}, fh, protocol=2)
    with pytest.raises(CheckpointError, match="refused to load"):
        load_model(tmp_path / "evil.pkl")
    with open(tmp_path / "evil4.pkl", "wb") as fh:
        pickle.dump({"x": _CreatesAFile(marker)}, fh, protocol=4)
    with pytest.raises(CheckpointError, match="refused to load.*nothing from the file was executed"):
        load_model(tmp_path / "evil4.pkl")
    assert not marker.exists()
    torch.save(torch.nn.Linear(2, 2), tmp_path / "module.pt")  # a pickled module, not a state_dict
    with pytest.raises(CheckpointError, match=r"would import torch\.nn\.modules\.linear\.Linear"):
        load_model(tmp_path / "module.pt")


def test_wrong_architecture_missing_and_unexpected_keys(tmp_path):
    net = tiny_wrn("batch")
    torch.save(net.state_dict(), tmp_path / "m.pt")
    with pytest.raises(CheckpointError, match=r"tensor class_output\.weight has shape \(10, 64\), wrn\(.*n_classes=100.*\) expects \(100, 64\)"):
        load_model(tmp_path / "m.pt", n_classes=100)
    with pytest.raises(CheckpointError, match=r"do not fit wrn\(depth=10, width=2.*missing 2 key\(s\) \['f\.layer1\.0\.shortcut\.0\.weight'"):
        load_model(tmp_path / "m.pt", width=2)
    with pytest.raises(CheckpointError, match=r"do not fit wrn\(depth=16.*missing \d+ key\(s\) \['f\.layer1\.1\."):
        load_model(tmp_path / "m.pt", family="state_dict", architecture="wrn", depth=16)
    with pytest.raises(CheckpointError, match="'none' and 'batch'|norm must be one of"):
        load_model(tmp_path / "m.pt", norm="group")
    sd = dict(net.state_dict())
    sd["f.extra.weight"] = torch.zeros(3)
    torch.save(sd, tmp_path / "extra.pt")
    with pytest.raises(CheckpointError, match=r"unexpected 1 key\(s\) \['f\.extra\.weight'\]"):
        load_model(tmp_path / "extra.pt")
    sd = dict(net.state_dict())
    del sd["f.layer2.0.conv2.bias"]
    torch.save(sd, tmp_path / "missing.pt")
    with pytest.raises(CheckpointError, match=r"missing 1 key\(s\) \['f\.layer2\.0\.conv2\.bias'\]"):
        load_model(tmp_path / "missing.pt")
    # JEM's harmless f.linear is not harmless for a family that does not write it
    torch.save(jem_layout(tiny_wrn()), tmp_path / "jem.pt")
    with pytest.raises(CheckpointError, match=r"unexpected 2 key\(s\) \['f\.linear\.weight', 'f\.linear\.bias'\]"):
        load_model(tmp_path / "jem.pt", family="sadajem")


def test_inconsistent_aliases_and_ambiguous_containers(tmp_path):
    net = tiny_wrn("batch")
    sd = jempp_layout(net)
    sd["f.other_layers.1.0.conv1.weight"] = sd["f.other_layers.1.0.conv1.weight"].clone() + 1
    torch.save(sd, tmp_path / "bad_alias.pt")
    with pytest.raises(CheckpointError, match=r"f\.other_layers\.1\.0\.conv1\.weight should be an alias of f\.layer2\.0\.conv1\.weight"):
        load_model(tmp_path / "bad_alias.pt")
    torch.save({"model_state_dict": net.state_dict(), "ema_state_dict": net.state_dict()}, tmp_path / "two.pt")
    with pytest.raises(CheckpointError, match="several state_dicts, candidates: 'model_state_dict', 'ema_state_dict'; pass state_key="):
        load_model(tmp_path / "two.pt")
    assert load_model(tmp_path / "two.pt", state_key="ema_state_dict").metadata["state_key"] == "ema_state_dict"
    both = {**with_prefix(net.state_dict(), "student."), **with_prefix(net.state_dict(), "teacher.")}
    torch.save(both, tmp_path / "pair.pt")
    with pytest.raises(CheckpointError, match="several networks, under the prefixes 'student.', 'teacher.'"):
        load_model(tmp_path / "pair.pt")
    mixed = jem_layout(tiny_wrn())
    mixed.update({k: v for k, v in jempp_layout(tiny_wrn()).items() if k.startswith("f.layer_one.")})
    torch.save(mixed, tmp_path / "mixed.pt")
    with pytest.raises(CheckpointError, match="candidates: jem, jempp"):
        load_model(tmp_path / "mixed.pt")
    assert load_model(tmp_path / "mixed.pt", family="ebjdat").metadata["family"] == "ebjdat"


def test_bad_requests_give_one_line_errors(tmp_path):
    torch.save(jem_layout(tiny_wrn()), tmp_path / "jem.pt")
    with pytest.raises(CheckpointError, match="family must be one of native, jem, jempp, sadajem, ebjdat, robustbench, state_dict"):
        load_model(tmp_path / "jem.pt", family="jem2")
    with pytest.raises(CheckpointError, match=r"option\(s\) model_dir do not apply to family 'jem'"):
        load_model(tmp_path / "jem.pt", model_dir=str(tmp_path))
    with pytest.raises(CheckpointError, match="family 'native' was asked for"):
        load_model(tmp_path / "jem.pt", family="native")
    torch.save(create_model("smallcnn", width=4, hidden=8).state_dict(), tmp_path / "cnn.pt")
    with pytest.raises(CheckpointError, match="family 'jempp' expects JEM-family keys"):
        load_model(tmp_path / "cnn.pt", family="jempp")
    with pytest.raises(CheckpointError, match="checkpoint .*nowhere.pt does not exist"):
        load_model(str(tmp_path / "nowhere.pt"))
    with pytest.raises(CheckpointError, match="not a file, an http\\(s\\) URL or a registry checkpoint name"):
        load_model("no-such-model")
    with pytest.raises(CheckpointError, match="has sha256 .* expects 0{64}"):
        load_model(tmp_path / "jem.pt", sha256="0" * 64)
    for err in (CheckpointError("x"),):
        assert isinstance(err, ValueError)


def test_loading_does_not_change_modes_and_moves_to_device(tmp_path):
    net = tiny_wrn("batch")
    torch.save(net.state_dict(), tmp_path / "m.pt")
    model = load_model(tmp_path / "m.pt", device="cpu", temperature=2.0)
    assert model.temperature == 2.0 and not model.training and not any(m.training for m in model.modules())
    assert all(p.requires_grad for p in model.parameters())
    assert {p.device.type for p in model.parameters()} == {"cpu"}


def test_registry_name_not_cached_offline_says_where(tmp_path):
    with pytest.raises(CheckpointError, match=r"LANDSCAPE_OFFLINE is set and jem-cifar10 is not in the cache: expected the file .*home/checkpoints/jem-cifar10/CIFAR10_MODEL\.pt"):
        load_model("jem-cifar10")
    with pytest.raises(CheckpointError, match=r"jempp-cifar10 has no direct download link: get jempp_M10\.pt from https://1drv\.ms/.* and put it at .*jempp-cifar10/jempp_M10\.pt"):
        load_model("jempp-cifar10")


def test_registry_entry_loads_from_the_cache(tmp_path):
    net = tiny_wrn("batch")
    dest = tmp_path / "home" / "checkpoints" / "sadajem-cifar10" / "sadajem10_948_withbuffer.pt"
    dest.parent.mkdir(parents=True)
    torch.save({"model_state_dict": net.state_dict(), "replay_buffer": replay_buffer()}, dest)
    model = load_model("sadajem-cifar10")  # registry says WRN-28-10; the file's architecture wins, with a warning
    assert model.metadata["family"] == "sadajem" and model.metadata["registry"]["name"] == "sadajem-cifar10"
    assert model.metadata["dataset"] == "cifar10" and model.metadata["registry"]["metrics"]["clean_acc"] == 96.03
    assert load_model("sadajem-cifar10", family="ebjdat").metadata["family"] == "ebjdat"
    with pytest.raises(CheckpointError, match="is a sadajem checkpoint, family='state_dict' was asked for"):
        load_model("sadajem-cifar10", family="state_dict")


def test_identify_is_the_one_decision_of_loading_and_info(tmp_path):
    from safetensors.torch import save_file

    from landscape.checkpoints.identify import identify
    from landscape.energy import EnergyModel

    net = create_model("smallcnn", width=4, hidden=8)
    native = save_model(EnergyModel(net, input_shape=(1, 28, 28), n_classes=10), tmp_path / "n.safetensors")
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(tmp_path / "s.safetensors"))
    torch.save(net.state_dict(), tmp_path / "z.pt")
    torch.save(net.state_dict(), tmp_path / "p.pt", _use_new_zipfile_serialization=False)
    assert identify(native).kind == "native" and identify(native).header["architecture"] == "smallcnn"
    assert identify(tmp_path / "s.safetensors").kind == "safetensors"
    assert (identify(tmp_path / "z.pt").kind, identify(tmp_path / "z.pt").format) == ("pickle", "torch-zip")
    assert (identify(tmp_path / "p.pt").kind, identify(tmp_path / "p.pt").format) == ("pickle", "pickle")
    for name, content, words in (("h.pt", b"<!doctype html><html>", "HTML page"), ("e.pt", b"", "empty (0 bytes)"),
                                 ("u.pt", b"\x00garbage", "truncated or corrupt"),
                                 ("u.safetensors", b"\x00garbage", "not a readable safetensors file")):
        (tmp_path / name).write_bytes(content)
        with pytest.raises(CheckpointError, match=re.escape(words)):
            identify(tmp_path / name)
