"""SGLD (JEM semantics) and its initialisations: the replay buffer and the class Gaussians."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from landscape.data import load_dataset, to_tensors
from landscape.energy import EnergyModel
from landscape.errors import LandscapeError
from landscape.models import create_model
from landscape.rng import keyed_normal, keyed_uniform
from landscape.sources import SGLD, ClassGaussians, ReplayBuffer, fit_class_gaussians
from landscape.sources.sgld import STREAM_BASE


def tiny_model(seed=0, normalization="identity"):
    torch.manual_seed(seed)
    net = create_model("smallcnn", in_channels=1, n_classes=10, width=4, hidden=16, activation="silu")
    return EnergyModel(net, normalization, input_shape=(1, 8, 8), n_classes=10).eval()


@pytest.fixture(scope="module")
def digits_train():
    return to_tensors(load_dataset("digits", "train"))


@pytest.fixture(scope="module")
def digits_model(trained_digits_model):
    """conftest's small CNN trained for a few seconds on digits."""
    return trained_digits_model


@pytest.fixture(scope="module")
def gaussians(digits_train):
    return fit_class_gaussians(*digits_train)


# ----------------------------------------------------------------------------- the update
def jem_reference(net, x_m, steps, step_size, noise, keys, seed, y=None):
    """JEM's sample_q loop written in its own [-1, 1] space, on the network itself."""
    x = x_m.clone()
    for t in range(steps):
        x.requires_grad_(True)
        logits = net(x)
        f = logits.gather(1, y.view(-1, 1)).sum() if y is not None else logits.logsumexp(1).sum()
        g = torch.autograd.grad(f, x)[0]
        x = x.detach() + step_size * g + noise * keyed_normal(keys, x.shape[1:], seed=seed, stream=STREAM_BASE + 1 + t)
    return x


@pytest.mark.parametrize("conditional", [False, True])
def test_update_is_jems_step_in_its_minus_one_one_space(conditional):
    """A JEM-normalised model sees x_m = 2 x_p - 1: our pixel chain must equal JEM's chain on x_m."""
    model = tiny_model(2, "jem")
    keys, y = torch.arange(10, 16), torch.tensor([0, 3, 5, 7, 9, 1])
    x_p0 = keyed_uniform(keys, (1, 8, 8), seed=4, stream=STREAM_BASE)
    ref_m = jem_reference(model.net, 2 * x_p0 - 1, 3, 1.0, 0.01, keys, 4, y if conditional else None)
    sgld = SGLD(steps=3, step_size=1.0, noise=0.01, clamp=False, conditional=conditional)
    ours = sgld(model, torch.zeros(6, 1, 8, 8), y, keys=keys, seed=4)
    assert torch.allclose(ours, ((ref_m + 1) / 2).clamp(0, 1), atol=1e-5)


def test_units_do_not_depend_on_the_models_normalisation():
    """An identity-normalised model: E_m(x_m) = E((x_m + 1) / 2); JEM's step on x_m, autograd does the chain rule."""
    model = tiny_model(3, "identity")
    keys = torch.arange(5)
    x_p0 = keyed_uniform(keys, (1, 8, 8), seed=0, stream=STREAM_BASE)

    class InMinusOneOne(torch.nn.Module):
        def forward(self, x_m):
            return model.net((x_m + 1) / 2)

    ref_m = jem_reference(InMinusOneOne(), 2 * x_p0 - 1, 4, 2.0, 0.05, keys, 0)
    ours = SGLD(steps=4, step_size=2.0, noise=0.05, clamp=False)(model, torch.zeros(5, 1, 8, 8), None, keys=keys)
    assert torch.allclose(ours, ((ref_m + 1) / 2).clamp(0, 1), atol=1e-5)


def test_sgld_lowers_the_mean_energy_and_records_it(digits_model):
    x = torch.zeros(128, 1, 8, 8)
    sgld = SGLD(record_trajectory=True)  # JEM's defaults: 20 steps, step 1, noise 0.01
    out = sgld(digits_model, x, None, keys=torch.arange(128))
    traj = sgld.last_trajectory
    assert traj.shape == (128, 21) and traj.dtype == torch.float32
    with torch.no_grad():
        e_out = digits_model.energy(out)
        e_init = digits_model.energy(keyed_uniform(torch.arange(128), (1, 8, 8), stream=STREAM_BASE))
    assert torch.allclose(traj[:, -1], e_out, atol=1e-4)
    assert torch.allclose(traj[:, 0], e_init, atol=1e-4)
    assert e_out.mean() < e_init.mean() - 1.0
    assert traj.mean(0)[-1] < traj.mean(0)[0]
    assert out.min() >= 0 and out.max() <= 1
    assert SGLD()(digits_model, x[:2], None) is not None and SGLD().last_trajectory is None


def test_conditional_sgld_lowers_the_conditional_energy(digits_model):
    y = torch.arange(10).repeat(5)
    sgld = SGLD(conditional=True, record_trajectory=True)
    out = sgld(digits_model, torch.zeros(50, 1, 8, 8), y, keys=torch.arange(50))
    with torch.no_grad():
        assert torch.allclose(sgld.last_trajectory[:, -1], digits_model.energy(out, y), atol=1e-4)
    assert sgld.last_trajectory[:, -1].mean() < sgld.last_trajectory[:, 0].mean() - 1.0


def test_runs_under_no_grad_and_inference_mode():
    model = tiny_model()
    sgld = SGLD(steps=2, conditional=True)
    args = (torch.zeros(3, 1, 8, 8), torch.tensor([1, 2, 3]))
    ref = sgld(model, *args, keys=torch.arange(3))
    with torch.no_grad():
        a = sgld(model, *args, keys=torch.arange(3))
    with torch.inference_mode():
        b = sgld(model, torch.zeros(3, 1, 8, 8), torch.tensor([1, 2, 3]), keys=torch.arange(3))
    assert torch.equal(ref, a) and torch.equal(ref, b)


def test_run_from_given_starts_is_the_same_chain():
    model = tiny_model(5)
    keys = torch.arange(7)
    sgld = SGLD(steps=3, record_trajectory=True)
    called = sgld(model, torch.zeros(7, 1, 8, 8), None, keys=keys, seed=2)
    traj = sgld.last_trajectory
    x0 = keyed_uniform(keys, (1, 8, 8), seed=2, stream=STREAM_BASE)
    ran = sgld.run(model, x0, keys=keys, seed=2)
    assert torch.equal(called, ran) and torch.equal(traj, sgld.last_trajectory)
    assert torch.equal(x0, keyed_uniform(keys, (1, 8, 8), seed=2, stream=STREAM_BASE)), "run must not modify x0"


def test_clamp_false_still_returns_pixels_in_the_unit_box():
    model = tiny_model()
    out = SGLD(steps=5, step_size=50.0, noise=1.0, clamp=False)(model, torch.zeros(8, 1, 8, 8), None, keys=torch.arange(8))
    assert out.min() >= 0 and out.max() <= 1


def test_keyed_results_do_not_depend_on_the_batch_split(gaussians):
    model = tiny_model(4)
    y = torch.randint(10, (10,), generator=torch.Generator().manual_seed(0))
    keys = torch.arange(50, 60)
    for sgld in (SGLD(steps=3), SGLD(steps=3, class_gaussians=gaussians), SGLD(steps=2, conditional=True)):
        whole = sgld(model, torch.zeros(10, 1, 8, 8), y, keys=keys, seed=3)
        parts = torch.cat([sgld(model, torch.zeros(n, 1, 8, 8), y[s], keys=keys[s], seed=3)
                           for n, s in ((4, slice(0, 4)), (6, slice(4, 10)))])
        assert torch.allclose(whole, parts, atol=1e-5), sgld


def test_bf16_autocast_and_channels_last(digits_model):
    model = EnergyModel(digits_model.net, "identity", input_shape=(1, 8, 8), n_classes=10).eval()
    model.to(memory_format=torch.channels_last)
    try:
        sgld = SGLD(record_trajectory=True)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = sgld(model, torch.zeros(64, 1, 8, 8), None, keys=torch.arange(64))
    finally:
        digits_model.net.to(memory_format=torch.contiguous_format)
    assert out.dtype == torch.float32 and sgld.last_trajectory.dtype == torch.float32
    assert sgld.last_trajectory[:, -1].mean() < sgld.last_trajectory[:, 0].mean() - 1.0


# ----------------------------------------------------------------------------- SGLD from a buffer
def test_sgld_from_a_buffer_writes_its_results_back(digits_model):
    buf = ReplayBuffer(size=200, shape=(1, 8, 8), seed=1)
    before = buf.data.clone()
    sgld = SGLD(steps=5, buffer=buf)
    assert sgld.init == "buffer" and sgld.stateful
    out = sgld(digits_model, torch.zeros(32, 1, 8, 8), None)
    changed = (buf.data != before).flatten(1).any(1)
    assert 0 < int(changed.sum()) <= 32
    # every rewritten slot holds one of the returned samples (a slot drawn twice keeps the last)
    outs = out.flatten(1)
    assert all((outs == row).all(1).any() for row in buf.data[changed].flatten(1))


def test_conditional_sgld_draws_from_the_labels_slots(digits_model):
    buf = ReplayBuffer(size=100, shape=(1, 8, 8), n_classes=10, reinit_prob=0.0)
    before = buf.data.clone()
    y = torch.full((6,), 7)
    SGLD(steps=2, buffer=buf, conditional=True)(digits_model, torch.zeros(6, 1, 8, 8), y)
    changed = (buf.data != before).flatten(1).any(1).nonzero().view(-1)
    assert len(changed) > 0 and (changed // 10 == 7).all()


# ----------------------------------------------------------------------------- replay buffer
def test_buffer_reinitialises_about_five_percent_per_call():
    buf = ReplayBuffer(size=1000, shape=(1, 4, 4), seed=0)
    buf.data.fill_(0.5)  # anything that is not 0.5 everywhere was re-initialised
    fractions = []
    for _ in range(20):
        x, idx = buf.sample(1000)
        assert x.shape == (1000, 1, 4, 4) and idx.shape == (1000,) and idx.dtype == torch.int64
        fractions.append((x != 0.5).flatten(1).any(1).float().mean().item())
    assert abs(np.mean(fractions) - 0.05) < 0.01  # binomial sd of the mean: 0.0015
    assert all(0.02 < f < 0.08 for f in fractions)
    assert (buf.data == 0.5).all(), "sampling must not modify the buffer"


def test_buffer_sample_returns_copies_and_update_writes():
    buf = ReplayBuffer(size=50, shape=(1, 2, 2), reinit_prob=0.0)
    x, idx = buf.sample(10)
    x += 1.0
    assert (buf.data <= 1).all()
    buf.update(idx, torch.full((10, 1, 2, 2), 0.25))
    assert (buf.data[idx] == 0.25).all()
    with pytest.raises(LandscapeError, match=r"x must have shape \(3, 1, 2, 2\)"):
        buf.update(idx[:3], torch.zeros(3, 1, 3, 3))
    with pytest.raises(LandscapeError, match=r"idx must lie in \[0, 49\]"):
        buf.update(torch.tensor([50]), torch.zeros(1, 1, 2, 2))


def test_conditional_buffer_keeps_labels_and_reinitialises_by_class(gaussians):
    buf = ReplayBuffer(size=100, shape=(1, 8, 8), n_classes=10, init=gaussians, reinit_prob=1.0, seed=0)
    assert buf.labels.tolist() == [i // 10 for i in range(100)]
    y = torch.tensor([3, 3, 8, 0])
    x, idx = buf.sample(4, y=y)
    assert (idx // 10 == y).all()
    # re-initialised from the Gaussian of each slot's class: nearer its mean than any other class's
    d = torch.cdist(x.flatten(1), gaussians.means)
    assert (d.argmin(1) == y).float().mean() >= 0.75
    with pytest.raises(LandscapeError, match="sampling by class needs a class-conditional buffer"):
        ReplayBuffer(size=10, shape=(1, 8, 8)).sample(2, y=torch.tensor([0, 1]))


def test_buffer_save_load_round_trip(tmp_path, gaussians):
    buf = ReplayBuffer(size=60, shape=(1, 8, 8), n_classes=10, init=gaussians, seed=5)
    buf.sample(7)
    path = tmp_path / "buffer.safetensors"
    buf.save(path)
    assert [p.name for p in tmp_path.iterdir()] == ["buffer.safetensors"]  # atomic: no temporary left
    again = ReplayBuffer.load(path, init=gaussians)
    assert torch.equal(again.data, buf.data) and torch.equal(again.labels, buf.labels)
    assert again.describe() == buf.describe() and len(again) == 60
    a, b = buf.sample(9, y=torch.arange(9)), again.sample(9, y=torch.arange(9))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]), "the generator state travels with the buffer"
    with pytest.raises(LandscapeError, match="re-initialised from class Gaussians"):
        ReplayBuffer.load(path)
    plain = ReplayBuffer(size=5, shape=(1, 2, 2))
    plain.save(tmp_path / "plain.safetensors")
    assert torch.equal(ReplayBuffer.load(tmp_path / "plain.safetensors").data, plain.data)
    gaussians.save(tmp_path / "g.safetensors")
    with pytest.raises(LandscapeError, match="is not a replay buffer file"):
        ReplayBuffer.load(tmp_path / "g.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"not a file")
    with pytest.raises(LandscapeError, match="not a readable .safetensors file"):
        ReplayBuffer.load(tmp_path / "junk.safetensors")


def test_buffer_state_dict_and_jem_tensor():
    jem = torch.rand(20, 1, 4, 4) * 2 - 1  # a JEM checkpoint's replay_buffer lives in [-1, 1]
    buf = ReplayBuffer.from_tensor(jem, value_range=(-1, 1))
    assert torch.allclose(buf.data, (jem + 1) / 2) and buf.shape == (1, 4, 4) and len(buf) == 20
    other = ReplayBuffer(size=20, shape=(1, 4, 4), seed=9)
    other.load_state_dict(buf.state_dict())
    assert torch.equal(other.data, buf.data)
    assert torch.equal(other.sample(5)[1], buf.sample(5)[1])


@pytest.mark.parametrize("kwargs,message", [
    ({"size": 0}, r"size must be an integer >= 1, got 0"),
    ({"shape": (8, 8)}, r"shape must be \(C, H, W\) with positive sizes, got \(8, 8\)"),
    ({"reinit_prob": 1.5}, r"reinit_prob must be <= 1, got 1.5"),
    ({"init": "normal"}, r"init must be 'uniform' or a ClassGaussians"),
    ({"size": 15, "n_classes": 10}, r"needs size divisible by n_classes, got size=15 n_classes=10"),
])
def test_buffer_errors(kwargs, message):
    args = {"size": 20, "shape": (1, 4, 4), **kwargs}
    with pytest.raises(LandscapeError, match=message):
        ReplayBuffer(**args)


# ----------------------------------------------------------------------------- class Gaussians
def test_class_gaussians_match_numpy(digits_train, gaussians):
    x, y = digits_train
    flat = x.flatten(1).double().numpy()
    for c in (0, 7):
        rows = flat[y.numpy() == c]
        assert np.allclose(gaussians.means[c].numpy(), rows.mean(0), atol=1e-6)
        cov = gaussians.scale[c].double() @ gaussians.scale[c].double().T
        assert np.allclose(cov.numpy(), np.cov(rows, rowvar=False) + 1e-4 * np.eye(64), atol=1e-5)
    diag = fit_class_gaussians(x, y, covariance="diag", ridge=0.0)
    assert np.allclose(diag.scale[3].numpy() ** 2, np.var(flat[y.numpy() == 3], axis=0, ddof=1), atol=1e-5)


def test_class_gaussian_samples_have_the_fitted_moments(gaussians):
    y = torch.full((20000,), 4)
    s = gaussians.sample(y, generator=torch.Generator().manual_seed(0), clamp=False).flatten(1).double()
    cov = gaussians.scale[4].double() @ gaussians.scale[4].double().T
    assert (s.mean(0) - gaussians.means[4]).abs().max() < 0.02
    assert (torch.cov(s.T) - cov).abs().max() < 0.02
    clamped = gaussians.sample(y[:100], keys=torch.arange(100))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert torch.equal(gaussians.sample(y[:100], keys=torch.arange(100)), clamped), "autocast must not touch the init"
    assert clamped.shape == (100, 1, 8, 8) and clamped.min() >= 0 and clamped.max() <= 1
    assert torch.equal(clamped[10:20], gaussians.sample(y[10:20], keys=torch.arange(10, 20)))


def test_sgld_from_class_gaussians_starts_there(digits_model, gaussians):
    y, keys = torch.tensor([1, 2, 3]), torch.tensor([4, 5, 6])
    out = SGLD(steps=0, class_gaussians=gaussians)(digits_model, torch.zeros(3, 1, 8, 8), y, keys=keys, seed=2)
    assert torch.equal(out, gaussians.sample(y, keys=keys, seed=2, stream=STREAM_BASE))


def test_class_gaussians_files_and_errors(tmp_path, digits_train, gaussians):
    gaussians.save(tmp_path / "g.safetensors")
    again = ClassGaussians.load(tmp_path / "g.safetensors")
    assert again.fingerprint() == gaussians.fingerprint() and again.shape == (1, 8, 8)
    assert "n_classes=10" in repr(again)
    x, y = digits_train
    with pytest.raises(LandscapeError, match=r"classes \[9\] have fewer"):
        fit_class_gaussians(x[y < 9][:100], torch.cat([y[y < 9][:99], torch.tensor([9])]), n_classes=10)
    with pytest.raises(LandscapeError, match="needs labels y"):
        fit_class_gaussians(x)
    with pytest.raises(LandscapeError, match=r"class labels must lie in \[0, 9\]"):
        gaussians.sample(torch.tensor([10]))
    from_dataset = fit_class_gaussians(load_dataset("digits", "train"))
    assert from_dataset.fingerprint() == gaussians.fingerprint()


# ----------------------------------------------------------------------------- settings and errors
def test_repr_config_and_init_inference(gaussians):
    s = SGLD()
    assert repr(s) == ("SGLD(steps=20, step_size=1.0, noise=0.01, conditional=False, init='uniform', clamp=True, "
                       "record_trajectory=False)")
    g = SGLD(class_gaussians=gaussians)
    assert g.init == "gaussian" and g.config()["class_gaussians"] == gaussians.fingerprint()
    b = SGLD(buffer=ReplayBuffer(size=10, shape=(1, 8, 8)))
    assert b.config()["buffer"]["size"] == 10 and '"buffer"' in b.cache_key()


@pytest.mark.parametrize("kwargs,message", [
    ({"steps": -1}, r"steps must be an integer >= 0, got -1"),
    ({"step_size": -1.0}, r"step_size must be >= 0, got -1.0"),
    ({"noise": float("inf")}, r"noise must be a finite number, got inf"),
    ({"init": "zeros"}, r"init must be one of 'uniform', 'gaussian', 'buffer', got 'zeros'"),
    ({"init": "buffer"}, r"init='buffer' needs buffer= a ReplayBuffer, got none"),
    ({"init": "gaussian"}, r"init='gaussian' needs class_gaussians="),
    ({"buffer": "b"}, r"buffer must be a ReplayBuffer, got str"),
    ({"conditional": 1}, r"conditional must be true or false, got 1"),
])
def test_sgld_errors(kwargs, message):
    with pytest.raises(LandscapeError, match=message):
        SGLD(**kwargs)


def test_sgld_call_errors(digits_model):
    buf = ReplayBuffer(size=10, shape=(1, 4, 4))
    with pytest.raises(LandscapeError, match=r"replay buffer holds samples of shape \(1, 4, 4\), x has \(1, 8, 8\)"):
        SGLD(buffer=buf)(digits_model, torch.zeros(2, 1, 8, 8), None)
    with pytest.raises(LandscapeError, match="needs a class-conditional ReplayBuffer"):
        SGLD(buffer=buf, conditional=True)
    with pytest.raises(LandscapeError, match="this source needs labels y"):
        SGLD(conditional=True)(digits_model, torch.zeros(2, 1, 8, 8), None)
