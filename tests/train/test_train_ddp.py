"""Two processes under torchrun (gloo): training runs, the result loads, and it equals one process
with the same global batch."""

import os
import subprocess
import sys

import pytest
import torch

import landscape
from landscape.train import fit

ARGS = ["--dataset", "digits", "--epochs", "1", "--optimizer", "sgd", "--lr", "0.05", "--seed", "1",
        "--set", "arch_kwargs={width=8, hidden=16}", "--set", "val_size=200", "--set", "val_pgd_size=32",
        "--set", "val_attack_steps=1", "--set", "sgld_steps=2", "--set", "num_threads=1"]


def torchrun(tmp_path, out, extra):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "LANDSCAPE_PROGRESS": "0"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "landscape.cli", "-q", "train", "--out", str(out), *ARGS, *extra]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path)


def test_two_process_training_matches_one_process_with_the_same_global_batch(tmp_path):
    run = torchrun(tmp_path, tmp_path / "ddp", ["--objective", "standard", "--batch-size", "32",
                                                "--checkpoint-every", "10"])
    assert run.returncode == 0, run.stderr[-3000:]
    ddp = landscape.load_model(tmp_path / "ddp" / "model.safetensors")
    state = torch.load(tmp_path / "ddp" / "train_state.pt", weights_only=True)
    assert state["world_size"] == 2 and len(state["ranks"]) == 2
    # one process, batch 64 = the two ranks' 2 x 32: the same data, the same averaged gradient
    torch.set_num_threads(1)
    single = fit(dict(dataset="digits", epochs=1, optimizer="sgd", lr=0.05, seed=1, objective="standard",
                      batch_size=64, arch_kwargs={"width": 8, "hidden": 16}, val_size=200, val_pgd_size=32,
                      val_attack_steps=1, sgld_steps=2, num_threads=1), out_dir=tmp_path / "single")
    assert single.step == state["step"]
    for k, v in single.model.net.state_dict().items():
        assert torch.allclose(ddp.net.state_dict()[k], v, atol=1e-5), k


@pytest.mark.slow
def test_two_process_jem_keeps_one_buffer_per_rank_and_resumes(tmp_path):
    out = tmp_path / "jem"
    run = torchrun(tmp_path, out, ["--objective", "jem", "--batch-size", "32", "--checkpoint-every", "5",
                                   "--set", "buffer_size=64", "--set", "n_negatives=8"])
    assert run.returncode == 0, run.stderr[-3000:]
    state = torch.load(out / "train_state.pt", weights_only=True)
    b0, b1 = (r["buffer"]["data"] for r in state["ranks"])
    assert b0.shape == b1.shape == (64, 1, 8, 8) and not torch.equal(b0, b1)
    again = torchrun(tmp_path, out, ["--resume", "--epochs", "2"])  # continue for one more epoch
    assert again.returncode == 0, again.stderr[-3000:]
    state = torch.load(out / "train_state.pt", weights_only=True)
    assert state["epoch"] == 2 and len(state["history"]) == 2
    landscape.load_model(out / "model.safetensors")
