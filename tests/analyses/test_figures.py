"""Figures: written as PNG + SVG, one colour per source everywhere, nothing left open."""

import gc
import xml.etree.ElementTree as ET

import numpy as np
import pandas as pd
import pytest
import torch

from landscape.analyses import figures as F
from landscape.analyses.stats import gap_table
from landscape.errors import LandscapeError

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
UNKNOWN = "gaussian-noise(sigma=0.3)"


@pytest.fixture(scope="module")
def energies():
    rng = np.random.default_rng(0)
    parts = []
    for model, shift in (("standard", 6.0), ("jem", 1.0)):
        for src, off in (("clean", 0.0), ("pgd", shift), ("sgld", 7 - shift), (UNKNOWN, 3.0)):
            n = 120
            e = rng.normal(-10 + off, 1.5, n)
            parts.append(pd.DataFrame({"model": model, "source": src, "index": np.arange(n), "label": rng.integers(0, 10, n),
                                       "prediction": 0, "correct": rng.random(n) < 0.8, "energy": e,
                                       "conditional_energy": e + 1}))
    return pd.concat(parts, ignore_index=True)


@pytest.fixture(scope="module")
def trajectories():
    rows = []
    for model in ("standard", "jem"):
        for src, k in (("pgd", 5), ("sgld", 20)):
            steps = np.arange(k + 1)
            rows.append(pd.DataFrame({"model": model, "source": src, "step": steps,
                                      "energy_mean": -10 + np.sqrt(steps), "energy_std": 0.5, "n": 100}))
    return pd.concat(rows, ignore_index=True)


@pytest.fixture(scope="module")
def drawn(tmp_path_factory, energies, trajectories):
    out = tmp_path_factory.mktemp("figs")
    gaps = gap_table(energies, n_boot=20)
    figs = F.make_figures(out, energies, gaps, trajectories,
                          {"jem": torch.rand(10, 1, 8, 8), "standard": np.random.default_rng(0).random((5, 3, 6, 6))})
    return out, figs


def svg_text(path):
    text = path.read_text(encoding="utf-8")
    root = ET.fromstring(text)
    assert root.tag.endswith("svg")
    return text.lower()


def test_every_figure_is_written_as_png_svg_and_pdf_with_editable_text(drawn):
    out, figs = drawn
    names = [f.name for f in figs]
    assert names == ["energy_grid", "hist_standard", "hist_jem", "heatmap_gap", "trajectories",
                     "samples_jem", "samples_standard"]
    for f in figs:
        png, svg, pdf = f.paths
        assert png == out / f"{f.name}.png" and svg == out / f"{f.name}.svg" and pdf == out / f"{f.name}.pdf"
        raw = pdf.read_bytes()
        assert raw.startswith(b"%PDF") and b"/FontFile2" in raw  # TrueType (type 42) text, editable
        data = png.read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 2000
        svg_text(svg)
        assert f.caption
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporary files left


def test_a_source_has_the_same_colour_in_every_figure(drawn):
    out, _ = drawn
    pal = F.source_palette(["clean", "pgd", "sgld", UNKNOWN])
    assert pal["pgd"] == F.SOURCE_COLORS["pgd"] and pal["clean"] == F.SOURCE_COLORS["clean"]
    for name in ("energy_grid", "hist_standard", "hist_jem"):
        text = svg_text(out / f"{name}.svg")
        for src in ("clean", "pgd", "sgld", UNKNOWN):
            assert pal[src].lower() in text, (name, src)
    # the trajectories colour by model (each panel is one source): one distinct colour per model
    text = svg_text(out / "trajectories.svg")
    assert F.model_color(0).lower() in text and F.model_color(1).lower() in text
    assert F.model_color(0) != F.model_color(1)


def test_palette_is_fixed_for_known_sources_and_deterministic_for_others():
    unknown = [f"src{i}" for i in range(8)]
    p1 = F.source_palette(["sgld", *unknown, "clean"])
    p2 = F.source_palette(list(reversed(unknown)) + ["clean", "sgld"])
    assert p1 == p2
    assert len({p1[s] for s in unknown}) == 8  # no clash within a set of unknown sources
    assert not set(p1[s] for s in unknown) & set(F.SOURCE_COLORS.values())
    assert F.source_color("clean") == "#0072B2" and F.source_color("whatever") in F.FALLBACK_COLORS
    assert list(p1) == ["clean", "sgld", *unknown]  # canonical order


def test_histogram_labels_and_units(tmp_path, energies):
    png, svg, pdf = F.plot_energy_histograms(energies, "jem", tmp_path, column="conditional_energy")
    assert png.name == "hist_jem.png"
    assert F.energy_label("energy") == "energy E(x) (lower = more likely)"
    assert F.energy_label("conditional_energy") == "conditional energy E(x, y) (lower = more likely)"
    with pytest.raises(LandscapeError, match=r"model 'nope' is not in the energy table"):
        F.plot_energy_histograms(energies, "nope", tmp_path)


def test_no_figure_stays_open(tmp_path, energies, monkeypatch):
    import weakref

    import matplotlib.pyplot as plt

    made = []
    real = F._new_figure

    def spy(*args, **kwargs):
        fig = real(*args, **kwargs)
        made.append(weakref.ref(fig))
        return fig

    monkeypatch.setattr(F, "_new_figure", spy)
    F.plot_sample_grid(torch.rand(4, 1, 5, 5), tmp_path)
    F.plot_sample_grid(torch.rand(4, 3, 5, 5), tmp_path)
    gc.collect()
    assert len(made) == 2 and all(r() is None for r in made)  # freed, nothing keeps them
    assert plt.get_fignums() == []


def test_heatmap_and_trajectory_and_sample_errors(tmp_path, energies, trajectories):
    gaps = gap_table(energies, n_boot=0)
    png, *_ = F.plot_gap_heatmap(gaps, tmp_path, statistic="auroc")
    assert png.name == "heatmap_auroc.png" and png.stat().st_size > 0
    with pytest.raises(LandscapeError, match=r"statistic must be one of gap, .*, got 'mean'"):
        F.plot_gap_heatmap(gaps, tmp_path, statistic="mean")
    with pytest.raises(LandscapeError, match=r"missing \['step'\]"):
        F.plot_trajectories(trajectories.drop(columns="step"), tmp_path)
    with pytest.raises(LandscapeError, match=r"no trajectories for sources \['autoattack'\]"):
        F.plot_trajectories(trajectories, tmp_path, sources=["autoattack"])
    with pytest.raises(LandscapeError, match=r"C = 1 or 3, got shape \(2, 2, 4, 4\)"):
        F.plot_sample_grid(torch.rand(2, 2, 4, 4), tmp_path)
    with pytest.raises(LandscapeError, match=r"lie in \[0, 1\], got values in \[-1, 1\]"):
        F.plot_sample_grid(torch.linspace(-1, 1, 32).view(2, 1, 4, 4), tmp_path)


def test_histograms_can_carry_a_kernel_density_estimate(tmp_path, energies):
    plain = F.plot_energy_histograms(energies, "jem", tmp_path / "a")
    smooth = F.plot_energy_histograms(energies, "jem", tmp_path / "b", kde=True)
    n_sources = energies[energies.model == "jem"]["source"].nunique()
    count = lambda p: svg_text(p[1]).count("<path")  # noqa: E731
    assert count(smooth) == count(plain) + n_sources  # one density curve per source
