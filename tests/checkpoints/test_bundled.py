"""The bundled Fashion-MNIST models: files, manifest, recipes and the accuracy floors of issue 5.

Fast checks read what was recorded (hashes, test.json, the training config in each
file's header); the slow check re-measures the floors on the full test split.
"""

import importlib.util
import json
from pathlib import Path

import pytest

import landscape
from landscape.checkpoints.manifest import load_manifest
from landscape.native import read_native_header
from landscape.train import TrainConfig, load_recipe
from landscape.utils import file_sha256

ROOT = Path(__file__).resolve().parents[2] / "checkpoints" / "fmnist"
NAMES = ("standard", "pgdat", "trades", "jem", "ebjdat")
#: the floors the bundled models must meet on the Fashion-MNIST test split (clean, PGD-20 at eps 0.1)
FLOORS = {"standard": ("clean_acc", 90.0), "pgdat": ("pgd20_acc", 60.0)}


def _recorded(name):
    return json.loads((ROOT / f"{name}.test.json").read_text())


@pytest.mark.parametrize("name", NAMES)
def test_bundled_file_manifest_and_test_record_agree(name):
    path = ROOT / f"{name}.safetensors"
    entry = load_manifest()[f"fmnist-{name}"]
    assert entry.local == f"fmnist/{name}.safetensors"
    assert entry.sha256 == file_sha256(path)
    rec = _recorded(name)
    assert rec["model"] == path.name and rec["split"] == "test" and rec["n"] == 10000
    assert entry.metrics == {"clean_acc": rec["clean_acc"], "pgd20_acc": rec["pgd20_acc"]}
    assert "fp32" in rec["attack"] and "eps 0.1" in rec["attack"]


@pytest.mark.parametrize("name", NAMES)
def test_the_recipe_reproduces_the_bundled_run(name):
    # every setting stored in the file's header must be what `landscape train --recipe fmnist-<name>` uses
    stored = read_native_header(ROOT / f"{name}.safetensors")["metadata"]["training"]["config"]
    stored = TrainConfig.upgrade(stored)  # settings renamed since (released_compat -> inner)
    recipe = load_recipe(f"fmnist-{name}").to_dict()
    differ = {k: (v, recipe[k]) for k, v in stored.items() if k != "notes" and recipe.get(k) != v}
    assert differ == {}
    # and the notes the file carries are the recipe's (`checkpoints info` shows them beside the config):
    # after editing a recipe's notes, run checkpoints/fmnist/sync_notes.py and update the manifest's sha256
    assert stored["notes"] == recipe["notes"], "run checkpoints/fmnist/sync_notes.py"


@pytest.mark.parametrize("name", sorted(FLOORS))
def test_recorded_metrics_meet_the_floors(name):
    metric, floor = FLOORS[name]
    assert _recorded(name)[metric] >= floor


def test_bf16_and_fp32_pgd_agree_on_the_bundled_models():
    # bf16 and fp32 PGD-20 must agree: a frozen bf16 search (the autocast-cache bug) or a model that masks
    # bf16 gradients would leave far more accuracy under bf16
    for name in ("pgdat", "trades", "ebjdat"):
        check = _recorded(name)["bf16_check"]
        assert check["n"] >= 500 and abs(check["pgd20_bf16_acc"] - check["pgd20_fp32_acc"]) <= 1.5, (name, check)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(FLOORS))
def test_floors_hold_when_measured_again_on_the_test_split(name):
    spec = importlib.util.spec_from_file_location("fmnist_measure", ROOT / "measure.py")
    measure = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(measure)
    metric, floor = FLOORS[name]
    res = measure.measure(ROOT / f"{name}.safetensors", bf16_check=False, attack=metric == "pgd20_acc")
    rec = _recorded(name)
    assert res[metric] >= floor
    for key in ("clean_acc", "pgd20_acc"):
        if key in res:
            assert abs(res[key] - rec[key]) <= 0.1, (key, res, rec)
    assert landscape.load_model(f"fmnist-{name}").metadata["registry"]["metrics"][metric] == rec[metric]


def test_training_summaries_state_each_models_search_sampler_and_regulariser():
    from landscape.checkpoints.describe import TRAINING_COLUMNS, training_summary

    rows = {name: training_summary(landscape.load_model(f"fmnist-{name}").metadata) for name in NAMES}
    assert all(list(r) == list(TRAINING_COLUMNS) for r in rows.values())
    # issue 12: where a regulariser is used, JEM and EB-JDAT use the same one, and only on data and SGLD samples
    assert rows["jem"]["energy regulariser"] == rows["ebjdat"]["energy regulariser"]
    assert rows["jem"]["energy regulariser"].startswith("energy_l2 0.05") and "(data and SGLD samples)" in rows["jem"]["energy regulariser"]
    assert rows["jem"]["SGLD sampler"] == rows["ebjdat"]["SGLD sampler"]
    assert rows["jem"]["SGLD sampler"].startswith("20 steps") and "buffer of 2000" in rows["jem"]["SGLD sampler"]
    assert rows["ebjdat"]["objective"] == "ebjdat (inner: saddle, weights: released)"
    assert rows["ebjdat"]["selected"] == "final (epoch 4)" and rows["jem"]["selected"].startswith("epoch 5, best val_acc")
    for name in ("standard", "pgdat", "trades"):
        assert rows[name]["SGLD sampler"] == "none" and rows[name]["energy regulariser"] == "none"
    assert rows["standard"]["adversarial search"] == "none"
    assert rows["pgdat"]["adversarial search"] == "Linf eps 0.1, 7 steps of 0.025, fp32"
    # metadata without a training record (a file of another code base) says so in every column
    other = training_summary({"family": "jem"})
    assert other["family"] == "jem" and {v for k, v in other.items() if k != "family"} == {"not recorded"}
