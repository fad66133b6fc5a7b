import json
import textwrap
from pathlib import Path

import pandas as pd
import pytest
import torch

from landscape import save_model
from landscape.analyses.config import load_analysis, parse_analysis
from landscape.analyses.runner import MODELS_TITLE, run_analysis
from landscape.cli import main
from landscape.energy import EnergyModel
from landscape.errors import ConfigError
from landscape.models import create_model

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def analysis(tmp_path, trained_digits_model, monkeypatch):
    monkeypatch.setenv("LANDSCAPE_HOME", str(tmp_path / "home"))
    save_model(trained_digits_model, tmp_path / "trained.safetensors", dataset="digits")
    torch.manual_seed(1)
    fresh = EnergyModel(create_model("smallcnn", width=8, hidden=32), input_shape=(1, 8, 8), n_classes=10)
    save_model(fresh, tmp_path / "fresh.safetensors", dataset="digits")
    path = tmp_path / "digits.toml"
    path.write_text(textwrap.dedent("""
        title = "digits test analysis"
        seed = 3
        precision = "fp32"
        batch_size = 32
        [data]
        name = "digits"
        n = 64
        [[models]]
        name = "trained"
        checkpoint = "trained.safetensors"
        [[models]]
        name = "fresh"
        checkpoint = "fresh.safetensors"
        [sources.clean]
        kind = "clean"
        [sources.pgd]
        kind = "pgd"
        steps = 3
        [sources.sgld]
        kind = "sgld"
        steps = 5
        [statistics]
        n_boot = 50
        [figures]
        trajectories = 16
        samples = 9
    """))
    return path


def test_run_writes_every_output_and_reuses_the_cache(analysis, tmp_path):
    out = tmp_path / "report"
    res = run_analysis(analysis, out, progress_bar=False)
    for name in ("index.html", "index.md", "summary.json", "energies.parquet", "gaps.csv"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    figures = sorted(p.name for p in (out / "figures").iterdir())
    assert any("traject" in f for f in figures) and any(f.endswith(".svg") for f in figures)
    energies = pd.read_parquet(out / "energies.parquet")
    assert len(energies) == 2 * 3 * 64 and set(energies.model) == {"trained", "fresh"}
    assert set(energies.source) == {"clean", "pgd", "sgld"}
    gaps = pd.read_csv(out / "gaps.csv")
    assert len(gaps) == 2 * 3  # 3 pairs per model
    summary = json.loads((out / "summary.json").read_text())
    assert "digits" in json.dumps(summary)
    trained = energies[energies.model == "trained"]
    assert trained[trained.source == "pgd"].correct.mean() < trained[trained.source == "clean"].correct.mean()
    cached = list((tmp_path / "home").rglob("*.parquet"))
    assert len(cached) == 6  # every (model, source) table is in the engine's cache
    before = {p: p.stat().st_mtime_ns for p in cached}
    again = run_analysis(analysis, tmp_path / "report2", progress_bar=False)
    assert {p: p.stat().st_mtime_ns for p in cached} == before  # hit, not rewritten
    pd.testing.assert_frame_equal(again["energies"], res["energies"])


def test_config_rejects_unknown_keys_and_bad_values(analysis):
    base = load_analysis(analysis)
    assert base.seed == 3 and [m.name for m in base.models] == ["trained", "fresh"]
    assert Path(base.models[0].checkpoint).is_absolute()  # relative to the TOML file
    good = {"data": {"name": "digits"}, "models": [{"name": "a", "checkpoint": "a.pt"}],
            "sources": {"clean": {"kind": "clean"}}}
    parse_analysis(good)
    cases = [
        ({**good, "seeds": 1}, "unknown key 'seeds'"),
        ({**good, "data": {"name": "digits", "splt": "test"}}, "unknown key 'splt' in [data]"),
        ({**good, "models": [{"name": "a", "checkpoint": "a.pt", "familly": "jem"}]}, "unknown key 'familly'"),
        ({**good, "statistics": {"nboot": 10}}, "unknown key 'nboot' in [statistics]"),
        ({**good, "figures": {"sample": 4}}, "unknown key 'sample' in [figures]"),
        ({**good, "sources": {"x": {"kind": "fgsm"}}}, "kind must be one of"),
        ({**good, "precision": "fp16"}, "precision must be"),
        ({**good, "data": {"name": "digits", "n": 0}}, "[data] of the analysis: n must be an integer >= 1, got 0"),
        ({**good, "statistics": {"ci": 1.5}}, "ci must be < 1, got 1.5"),
        ({**good, "figures": {"samples": True}}, "samples must be an integer, got True"),
        ({**good, "cache": "yes"}, "cache must be true or false, got 'yes'"),
        ({"models": good["models"], "sources": good["sources"]}, "needs a [data] table"),
        ({**good, "data": {"split": "test"}}, "[data] of the analysis needs name"),
        ({k: v for k, v in good.items() if k != "models"}, "at least one [[models]]"),
        ({**good, "models": [{"name": "a", "checkpoint": "a"}, {"name": "a", "checkpoint": "b"}]}, "two [[models]]"),
    ]
    for doc, fragment in cases:
        with pytest.raises(ConfigError) as info:
            parse_analysis(doc)
        assert fragment in str(info.value), (fragment, str(info.value))
        assert "\n" not in str(info.value)


def test_the_schema_lists_every_key_with_its_default():
    from landscape.analyses.config import SECTIONS, AnalysisConfig, schema

    text = schema()
    for section, settings in SECTIONS.items():
        for s in settings:
            assert f"| `{s.name}` |" in text, (section, s.name)
    # the dataclass defaults are the declared ones (written once)
    cfg = AnalysisConfig(title="t", data=None, models=(), sources=())
    assert (cfg.n_boot, cfg.trajectories, cfg.samples, cfg.batch_size) == (1000, 128, 64, 256)
    assert "| `[statistics]` | `ci` | number > 0, < 1 | 0.95 |" in text


def test_bad_source_settings_fail_before_any_work(analysis, tmp_path):
    text = analysis.read_text().replace("steps = 3", "stepz = 3")
    bad = tmp_path / "bad.toml"
    bad.write_text(text)
    with pytest.raises(ConfigError, match=r"\[sources.pgd\]"):
        run_analysis(bad, tmp_path / "never")
    assert not (tmp_path / "never").exists()


def test_report_cli(analysis, tmp_path, capsys):
    out = tmp_path / "cli-report"
    assert main(["--no-progress", "report", str(analysis), "--out", str(out), "--n", "40"]) == 0
    printed = capsys.readouterr().out
    assert "clean vs pgd" in printed and str(out / "index.html") in printed
    assert len(pd.read_parquet(out / "energies.parquet")) == 2 * 3 * 40
    assert main(["report", str(tmp_path / "missing.toml")]) == 2
    assert "not found" in capsys.readouterr().err


def test_the_shipped_analyses_parse():
    for path in sorted((ROOT / "analyses").glob("*.toml")):
        cfg = load_analysis(path)
        assert cfg.models and cfg.sources, path


def test_each_source_runs_once_per_model_and_the_figures_use_that_run(analysis, tmp_path, monkeypatch):
    """The trajectories and sample grids come from the scoring run itself; with a cache hit
    only the recorded samples are rerun."""
    from landscape.sources import PGD, SGLD

    seen = {"pgd": 0, "sgld": 0}
    for cls, key, steps in ((PGD, "pgd", 3), (SGLD, "sgld", 5)):
        original = cls.__call__

        def counting(self, model, x, *a, _original=original, _key=key, _steps=steps, **k):
            if self.steps == _steps:  # the configured source (not the sensitivity panel's chains)
                seen[_key] += x.shape[0]
            return _original(self, model, x, *a, **k)

        monkeypatch.setattr(cls, "__call__", counting)
    res = run_analysis(analysis, tmp_path / "r1", progress_bar=False)
    assert seen == {"pgd": 2 * 64, "sgld": 2 * 64}
    assert any("traject" in p.name for p in (tmp_path / "r1" / "figures").iterdir())
    seen.update(pgd=0, sgld=0)
    again = run_analysis(analysis, tmp_path / "r2", progress_bar=False)  # every table from the cache
    assert seen == {"pgd": 2 * 16, "sgld": 2 * 16}  # only the 16 recorded samples per model
    pd.testing.assert_frame_equal(again["energies"], res["energies"])
    # the rerun of the recorded samples draws what the full run drew (keyed randomness)
    figs = [p.name for p in (tmp_path / "r1" / "figures").iterdir()
            if p.suffix == ".png" and ("traject" in p.name or "sample" in p.name)]
    assert figs
    for name in figs:
        assert (tmp_path / "r1" / "figures" / name).read_bytes() == (tmp_path / "r2" / "figures" / name).read_bytes(), name


def test_the_runner_returns_the_result_the_report_shows(analysis, tmp_path):
    """Statistics are computed once, by the pipeline; the report writes them and the CLI
    prints them without reading files back."""
    from landscape.analyses.pipeline import AnalysisResult, analyse

    res = run_analysis(analysis, tmp_path / "r", progress_bar=False)
    assert isinstance(res, AnalysisResult) and res.report_dir == (tmp_path / "r").absolute()
    on_disk = pd.read_csv(res.paths["gaps.csv"])
    pd.testing.assert_frame_equal(on_disk, res.gaps.reset_index(drop=True), check_dtype=False, rtol=1e-9)
    again = analyse(res.energies, n_boot=50, seed=3)
    pd.testing.assert_frame_equal(again.gaps, res.gaps)
    assert list(res.tables) == [MODELS_TITLE, "Gaps by class (label)", "Gaps by correctness of the prediction"]
    trained = res.tables[MODELS_TITLE]
    # saved with save_model, not by the trainer: the files say what they are but not how they were trained
    assert trained["model"].tolist() == ["trained", "fresh"] and set(trained["family"]) == {"native"}
    assert set(trained["objective"]) == {"not recorded"}
    assert "How each model was trained" in res.paths["index.md"].read_text()
    assert list(res.tables["Gaps by class (label)"]["class"][:1]) == ["0"]  # digits' class names
    # every figure caption says what made the samples (the engine's recorded settings)
    page = res.paths["index.html"].read_text()
    assert "pgd = PGD (Linf eps 0.1 (25.5/255), step 0.01, steps 3" in page and "seed 3, n 64 per model" in page
    assert res["seconds"] > 0 and res["index.html"].is_file()


def test_the_settings_page_is_generated_from_the_declarations(capsys):
    from landscape.analyses.config import schema

    assert schema() in (ROOT / "docs" / "analysis-settings.md").read_text()
    assert main(["report", "--schema"]) == 0
    assert schema() in capsys.readouterr().out


def test_init_writes_a_commented_starter_that_parses(tmp_path, capsys):
    path = tmp_path / "mine.toml"
    assert main(["report", "--init", str(path)]) == 0
    text = path.read_text()
    cfg = load_analysis(path)
    assert [m.checkpoint for m in cfg.models] == ["fmnist-standard", "fmnist-pgdat", "fmnist-jem"]
    assert [s.kind for s in cfg.sources] == ["clean", "pgd", "replay", "sgld"] and cfg.data.n == 1000
    assert "# bootstrap replicates of every interval" in text  # the declarations' descriptions
    capsys.readouterr()
    assert main(["report", "--init", str(path)]) == 2  # never overwritten
    assert "exists" in capsys.readouterr().err and path.read_text() == text


def test_the_schema_lists_every_sources_own_settings():
    from landscape.analyses.config import schema
    from landscape.sources import REGISTRY, source_settings

    text = schema()
    for k in REGISTRY:
        if source_settings(k.cls):  # clean and uniform take none
            assert f"| `{k.name}` |" in text, k.name
    assert "| `pgd` | `eps` | the dataset's |" in text and "| `sgld` | `steps` | 20 |" in text
