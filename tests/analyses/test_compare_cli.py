"""Comparing models from the command line: several models scored into one tidy table whose
metadata records its settings, and `landscape compare` turning saved tables into a report."""

import json

import pandas as pd
import pytest
import torch

from landscape import save_model
from landscape.cli import main
from landscape.energy import EnergyModel
from landscape.models import create_model


@pytest.fixture
def two_models(trained_digits_model, tmp_path, monkeypatch):
    monkeypatch.setenv("LANDSCAPE_HOME", str(tmp_path / "home"))
    a = save_model(trained_digits_model, tmp_path / "a.safetensors", dataset="digits")
    torch.manual_seed(3)
    fresh = EnergyModel(create_model("smallcnn", width=8, hidden=32), input_shape=(1, 8, 8), n_classes=10)
    b = save_model(fresh, tmp_path / "b.safetensors", dataset="digits")
    return a, b


def test_score_several_models_into_one_table_with_its_settings(two_models, tmp_path, capsys):
    a, b = two_models
    out = tmp_path / "e.parquet"
    assert main(["--no-progress", "score", str(a), str(b), "--name", "trained", "--name", "fresh", "--data", "digits",
                 "--n", "30", "--sources", "clean,pgd:eps=8/255:steps=3", "--no-cache", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "eps_255 8.0" in printed and "steps 3" in printed  # the settings, in the summary
    table = pd.read_parquet(out)
    assert set(table.model) == {"trained", "fresh"} and len(table) == 2 * 2 * 30
    prov = table.attrs["landscape"]["models"]
    assert set(prov) == {"trained", "fresh"}
    pgd = prov["trained"]["sources"]["pgd:eps=8/255:steps=3"]
    assert pgd["kind"] == "pgd" and pgd["eps"] == pytest.approx(8 / 255) and pgd["eps_255"] == 8.0 and pgd["steps"] == 3
    assert prov["fresh"]["n"] == 30 and prov["fresh"]["precision"] == "fp32" and prov["fresh"]["toolkit_version"]
    assert prov["trained"]["model_file"].endswith("a.safetensors")


def test_compare_turns_saved_tables_into_a_report(two_models, tmp_path, capsys):
    a, b = two_models
    for path, name in ((a, "trained"), (b, "fresh")):
        assert main(["--no-progress", "score", str(path), "--name", name, "--data", "digits", "--n", "30",
                     "--sources", "clean,pgd:steps=3", "--no-cache", "--out", str(tmp_path / f"{name}.parquet")]) == 0
    capsys.readouterr()
    assert main(["--no-progress", "compare", str(tmp_path / "trained.parquet"), str(tmp_path / "fresh.parquet"),
                 "--out", str(tmp_path / "rep"), "--n-boot", "50"]) == 0
    out = capsys.readouterr().out
    assert "trained" in out and "fresh" in out and "report written to" in out
    gaps = pd.read_csv(tmp_path / "rep" / "gaps.csv")
    assert set(gaps.model) == {"trained", "fresh"} and set(gaps.pair) == {"clean vs pgd:steps=3"}
    summary = json.loads((tmp_path / "rep" / "summary.json").read_text())
    assert "pgd:steps=3" in json.dumps(summary["settings"])  # the tables' recorded settings
    # the same table twice overlaps: refused, nothing written
    assert main(["compare", str(tmp_path / "trained.parquet"), str(tmp_path / "trained.parquet"),
                 "--out", str(tmp_path / "rep2")]) == 2
    assert "overlap" in capsys.readouterr().err and not (tmp_path / "rep2").exists()


def test_score_and_compare_refuse_bad_input(two_models, tmp_path, capsys):
    a, b = two_models
    assert main(["score", str(a), str(b), "--name", "only-one", "--data", "digits"]) == 2
    assert "one label per model" in capsys.readouterr().err
    assert main(["compare", str(tmp_path / "none.parquet"), "--out", str(tmp_path / "r")]) == 2
    assert "does not exist" in capsys.readouterr().err
    (tmp_path / "bad.csv").write_text("a,b\n1,2\n")
    assert main(["compare", str(tmp_path / "bad.csv"), "--out", str(tmp_path / "r")]) == 2
    assert "must have columns" in capsys.readouterr().err
