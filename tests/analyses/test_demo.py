"""The main job: `landscape demo` on the bundled Fashion-MNIST models."""

import json
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest

from landscape.cli import main

ROOT = Path(__file__).resolve().parents[2]
MODELS = ("standard", "pgdat", "trades", "jem", "ebjdat")


def test_bundled_checkpoints_are_small_and_load_without_flags():
    from landscape import load_model

    for name in MODELS:
        path = ROOT / "checkpoints" / "fmnist" / f"{name}.safetensors"
        # JEM-family files carry their replay buffer (2,000 float16 samples, 3.1 MB)
        assert path.stat().st_size < (5_000_000 if name in ("jem", "ebjdat") else 2_000_000), path
        model = load_model(path)
        assert model.input_shape == (1, 28, 28) and model.n_classes == 10


class _Page(HTMLParser):
    def __init__(self):
        super().__init__()
        self.images, self.tables = [], 0

    def handle_starttag(self, tag, attrs):
        if tag == "img":
            self.images.append(dict(attrs).get("src", ""))
        self.tables += tag == "table"


def test_demo_on_a_small_subset_writes_every_output(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("LANDSCAPE_HOME", str(tmp_path / "home"))
    out = tmp_path / "demo"
    assert main(["--no-progress", "demo", "--out", str(out), "--n", "40"]) == 0
    printed = capsys.readouterr().out
    assert "clean vs pgd" in printed and "clean vs sgld" in printed and "clean vs replay" in printed
    assert "index.html" in printed
    for name in ("index.html", "index.md", "summary.json", "energies.parquet", "gaps.csv"):
        assert (out / name).stat().st_size > 0, name
    energies = pd.read_parquet(out / "energies.parquet")
    assert set(energies.model) == {"standard", "pgd-at", "trades", "jem", "eb-jdat"}
    assert set(energies.source) == {"clean", "pgd", "replay", "sgld"} and len(energies) == 5 * 3 * 40 + 2 * 40
    # the models' own samples: only the JEM-family models carry a replay buffer
    assert set(energies[energies.source == "replay"].model) == {"jem", "eb-jdat"}
    gaps = pd.read_csv(out / "gaps.csv")
    assert len(gaps) == 3 * 3 + 2 * 6
    page = _Page()
    page.feed((out / "index.html").read_text())
    n_figures = len(list((out / "figures").glob("*.png")))
    assert len(page.images) == n_figures >= 5 + 1 + 1 + 1 + 5  # histograms, grid, trajectories, sensitivity, samples
    assert (out / "figures" / "sampler_sensitivity.png").is_file()
    assert all(src.startswith("data:image/png;base64,") for src in page.images)
    assert page.tables >= 4
    assert json.loads((out / "summary.json").read_text())
    # the report states how each model was trained, regulariser included (the same for JEM and EB-JDAT)
    trained = [line for line in (out / "index.md").read_text().splitlines() if "energy_l2 0.05" in line]
    assert [line.split("|")[1].strip() for line in trained] == ["jem", "eb-jdat"]


@pytest.mark.slow
def test_a_wheel_installed_elsewhere_runs_the_demo(tmp_path):
    """A non-editable install (the wheel's files only, run from another folder) finds its
    bundled analyses and checkpoints as package data."""
    import os
    import sys
    import zipfile

    root = Path(__file__).resolve().parents[2]
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                        str(tmp_path / "dist"), str(root)], capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    (wheel,) = (tmp_path / "dist").glob("landscape-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    for needed in ("landscape/_bundled/analyses/fmnist-demo.toml", "landscape/_bundled/checkpoints/manifest.toml",
                   "landscape/_bundled/checkpoints/fmnist/ebjdat.safetensors", "landscape/train/recipes/fmnist-jem.toml"):
        assert needed in names, needed
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)  # what pip does for a pure-Python wheel, minus the scripts
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(PYTHONPATH=str(site), LANDSCAPE_PROGRESS="0", LANDSCAPE_HOME=str(tmp_path / "home"), OMP_NUM_THREADS="1")
    work = tmp_path / "elsewhere"
    work.mkdir()
    code = ("import landscape, landscape.paths as p, sys; "
            "assert landscape.__file__.startswith(sys.argv[1]), landscape.__file__; "
            "assert p.PROJECT_ROOT is None and str(p.ANALYSES_DIR).startswith(sys.argv[1]); "
            "sys.argv = ['landscape', 'demo', '--n', '40', '--out', 'demo']; "
            "from landscape.cli import main; sys.exit(main())")
    r = subprocess.run([sys.executable, "-c", code, str(site)], capture_output=True, text=True, env=env, cwd=work,
                       timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    assert (work / "demo" / "index.html").is_file() and "report written to" in r.stdout
