"""Clean, Noise, Dataset (OOD) and AutoAttack sources; the contract every source keeps
(model.training restored, detached [0, 1] samples on x's device); the defaults table."""

import math

import pytest
import torch
import torch.nn.functional as F

from landscape.data import ImageTensorDataset, load_dataset, to_tensors
from landscape.energy import EnergyModel
from landscape.errors import LandscapeError
from landscape.models import create_model
from landscape.rng import keyed_normal
from landscape.sources import (ATTACK_DEFAULTS, REGISTRY, GaussianImages, Replay, UniformImages, PGD, SGLD, SOURCES, AutoAttack, Clean, Dataset, Noise, OODDataset,
                               ReplayBuffer, Source, attack_defaults, create_source, fit_class_gaussians, match_shape)
from landscape.sources.noise import STREAM as NOISE_STREAM


def tiny_model(seed=0, dropout=0.0):
    torch.manual_seed(seed)
    net = create_model("smallcnn", in_channels=1, n_classes=10, width=4, hidden=16, dropout=dropout)
    model = EnergyModel(net, "identity", input_shape=(1, 8, 8), n_classes=10)
    g = torch.Generator().manual_seed(seed)
    model.replay_buffer = torch.rand(12, 1, 8, 8, generator=g)  # so that 'replay' applies
    return model


@pytest.fixture(scope="module")
def digits_model(trained_digits_model):
    """conftest's small CNN trained for a few seconds on digits."""
    return trained_digits_model


def all_sources():
    """Examples of every registered source (the contract tests run on each); a source added
    to the registry without examples here fails test_the_examples_cover_the_registry."""
    x, y = to_tensors(load_dataset("digits", "train"))
    gauss = fit_class_gaussians(x, y, covariance="diag")
    examples = {
        "clean": [Clean()],
        "pgd": [PGD("Linf", eps=0.1, step=0.02, steps=2), PGD("L2", eps=0.5, step=0.1, steps=2, restarts=2)],
        "autoattack": [AutoAttack(eps=0.1, version="custom", attacks=["apgd-ce"])],
        "replay": [Replay(), Replay(steps=2)],
        "sgld": [SGLD(steps=2), SGLD(steps=2, conditional=True, class_gaussians=gauss),
                 SGLD(steps=2, buffer=ReplayBuffer(size=20, shape=(1, 8, 8)))],
        "noise": [Noise(0.1)],
        "ood": [Dataset(ImageTensorDataset(torch.rand(7, 1, 8, 8), torch.zeros(7, dtype=torch.long)))],
        "gaussian": [GaussianImages(0.3)],
        "uniform": [UniformImages()],
    }
    assert list(examples) == [k.name for k in REGISTRY], "every registered source needs contract examples"
    return [src for srcs in examples.values() for src in srcs]


def test_the_examples_cover_the_registry():
    made = {type(s) for s in all_sources()}
    assert made == {k.cls for k in REGISTRY}
    assert list(SOURCES) == [k.name for k in REGISTRY]
    assert len({k.color for k in REGISTRY}) == len(REGISTRY)  # one colour each


def flags(model):
    return [m.training for m in model.modules()]


# ----------------------------------------------------------------------------- the contract
@pytest.mark.parametrize("state", ["train", "eval", "mixed"])
def test_every_source_restores_model_training(state):
    model = tiny_model(dropout=0.5)  # dropout makes train mode visible
    x, y, keys = torch.rand(6, 1, 8, 8), torch.tensor([0, 1, 2, 3, 4, 5]), torch.arange(6)
    for source in all_sources():
        model.train(state != "eval")
        if state == "mixed":
            model.net.features.eval()
            model.net.head[2].train()
        before = flags(model)
        requires = [p.requires_grad for p in model.parameters()]
        out = source(model, x, y, keys=keys)
        assert flags(model) == before, source
        assert [p.requires_grad for p in model.parameters()] == requires, source
        assert model.check_inputs is True
        assert out.shape == x.shape and out.dtype == torch.float32 and out.device == x.device, source
        assert not out.requires_grad and float(out.min()) >= 0 and float(out.max()) <= 1, source
        assert all(p.grad is None for p in model.parameters()), source


def test_training_flags_are_restored_on_error_too():
    model = tiny_model().train()
    model.net.head.eval()
    before = flags(model)
    bad_y = torch.tensor([0, 1, 2, 99])
    for source in (PGD(eps=0.1, step=0.01, steps=1), SGLD(steps=1, conditional=True),
                   AutoAttack(eps=0.1, version="custom", attacks=["apgd-ce"])):
        with pytest.raises(LandscapeError, match=r"labels must lie in \[0, 9\]"):
            source(model, torch.rand(4, 1, 8, 8), bad_y)
        assert flags(model) == before

    class Boom(torch.nn.Module):
        def forward(self, x):
            raise RuntimeError("boom")

    broken = EnergyModel(torch.nn.Sequential(torch.nn.Conv2d(1, 1, 1), Boom()), input_shape=(1, 8, 8)).train()
    for source in (PGD(eps=0.1, step=0.01, steps=1), SGLD(steps=1)):
        with pytest.raises(RuntimeError, match="boom"):
            source(broken, torch.rand(2, 1, 8, 8), torch.tensor([0, 1]))
        assert all(m.training for m in broken.modules())
        assert all(p.requires_grad for p in broken.parameters()) and broken.check_inputs


def test_every_source_is_a_source_with_a_repr_and_a_cache_key():
    for source in all_sources():
        assert isinstance(source, Source)
        assert repr(source).startswith(type(source).__name__ + "(")
        assert source.name in source.cache_key()
        assert isinstance(source.needs_grad, bool)
    assert SOURCES["pgd"] is PGD and OODDataset is Dataset


# ----------------------------------------------------------------------------- Clean and Noise
def test_clean_returns_x():
    x = torch.rand(3, 1, 8, 8)
    out = Clean()(None, x, None)
    assert torch.equal(out, x) and not out.requires_grad and not Clean.needs_grad


def test_noise_is_keyed_gaussian_corruption():
    x = torch.rand(5, 1, 8, 8)
    keys = torch.tensor([2, 4, 6, 8, 10])
    out = Noise(0.2)(None, x, None, keys=keys, seed=3)
    expected = (x + 0.2 * keyed_normal(keys, (1, 8, 8), seed=3, stream=NOISE_STREAM)).clamp(0, 1)
    assert torch.allclose(out, expected, atol=1e-7)
    assert torch.equal(Noise(0.2)(None, x[2:4], None, keys=keys[2:4], seed=3), out[2:4])
    assert torch.equal(Noise(0.0)(None, x, None, keys=keys), x)
    big = Noise(0.5)(None, torch.rand(64, 1, 8, 8), None)
    assert big.min() == 0 and big.max() == 1
    with pytest.raises(LandscapeError, match="sigma must be >= 0, got -1"):
        Noise(-1)


# ----------------------------------------------------------------------------- OOD datasets
def test_match_shape_converts_channels_and_size():
    rgb = torch.rand(2, 3, 32, 32)
    gray = match_shape(rgb, (1, 32, 32))
    assert torch.allclose(gray[:, 0], 0.299 * rgb[:, 0] + 0.587 * rgb[:, 1] + 0.114 * rgb[:, 2], atol=1e-6)
    g3 = match_shape(torch.rand(2, 1, 28, 28), (3, 32, 32))
    assert g3.shape == (2, 3, 32, 32) and torch.equal(g3[:, 0], g3[:, 2])
    const = match_shape(torch.full((1, 1, 28, 28), 0.3), (1, 8, 8))
    assert torch.allclose(const, torch.full((1, 1, 8, 8), 0.3), atol=1e-6)
    with pytest.raises(LandscapeError, match="cannot turn 2-channel images into 3-channel ones"):
        match_shape(torch.rand(1, 2, 8, 8), (3, 8, 8))


def test_ood_images_are_chosen_by_key():
    images = torch.arange(20, dtype=torch.float32).view(20, 1, 1, 1).expand(20, 1, 8, 8) / 20
    src = Dataset(ImageTensorDataset(images.contiguous(), torch.zeros(20, dtype=torch.long), name="ramp"))
    assert src.name == "ood-ramp" and not src.needs_grad
    x = torch.zeros(20, 1, 8, 8)
    keys = torch.arange(20)
    out = src(None, x, None, keys=keys, seed=1)
    item = (out[:, 0, 0, 0] * 20).round().long()
    assert sorted(item.tolist()) == list(range(20)), "distinct keys get distinct images"
    again = torch.cat([src(None, x[:7], None, keys=keys[13:], seed=1), src(None, x[:13], None, keys=keys[:13], seed=1)])
    assert torch.equal(again, torch.cat([out[13:], out[:13]]))
    assert not torch.equal(src(None, x, None, keys=keys, seed=2), out)
    assert torch.equal(src(None, x[:3], None, keys=torch.tensor([20, 21, 22]), seed=1), out[:3])  # key mod n


def test_ood_from_a_named_dataset_matches_the_models_shape():
    src = Dataset("fashion-mnist", split="test")
    out = src(None, torch.zeros(4, 1, 8, 8), None, keys=torch.arange(4))
    assert out.shape == (4, 1, 8, 8) and src.name == "ood-fashion-mnist"
    assert "fashion-mnist" in src.cache_key()
    with pytest.raises(LandscapeError, match="unknown dataset 'nope'"):
        Dataset("nope")
    with pytest.raises(LandscapeError, match="dataset 'digits' has splits train, test, got 'val'"):
        Dataset("digits", split="val")
    with pytest.raises(LandscapeError, match="dataset must be a dataset name or a torch Dataset"):
        Dataset(3)


# ----------------------------------------------------------------------------- AutoAttack
def test_autoattack_apgd_ce_attacks_within_the_ball(digits_model):
    x, y = to_tensors(load_dataset("digits", "test"), range(24))
    torch.manual_seed(123)
    state = torch.get_rng_state()
    aa = AutoAttack("Linf", eps=0.1, version="custom", attacks=["apgd-ce"])
    out = aa(digits_model, x, y, seed=0)
    assert torch.equal(torch.get_rng_state(), state), "AutoAttack's seeding must not leak into the caller's RNG"
    assert (out - x).abs().max() <= 0.1 + 1e-6 and out.min() >= 0 and out.max() <= 1
    with torch.no_grad():
        clean = (digits_model.logits(x).argmax(1) == y).float().mean()
        robust = (digits_model.logits(out).argmax(1) == y).float().mean()
    assert robust < clean - 0.3
    assert torch.equal(AutoAttack(eps=0.0)(digits_model, x, y), x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out16 = aa(digits_model, x, y)
    assert out16.dtype == torch.float32 and (out16 - x).abs().max() <= 0.1 + 1e-6
    with torch.inference_mode():
        out_inf = aa(digits_model, x.clone(), y.clone(), seed=0)
    assert torch.equal(out_inf, out), "same batch and seed, same result"


@pytest.mark.slow
def test_autoattack_standard_version(digits_model):
    x, y = to_tensors(load_dataset("digits", "test"), range(8))
    aa = AutoAttack.for_dataset("digits", norm="L2")
    assert aa.version == "standard" and aa.eps == attack_defaults("digits", "L2")["eps"]
    out = aa(digits_model, x, y)
    assert ((out - x).flatten(1).norm(dim=1) <= aa.eps + 1e-5).all()
    assert torch.equal(aa(digits_model, x, y), out), "same batch and seed, same result"
    pgd = PGD.for_dataset("digits", norm="L2")(digits_model, x, y, keys=torch.arange(8))
    with torch.no_grad():
        robust_aa = (digits_model.logits(out).argmax(1) == y).sum()
        robust_pgd = (digits_model.logits(pgd).argmax(1) == y).sum()
    assert robust_aa <= robust_pgd


@pytest.mark.parametrize("kwargs,message", [
    ({"norm": "L1"}, r"norm must be one of 'Linf', 'L2', got 'L1'"),
    ({"version": "fast"}, r"version must be one of 'standard', 'plus', 'rand', 'custom', got 'fast'"),
    ({"version": "custom"}, r"version='custom' needs attacks="),
    ({"version": "custom", "attacks": ["pgd"]}, r"attacks must be a list out of apgd-ce"),
    ({"attacks": ["apgd-ce"]}, r"attacks= is only for version='custom'"),
    ({"n_classes": 1}, r"n_classes must be an integer >= 2, got 1"),
])
def test_autoattack_errors(kwargs, message):
    with pytest.raises(LandscapeError, match=message):
        AutoAttack(**kwargs)


# ----------------------------------------------------------------------------- defaults
def test_the_defaults_table():
    assert math.isclose(ATTACK_DEFAULTS["cifar10"]["Linf"]["eps"], 8 / 255)
    assert math.isclose(ATTACK_DEFAULTS["cifar100"]["Linf"]["step"], 2 / 255)
    assert ATTACK_DEFAULTS["svhn"] == ATTACK_DEFAULTS["cifar10"]
    for name in ("fashion-mnist", "mnist", "digits"):
        assert ATTACK_DEFAULTS[name]["Linf"] == {"eps": 0.1, "step": 0.01, "steps": 10}
    for table in ATTACK_DEFAULTS.values():
        assert set(table) == {"Linf", "L2"} and all(0 < v["step"] <= v["eps"] for v in table.values())
    assert attack_defaults("CIFAR-10", "L2") == {"eps": 0.5, "step": 0.125, "steps": 10}
    with pytest.raises(LandscapeError, match="norm must be one of 'Linf', 'L2', got 'linf'"):
        attack_defaults("cifar10", "linf")
    assert AutoAttack.for_dataset("fmnist").eps == 0.1


def test_create_source():
    p = create_source("pgd", "fashion-mnist", steps=20)
    assert isinstance(p, PGD) and p.eps == 0.1 and p.steps == 20
    assert create_source("pgd", eps=0.2, step=0.1).eps == 0.2
    assert create_source("ood", "digits").name == "ood-digits"
    assert isinstance(create_source("sgld", steps=3), SGLD)
    with pytest.raises(LandscapeError, match="unknown source 'fgsm'; known: clean, pgd"):
        create_source("fgsm")
    with pytest.raises(LandscapeError, match="source 'noise' has no setting 'eps'; its settings are: sigma"):
        create_source("noise", eps=3)
    with pytest.raises(LandscapeError, match="source 'pgd' has no setting 'stpes'; its settings are: norm, eps"):
        create_source("pgd", "fashion-mnist", stpes=3)
    assert isinstance(create_source("uniform"), UniformImages) and create_source("gaussian", sigma=0.3).sigma == 0.3
