"""landscape.evaluate (one table, every value with its settings) and the ``landscape eval`` command."""

import json

import numpy as np
import pytest
import torch

import landscape
from landscape.cli import main
from landscape.data import load_dataset, subset, to_tensors
from landscape.errors import LandscapeError
from landscape.evaluation import COLUMNS, format_table, read_table, wide_table, write_table
from landscape.evaluation.metrics import expected_calibration_error, softmax


@pytest.fixture(scope="module")
def table_and_models(trained_digits_model):
    torch.manual_seed(1)
    untrained = landscape.create_model("smallcnn", in_channels=1, n_classes=10, width=8, hidden=32)
    other = landscape.EnergyModel(untrained, "identity", input_shape=(1, 8, 8), n_classes=10)
    models = {"trained": trained_digits_model, "untrained": other}
    table = landscape.evaluate(models, "digits", ["accuracy", "ece", "pgd20", "autoattack", "ood"], n=80,
                               n_attack=12, aa_version="custom", aa_attacks=["apgd-ce"], ood=["uniform"], seed=5)
    return table, models


def test_one_long_table_with_settings_next_to_every_value(table_and_models, trained_digits_model):
    table, _ = table_and_models
    assert list(table.columns) == COLUMNS
    assert list(dict.fromkeys(table["model"])) == ["trained", "untrained"]
    metrics = ["clean_acc", "ece", "pgd20_acc", "autoattack_acc", "worst_case_acc", "auroc_energy:uniform",
               "auroc_msp:uniform"]
    assert list(table[table.model == "trained"]["metric"]) == metrics
    for r in table.itertuples():
        s = json.loads(r.settings)
        assert s["seed"] == 5 and s["data"] == "digits test"
    rows = {r.metric: r for r in table[table.model == "trained"].itertuples()}
    pgd = json.loads(rows["pgd20_acc"].settings)
    assert (pgd["eps"], pgd["step"], pgd["steps"], pgd["restarts"], pgd["n"]) == (0.1, 0.01, 20, 1, 12)
    assert rows["pgd20_acc"].n == rows["autoattack_acc"].n == 12 and rows["clean_acc"].n == 80
    aa = json.loads(rows["autoattack_acc"].settings)
    assert aa["eps"] == 0.1 and aa["attacks"] == ["apgd-ce"] and aa["version"] == "custom"
    assert json.loads(rows["ece"].settings)["bins"] == 15
    # clean accuracy and ECE against an independent computation on the same 80 samples
    x, y = to_tensors(subset(load_dataset("digits", "test"), 80, seed=5))
    with torch.no_grad():
        logits = trained_digits_model.logits(x)
    assert rows["clean_acc"].value == pytest.approx(float((logits.argmax(1) == y).float().mean()))
    assert rows["ece"].value == pytest.approx(expected_calibration_error(softmax(logits), y.numpy()), abs=1e-9)
    assert rows["autoattack_acc"].value <= rows["pgd20_acc"].value < rows["clean_acc"].value


def test_wide_and_pretty_tables(table_and_models):
    table, _ = table_and_models
    wide = wide_table(table)
    assert list(wide.index) == ["trained", "untrained"] and "pgd20_acc" in wide.columns
    text = format_table(table)
    lines = text.splitlines()
    assert lines[0].split()[:4] == ["model", "clean", "(%)", "ECE"]
    assert "PGD-20 (%)" in lines[0] and "AutoAttack (%)" in lines[0] and "AUROC E(x) uniform (%)" in lines[0]
    acc = wide.loc["trained", "clean_acc"]
    assert f"{100 * acc:.2f}" in lines[2]
    assert "settings:" in text and "eps=0.1 (25.5/255)" in text and "steps=20" in text and "restarts=1" in text


@pytest.mark.parametrize("suffix", [".csv", ".json"])
def test_table_files_round_trip(table_and_models, tmp_path, suffix):
    table, _ = table_and_models
    path = write_table(table, tmp_path / f"eval{suffix}")
    back = read_table(path)
    assert list(back["metric"]) == list(table["metric"]) and np.allclose(back["value"], table["value"])
    assert [json.loads(s) for s in back["settings"]] == [json.loads(s) for s in table["settings"]]
    with pytest.raises(LandscapeError, match=r"written as \.csv or \.json"):
        write_table(table, tmp_path / "eval.xlsx")


def test_evaluate_validates_before_running(trained_digits_model, tmp_path):
    with pytest.raises(LandscapeError, match="metrics must be 'all' or a list out of"):
        landscape.evaluate(trained_digits_model, "digits", ["accuracy", "fidelity"])
    with pytest.raises(LandscapeError, match="out must end in .csv or .json"):
        landscape.evaluate(trained_digits_model, "digits", ["accuracy"], out=tmp_path / "x.txt")
    with pytest.raises(LandscapeError, match="no bundled reference classifier for dataset 'digits'"):
        landscape.evaluate(trained_digits_model, "digits", ["accuracy", "fd"])
    with pytest.raises(LandscapeError, match="Inception-v3 weights"):
        landscape.evaluate(trained_digits_model, "digits", ["fid"], inception_weights=tmp_path / "none.pth")


def test_evaluate_fd_with_a_given_reference_classifier(trained_digits_model):
    table = landscape.evaluate({"m": trained_digits_model}, "digits", ["fd"], n_gen=40,
                               feature_model=trained_digits_model, sgld={"steps": 2, "init": "gaussian"})
    (row,) = table.itertuples()
    s = json.loads(row.settings)
    assert row.metric == "fd_reference" and row.value > 0 and row.n == 40
    assert s["measure"] == "FD (reference-classifier features), not FID"
    assert s["sampler"]["steps"] == 2 and s["n_reference"] == 40 and s["feature_model"]["name"] == "digits-cnn"
    assert s["sampler"]["init"] == "gaussian" and s["class_gaussians_fit_on"] == "digits train"
    assert "not FID" in format_table(table)


def test_cli_eval_prints_json_and_writes_files(trained_digits_model, tmp_path, capsys):
    path = tmp_path / "digits-cnn.safetensors"
    landscape.save_model(trained_digits_model, path, dataset="digits")
    out = tmp_path / "eval.csv"
    figs = tmp_path / "figs"
    code = main(["--no-progress", "eval", str(path), "--data", "digits", "--n", "40", "--metrics", "accuracy,ece",
                 "--json", "--out", str(out), "--figures", str(figs)])
    assert code == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["metric"] for r in rows] == ["clean_acc", "ece"] and rows[0]["model"] == "digits-cnn"
    assert rows[0]["settings"]["n"] == 40 and read_table(out)["metric"].tolist() == ["clean_acc", "ece"]
    assert sorted(p.name for p in figs.iterdir()) == ["reliability-digits-cnn.png", "reliability-digits-cnn.svg"]
    assert main(["--no-progress", "eval", str(path), "--data", "digits", "--n", "30", "--metrics", "accuracy"]) == 0
    assert "clean (%)" in capsys.readouterr().out


def test_cli_eval_channels_last_is_recorded_with_the_attack(trained_digits_model, tmp_path, capsys):
    path = tmp_path / "digits-cnn.safetensors"
    landscape.save_model(trained_digits_model, path, dataset="digits")
    args = ["--no-progress", "eval", str(path), "--data", "digits", "--n", "40", "--n-attack", "16",
            "--metrics", "accuracy,pgd20", "--json"]
    assert main([*args, "--channels-last"]) == 0
    fast = json.loads(capsys.readouterr().out)
    assert main(args) == 0
    plain = json.loads(capsys.readouterr().out)
    assert [r["metric"] for r in fast] == ["clean_acc", "pgd20_acc"]
    assert fast[1]["settings"]["channels_last"] is True and "channels_last" not in plain[1]["settings"]
    assert fast[0]["value"] == plain[0]["value"] and abs(fast[1]["value"] - plain[1]["value"]) <= 1 / 16


@pytest.mark.parametrize("args, fragment", [
    (["--metrics", "accuracy,bogus"], "metrics must be 'all' or a list out of"),
    (["--out", "table.xlsx"], "--out must end in .csv or .json"),
    (["--n", "0"], "--n must be >= 1"),
    (["--metrics", "fd"], "no bundled reference classifier for dataset 'digits'"),
])
def test_cli_errors_are_one_line_and_exit_2(trained_digits_model, tmp_path, capsys, args, fragment):
    path = tmp_path / "m.safetensors"
    landscape.save_model(trained_digits_model, path, dataset="digits")
    assert main(["eval", str(path), "--data", "digits", *args]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("landscape: error:") and fragment in err and "\n" not in err


def test_cli_missing_model_file_exit_2(tmp_path, capsys):
    assert main(["eval", str(tmp_path / "absent.safetensors"), "--data", "digits", "--metrics", "accuracy"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("landscape: error:") and "\n" not in err


def test_a_missing_ood_dataset_fails_before_any_model_runs(trained_digits_model, monkeypatch, tmp_path):
    monkeypatch.setenv("LANDSCAPE_DATA", str(tmp_path))
    monkeypatch.setenv("TORCHVISION_DATA", str(tmp_path))
    calls = []
    monkeypatch.setattr("landscape.evaluation._common.source_logits", lambda *a, **k: calls.append(a))
    with pytest.raises(LandscapeError, match="svhn"):
        landscape.evaluate(trained_digits_model, "digits", ["ood"], ood=["svhn"], n=10)
    assert calls == []
