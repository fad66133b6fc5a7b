import math

import pytest
import torch
from torch import nn

from landscape.energy import (EnergyModel, Normalization, conditional_energy_from_logits,
                              energy_from_logits, eval_mode)
from landscape.errors import LandscapeError


class FixedLogits(nn.Module):
    """Returns preset logits for the batch (ignores the pixels)."""

    def __init__(self, logits):
        super().__init__()
        self.register_buffer("table", torch.as_tensor(logits, dtype=torch.float32))

    def forward(self, x):
        return self.table[: x.shape[0]]


def manual_energy(logits, T):
    # Independent computation in float64 with Python's math module.
    out = []
    for row in logits:
        m = max(v / T for v in row)
        out.append(-T * (m + math.log(sum(math.exp(v / T - m) for v in row))))
    return out


@pytest.mark.parametrize("T", [1.0, 0.5, 3.0])
def test_energy_matches_independent_logsumexp(T):
    logits = [[2.0, -1.0, 0.5], [-30.0, -40.0, -25.0], [10.0, 10.0, -10.0]]  # both signs
    model = EnergyModel(FixedLogits(logits), temperature=T)
    x = torch.rand(3, 1, 2, 2)
    got = model.energy(x)
    assert got.dtype == torch.float32
    assert torch.allclose(got, torch.tensor(manual_energy(logits, T)), atol=1e-5)
    assert torch.allclose(got, -T * torch.logsumexp(torch.tensor(logits) / T, 1), atol=1e-6)
    # all-negative logits give positive energy, large positive logits negative energy
    assert got[1] > 0 and got[2] < 0


def test_conditional_energy_is_minus_the_label_logit():
    logits = [[2.0, -1.0, 0.5], [-3.0, -4.0, -2.5]]
    model = EnergyModel(FixedLogits(logits))
    x = torch.rand(2, 1, 2, 2)
    e = model.energy(x, torch.tensor([0, 2]))
    assert e.tolist() == pytest.approx([-2.0, 2.5])
    out = model.energies(x, torch.tensor([1, 1]))
    assert out["conditional_energy"].tolist() == pytest.approx([1.0, 4.0])
    # E(x) <= E(x, y) always: logsumexp dominates every single logit
    assert torch.all(out["energy"] <= out["conditional_energy"])


def test_energy_is_float32_under_bf16_autocast(tiny_cnn):
    x = torch.rand(4, 1, 8, 8)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        e = tiny_cnn.energy(x)
        logits = tiny_cnn.logits(x)
    assert logits.dtype == torch.bfloat16
    assert e.dtype == torch.float32
    ref = tiny_cnn.energy(x)
    assert torch.allclose(e, ref, atol=0.1 * ref.abs().max().item() + 0.05)


def test_energy_invariant_to_batch_size(tiny_cnn):
    torch.manual_seed(1)
    x = torch.rand(37, 1, 8, 8)
    y = torch.randint(0, 10, (37,))
    full = tiny_cnn.energies(x, y)
    for bs in (1, 5, 16):
        parts = [tiny_cnn.energies(x[i:i + bs], y[i:i + bs]) for i in range(0, 37, bs)]
        for key in ("energy", "conditional_energy"):
            assert torch.allclose(torch.cat([p[key] for p in parts]), full[key], atol=1e-5)


def test_predict_is_argmax():
    model = EnergyModel(FixedLogits([[0.0, 1.0], [3.0, -1.0]]))
    assert model.predict(torch.zeros(2, 1, 1, 1)).tolist() == [1, 0]


@pytest.mark.parametrize("bad, fragment", [
    (torch.full((2, 1, 8, 8), 1.5), "[0, 1]"),
    (torch.full((2, 1, 8, 8), -0.01), "[0, 1]"),
    (torch.rand(2, 1, 8, 8) * 2 - 1, "normalised to [-1, 1]"),
    (torch.zeros(2, 8, 8), "shape N x 1 x 8 x 8"),
    (torch.zeros(2, 3, 8, 8), "shape N x 1 x 8 x 8"),
    (torch.zeros(2, 1, 8, 8, dtype=torch.uint8), "floating-point"),
    ([[0.0]], "torch.Tensor"),
])
def test_bad_inputs_are_rejected_clearly(tiny_cnn, bad, fragment):
    with pytest.raises(LandscapeError) as info:
        tiny_cnn.energy(bad)
    assert fragment in str(info.value)
    assert "\n" not in str(info.value)


def test_range_tolerance_accepts_rounding_noise(tiny_cnn):
    x = torch.rand(2, 1, 8, 8)
    x[0, 0, 0, 0] = 1.0 + 5e-5
    x[1, 0, 0, 0] = -5e-5
    assert torch.isfinite(tiny_cnn.energy(x)).all()


def test_bad_labels_are_rejected(tiny_cnn):
    x = torch.rand(2, 1, 8, 8)
    with pytest.raises(LandscapeError, match="labels must lie in"):
        tiny_cnn.energy(x, torch.tensor([0, 10]))
    with pytest.raises(LandscapeError, match="integer vector of length 2"):
        tiny_cnn.energy(x, torch.tensor([0.0, 1.0]))


@pytest.mark.parametrize("mode", [True, False])
def test_energy_model_never_changes_training_flag(tiny_cnn, mode):
    tiny_cnn.train(mode)
    x = torch.rand(3, 1, 8, 8)
    tiny_cnn.energy(x)
    tiny_cnn.energies(x, torch.tensor([1, 2, 3]))
    tiny_cnn.predict(x)
    assert all(m.training == mode for m in tiny_cnn.modules())


def test_eval_mode_restores_every_submodule_even_on_error(tiny_cnn):
    tiny_cnn.train()
    tiny_cnn.net.head.train(False)  # a mixed state must come back exactly
    before = [m.training for m in tiny_cnn.modules()]
    with pytest.raises(RuntimeError):
        with eval_mode(tiny_cnn):
            assert not any(m.training for m in tiny_cnn.modules())
            raise RuntimeError("boom")
    assert [m.training for m in tiny_cnn.modules()] == before


def test_normalizations():
    x = torch.rand(2, 3, 4, 4)
    assert torch.equal(Normalization("identity")(x), x)
    assert torch.allclose(Normalization("jem")(x), 2 * x - 1)
    n = Normalization("meanstd", mean=[0.1, 0.2, 0.3], std=[0.5, 0.25, 2.0])
    ref = (x - torch.tensor([0.1, 0.2, 0.3]).view(1, 3, 1, 1)) / torch.tensor([0.5, 0.25, 2.0]).view(1, 3, 1, 1)
    assert torch.allclose(n(x), ref)
    assert Normalization.from_config(n.to_config()).to_config() == n.to_config()
    with pytest.raises(LandscapeError, match="normalization must be one of"):
        Normalization("zscore")
    with pytest.raises(LandscapeError, match="std must be positive"):
        Normalization("meanstd", mean=[0.0], std=[0.0])


def test_jem_normalization_reaches_the_network():
    seen = {}

    class Spy(nn.Module):
        def forward(self, x):
            seen["x"] = x
            return torch.zeros(x.shape[0], 2)

    EnergyModel(Spy(), "jem").energy(torch.tensor([0.0, 0.5, 1.0]).view(1, 1, 1, 3))
    assert seen["x"].flatten().tolist() == [-1.0, 0.0, 1.0]


def test_free_functions_agree_with_model():
    logits = torch.randn(5, 7, dtype=torch.float64)
    y = torch.randint(0, 7, (5,))
    assert torch.allclose(energy_from_logits(logits, 2.0), -2.0 * torch.logsumexp(logits / 2.0, 1))
    assert torch.equal(conditional_energy_from_logits(logits, y), -logits[torch.arange(5), y])
