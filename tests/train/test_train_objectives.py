"""Objectives: each term against an independent computation, the inner searches, presets, config checks."""

import pytest
import torch
import torch.nn.functional as F

from landscape.data import load_dataset, to_tensors
from landscape.energy import EnergyModel
from landscape.errors import ConfigError
from landscape.models import create_model
from landscape.train import WEIGHT_PRESETS, InnerMax, Objective, TrackingBuffer, TrainConfig


@pytest.fixture(scope="module")
def trained():
    """A tiny CNN fitted to digits for a few hundred steps (so input gradients are informative)."""
    torch.set_num_threads(1)
    x, y = to_tensors(load_dataset("digits", "train"))
    model = tiny()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(0)
    for _ in range(300):
        idx = torch.randint(len(x), (64,), generator=g)
        loss = F.cross_entropy(model.logits(x[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


@pytest.fixture(scope="module")
def batch():
    x, y = to_tensors(load_dataset("digits", "train"), range(64))
    return x, y


def tiny(seed=0):
    torch.manual_seed(seed)
    net = create_model("smallcnn", in_channels=1, n_classes=10, width=8, hidden=32)
    return EnergyModel(net, input_shape=(1, 8, 8), n_classes=10, check_inputs=False)


def cfg(objective, **kw):
    base = dict(dataset="digits", objective=objective, eps=0.1, attack_step=0.05, attack_steps=2, sgld_steps=3,
                buffer_size=100)
    base.update(kw)
    return TrainConfig(**base)


@pytest.mark.parametrize("objective, extra", [
    ("standard", {}), ("pgdat", {}), ("trades", {}), ("jem", {}),
    ("ebjdat", {"inner": "saddle"}), ("ebjdat", {"inner": "ce"}), ("ebjdat", {"inner": "released"}),
    ("ebjdat", {"inner": "released-compat"}), ("ebjdat", {"weight_preset": "paper"}),
])
def test_every_objective_lowers_its_loss(batch, objective, extra):
    x, y = batch
    c = cfg(objective, **extra)
    model = tiny()
    buf = TrackingBuffer(size=100, shape=(1, 8, 8), seed=0) if c.needs_sgld else None
    obj = Objective(c, buf)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    noise = torch.rand(64, 1, 8, 8, generator=torch.Generator().manual_seed(5))

    def fixed_loss():
        # JEM's loss is a two-player game (its SGLD negatives adapt), so its running value
        # oscillates; what it lowers is CE + E(data) - E(negatives) for fixed negatives
        with torch.no_grad():
            lc = model.logits(x)
            return float(F.cross_entropy(lc, y) + model.energy(x).mean() - model.energy(noise).mean())

    losses = []
    before = fixed_loss()
    torch.manual_seed(1)
    model.train()
    for step in range(40):
        loss, stats = obj(model, x, y, keys=torch.arange(len(x)), seed=step)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
        assert torch.isfinite(loss)
    assert model.training, "the objective must leave the model in train mode"
    if c.needs_sgld:
        assert fixed_loss() < before - 0.1, (objective, before, fixed_loss())
    else:
        first, last = sum(losses[:5]) / 5, sum(losses[-5:]) / 5
        assert last < first - 0.1, (objective, losses)
    assert set(c.term_weights()) <= set(stats)
    assert "acc" in stats and "e_clean" in stats


def test_terms_match_an_independent_computation(batch):
    x, y = batch
    model = tiny()
    c = cfg("ebjdat", weights={"trades_kl": 2.0, "energy_l2": 0.5}, weight_preset="paper")
    buf = TrackingBuffer(size=100, shape=(1, 8, 8), seed=0)
    obj = Objective(c, buf)
    # replace the searches by fixed samples so the terms can be recomputed
    x_adv = (x + 0.05).clamp(0, 1)
    x_neg = torch.rand(64, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    obj.inner = lambda m, x, y, k, s: x_adv
    obj.sgld = lambda m, x: x_neg
    model.eval()
    loss, st = obj(model, x, y)
    with torch.no_grad():
        lc, la, ln = model.logits(x), model.logits(x_adv), model.logits(x_neg)
        e = lambda t: -torch.logsumexp(t, 1)  # noqa: E731  (the energy, written out independently)
        ce, adv_ce = F.cross_entropy(lc, y), F.cross_entropy(la, y)
        p, q = F.softmax(lc, 1), F.softmax(la, 1)
        kl = (p * (p.log() - q.log())).sum(1).mean()
        px, align = e(lc).mean() - e(ln).mean(), e(lc).mean() - e(la).mean()
        l2 = (e(lc) ** 2).mean() + (e(ln) ** 2).mean()  # JEM's regulariser: x~ is never covered
    assert torch.allclose(st["ce"], ce, atol=1e-5) and torch.allclose(st["adv_ce"], adv_ce, atol=1e-5)
    assert torch.allclose(st["trades_kl"], kl, atol=1e-5)
    assert torch.allclose(st["px"], px, atol=1e-5) and torch.allclose(st["energy_align"], align, atol=1e-5)
    assert torch.allclose(st["energy_l2"], l2, atol=1e-4)
    w = WEIGHT_PRESETS["paper"]
    expected = w["px"] * px + w["ce"] * ce + w["energy_align"] * align + w["adv_ce"] * adv_ce + 2.0 * kl + 0.5 * l2
    assert torch.allclose(loss, expected, atol=1e-5)


def test_energy_l2_without_adversarial_samples_covers_data_and_negatives(batch):
    x, y = batch
    model = tiny().eval()
    obj = Objective(cfg("jem", weights={"energy_l2": 0.5}), TrackingBuffer(size=100, shape=(1, 8, 8), seed=0))
    x_neg = torch.rand(64, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    obj.sgld = lambda m, x: x_neg
    _, st = obj(model, x, y)
    with torch.no_grad():
        e = lambda t: -torch.logsumexp(model.logits(t), 1)  # noqa: E731
        expected = (e(x) ** 2).mean() + (e(x_neg) ** 2).mean()
    assert torch.allclose(st["energy_l2"], expected, atol=1e-4)


@pytest.mark.parametrize("attack_bf16", [False, True])
def test_inner_search_runs_in_float32_unless_asked(batch, attack_bf16):
    # a model trained against bf16 searches learns to mask bf16 gradients, so by default the
    # search leaves the training step's autocast; attack_bf16 keeps it inside
    x, y = batch
    model = tiny()
    obj = Objective(cfg("pgdat", attack_bf16=attack_bf16))
    seen = []
    search = obj.inner

    def spy(m, xb, yb, k, s):
        seen.append(torch.is_autocast_enabled("cpu"))
        return search(m, xb, yb, k, s)

    obj.inner = spy
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss, st = obj(model, x, y, keys=torch.arange(len(x)))
        assert torch.is_autocast_enabled("cpu"), "the training step's autocast must be restored"
    assert seen == [attack_bf16]
    assert torch.isfinite(loss) and "adv_acc" in st


@pytest.mark.parametrize("kind", ["ce", "saddle", "released", "trades"])
def test_inner_search_stays_in_the_eps_ball_and_raises_its_objective(batch, trained, kind):
    x, y = batch
    model = trained.train()
    inner = InnerMax(kind, eps=0.1, step=0.05, steps=4, w_adv=0.1, w_advce=1.0)
    xa = inner(model, x, y, keys=torch.arange(len(x)), seed=0)
    assert model.training
    assert (xa - x).abs().max() <= 0.1 + 1e-6 and xa.min() >= 0 and xa.max() <= 1
    with torch.no_grad():
        lc, la = model.logits(x), model.logits(xa)
        if kind == "ce":
            assert F.cross_entropy(la, y) > F.cross_entropy(lc, y)
        elif kind == "saddle":  # 0.1 * (-E(x~)) + CE(f(x~), y), written out independently
            obj = lambda t: (0.1 * torch.logsumexp(t, 1) + F.cross_entropy(t, y, reduction="none")).mean()  # noqa: E731
            assert obj(la) > obj(lc) + 0.5
        elif kind == "released":  # f(x~)[y] + ||n(f(x~)) - n(f(x))||^2
            obj = lambda t: (t.gather(1, y.view(-1, 1)).view(-1)  # noqa: E731
                             + (F.normalize(t, dim=1) - F.normalize(lc, dim=1)).pow(2).sum(1)).mean()
            assert obj(la) > obj(lc)
        elif kind == "trades":  # far more divergent than the search's start x + 0.001 N(0, 1)
            kl = lambda t: F.kl_div(F.log_softmax(t, 1), F.softmax(lc, 1), reduction="batchmean")  # noqa: E731
            start = (x + 0.001 * torch.randn_like(x)).clamp(0, 1)
            assert kl(la) > 10 * kl(model.logits(start))
    # keyed randomness: a sample's result does not depend on its batch
    xb = inner(model, x[:10], y[:10], keys=torch.arange(10), seed=0)
    assert torch.allclose(xb, xa[:10], atol=1e-6)
    model.eval()


@pytest.mark.parametrize("preset", ["released", "paper", "released-jem"])
def test_saddle_inner_step_raises_the_outer_loss(batch, trained, preset):
    """The default EB-JDAT inner step is the max player of the outer loss: it increases
    exactly the outer objective's terms in x~ (w_adv (E(x+) - E(x~)) + w_advce CE(x~)),
    computed here from the Objective itself with the searched samples swapped in."""
    x, y = batch
    model = trained.eval()
    c = cfg("ebjdat", weight_preset=preset, attack_steps=5, attack_step=0.02)
    obj = Objective(c, TrackingBuffer(size=100, shape=(1, 8, 8), seed=0))
    assert obj.inner.kind == "saddle"
    assert (obj.inner.w_adv, obj.inner.w_advce) == (WEIGHT_PRESETS[preset]["energy_align"], WEIGHT_PRESETS[preset]["adv_ce"])
    x_neg = torch.rand(64, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    obj.sgld = lambda m, x: x_neg
    search = obj.inner

    def outer_loss(x_adv):
        obj.inner = lambda m, xb, yb, k, s: x_adv
        with torch.no_grad():
            loss, _ = obj(model, x, y)
        return float(loss)

    start = (x + (2 * torch.rand(x.shape, generator=torch.Generator().manual_seed(1)) - 1) * 0.1).clamp(0, 1)
    x_adv = search(model, x, y, torch.arange(len(x)), 0)
    assert outer_loss(x_adv) > outer_loss(start) + 0.1
    assert outer_loss(x_adv) > outer_loss(x) + 0.1
    # and the energy part alone: the inner player lowers E(x~) (finds likely points), which the
    # outer alignment term then raises, unlike the old "raise E(x~, y)" inner step
    with torch.no_grad():
        assert model.energy(x_adv).mean() < model.energy(x).mean()


def test_released_compat_is_unprojected_and_in_half_units(batch):
    x, y = batch
    model = tiny()
    inner = InnerMax("released-compat", eps=0.1, step=0.05, steps=6)
    xa = inner(model, x, y, keys=torch.arange(len(x)), seed=0)
    dist = (xa - x).abs().max()
    # [-1, 1] units: step 0.05 is 0.025 in pixels; 6 steps + a start of 0.05 can reach 0.2 > eps
    assert dist > 0.1 + 1e-3
    assert dist <= 0.05 + 6 * 0.025 + 1e-6


def test_weight_presets_and_default():
    assert TrainConfig(objective="ebjdat").weight_preset == "released"
    assert cfg("ebjdat").term_weights() == {"px": 1.0, "ce": 1.0, "energy_align": 0.1, "adv_ce": 1.0}
    assert cfg("ebjdat", weight_preset="released-jem").term_weights() == {"px": 0.45, "ce": 0.45, "energy_align": 0.05,
                                                                         "adv_ce": 0.45}  # the script, literally
    assert TrainConfig(objective="ebjdat").inner == "saddle"
    paper = cfg("ebjdat", weight_preset="paper").term_weights()
    assert paper["px"] == 1 and paper["energy_align"] == 1 and paper["ce"] + paper["adv_ce"] == 1
    assert cfg("ebjdat", weights={"px": 0.0}).term_weights().get("px") is None
    assert cfg("trades", trades_beta=3.0).term_weights() == {"ce": 1.0, "trades_kl": 3.0}
    assert cfg("jem").needs_sgld and not cfg("jem").needs_adversarial
    assert cfg("standard", weights={"energy_l2": 0.1}).needs_sgld  # the regulariser needs SGLD samples
    assert cfg("pgdat").needs_adversarial and not cfg("pgdat").needs_sgld


@pytest.mark.parametrize("changes, message", [
    ({"objective": "magic"}, "objective must be one of"),
    ({"inner": "kl"}, "inner must be one of"),
    ({"eps": 8}, "eps must be <= 1"),
    ({"lr": 0}, "lr must be > 0"),
    ({"weights": {"foo": 1.0}}, "weights must map terms"),
    ({"weights": {"ce": -1.0}}, "must be a finite number >= 0"),
    ({"epochs": 1.5}, "epochs must be an integer"),
    ({"inner": "energy"}, "inner must be one of 'saddle', 'ce', 'released', 'released-compat'"),
    ({"attack_bf16": "yes"}, "attack_bf16 must be true or false"),
    ({"objective": "standard", "weights": {"ce": 0.0}}, "nothing to train"),
])
def test_config_errors_are_one_line(changes, message):
    with pytest.raises(ConfigError, match=message) as info:
        TrainConfig(**changes)
    assert "\n" not in str(info.value)


def test_unknown_setting_is_named():
    with pytest.raises(ConfigError, match=r"unknown settings \['epoch'\]"):
        TrainConfig.from_dict({"epoch": 3})


def test_tracking_buffer_reseeds_slots_and_non_finite_entries():
    buf = TrackingBuffer(size=20, shape=(1, 8, 8), seed=0)
    before = buf.data.clone()
    buf.data[3] = float("nan")
    n = buf.reseed(torch.tensor([5, 7]))
    assert n == 3
    assert torch.isfinite(buf.data).all()
    changed = (buf.data != before).flatten(1).any(1).nonzero().view(-1).tolist()
    assert changed == [3, 5, 7]


def test_buffer_draws_from_class_gaussians_ignore_the_training_autocast():
    # the trainer samples its buffer inside the bf16 step; fresh class-Gaussian draws must stay float32
    from landscape.sources.buffer import ClassGaussians

    g = torch.Generator().manual_seed(0)
    gauss = ClassGaussians(torch.rand(10, 64, generator=g), 0.1 * torch.rand(10, 64, 64, generator=g), (1, 8, 8))
    plain = TrackingBuffer(size=50, shape=(1, 8, 8), reinit_prob=1.0, init=gauss, seed=0)
    cast = TrackingBuffer(size=50, shape=(1, 8, 8), reinit_prob=1.0, init=gauss, seed=0)
    x_plain, _ = plain.sample(16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        x_cast, _ = cast.sample(16)
    assert x_cast.dtype == torch.float32 and torch.equal(x_cast, x_plain)


def test_every_single_valued_setting_declares_its_constraint():
    import dataclasses

    from landscape.train.config import CONSTRAINTS, TrainConfig

    # the rest have a shape of their own (tables, lists, paths, free text), checked by validate()
    shaped = {"dataset", "data_root", "val_size", "init_from", "architecture", "arch_kwargs", "weights",
              "decay_epochs", "device", "notes"}
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    assert names - shaped == set(CONSTRAINTS)
    for name, accepts in CONSTRAINTS.items():  # every default passes its own constraint
        accepts.check(name, getattr(TrainConfig(), name))
