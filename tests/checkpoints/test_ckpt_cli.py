"""``landscape checkpoints list`` and ``landscape checkpoints info``."""

import re
import subprocess
import sys

import pytest
import torch

from _ckpt_layouts import jem_layout, jempp_layout, replay_buffer, tiny_wrn, with_prefix
from landscape import save_model
from landscape.cli import main
from landscape.energy import EnergyModel
from landscape.models import create_model


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("LANDSCAPE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("LANDSCAPE_OFFLINE", "1")
    monkeypatch.delenv("LANDSCAPE_MANIFEST", raising=False)


def _info(capsys, *args):
    assert main(["checkpoints", "info", *args]) == 0
    out = capsys.readouterr().out
    pairs = [re.split(r"\s{2,}", line, maxsplit=1) for line in out.splitlines()]
    return {p[0]: (p[1] if len(p) > 1 else "") for p in pairs} | {"_text": out}


def test_list_prints_the_registry(capsys):
    assert main(["checkpoints", "list"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].split() == ["NAME", "FAMILY", "ARCHITECTURE", "DATASET", "CLEAN", "AA", "CACHED", "SOURCE"]
    for name in ("jem-cifar10", "jempp-cifar10", "sadajem-cifar10", "Standard", "Rice2020Overfitting",
                 "Zhang2019Theoretically", "Wang2023Better_WRN-28-10", "Engstrom2019Robustness"):
        assert any(line.startswith(name + " ") for line in lines), name
    rice = next(line for line in lines if line.startswith("Rice2020Overfitting"))
    assert "85.34" in rice and "53.42" in rice and "WideResNet-34-20" in rice
    assert main(["checkpoints", "list", "--family", "robustbench"]) == 0
    out = capsys.readouterr().out
    assert "jem-cifar10" not in out and "Standard" in out


def test_info_on_a_jem_file_without_running_it(tmp_path, capsys):
    net = tiny_wrn()
    buf = replay_buffer(7)
    torch.save({"model_state_dict": jem_layout(net), "replay_buffer": buf, "epoch": 12}, tmp_path / "jem.pt")
    info = _info(capsys, str(tmp_path / "jem.pt"))
    assert info["family"].startswith("jem (the same layout is also written by: ebjdat)")
    assert info["architecture"].startswith("wrn depth=10 width=1 norm=none")
    assert info["parameters"] == f"{sum(p.numel() for p in net.parameters()):,}"
    assert info["replay buffer"].startswith("7 x 3 x 32 x 32 float32, values in [")
    assert info["normalization"].startswith("jem")
    assert "f.linear.* 2 key(s)" in info["dropped keys"]
    assert '"epoch": 12' in info["checkpoint fields"]


def test_info_on_jempp_sadajem_native_and_registry_names(tmp_path, capsys):
    net = tiny_wrn("batch")
    torch.save(with_prefix(jempp_layout(net)), tmp_path / "jempp.pt")
    info = _info(capsys, str(tmp_path / "jempp.pt"))
    assert info["family"] == "jempp (the same layout is also written by: ebjdat)"
    assert "norm=batch" in info["architecture"] and info["stripped prefix"] == "module."
    assert info["replay buffer"] == "none"
    assert info["parameters"].startswith(f"{sum(p.numel() for p in net.parameters()):,} (+ ")

    model = EnergyModel(create_model("smallcnn", width=4, hidden=8), input_shape=(1, 28, 28), n_classes=10)
    path = save_model(model, tmp_path / "small.safetensors", dataset="fashion-mnist")
    info = _info(capsys, str(path))
    assert info["family"] == "native" and info["architecture"].startswith("smallcnn")
    assert info["parameters"] == f"{sum(p.numel() for p in model.parameters()):,}"
    assert '"dataset": "fashion-mnist"' not in info["_text"] and info["dataset"] == "fashion-mnist"

    info = _info(capsys, "jem-cifar10")
    assert info["file"].startswith("not downloaded; it will be cached at") and "CIFAR10_MODEL.pt" in info["file"]
    assert info["family"] == "jem" and "clean_acc=92.9" in info["reported"]


def test_info_flags_a_file_that_would_not_load(tmp_path, capsys):
    sd = dict(tiny_wrn().state_dict())
    sd["f.stray.weight"] = torch.zeros(1)
    torch.save(sd, tmp_path / "stray.pt")
    # described as far as it can be (family, architecture), then exit 2 with the reason
    assert main(["checkpoints", "info", str(tmp_path / "stray.pt")]) == 2
    out, err = capsys.readouterr()
    assert "architecture" in out and "wrn" in out
    assert err.startswith("landscape: error:") and "unexpected 1 key(s) ['f.stray.weight']" in err
    assert len(err.strip().splitlines()) == 1


def test_errors_exit_2_with_one_line(tmp_path, capsys):
    r = subprocess.run([sys.executable, "-m", "landscape.cli", "checkpoints", "info", str(tmp_path / "nowhere.pt")],
                       capture_output=True, text=True)
    assert r.returncode == 2 and r.stderr.startswith("landscape: error:") and "does not exist" in r.stderr
    assert r.stderr.strip().count("\n") == 0 and "Traceback" not in r.stderr
    for content, fragment in ((b"<html><body>quota exceeded</body></html>", "is an HTML page"),
                              (b"\x80\x02garbage", "corrupt or holds more than plain weights"),
                              (b"PK\x03\x04truncated", "truncated or corrupt")):
        (tmp_path / "bad.pt").write_bytes(content)
        assert main(["checkpoints", "info", str(tmp_path / "bad.pt")]) == 2
        err = capsys.readouterr().err
        assert err.startswith("landscape: error:") and fragment in err and err.strip().count("\n") == 0, err
    assert main(["checkpoints", "info", "no-such-checkpoint"]) == 2
    assert "not a file, an http(s) URL or a registry checkpoint name" in capsys.readouterr().err


def test_info_says_in_words_how_a_bundled_model_was_trained(capsys):
    info = _info(capsys, "fmnist-ebjdat")
    assert info["trained: objective"] == "ebjdat (inner: saddle, weights: released)"
    assert info["trained: adversarial search"] == "Linf eps 0.1, 5 steps of 0.025, fp32"
    assert info["trained: energy regulariser"].startswith("energy_l2 0.05")
    assert info["_text"].count("\nfamily ") + info["_text"].startswith("family ") == 1  # once, not twice
    assert info["training"].startswith('{"config": ')  # the whole record is still there
