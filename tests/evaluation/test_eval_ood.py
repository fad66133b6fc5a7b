"""OOD detection: AUROC and FPR@95 against scikit-learn, the noise sets, the evaluate path."""

import json

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score, roc_curve

from landscape.data import load_dataset, subset, to_tensors
from landscape.errors import LandscapeError
from landscape.evaluation import GaussianImages, UniformImages, auroc, evaluate, fpr_at_tpr, ood_scores, ood_source
from landscape.sources import Dataset as DatasetSource


def _sk_auroc(a, b):
    return roc_auc_score(np.r_[np.ones(len(a)), np.zeros(len(b))], np.r_[a, b])


@pytest.mark.parametrize("ties", [False, True])
def test_auroc_matches_sklearn(ties):
    rng = np.random.default_rng(0)
    a, b = rng.normal(1.0, 1.0, 300), rng.normal(0.0, 1.5, 200)
    if ties:
        a, b = np.round(a), np.round(b)
    assert auroc(a, b) == pytest.approx(_sk_auroc(a, b), abs=1e-12)
    assert auroc(b, a) == pytest.approx(1 - auroc(a, b), abs=1e-12)
    assert auroc([1, 2, 3], [1, 2, 3]) == pytest.approx(0.5)


def test_fpr_at_95_tpr_matches_sklearn_roc_curve():
    rng = np.random.default_rng(1)
    for a, b in [(rng.normal(1, 1, 400), rng.normal(0, 1, 333)), (np.round(rng.normal(1, 1, 100)), np.round(rng.normal(0, 1, 80)))]:
        fpr, tpr, _ = roc_curve(np.r_[np.ones(len(a)), np.zeros(len(b))], np.r_[a, b])
        assert fpr_at_tpr(a, b) == pytest.approx(fpr[tpr >= 0.95].min())


def test_scores_follow_the_energy_convention(trained_digits_model):
    x, _ = to_tensors(subset(load_dataset("digits", "test"), 16, seed=0))
    with torch.no_grad():
        logits = trained_digits_model.logits(x)
        e = trained_digits_model.energy(x)
    s = ood_scores(logits)
    assert np.allclose(s["energy"], -e.numpy(), atol=1e-5)
    assert np.allclose(s["msp"], torch.softmax(logits.double(), 1).max(1).values.numpy())


def test_noise_images_are_keyed_and_in_range():
    x = torch.zeros(6, 1, 8, 8)
    keys = torch.arange(10, 16)
    g = GaussianImages(sigma=1.0)
    full = g(None, x, keys=keys, seed=0)
    part = g(None, x[2:4], keys=keys[2:4], seed=0)
    assert torch.equal(full[2:4], part) and full.min() >= 0 and full.max() <= 1
    assert not torch.equal(full, g(None, x, keys=keys, seed=1))
    clipped = float((full == 0).float().mean() + (full == 1).float().mean())
    assert abs(clipped - 0.617) < 0.08  # P(|0.5 + z| clipped) = P(|z| > 0.5) = 0.617 for sigma 1
    u = UniformImages()(None, x, keys=keys)
    assert u.min() >= 0 and u.max() < 1 and u.std() > 0.2
    with pytest.raises(LandscapeError, match="sigma must be > 0"):
        GaussianImages(sigma=0)


def test_ood_specs():
    assert isinstance(ood_source("gaussian")[1], GaussianImages)
    label, src = ood_source("gaussian:sigma=0.3")
    assert label == "gaussian:sigma=0.3" and src.sigma == 0.3
    assert isinstance(ood_source("uniform")[1], UniformImages)
    assert isinstance(ood_source("digits:split=train")[1], DatasetSource)
    with pytest.raises(LandscapeError, match="unknown dataset"):
        ood_source("imagenette")
    with pytest.raises(LandscapeError, match="has no setting 'mu'; its settings are: sigma"):
        ood_source("gaussian:mu=2")


def test_evaluate_ood_auroc_against_sklearn(trained_digits_model):
    ds = load_dataset("digits", "test")
    table = evaluate(trained_digits_model, ds, ["ood"], n=60, ood=["gaussian:sigma=0.3"], seed=4)
    rows = {r.metric: r for r in table.itertuples()}
    assert set(rows) == {"auroc_energy:gaussian:sigma=0.3", "auroc_msp:gaussian:sigma=0.3"}
    # independently: the same 60 images, the same keyed noise images, sklearn's AUROC
    sub = subset(ds, 60, seed=4)
    x, _ = to_tensors(sub)
    noise = GaussianImages(0.3)(None, x, keys=torch.as_tensor(sub.indices), seed=4)
    with torch.no_grad():
        e_in, e_out = trained_digits_model.energy(x).numpy(), trained_digits_model.energy(noise).numpy()
        p_in = torch.softmax(trained_digits_model.logits(x), 1).max(1).values.numpy()
        p_out = torch.softmax(trained_digits_model.logits(noise), 1).max(1).values.numpy()
    assert rows["auroc_energy:gaussian:sigma=0.3"].value == pytest.approx(_sk_auroc(-e_in, -e_out), abs=1e-6)
    assert rows["auroc_msp:gaussian:sigma=0.3"].value == pytest.approx(_sk_auroc(p_in, p_out), abs=1e-6)
    settings = json.loads(rows["auroc_energy:gaussian:sigma=0.3"].settings)
    assert settings["n_in"] == settings["n_out"] == 60 and settings["seed"] == 4
    assert settings["ood_source"]["sigma"] == 0.3 and settings["score"].startswith("-E(x)")
