"""The committed evaluation table of the bundled models (report/eval-fmnist.csv) keeps issue 12's promises.

Clean accuracy on all 10,000 test images, PGD-20 and standard AutoAttack on the same
1,000 or more, each accuracy with its Wilson 95% interval (recomputed here by hand), the
worst case no better than either attack, and the 1,000-image PGD-20 consistent with the
full-split PGD-20 that checkpoints/fmnist/<name>.test.json records.
"""

import json
import math
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[2]
TABLE = ROOT / "report" / "eval-fmnist.csv"
NAMES = ("standard", "pgdat", "trades", "jem", "ebjdat")


def wilson(k: int, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


@pytest.fixture(scope="module")
def table():
    return pd.read_csv(TABLE)


def _row(table, model, metric):
    rows = table[(table.model == model) & (table.metric == metric)]
    assert len(rows) == 1, (model, metric, len(rows))
    r = rows.iloc[0]
    return float(r.value), int(r.n), json.loads(r.settings)


@pytest.mark.parametrize("name", NAMES)
def test_every_accuracy_has_its_sample_size_and_wilson_interval(table, name):
    recorded = json.loads((ROOT / "checkpoints" / "fmnist" / f"{name}.test.json").read_text())
    clean, n_clean, _ = _row(table, name, "clean_acc")
    assert n_clean == 10000 and abs(100 * clean - recorded["clean_acc"]) < 0.005
    values = {}
    for metric in ("clean_acc", "pgd20_acc", "autoattack_acc", "worst_case_acc"):
        value, n, settings = _row(table, name, metric)
        assert n >= (10000 if metric == "clean_acc" else 1000), (metric, n)
        lo, hi = wilson(round(value * n), n)
        assert settings["wilson95"] == f"[{lo:.4f}, {hi:.4f}]", (metric, settings["wilson95"])
        values[metric] = value
    _, _, aa = _row(table, name, "autoattack_acc")
    assert aa["version"] == "standard" and aa["attacks"] == ["apgd-ce", "apgd-t", "fab-t", "square"]
    assert aa["eps"] == pytest.approx(0.1) and aa["norm"] == "Linf"
    assert values["worst_case_acc"] <= min(values["pgd20_acc"], values["autoattack_acc"]) + 1e-12
    # the 1,000 are a random subset: their PGD-20 agrees with the full split's within 3.5 standard errors
    p, n = recorded["pgd20_acc"] / 100, _row(table, name, "pgd20_acc")[1]
    assert abs(values["pgd20_acc"] - p) <= 3.5 * math.sqrt(max(p * (1 - p), 1e-4) / n) + 1e-3
