"""The training loop: files, metrics, loading without flags, exact resume, divergence rollbacks."""

import csv
import json
import math

import pytest
import torch

import landscape
from landscape.errors import ConfigError
from landscape.train import fit
from landscape.train.state import load_train_state


def tiny_config(**kw):
    cfg = dict(dataset="digits", objective="standard", arch_kwargs={"width": 8, "hidden": 32}, optimizer="adam",
               lr=3e-3, epochs=2, batch_size=64, val_size=200, val_pgd_size=64, val_attack_steps=2, eps=0.1,
               attack_step=0.05, attack_steps=2, sgld_steps=3, buffer_size=100, n_negatives=16, seed=3)
    cfg.update(kw)
    return cfg


def weights(model):
    return {k: v.detach().clone() for k, v in model.net.state_dict().items()}


def test_fit_writes_a_run_that_loads_without_flags(tmp_path):
    res = fit(tiny_config(objective="pgdat", checkpoint_every=5, batch_size=128), out_dir=tmp_path / "run")
    assert res.status == "completed" and res.step == 2 * (1237 // 128)
    run = tmp_path / "run"
    for name in ("config.json", "train_state.pt", "model.safetensors", "best.safetensors", "metrics.csv", "metrics.json"):
        assert (run / name).is_file(), name
    # the model: one call, no flags, same weights as the run's
    model = landscape.load_model(run / "model.safetensors")
    for k, v in weights(res.model).items():
        assert torch.equal(model.net.state_dict()[k], v)
    assert model.metadata["dataset"] == "digits" and model.metadata["training"]["config"]["objective"] == "pgdat"
    assert not model.training
    # the training state: plain containers only
    state = torch.load(run / "train_state.pt", weights_only=True)
    assert state["format"] == "landscape-train-state" and state["step"] == res.step and state["epoch"] == 2
    assert set(state) >= {"model", "optimizer", "scheduler", "ranks", "config", "history"}
    # metrics: one row per epoch with every loss term, accuracies and energies
    rows = list(csv.DictReader(open(run / "metrics.csv")))
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    for col in ("train_adv_ce", "train_acc", "train_adv_acc", "val_acc", "val_pgd_acc", "val_e_clean", "val_e_adv",
                "val_e_sgld", "train_e_clean", "train_e_adv", "lr"):
        assert col in rows[0], col
        assert math.isfinite(float(rows[-1][col]))
    js = json.loads((run / "metrics.json").read_text())
    assert js["epochs"][1]["val_acc"] == pytest.approx(float(rows[1]["val_acc"]), rel=1e-5)
    assert 0.0 <= js["epochs"][1]["val_pgd_acc"] <= js["epochs"][1]["val_acc"] + 0.2


def test_the_test_split_is_never_used_for_selection(tmp_path, monkeypatch):
    import landscape.train.loop as loop

    seen = []
    real = loop.load_dataset
    monkeypatch.setattr(loop, "load_dataset", lambda name, split, **kw: seen.append(split) or real(name, split, **kw))
    fit(tiny_config(epochs=1, val_pgd_size=0), out_dir=tmp_path / "r")
    assert seen == ["train"]


def test_resume_reproduces_the_uninterrupted_run_exactly(tmp_path):
    # EB-JDAT touches every piece of state: replay buffer, global RNG (input noise, SGLD noise),
    # keyed PGD starts, Adam moments, the LR schedule and the data order mid-epoch
    cfg = tiny_config(objective="ebjdat", input_noise=0.03, checkpoint_every=7, warmup_steps=5)
    full = fit(cfg, out_dir=tmp_path / "full")
    part = fit(cfg, out_dir=tmp_path / "part", stop_after_steps=25)  # "killed" after step 25; last checkpoint: 21
    assert part.status == "stopped"
    assert load_train_state(tmp_path / "part" / "train_state.pt")["step"] == 21
    resumed = fit(out_dir=tmp_path / "part", resume=True)
    assert resumed.status == "completed" and resumed.step == full.step
    a, b = weights(full.model), weights(resumed.model)
    for k in a:
        assert torch.equal(a[k], b[k]), k
    sa = torch.load(tmp_path / "full" / "train_state.pt", weights_only=True)
    sb = torch.load(tmp_path / "part" / "train_state.pt", weights_only=True)
    assert torch.equal(sa["ranks"][0]["buffer"]["data"], sb["ranks"][0]["buffer"]["data"])
    assert [r["val_acc"] for r in sa["history"]] == [r["val_acc"] for r in sb["history"]]


def test_an_injected_nan_rolls_back_and_training_continues(tmp_path, caplog):
    fired = []

    def hook(step, loss):
        if step == 12 and not fired:
            fired.append(step)
            return loss * float("nan")
        return loss

    cfg = tiny_config(objective="jem", checkpoint_every=5)
    with caplog.at_level("WARNING"):
        res = fit(cfg, out_dir=tmp_path / "r", loss_hook=hook)
    assert res.status == "completed" and res.rollbacks == 1
    ev = res.events[0]
    assert ev["event"] == "rollback" and ev["at_step"] == 12 and ev["back_to_step"] == 10
    assert ev["lr_scale"] == 0.5 and ev["reseeded_buffer_entries"] >= 1
    assert "rolled back to step 10" in caplog.text
    assert all(torch.isfinite(v).all() for v in res.model.net.state_dict().values())
    state = torch.load(tmp_path / "r" / "train_state.pt", weights_only=True)
    assert state["scheduler"]["lr_scale"] == 0.5 and state["scheduler"]["rollbacks"] == 1
    assert json.loads((tmp_path / "r" / "metrics.json").read_text())["events"][0]["at_step"] == 12


def test_a_loss_past_the_threshold_also_rolls_back(tmp_path):
    fired = []

    def hook(step, loss):
        if step == 3 and not fired:
            fired.append(step)
            return loss * 1e9
        return loss

    res = fit(tiny_config(epochs=1), out_dir=tmp_path / "r", loss_hook=hook)
    assert res.status == "completed" and res.rollbacks == 1 and res.events[0]["back_to_step"] == 0


def test_too_many_rollbacks_stop_cleanly_keeping_the_last_good_checkpoint(tmp_path):
    hook = lambda step, loss: loss * float("nan") if step >= 6 else loss  # noqa: E731
    res = fit(tiny_config(objective="jem", checkpoint_every=4, max_rollbacks=2), out_dir=tmp_path / "r", loss_hook=hook)
    assert res.status == "diverged"
    assert "diverged 3 times" in res.message and "last good checkpoint (step 4)" in res.message
    assert res.rollbacks == 2 and [e["event"] for e in res.events] == ["rollback", "rollback", "stopped"]
    state = torch.load(tmp_path / "r" / "train_state.pt", weights_only=True)
    assert state["step"] == 4
    model = landscape.load_model(tmp_path / "r" / "model.safetensors")
    assert model.metadata["training"]["step"] == 4


def test_run_folder_and_resume_errors(tmp_path):
    fit(tiny_config(epochs=1), out_dir=tmp_path / "r", stop_after_steps=2)
    with pytest.raises(ConfigError, match="already holds a run"):
        fit(tiny_config(epochs=1), out_dir=tmp_path / "r")
    with pytest.raises(ConfigError, match=r"cannot resume .* with different settings \['lr'\]"):
        fit(out_dir=tmp_path / "r", resume=True, lr=0.5)
    with pytest.raises(ConfigError, match="nothing to resume"):
        fit(out_dir=tmp_path / "empty", resume=True)


def test_validation_attack_runs_in_float32_even_under_bf16_training(monkeypatch):
    # val_pgd_acc selects best.safetensors; a model trained with bf16 searches can mask bf16
    # gradients, so the validation attack must leave the training autocast
    from landscape.train import loop
    from landscape.train.config import TrainConfig

    seen = []
    real = loop.PGD.__call__

    def spy(self, *a, **k):
        seen.append(torch.is_autocast_enabled("cpu"))
        return real(self, *a, **k)

    monkeypatch.setattr(loop.PGD, "__call__", spy)
    cfg = TrainConfig(**tiny_config(bf16=True))
    model = landscape.create_model("smallcnn", in_channels=1, n_classes=10, width=8, hidden=32)
    model = landscape.EnergyModel(model, input_shape=(1, 8, 8), n_classes=10)
    x = torch.rand(70, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    y = torch.arange(70) % 10
    with torch.autocast("cpu", dtype=torch.bfloat16):  # as in a bf16 training step
        out = loop._evaluate(model, cfg, x, y, torch.device("cpu"))
    assert seen and not any(seen)
    assert 0.0 <= out["val_pgd_acc"] <= 1.0 and math.isfinite(out["val_e_adv"])


def test_init_from_fine_tunes_a_saved_model_and_its_buffer(tmp_path):
    base = fit(tiny_config(objective="jem", epochs=1), out_dir=tmp_path / "jem")
    src = landscape.load_model(base.model_path)
    assert src.replay_buffer is not None
    # a stopped run writes nothing after step 0: its step-0 checkpoint holds the loaded weights and buffer
    res = fit(tiny_config(objective="ebjdat", epochs=1, init_from=str(base.model_path)), out_dir=tmp_path / "ft",
              stop_after_steps=1)
    start = landscape.load_model(tmp_path / "ft" / "model.safetensors")
    assert start.metadata["training"]["step"] == 0 and start.metadata["training"]["config"]["init_from"]
    for k, v in src.net.state_dict().items():
        assert torch.equal(start.net.state_dict()[k], v), k
    assert torch.equal(start.replay_buffer, src.replay_buffer)
    assert res.status == "stopped"
    with pytest.raises(ConfigError, match="its network is smallcnn .* this run builds smallcnn"):
        fit(tiny_config(init_from=str(base.model_path), arch_kwargs={"width": 4, "hidden": 8}), out_dir=tmp_path / "bad")
    with pytest.raises(ConfigError, match="init_from must be a checkpoint path"):
        fit(tiny_config(init_from=""), out_dir=tmp_path / "bad2")
