"""Low precision: one autocast helper, and every iterative search moves at every step under bf16.

``torch.autocast`` caches the bf16 copy of a leaf tensor that requires grad until the
context exits; a search that updates such a leaf in place would feed the network its
starting point at every step. Each search below runs under bf16 autocast twice: inside
the toolkit's helper (cache off) and inside a caller's own ``torch.autocast`` with the
cache on; the energies the network computes at consecutive steps must differ.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from landscape.energy import energy_from_logits
from landscape.errors import LandscapeError
from landscape.precision import autocast, check_precision, full_precision, network_input
from landscape.sources import PGD, SGLD, AutoAttack, ReplayBuffer, fit_class_gaussians
from landscape.train.objectives import InnerMax

ROOT = Path(__file__).resolve().parents[1]

CONTEXTS = {
    "helper": lambda: autocast("cpu", "bf16"),
    "caller-autocast-cache-on": lambda: torch.autocast("cpu", dtype=torch.bfloat16),
}


@pytest.fixture(scope="module")
def batch():
    from landscape.data import load_dataset, to_tensors

    x, y = to_tensors(load_dataset("digits", "test"), range(48))
    return x, y, torch.arange(48)


def frozen_steps(traj: torch.Tensor, atol: float = 0.0) -> list[int]:
    """Steps t (1-based) at which no sample's recorded energy changed from step t - 1."""
    d = (traj[:, 1:] - traj[:, :-1]).abs()
    return [t + 1 for t in range(d.shape[1]) if not (d[:, t] > atol).any()]


class EnergyProbe:
    """Records E(x) of every forward pass of ``model.net`` (what the network really saw)."""

    def __init__(self, model):
        self.calls: list[torch.Tensor] = []
        self.handle = model.net.register_forward_hook(self._hook)

    def _hook(self, module, inputs, output):
        self.calls.append(energy_from_logits(output.detach().float()))

    def close(self):
        self.handle.remove()

    def trajectory(self, n: int) -> torch.Tensor:
        """The recorded energies of the calls on ``n`` samples, as ``n x calls``."""
        return torch.stack([c for c in self.calls if c.shape[0] == n], dim=1)


# ----------------------------------------------------------------------------- the helper
def test_only_the_precision_module_calls_torch_autocast():
    hits = []
    for folder in ("landscape", "benchmarks", "checkpoints"):
        for path in (ROOT / folder).rglob("*.py"):
            if path == ROOT / "landscape" / "precision.py":
                continue
            for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                if re.search(r"torch\.autocast\(|torch\.(cpu|cuda)\.amp\.autocast\(", line):
                    hits.append(f"{path.relative_to(ROOT)}:{i}")
    assert not hits, f"use landscape.precision.autocast / full_precision instead: {hits}"


def test_helper_switches_the_cache_off_and_validates():
    assert torch.is_autocast_cache_enabled()
    with autocast("cpu", "bf16"):
        assert torch.is_autocast_enabled("cpu") and not torch.is_autocast_cache_enabled()
        with full_precision("cpu"):
            assert not torch.is_autocast_enabled("cpu")
        assert torch.is_autocast_enabled("cpu")
    assert torch.is_autocast_cache_enabled() and not torch.is_autocast_enabled("cpu")
    with autocast("cpu", "fp32"):
        assert not torch.is_autocast_enabled("cpu")
    with autocast(torch.device("cpu"), True):
        assert torch.get_autocast_dtype("cpu") == torch.bfloat16
    assert check_precision(False) == "fp32" and check_precision("bf16") == "bf16"
    with pytest.raises(LandscapeError, match="precision must be one of fp32, bf16, got 'fp16'"):
        autocast("cpu", "fp16")


def test_network_input_is_a_free_view_of_a_grad_leaf_only():
    leaf = torch.rand(2, 3, requires_grad=True)
    v = network_input(leaf)
    assert v is not leaf and not v.is_leaf and v.data_ptr() == leaf.data_ptr()
    plain = torch.rand(2, 3)
    assert network_input(plain) is plain


def test_the_probe_catches_a_frozen_search(monkeypatch, trained_digits_model, batch):
    # without the view (the old code path) a caller's cached autocast freezes PGD: the test
    # helpers above must be able to see that, or the tests below prove nothing
    import landscape.sources._common as common

    monkeypatch.setattr(common, "network_input", lambda x: x)
    x, y, keys = batch
    pgd = PGD(eps=0.1, step=0.01, steps=5, record_trajectory=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        pgd(trained_digits_model, x, y, keys=keys)
    assert frozen_steps(pgd.last_trajectory[:, :-1]) == [1, 2, 3, 4]


# ----------------------------------------------------------------------------- sources
@pytest.mark.parametrize("context", CONTEXTS)
@pytest.mark.parametrize("norm, eps, step", [("Linf", 0.1, 0.01), ("L2", 1.0, 0.2)])
@pytest.mark.parametrize("loss", ["ce", "energy"])
def test_pgd_moves_at_every_step_under_bf16(trained_digits_model, batch, context, norm, eps, step, loss):
    x, y, keys = batch
    pgd = PGD(norm, eps=eps, step=step, steps=6, loss=loss, record_trajectory=True)
    with CONTEXTS[context]():
        out = pgd(trained_digits_model, x, y, keys=keys)
    assert not frozen_steps(pgd.last_trajectory)
    assert out.dtype == torch.float32 and out.min() >= 0 and out.max() <= 1


@pytest.mark.parametrize("context", CONTEXTS)
@pytest.mark.parametrize("init", ["uniform-keyed", "uniform-unkeyed", "gaussian", "buffer", "conditional"])
def test_sgld_moves_at_every_step_under_bf16(trained_digits_model, batch, context, init):
    x, y, keys = batch
    kwargs, use_keys = {}, keys
    if init == "uniform-unkeyed":
        use_keys = None
    elif init == "gaussian":
        kwargs["class_gaussians"] = fit_class_gaussians(x, y, n_classes=10)
    elif init == "buffer":
        kwargs["buffer"] = ReplayBuffer(size=100, shape=(1, 8, 8), seed=0)
    elif init == "conditional":
        kwargs["conditional"] = True
    sgld = SGLD(steps=6, step_size=1.0, noise=0.01, record_trajectory=True, **kwargs)
    with CONTEXTS[context]():
        out = sgld(trained_digits_model, x, y, keys=use_keys)
    traj = sgld.last_trajectory
    assert not frozen_steps(traj)
    assert traj[:, -1].mean() < traj[:, 0].mean(), "SGLD descends the energy"
    assert out.min() >= 0 and out.max() <= 1


@pytest.mark.parametrize("context", CONTEXTS)
@pytest.mark.parametrize("kind", ["saddle", "ce", "released", "released-compat", "trades"])
def test_training_inner_searches_move_at_every_step_under_bf16(trained_digits_model, batch, context, kind):
    x, y, keys = batch
    inner = InnerMax(kind, eps=0.1, step=0.02, steps=5, w_adv=0.1, w_advce=1.0)
    probe = EnergyProbe(trained_digits_model)
    try:
        with CONTEXTS[context]():
            inner(trained_digits_model, x, y, keys, 0)
    finally:
        probe.close()
    traj = probe.trajectory(len(x))
    # released and trades first make one no-grad pass on the clean batch; then one pass per step
    assert traj.shape[1] >= 5
    assert not frozen_steps(traj[:, -5:]), kind


@pytest.mark.parametrize("context", CONTEXTS)
def test_autoattack_moves_under_bf16(trained_digits_model, batch, context):
    x, y, keys = batch
    aa = AutoAttack(eps=0.1, version="custom", attacks=["apgd-ce"])
    probe = EnergyProbe(trained_digits_model)
    try:
        with CONTEXTS[context]():
            aa(trained_digits_model, x[:16], y[:16], seed=0)
    finally:
        probe.close()
    sizes = {c.shape[0] for c in probe.calls}
    n = max(sizes, key=lambda s: sum(c.shape[0] == s for c in probe.calls))  # the attacked batch
    traj = probe.trajectory(n)
    assert traj.shape[1] > 20
    stuck = frozen_steps(traj)
    assert len(stuck) <= 0.1 * traj.shape[1], stuck


@pytest.mark.parametrize("context", CONTEXTS)
def test_trainer_objective_chains_move_under_bf16(trained_digits_model, batch, context):
    # the JEM negatives of a bf16 training step: persistent SGLD from the trainer's buffer
    from landscape.train import Objective, TrackingBuffer, TrainConfig

    x, y, keys = batch
    cfg = TrainConfig(dataset="digits", objective="ebjdat", eps=0.1, attack_step=0.02, attack_steps=4, sgld_steps=5,
                      buffer_size=100, n_negatives=32, bf16=True, attack_bf16=True)
    obj = Objective(cfg, TrackingBuffer(size=100, shape=(1, 8, 8), seed=0))
    probe = EnergyProbe(trained_digits_model)
    try:
        with CONTEXTS[context]():
            obj(trained_digits_model, x, y, keys=keys, seed=0)
    finally:
        probe.close()
    sgld_calls = probe.trajectory(32)  # the 5 SGLD steps on 32 chains
    adv_calls = probe.trajectory(48)[:, -4:]  # the 4 inner steps (the training forward is 48 + 48 + 32 at once)
    assert sgld_calls.shape[1] == 5 and not frozen_steps(sgld_calls)
    assert not frozen_steps(adv_calls)


# ----------------------------------------------------------------------------- strength of bf16 searches
@pytest.mark.slow
def test_bf16_pgd20_on_the_bundled_pgdat_model_matches_fp32():
    """bf16 PGD-20 leaves the bundled PGD-AT model within 1.5 points of fp32 PGD-20 (n = 500)."""
    import landscape
    from landscape.data import load_dataset, subset, to_tensors

    model = landscape.load_model(ROOT / "checkpoints" / "fmnist" / "pgdat.safetensors")
    data = subset(load_dataset("fashion-mnist", "test"), 500, seed=0)
    x, y = to_tensors(data)
    keys = torch.as_tensor(data.indices)
    pgd = PGD("Linf", eps=0.1, step=0.01, steps=20, loss="ce")
    acc = {}
    for precision in ("fp32", "bf16"):
        with autocast("cpu", precision):
            xa = pgd(model, x, y, keys=keys, seed=0)
        with torch.no_grad():
            acc[precision] = float((model.logits(xa).argmax(1) == y).float().mean())
    assert abs(acc["bf16"] - acc["fp32"]) <= 0.015, acc
