import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from landscape import save_model
from landscape.cache import EnergyCache
from landscape.checks import CheckError, CheckWarning
from landscape.data import load_dataset, subset, to_tensors
from landscape.energy import EnergyModel, eval_mode
from landscape.engine import COLUMNS, score
from landscape.errors import LandscapeError
from landscape.models import create_model
from landscape.sources.base import Source, randn_like_keyed

ROOT = Path(__file__).resolve().parents[1]


class KeyedNoise(Source):
    """Test source: adds keyed Gaussian noise and counts its calls."""

    name = "keyed-noise"

    def __init__(self, sigma=0.2):
        self.sigma = sigma
        self._calls = 0

    def __call__(self, model, x, y, keys=None, seed=0):
        self._calls += 1
        return (x + self.sigma * randn_like_keyed(x, keys, seed, stream=0)).clamp(0, 1)


class Identity(Source):
    name = "clean"

    def __call__(self, model, x, y, keys=None, seed=0):
        return x


class GradStep(Source):
    """Test source that needs input gradients: one step down the energy."""

    name = "grad-step"
    needs_grad = True

    def __call__(self, model, x, y, keys=None, seed=0):
        with eval_mode(model):
            xg = x.detach().clone().requires_grad_(True)
            (g,) = torch.autograd.grad(model.energy(xg).sum(), xg)
        return (x - 0.05 * g.sign()).clamp(0, 1).detach()


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits", "test")


@pytest.fixture
def model():
    torch.manual_seed(0)
    net = create_model("smallcnn", in_channels=1, n_classes=10, width=8, hidden=32)
    return EnergyModel(net, input_shape=(1, 8, 8), n_classes=10, metadata={"name": "tiny"})


def test_table_matches_a_direct_computation(model, digits):
    table = score(model, digits, [Identity()], batch_size=100)
    assert list(table.columns) == COLUMNS and len(table) == len(digits)
    x, y = to_tensors(digits)
    with torch.no_grad():
        logits = model.logits(x)
    assert np.allclose(table["energy"], (-torch.logsumexp(logits, 1)).numpy(), atol=1e-5)
    assert np.allclose(table["conditional_energy"], (-logits[torch.arange(len(y)), y]).numpy(), atol=1e-5)
    assert (table["prediction"].to_numpy() == logits.argmax(1).numpy()).all()
    assert (table["correct"] == (table["prediction"] == table["label"])).all()
    assert (table["index"].to_numpy() == np.arange(len(digits))).all()
    assert set(table["model"]) == {"tiny"} and set(table["source"]) == {"clean"}


def test_table_is_identical_across_batch_sizes(model, digits):
    tables = [score(model, digits, [Identity(), KeyedNoise(), GradStep()], batch_size=bs) for bs in (360, 64, 13)]
    for t in tables[1:]:
        pd.testing.assert_frame_equal(t, tables[0], check_exact=False, rtol=1e-5, atol=1e-5)
    # the random source really is random across samples, and not trivially equal to clean
    noisy = tables[0][tables[0].source == "keyed-noise"]["energy"].to_numpy()
    clean = tables[0][tables[0].source == "clean"]["energy"].to_numpy()
    assert not np.allclose(noisy, clean)


def test_subset_rows_equal_full_rows(model, digits):
    full = score(model, digits, [KeyedNoise()])
    sub = subset(digits, 50, seed=3)
    part = score(model, sub, [KeyedNoise()])
    assert part["index"].tolist() == sub.indices
    ref = full.set_index("index").loc[sub.indices].reset_index()
    assert np.allclose(part["energy"], ref["energy"], atol=1e-5)


def test_seed_controls_randomness(model, digits):
    a = score(model, digits, [KeyedNoise()], seed=1)
    b = score(model, digits, [KeyedNoise()], seed=1)
    c = score(model, digits, [KeyedNoise()], seed=2)
    pd.testing.assert_frame_equal(a, b)
    assert not np.allclose(a["energy"], c["energy"])


def test_training_flag_and_memory_format_restored(model, digits):
    for mode in (True, False):
        model.train(mode)
        score(model, digits, [Identity(), GradStep()], precision="bf16")
        assert all(m.training == mode for m in model.modules())
        conv = model.net.features[0].weight
        assert conv.is_contiguous()


def test_fp32_and_bf16_agree_within_tolerance(trained_digits_model, digits):
    model = trained_digits_model
    a = score(model, digits, [Identity()], precision="fp32")
    b = score(model, digits, [Identity()], precision="bf16")
    assert a["correct"].mean() > 0.8
    # documented tolerance (README): |dE| <= 0.02 * (1 + |E|) for bf16 autocast
    assert np.all(np.abs(a["energy"] - b["energy"]) <= 0.02 * (1 + np.abs(a["energy"])))
    assert (a["prediction"] == b["prediction"]).mean() > 0.97


def test_cache_hit_and_invalidation(model, digits, tmp_path):
    src = KeyedNoise()
    first = score(model, digits, [src], cache=tmp_path)
    assert src._calls > 0
    src._calls = 0
    again = score(model, digits, [src], cache=tmp_path)
    assert src._calls == 0  # served from the cache
    pd.testing.assert_frame_equal(first, again)
    n_entries = len(list(tmp_path.rglob("*.parquet")))
    for kwargs in ({"seed": 5}, {"precision": "bf16"}):
        src._calls = 0
        score(model, digits, [src], cache=tmp_path, **kwargs)
        assert src._calls > 0, kwargs
    src._calls = 0
    score(model, digits, [KeyedNoise(sigma=0.3)], cache=tmp_path)  # another setting
    score(model, subset(digits, 100), [src], cache=tmp_path)  # another data selection
    assert src._calls > 0
    with torch.no_grad():
        model.net.head[-1].bias.add_(1.0)  # other weights
    src._calls = 0
    score(model, digits, [src], cache=tmp_path)
    assert src._calls > 0
    assert len(list(tmp_path.rglob("*.parquet"))) == n_entries + 5


def test_cache_entries_are_complete_files(model, digits, tmp_path):
    score(model, digits, [Identity()], cache=tmp_path)
    files = list(tmp_path.rglob("*"))
    assert not any(f.name.endswith(".tmp") for f in files)
    entry = next(tmp_path.rglob("*.parquet"))
    entry.write_bytes(b"garbage")  # a corrupt entry is a miss, recomputed
    assert len(score(model, digits, [Identity()], cache=EnergyCache(tmp_path))) == len(digits)


class Softmaxed(nn.Module):
    def __init__(self, net, log=False):
        super().__init__()
        self.net, self.log = net, log

    def forward(self, x):
        return self.net(x).log_softmax(1) if self.log else self.net(x).softmax(1)


def test_probability_outputs_are_refused(model, digits):
    for log in (False, True):
        bad = EnergyModel(Softmaxed(model.net, log), input_shape=(1, 8, 8))
        with pytest.raises(CheckError, match="probabilities"):
            score(bad, digits, "clean" if False else [Identity()])
        with pytest.warns(CheckWarning):
            score(bad, subset(digits, 10), [Identity()], checks="warn")


class Noisy(nn.Module):
    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        return self.net(x) + torch.randn(x.shape[0], 10)


class Quantised(nn.Module):
    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        return self.net(torch.round(x * 4) / 4)  # zero gradient almost everywhere


class Exploding(nn.Module):
    def forward(self, x):
        out = torch.zeros(x.shape[0], 10)
        out[0, 0] = float("nan")
        return out


def test_nondeterminism_masking_and_nonfinite_checks(model, digits):
    with pytest.warns(CheckWarning, match="different outputs"):
        score(EnergyModel(Noisy(model.net), input_shape=(1, 8, 8)), subset(digits, 20), [Identity()])
    with pytest.warns(CheckWarning, match="zero input gradients"):
        score(EnergyModel(Quantised(model.net), input_shape=(1, 8, 8)), subset(digits, 20), [GradStep()])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a healthy model raises no warning
        score(model, subset(digits, 20), [GradStep()])
    with pytest.raises(CheckError, match="not finite"):
        score(EnergyModel(Exploding(), input_shape=(1, 8, 8)), subset(digits, 20), [Identity()])


def test_bad_arguments(model, digits):
    with pytest.raises(LandscapeError, match="precision must be one of"):
        score(model, digits, [Identity()], precision="fp16")
    with pytest.raises(LandscapeError, match="batch_size must be a positive integer"):
        score(model, digits, [Identity()], batch_size=0)
    with pytest.raises(LandscapeError, match="two sources are named"):
        score(model, digits, [Identity(), Identity()])
    with pytest.raises(LandscapeError, match="data must be"):
        score(model, np.zeros((3, 1, 8, 8)), [Identity()])
    with pytest.raises(LandscapeError, match="CUDA is not available|must be 'auto'"):
        score(model, digits, [Identity()], device="cuda:7" if not torch.cuda.is_available() else "tpu")


def test_two_torchrun_processes_give_the_one_process_table(model, digits, tmp_path):
    ckpt = save_model(model, tmp_path / "m.safetensors", name="tiny")
    single = score(model, digits, [Identity(), KeyedNoise(), GradStep()], batch_size=50)
    script = ROOT / "tests" / "helpers" / "dist_score.py"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT / "tests")}
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                        str(script), str(ckpt), str(tmp_path / "dist.parquet")],
                       capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    dist = pd.read_parquet(tmp_path / "dist.parquet")
    pd.testing.assert_frame_equal(dist, single, check_exact=False, rtol=1e-5, atol=1e-5)


def test_source_specs_use_dataset_defaults_and_overrides():
    from landscape.engine import resolve_sources
    from landscape.sources import PGD

    srcs = resolve_sources("clean,pgd,pgd:steps=20:loss=energy", dataset="fashion-mnist")
    assert list(srcs) == ["clean", "pgd", "pgd:steps=20:loss=energy"]
    assert isinstance(srcs["pgd"], PGD) and srcs["pgd"].eps == pytest.approx(0.1) and srcs["pgd"].steps == 10
    assert srcs["pgd:steps=20:loss=energy"].steps == 20 and srcs["pgd:steps=20:loss=energy"].loss == "energy"
    assert resolve_sources("pgd", dataset="cifar10")["pgd"].eps == pytest.approx(8 / 255)
    with pytest.raises(LandscapeError, match="unknown source 'fgsm'"):
        resolve_sources("fgsm")
    with pytest.raises(LandscapeError, match="ood:dataset=mnist"):
        resolve_sources("ood")
    with pytest.raises(LandscapeError, match="name:key=value"):
        resolve_sources("pgd:steps")


def test_cli_score_writes_the_table(trained_digits_model, tmp_path, capsys):
    from landscape.cli import main

    ckpt = save_model(trained_digits_model, tmp_path / "digits.safetensors", dataset="digits")
    out = tmp_path / "e.parquet"
    rc = main(["--no-progress", "score", str(ckpt), "--data", "digits", "--n", "40", "--sources", "clean,pgd",
               "--out", str(out), "--no-cache"])
    assert rc == 0
    table = pd.read_parquet(out)
    assert len(table) == 80 and list(table.columns) == COLUMNS
    assert table[table.source == "pgd"]["correct"].mean() < table[table.source == "clean"]["correct"].mean()
    assert "pgd" in capsys.readouterr().out
    assert main(["score", str(ckpt), "--data", "digits", "--out", str(tmp_path / "x.txt")]) == 2
    assert main(["score", str(tmp_path / "missing.safetensors"), "--data", "digits"]) == 2
    assert not (tmp_path / "x.txt").exists()
