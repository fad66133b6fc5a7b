import subprocess
import sys

import pandas as pd
import pytest

from landscape import __version__
from landscape.cli import main


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "landscape.cli", *args], capture_output=True, text=True)


def test_version_and_help():
    r = run_cli("--version")
    assert r.returncode == 0 and r.stdout.strip() == f"landscape {__version__}"
    r = run_cli("--help")
    assert r.returncode == 0 and all(c in r.stdout for c in ("demo", "quickstart", "score", "report", "checkpoints"))


def test_info_lists_architectures_and_datasets(capsys):
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert "wrn" in out and "smallcnn" in out and "fashion-mnist" in out


@pytest.mark.parametrize("args, fragment", [
    (["quickstart", "--data", "imagenette"], "unknown dataset 'imagenette'"),
    (["quickstart", "--out", "table.xlsx"], "--out must end in .csv or .parquet"),
    (["quickstart", "--n", "0"], "--n must be >= 1"),
    (["demo", "--n", "0"], "--n must be >= 1"),
])
def test_bad_input_gives_one_line_and_exit_2(args, fragment):
    r = run_cli(*args)
    assert r.returncode == 2
    assert r.stderr.strip().count("\n") == 0, r.stderr
    assert r.stderr.startswith("landscape: error:") and fragment in r.stderr
    assert "Traceback" not in r.stderr


def test_quickstart_on_a_small_selection(tmp_path, capsys):
    out = tmp_path / "energies.parquet"
    assert main(["--no-progress", "quickstart", "--n-train", "2000", "--n", "300", "--epochs", "1", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "clean" in text and "uniform-noise" in text
    table = pd.read_parquet(out)
    assert len(table) == 900 and set(table["source"].str.split("(").str[0]) == {"clean", "gaussian-noise", "uniform-noise"}
    assert table["energy"].notna().all()
    assert (table["energy"] <= table["conditional_energy"] + 1e-5).all()
    clean = table[table.source == "clean"]
    assert clean["correct"].mean() > 0.5  # trained: far above chance on real images


def test_info_says_where_each_dataset_is_and_which_checkpoints_are_offline(tmp_path, monkeypatch, capsys):
    (tmp_path / "cifar-10-batches-py").mkdir()
    monkeypatch.setenv("LANDSCAPE_DATA", str(tmp_path))
    monkeypatch.setenv("LANDSCAPE_HOME", str(tmp_path / "home"))
    assert main(["info"]) == 0
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines() if line.startswith("  ")}
    assert lines["cifar10"].endswith(str(tmp_path)) and lines["cifar100"].endswith("not found")
    assert lines["digits"].endswith("bundled with scikit-learn")
    assert "fashion-mnist" in lines["fashion-mnist"].split()[-1] or lines["fashion-mnist"].endswith("not found")
    assert lines["fmnist-jem"].endswith("bundled, available offline")
    assert lines["jem-cifar10"].endswith("not cached")


def test_python_dash_m_landscape_is_the_command_line():
    r = subprocess.run([sys.executable, "-m", "landscape", "--help"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "score" in r.stdout and "compare" in r.stdout and "usage: landscape" in r.stdout


def test_radii_as_written_in_papers_and_source_typos_name_the_allowed_keys():
    from landscape.analyses.config import parse_analysis
    from landscape.analyses.runner import build_sources
    from landscape.errors import ConfigError

    doc = {"data": {"name": "cifar10"}, "models": [{"name": "m", "checkpoint": "x.pt"}],
           "sources": {"pgd": {"kind": "pgd", "eps": "8/255", "step": "2/255"}}}
    pgd = build_sources(parse_analysis(doc))["pgd"]
    assert pgd.eps == pytest.approx(8 / 255) and pgd.step == pytest.approx(2 / 255)
    doc["sources"] = {"pgd": {"kind": "pgd", "stpes": 10}}
    with pytest.raises(ConfigError) as info:
        build_sources(parse_analysis(doc))
    msg = str(info.value)
    assert msg.startswith("[sources.pgd]: source 'pgd' has no setting 'stpes'; its settings are: norm, eps, step, steps")
    assert "__init__" not in msg and "keyword argument" not in msg
