"""The benchmark scripts run (tiny settings) and print every ratio they promise."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run(script, *args, timeout=600):
    env = {**os.environ, "LANDSCAPE_PROGRESS": "0", "OMP_NUM_THREADS": "1"}
    r = subprocess.run([sys.executable, str(ROOT / "benchmarks" / script), *args], capture_output=True, text=True,
                       env=env, timeout=timeout, cwd=ROOT)
    assert r.returncode == 0, r.stderr[-3000:]
    return r.stdout


@pytest.mark.slow
def test_train_step_benchmark_runs_every_objective():
    out = run("train_step.py", "--batch", "16", "--repeat", "1", "--bf16", "off")
    for name in ("standard", "pgdat", "trades", "jem", "ebjdat"):
        assert f"\n{name}" in out, out
    assert "EB-JDAT step / (JEM step + K PGD steps) =" in out


@pytest.mark.slow
def test_engine_benchmark_prints_its_ratios():
    out = run("engine.py", "--n", "64", "--batch-size", "32", "--repeat", "1", "--threads", "1")
    assert "native bf16:" in out
    for line in ("(a) scoring throughput vs bare net(x) loop, fp32", "(c) PGD-10 time / 10 fwd+bwd of the bare net, fp32",
                 "(c) SGLD-20 time / 20 fwd+bwd of the bare net, bf16"):
        assert line in out, out
    assert "targets met" in out


@pytest.mark.slow
def test_attack_precision_benchmark_compares_both_searches(tmp_path):
    out = run("attack_precision.py", "--epochs", "1", "--seeds", "0", "--json", str(tmp_path / "r.json"))
    assert "bf16-search model / fp32-search model" in out and "training time, bf16 search / fp32 search" in out


@pytest.mark.slow
def test_device_check_runs_on_the_cpu_and_prints_every_ratio(tmp_path):
    import json

    out = run("device_check.py", "--device", "cpu", "--small", "--json", str(tmp_path / "dc.json"))
    for label in ("(a) scoring throughput / bare forward loop", "(b) PGD-10 speed vs torchattacks.PGD",
                  "(c) PGD-10 / 10 fwd+bwd of the bare network", "(c) SGLD-20 / 20 fwd+bwd of the bare network",
                  "(d) EB-JDAT step / (JEM step + 3 PGD steps)", "(e) achieved bf16 TFLOP/s / the GPU's bf16 peak"):
        assert label in out, out
    doc = json.loads((tmp_path / "dc.json").read_text())
    assert doc["network"] == "WRN-16-2" and doc["device_type"] == "cpu"
    keys = {r["key"] for r in doc["ratios"]}
    assert keys == {"scoring", "peak_share", "pgd_bound", "sgld_bound", "torchattacks", "ebjdat_bound"}
    measured = {r["key"]: r["value"] for r in doc["ratios"] if r["value"] is not None}
    assert all(v > 0 for v in measured.values()) and {"scoring", "pgd_bound", "sgld_bound", "ebjdat_bound"} <= set(measured)


@pytest.mark.slow
def test_channels_last_benchmark_prints_its_ratios_and_agreement():
    out = run("channels_last.py", "--n", "64", "--batch-size", "32", "--repeat", "1", "--threads", "1")
    for label in ("(1) forward", "(2) forward + input gradient", "(3) robust_accuracy, PGD-20 eps 0.02, n=64"):
        assert label in out, out
    assert "target <= 1: ok" in out, out
