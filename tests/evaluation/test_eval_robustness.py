"""PGD-20 and AutoAttack robust accuracy, on the same samples."""

import numpy as np
import pytest
import torch

from landscape.data import load_dataset, subset
from landscape.errors import LandscapeError
from landscape.evaluation import pgd20, robust_accuracy
from landscape.evaluation.robustness import eps_text


@pytest.fixture(scope="module")
def digits_test():
    return subset(load_dataset("digits", "test"), 24, seed=0)


def test_attacks_lower_accuracy_and_autoattack_is_not_weaker(trained_digits_model, digits_test):
    r = robust_accuracy(trained_digits_model, digits_test, aa_version="custom", aa_attacks=["apgd-ce"],
                        batch_size=12)
    s = r.samples
    assert r.n == 24 and list(s.columns) == ["index", "label", "clean", "pgd20", "autoattack", "worst_case"]
    clean, pgd, aa = r.accuracy("clean"), r.accuracy("pgd20"), r.accuracy("autoattack")
    assert clean > 0.6
    assert pgd < clean and aa < clean
    # the same samples: AutoAttack finds every adversarial example PGD-20 found
    assert not (s["autoattack"] & ~s["pgd20"]).any()
    assert aa <= pgd
    assert (s["worst_case"] == (s["clean"] & s["pgd20"] & s["autoattack"])).all()
    assert r.accuracy("worst_case") <= min(pgd, aa)
    # robust implies clean-correct
    assert not (s["pgd20"] & ~s["clean"]).any() and not (s["autoattack"] & ~s["clean"]).any()


def test_settings_name_eps_steps_restarts_and_n(trained_digits_model, digits_test):
    r = robust_accuracy(trained_digits_model, digits_test, aa=False, restarts=2, seed=3)
    st = r.settings["pgd20"]
    assert st["eps"] == pytest.approx(0.1) and st["step"] == pytest.approx(0.01)
    assert (st["steps"], st["restarts"], st["n"], st["seed"], st["norm"]) == (20, 2, 24, 3, "Linf")
    assert st["random_start"] is True and st["data"] == "digits test"
    # an eps override keeps the dataset's step/eps ratio unless a step is given
    assert pgd20("digits", eps=0.05).step == pytest.approx(0.005)
    assert pgd20("cifar10").eps == pytest.approx(8 / 255) and pgd20("cifar10").step == pytest.approx(2 / 255)
    assert pgd20("digits", eps=0.05, step=0.02).step == pytest.approx(0.02)
    assert eps_text(8 / 255) == "0.03137 (8/255)" and eps_text(0.1) == "0.1 (25.5/255)"


def test_pgd_result_does_not_depend_on_the_batch_size(trained_digits_model, digits_test):
    a = robust_accuracy(trained_digits_model, digits_test, aa=False, batch_size=5).samples
    b = robust_accuracy(trained_digits_model, digits_test, aa=False, batch_size=256).samples
    # the random starts are keyed per sample (bit-equal across batches, tested with the PGD
    # source); the network's floats may differ with the batch size on some CPU kernels, which can
    # flip a sample on the decision boundary: allow 1% of the samples
    assert (a["pgd20"] != b["pgd20"]).mean() <= 0.01


def test_more_restarts_never_raise_robust_accuracy(trained_digits_model):
    data = subset(load_dataset("digits", "test"), 40, seed=1)
    one = robust_accuracy(trained_digits_model, data, aa=False, eps=0.03).samples["pgd20"]
    three = robust_accuracy(trained_digits_model, data, aa=False, eps=0.03, restarts=3).samples["pgd20"]
    assert not (three & ~one).any()  # restart 0 is the single run; the worst case is kept per sample


def test_radius_must_be_given_for_anonymous_data(trained_digits_model):
    x, y = torch.rand(4, 1, 8, 8), torch.zeros(4, dtype=torch.long)
    with pytest.raises(LandscapeError, match="pass eps="):
        robust_accuracy(trained_digits_model, (x, y), aa=False)
    with pytest.raises(LandscapeError, match="at least one attack"):
        robust_accuracy(trained_digits_model, (x, y), pgd=False, aa=False, eps=0.1)
    r = robust_accuracy(trained_digits_model, (x, y), aa=False, eps=0.1)
    assert r.settings["pgd20"]["step"] == pytest.approx(0.025)


@pytest.mark.slow
def test_autoattack_standard_is_not_weaker_than_pgd20(trained_digits_model):
    data = subset(load_dataset("digits", "test"), 16, seed=2)
    r = robust_accuracy(trained_digits_model, data)
    s = r.samples
    assert r.settings["autoattack"]["attacks"] == ["apgd-ce", "apgd-t", "fab-t", "square"]
    assert r.accuracy("autoattack") < r.accuracy("clean")
    assert not (s["autoattack"] & ~s["pgd20"]).any()


def test_channels_last_changes_float_rounding_not_results(trained_digits_model, digits_test):
    model = trained_digits_model
    conv = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)][-1]  # in_channels > 1: the formats differ
    plain = robust_accuracy(model, digits_test, aa_version="custom", aa_attacks=["apgd-ce"], batch_size=12)
    fast = robust_accuracy(model, digits_test, aa_version="custom", aa_attacks=["apgd-ce"], batch_size=12,
                           channels_last=True)
    # recorded where it was on, absent where it was off (older tables stay as they were)
    assert fast.settings["pgd20"]["channels_last"] is True and fast.settings["autoattack"]["channels_last"] is True
    assert "channels_last" not in plain.settings["pgd20"] and "channels_last" not in plain.settings["autoattack"]
    assert (fast.samples["clean"] == plain.samples["clean"]).all()
    # other kernels round differently, which may flip a sample on the decision boundary: at most one of 24
    for column in ("pgd20", "autoattack"):
        assert (fast.samples[column] != plain.samples[column]).sum() <= 1
    # the model is handed back as it came: contiguous weights, eval/train flag unchanged
    assert conv.weight.is_contiguous() and not conv.weight.is_contiguous(memory_format=torch.channels_last)
