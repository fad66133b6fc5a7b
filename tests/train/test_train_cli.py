"""``landscape train``: recipes, one-line errors (exit 2), a run and its resume, and a real kill -9."""

import os
import signal
import subprocess
import sys
import time

import pytest
import torch

import landscape
from landscape.cli import main
from landscape.train import list_recipes, load_recipe

TINY = ["--dataset", "digits", "--epochs", "1", "--batch-size", "64", "--set", "arch_kwargs={width=8, hidden=16}",
        "--set", "val_size=200", "--set", "val_pgd_size=32", "--set", "val_attack_steps=1", "--set", "sgld_steps=2",
        "--set", "num_threads=1"]


def test_bundled_recipes_are_valid_and_fashion_mnist():
    names = list_recipes()
    assert {"fmnist-standard", "fmnist-pgdat", "fmnist-trades", "fmnist-jem", "fmnist-ebjdat"} <= set(names)
    for name in names:
        cfg = load_recipe(name)
        assert cfg.dataset == "fashion-mnist" and cfg.eps == 0.1 and cfg.notes
        assert cfg.objective == name.split("-", 1)[1]


def test_list_recipes(capsys):
    assert main(["train", "--list-recipes"]) == 0
    out = capsys.readouterr().out
    assert "fmnist-ebjdat" in out and "energy_align" in out


@pytest.mark.parametrize("argv, message", [
    (["train", "--recipe", "nope"], "unknown recipe 'nope'"),
    (["train", "--objective", "magic"], "objective must be one of"),
    (["train", "--set", "epochz=3"], "unknown settings ['epochz']"),
    (["train", "--set", "novalue"], "--set takes KEY=VALUE"),
    (["train", "--resume"], "--resume needs --out"),
    (["train", "--config", "/nonexistent.toml"], "config file /nonexistent.toml does not exist"),
])
def test_errors_exit_2_with_one_line(capsys, argv, message):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("landscape: error: ") and message in err


def test_train_then_resume_from_the_command_line(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--objective", "trades", "--out", str(out), "--attack-bf16", *TINY]) == 0
    assert "model:" in capsys.readouterr().out
    assert main(["train", "--out", str(out), "--objective", "trades", *TINY]) == 2
    assert "already holds a run" in capsys.readouterr().err
    assert main(["train", "--out", str(out), "--resume", "--epochs", "2"]) == 0
    state = torch.load(out / "train_state.pt", weights_only=True)
    assert state["epoch"] == 2 and state["config"]["objective"] == "trades" and state["config"]["attack_bf16"] is True
    assert landscape.load_model(out / "model.safetensors").metadata["training"]["epoch"] == 2


@pytest.mark.slow
def test_kill_9_then_resume_reproduces_the_uninterrupted_run(tmp_path):
    args = ["--objective", "jem", "--dataset", "digits", "--epochs", "3", "--batch-size", "32", "--seed", "4",
            "--checkpoint-every", "3", "--set", "arch_kwargs={width=8, hidden=16}", "--set", "val_size=200",
            "--set", "val_pgd_size=16", "--set", "val_attack_steps=1", "--set", "sgld_steps=2",
            "--set", "num_threads=1", "--set", "input_noise=0.03"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "LANDSCAPE_PROGRESS": "0"}
    cmd = [sys.executable, "-m", "landscape.cli", "-q", "train"]
    full = subprocess.run(cmd + ["--out", str(tmp_path / "full"), *args], env=env, capture_output=True, text=True)
    assert full.returncode == 0, full.stderr
    proc = subprocess.Popen(cmd + ["--out", str(tmp_path / "killed"), *args], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    state = tmp_path / "killed" / "train_state.pt"
    deadline = time.time() + 120
    while time.time() < deadline:  # wait until the run is well into its first epoch
        if state.exists() and torch.load(state, weights_only=True)["step"] >= 9:
            break
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    killed_at = torch.load(state, weights_only=True)["step"]
    assert killed_at < torch.load(tmp_path / "full" / "train_state.pt", weights_only=True)["step"]
    again = subprocess.run(cmd + ["--out", str(tmp_path / "killed"), "--resume"], env=env, capture_output=True, text=True)
    assert again.returncode == 0, again.stderr
    a = landscape.load_model(tmp_path / "full" / "model.safetensors").net.state_dict()
    b = landscape.load_model(tmp_path / "killed" / "model.safetensors").net.state_dict()
    for k in a:
        assert torch.equal(a[k], b[k]), k
