"""The command line under torchrun: every sharded command joins the process group itself,
each sample is scored once (on one rank), and the outputs equal a single-process run."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from landscape import save_model
from landscape.cli import main

LANDSCAPE = shutil.which("landscape", path=str(Path(sys.executable).parent)) or "landscape"


def torchrun(*args, cwd, env_home):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "LANDSCAPE_PROGRESS": "0", "LANDSCAPE_HOME": str(env_home)}
    # after "--", so torchrun does not read the command's --n as its own abbreviated option
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "--",
           LANDSCAPE, "-v", *args]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600, cwd=cwd)


def scored_per_rank(stderr: str) -> dict[int, int]:
    """``{rank: samples}`` from the engine's per-rank log lines (one source at a time: PGD)."""
    out = {}
    for rank, n, total, sources in re.findall(r"rank (\d) of 2 scores (\d+) of (\d+) samples \(([^)]*)\)", stderr):
        if "pgd" in sources:
            out[int(rank)] = out.get(int(rank), 0) + int(n)
    return out


@pytest.fixture
def ckpt(trained_digits_model, tmp_path):
    return save_model(trained_digits_model, tmp_path / "digits.safetensors", dataset="digits")


def test_score_under_torchrun_equals_one_process(ckpt, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("LANDSCAPE_HOME", str(tmp_path / "home1"))
    common = ["--data", "digits", "--n", "60", "--sources", "clean,pgd,sgld", "--no-cache", "--batch-size", "16"]
    assert main(["--no-progress", "score", str(ckpt), *common, "--out", str(tmp_path / "one.parquet")]) == 0
    r = torchrun("score", str(ckpt), *common, "--out", str(tmp_path / "two.parquet"), cwd=tmp_path,
                 env_home=tmp_path / "home2")
    assert r.returncode == 0, r.stderr[-3000:]
    assert scored_per_rank(r.stderr) == {0: 30, 1: 30}  # each sample once, on one rank
    assert r.stdout.count("energy table (180 rows) written") == 1  # rank 0 alone reports and writes
    one, two = pd.read_parquet(tmp_path / "one.parquet"), pd.read_parquet(tmp_path / "two.parquet")
    pd.testing.assert_frame_equal(one, two, check_exact=False, rtol=1e-5, atol=1e-5)


def test_report_under_torchrun_equals_one_process(ckpt, tmp_path, monkeypatch):
    toml = tmp_path / "tiny.toml"
    toml.write_text(f"""title = "tiny"
batch_size = 16
cache = false
[data]
name = "digits"
n = 40
[[models]]
name = "m"
checkpoint = "{ckpt}"
[sources.clean]
kind = "clean"
[sources.pgd]
kind = "pgd"
steps = 3
[statistics]
n_boot = 50
[figures]
trajectories = 8
samples = 4
""")
    from landscape.analyses.runner import run_analysis

    monkeypatch.setenv("LANDSCAPE_HOME", str(tmp_path / "home1"))
    one = run_analysis(toml, tmp_path / "one", progress_bar=False)
    r = torchrun("report", str(toml), "--out", str(tmp_path / "two"), cwd=tmp_path, env_home=tmp_path / "home2")
    assert r.returncode == 0, r.stderr[-3000:]
    assert scored_per_rank(r.stderr) == {0: 20, 1: 20}
    two = pd.read_parquet(tmp_path / "two" / "energies.parquet")
    pd.testing.assert_frame_equal(one.energies, two, check_exact=False, rtol=1e-5, atol=1e-5)
    gaps = pd.read_csv(tmp_path / "two" / "gaps.csv")
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "one" / "gaps.csv"), gaps, check_exact=False, rtol=1e-6)
    assert r.stdout.count("report written to") == 1


def test_eval_under_torchrun_equals_one_process(ckpt, tmp_path, monkeypatch):
    monkeypatch.setenv("LANDSCAPE_HOME", str(tmp_path / "home1"))
    common = ["--data", "digits", "--n", "60", "--n-attack", "40", "--metrics", "accuracy,ece,pgd20,ood",
              "--ood", "uniform", "--batch-size", "16"]
    assert main(["--no-progress", "eval", str(ckpt), *common, "--out", str(tmp_path / "one.csv")]) == 0
    r = torchrun("eval", str(ckpt), *common, "--out", str(tmp_path / "two.csv"), cwd=tmp_path,
                 env_home=tmp_path / "home2")
    assert r.returncode == 0, r.stderr[-3000:]
    assert scored_per_rank(r.stderr) == {0: 20, 1: 20}  # PGD-20 on the 40 attacked samples, once each
    one, two = pd.read_csv(tmp_path / "one.csv"), pd.read_csv(tmp_path / "two.csv")
    pd.testing.assert_frame_equal(one.drop(columns="settings"), two.drop(columns="settings"), check_exact=False,
                                  rtol=1e-6, atol=1e-9)
