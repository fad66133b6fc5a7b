"""Fréchet distances, reference-classifier features, SGLD samples and the FID/IS path (torch-fidelity)."""

import os
import subprocess
import sys

import numpy as np
import pytest
import scipy.linalg
import torch

from landscape.data import load_dataset, to_tensors
from landscape.energy import EnergyModel
from landscape.errors import LandscapeError
from landscape.evaluation import (FD_LABEL, INCEPTION_URL, feature_frechet_distance, frechet_distance, generate,
                                  inception_metrics, inception_weights_path, penultimate_features, reference_fd)
from landscape.evaluation import generation as G
from landscape.models import create_model


def _fd_scipy(mu1, s1, mu2, s2):
    """The textbook formula with scipy's sqrtm (as the FID reference code computes it)."""
    covmean = scipy.linalg.sqrtm(s1 @ s2).real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * covmean))


def test_frechet_distance_matches_scipy_sqrtm():
    rng = np.random.default_rng(0)
    for d in (1, 5, 20):
        a, b = rng.normal(size=(d, d)), rng.normal(size=(d, d))
        s1, s2 = a @ a.T + 0.1 * np.eye(d), b @ b.T + 0.1 * np.eye(d)
        mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
        assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(_fd_scipy(mu1, s1, mu2, s2), rel=1e-6)
    # one dimension: (m1 - m2)^2 + (s1 - s2)^2 for standard deviations s1, s2
    assert frechet_distance([1.0], [[4.0]], [3.0], [[9.0]]) == pytest.approx(4.0 + 1.0)
    with pytest.raises(LandscapeError, match="covariances D x D"):
        frechet_distance(np.zeros(2), np.eye(2), np.zeros(3), np.eye(3))


def test_feature_fd_is_zero_on_itself_and_the_mean_shift_squared():
    rng = np.random.default_rng(1)
    f = rng.normal(size=(500, 8))
    assert feature_frechet_distance(f, f) == pytest.approx(0.0, abs=1e-8)
    d = np.array([0.5, -1.0, 0, 0, 0, 0, 0, 2.0])
    assert feature_frechet_distance(f, f + d) == pytest.approx(float(d @ d), rel=1e-8)


def test_penultimate_features_are_the_head_input(trained_digits_model):
    x, _ = to_tensors(load_dataset("digits", "test"))
    x = x[:20]
    net = trained_digits_model.net
    with torch.no_grad():
        expected = net.head[:-1](net.features(x))
    f = penultimate_features(trained_digits_model, x, batch_size=7)
    assert f.shape == (20, 32) and torch.allclose(f, expected, atol=1e-4)
    # the JEM WRN: the input of class_output, never the unused energy_output head
    torch.manual_seed(0)
    wrn = EnergyModel(create_model("wrn", depth=10, width=1, in_channels=1, n_classes=10), "jem",
                      input_shape=(1, 8, 8), n_classes=10).eval()
    with torch.no_grad():
        expected = wrn.net.f(wrn.normalization(x))
    assert torch.allclose(penultimate_features(wrn, x), expected.flatten(1), atol=1e-5)
    assert penultimate_features(trained_digits_model, x, layer="head.0").shape == (20, 512)
    with pytest.raises(LandscapeError, match="not a submodule"):
        penultimate_features(trained_digits_model, x, layer="nope")


def test_fd_of_images_is_zero_on_itself_and_grows_with_the_shift(trained_digits_model):
    x, _ = to_tensors(load_dataset("digits", "test"))
    g = torch.Generator().manual_seed(0)
    z = torch.randn(x.shape, generator=g)
    same, settings = reference_fd(x, x, feature_model=trained_digits_model)
    assert same == pytest.approx(0.0, abs=1e-6)
    assert settings["measure"] == FD_LABEL and settings["dim"] == 32 and settings["n_samples"] == len(x)
    values = [reference_fd((x + s * z).clamp(0, 1), x, feature_model=trained_digits_model)[0]
              for s in (0.05, 0.1, 0.2, 0.4)]
    assert values[0] > 0.1 and all(b > a for a, b in zip(values, values[1:])), values
    bright = [reference_fd((x + s).clamp(0, 1), x, feature_model=trained_digits_model)[0] for s in (0.05, 0.1, 0.2)]
    assert all(b > a for a, b in zip(bright, bright[1:])), bright


def test_generate_is_keyed_and_in_range(trained_digits_model):
    # the random draws (initialisation and noise) are keyed per sample: with the gradient
    # step off, a chain is a function of its key alone, bit for bit, whatever the batch
    draws = [generate(trained_digits_model, 6, sampler={"steps": 3, "step_size": 0.0}, batch_size=bs) for bs in (4, 6)]
    assert torch.equal(draws[0], draws[1])
    # with the network in the loop, the network's floats may differ with the batch size on
    # some CPU kernels (seen on AMD EPYC): the samples agree to float32 rounding after 3 steps
    a = generate(trained_digits_model, 6, sampler={"steps": 3}, batch_size=4)
    b = generate(trained_digits_model, 6, sampler={"steps": 3}, batch_size=6)
    assert a.shape == (6, 1, 8, 8) and a.min() >= 0 and a.max() <= 1
    assert torch.allclose(a, b, atol=1e-4), float((a - b).abs().max())
    assert not torch.allclose(a, draws[0], atol=1e-3), "the gradient step must matter"
    with pytest.raises(LandscapeError, match="bad SGLD settings"):
        generate(trained_digits_model, 2, sampler={"stepz": 3})


def test_reference_classifier_errors(monkeypatch, tmp_path):
    with pytest.raises(LandscapeError, match="no bundled reference classifier for dataset 'digits'"):
        G.reference_classifier("digits")
    monkeypatch.setitem(G.REFERENCE_CLASSIFIERS, "fashion-mnist", tmp_path / "standard.safetensors")
    with pytest.raises(LandscapeError, match="reference classifier .* is missing.*pass feature_model="):
        G.reference_classifier("fmnist")


# ----------------------------------------------------------------------------- FID / IS
@pytest.fixture
def no_network(monkeypatch):
    """Fail loudly if anything tries to download (torch.hub or urllib)."""
    calls = []

    def refuse(*args, **kwargs):
        calls.append(args)
        raise AssertionError(f"network access attempted: {args}")

    import urllib.request

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", refuse)
    monkeypatch.setattr(torch.hub, "download_url_to_file", refuse)
    monkeypatch.setattr(urllib.request, "urlopen", refuse)
    return calls


def test_missing_inception_weights_say_how_to_get_them(monkeypatch, tmp_path, no_network):
    monkeypatch.delenv("LANDSCAPE_INCEPTION_WEIGHTS", raising=False)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    with pytest.raises(LandscapeError) as err:
        inception_weights_path()
    msg = str(err.value)
    assert "\n" not in msg and INCEPTION_URL in msg and "LANDSCAPE_INCEPTION_WEIGHTS" in msg
    assert str(tmp_path / "hub" / "checkpoints" / "weights-inception-2015-12-05-6726825d.pth") in msg
    # a given path that does not exist: the same advice, no download, and no fallback to the hub file
    (tmp_path / "hub" / "checkpoints").mkdir(parents=True)
    (tmp_path / "hub" / "checkpoints" / "weights-inception-2015-12-05-6726825d.pth").write_bytes(b"x")
    x = torch.rand(12, 1, 8, 8)
    with pytest.raises(LandscapeError, match=r"inception_weights = '.*missing.pth' is not a file; download https://github.com/toshas"):
        inception_metrics(x, x, weights=tmp_path / "missing.pth")
    monkeypatch.setenv("LANDSCAPE_INCEPTION_WEIGHTS", str(tmp_path / "nope.pth"))
    with pytest.raises(LandscapeError, match=r"\$LANDSCAPE_INCEPTION_WEIGHTS = '.*nope.pth' is not a file"):
        inception_weights_path()
    assert no_network == []


def test_inception_weights_that_are_not_plain_tensors_are_refused(tmp_path, no_network):
    x = torch.rand(12, 1, 8, 8)
    wrong = tmp_path / "wrong.pth"
    torch.save({"fc.weight": torch.zeros(2, 2)}, wrong)
    with pytest.raises(LandscapeError, match="does not hold torch-fidelity's Inception-v3 weights"):
        inception_metrics(x, x, weights=wrong)
    unsafe = tmp_path / "unsafe.pth"
    torch.save({"obj": torch.nn.Linear(1, 1)}, unsafe)  # a pickled module: refused before unpickling it
    with pytest.raises(LandscapeError, match="not a plain state_dict of tensors"):
        inception_metrics(x, x, weights=unsafe)
    with pytest.raises(LandscapeError, match="at least isc_splits=10 samples"):
        inception_metrics(x[:5], x, weights=wrong)
    assert no_network == []


def test_inception_url_is_torch_fidelitys_and_import_is_lazy():
    from torch_fidelity.feature_extractor_inceptionv3 import URL_INCEPTION_V3

    assert INCEPTION_URL == URL_INCEPTION_V3
    code = "import sys, landscape.evaluation, landscape.commands.eval; assert 'torch_fidelity' not in sys.modules"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ})
    assert r.returncode == 0, r.stderr


@pytest.mark.slow
def test_fid_and_is_run_through_torch_fidelity_with_local_weights(tmp_path, no_network, monkeypatch):
    """The whole FID/IS path with randomly initialised Inception weights in torch-fidelity's format."""
    from torch_fidelity import feature_extractor_inceptionv3 as fe

    torch.save({}, tmp_path / "empty.pth")
    monkeypatch.setattr(fe.FeatureExtractorInceptionV3, "load_state_dict", lambda self, sd, *a, **k: None)
    torch.manual_seed(0)
    net = fe.FeatureExtractorInceptionV3("inception-v3-compat", ["2048"],
                                         feature_extractor_weights_path=str(tmp_path / "empty.pth"))
    monkeypatch.undo()
    weights = tmp_path / "weights-inception-2015-12-05-6726825d.pth"
    torch.save(net.state_dict(), weights)
    x, y = torch.rand(4, 1, 8, 8), torch.rand(4, 1, 8, 8)
    values, settings = inception_metrics(x, y, weights=weights, isc_splits=2, device="cpu")
    assert set(values) == {"fid", "is_mean", "is_std"} and all(np.isfinite(v) for v in values.values())
    assert settings["weights"] == weights.name and settings["n_samples"] == 4
    assert no_network == []


def test_sampler_inits(trained_digits_model):
    from landscape.sources import fit_class_gaussians

    assert G.default_sampler(trained_digits_model).init == "uniform"  # no replay buffer
    with pytest.raises(LandscapeError, match="needs a model with a replay buffer"):
        G.default_sampler(trained_digits_model, init="buffer")
    with pytest.raises(LandscapeError, match="the SGLD init must be one of"):
        G.default_sampler(trained_digits_model, init="noise")
    cg = fit_class_gaussians(load_dataset("digits", "train"), covariance="diag")
    s = generate(trained_digits_model, 10, sampler={"init": "gaussian", "class_gaussians": cg, "steps": 2})
    assert s.shape == (10, 1, 8, 8)
    model = EnergyModel(trained_digits_model.net, "identity", input_shape=(1, 8, 8), n_classes=10)
    model.replay_buffer = torch.rand(30, 1, 8, 8)
    sampler = G.default_sampler(model, steps=1)
    assert sampler.init == "buffer" and sampler.buffer.reinit_prob == 0.0
