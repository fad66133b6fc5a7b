"""Energy-gap statistics against independent computations (scipy, sklearn, hand formulas)."""

import logging
import math
import time

import numpy as np
import pandas as pd
import pytest
from scipy import integrate, stats
from scipy.spatial.distance import jensenshannon
from sklearn.metrics import roc_auc_score

from landscape.analyses import stats as S
from landscape.errors import LandscapeError


def table_from(samples: dict, model="m", rng=None) -> pd.DataFrame:
    rng = rng or np.random.default_rng(0)
    parts = []
    for src, e in samples.items():
        e = np.asarray(e, float)
        label = rng.integers(0, 3, e.size)
        pred = np.where(rng.random(e.size) < 0.7, label, (label + 1) % 3)
        parts.append(pd.DataFrame({"model": model, "source": src, "index": np.arange(e.size), "label": label,
                                   "prediction": pred, "correct": pred == label, "energy": e,
                                   "conditional_energy": e + 2.0}))
    return pd.concat(parts, ignore_index=True)


def hand_stats(a, b, edges):
    """Every statistic computed the slow, independent way."""
    na, nb = len(a), len(b)
    sp = math.sqrt(((na - 1) * np.var(a, ddof=1) + (nb - 1) * np.var(b, ddof=1)) / (na + nb - 2))
    p = np.histogram(a, edges)[0] / na
    q = np.histogram(b, edges)[0] / nb
    ks = stats.ks_2samp(a, b)
    return {
        "gap": b.mean() - a.mean(),
        "cohens_d": (b.mean() - a.mean()) / sp,
        "wasserstein": stats.wasserstein_distance(a, b),
        "ks_stat": ks.statistic,
        "ks_pvalue": ks.pvalue,
        "js_divergence": jensenshannon(p, q, base=2) ** 2,
        "auroc": roc_auc_score(np.r_[np.zeros(na), np.ones(nb)], np.r_[a, b]),
        "overlap": np.minimum(p, q).sum(),
    }


@pytest.mark.parametrize("case", ["continuous", "ties"])
def test_every_statistic_matches_an_independent_computation(case):
    rng = np.random.default_rng(1)
    a, b = rng.normal(0, 1, 300), rng.normal(0.6, 1.4, 450)
    if case == "ties":  # heavy ties within and across the samples
        a, b = np.round(a, 1), np.round(b, 1)
    res = S.two_sample_stats(a, b, n_boot=0)
    want = hand_stats(a, b, S.shared_bin_edges(a, b))
    for k, v in want.items():
        assert res[k] == pytest.approx(v, rel=1e-9, abs=1e-12), k
    assert (res["n_a"], res["n_b"]) == (300, 450)
    assert res["mean_a"] == pytest.approx(a.mean()) and res["mean_b"] == pytest.approx(b.mean())
    assert math.isnan(res["gap_lo"])  # no bootstrap asked for


def test_vectorised_bootstrap_rows_match_scipy_row_by_row():
    """Resampled rows are full of ties: the batched core must agree with scipy on each."""
    rng = np.random.default_rng(2)
    a, b = np.round(rng.normal(0, 1, 60), 2), np.round(rng.normal(0.3, 1, 45), 2)
    ra = a[rng.integers(0, a.size, (6, a.size))]
    rb = b[rng.integers(0, b.size, (6, b.size))]
    edges = S.shared_bin_edges(a, b)
    got = S._core(ra, rb, edges)
    for i in range(6):
        want = hand_stats(ra[i], rb[i], edges)
        for k in S.STATISTICS:
            assert got[k][i] == pytest.approx(want[k], rel=1e-9, abs=1e-12), (k, i)


def test_identical_samples_give_no_gap():
    a = np.random.default_rng(3).normal(-5, 2, 400)
    res = S.two_sample_stats(a, a.copy(), n_boot=200, seed=0)
    assert res["gap"] == 0 and res["cohens_d"] == 0 and res["wasserstein"] == 0
    assert res["ks_stat"] == 0 and res["js_divergence"] == 0 and res["auroc"] == 0.5 and res["overlap"] == 1
    assert res["ks_pvalue"] == 1.0
    assert res["gap_lo"] < 0 < res["gap_hi"] and res["auroc_lo"] < 0.5 < res["auroc_hi"]
    # constant and equal samples: d is 0, not NaN
    const = S.two_sample_stats(np.ones(5), np.ones(7), n_boot=10)
    assert const["cohens_d"] == 0 and const["auroc"] == 0.5 and const["js_divergence"] == 0


def test_shifted_gaussians_give_the_known_values():
    delta, n = 1.0, 20000
    rng = np.random.default_rng(4)
    a, b = rng.normal(0, 1, n), rng.normal(delta, 1, n)
    res = S.two_sample_stats(a, b, n_boot=0)
    assert res["gap"] == pytest.approx(delta, abs=0.03)
    assert res["wasserstein"] == pytest.approx(delta, abs=0.03)
    assert res["cohens_d"] == pytest.approx(delta, abs=0.03)
    assert res["auroc"] == pytest.approx(stats.norm.cdf(delta / math.sqrt(2)), abs=0.01)
    assert res["ks_stat"] == pytest.approx(2 * stats.norm.cdf(delta / 2) - 1, abs=0.02)
    assert res["overlap"] == pytest.approx(2 * stats.norm.cdf(-delta / 2), abs=0.03)
    # JS of the two densities by quadrature, base 2
    p, q = stats.norm(0, 1).pdf, stats.norm(delta, 1).pdf
    m = lambda x: (p(x) + q(x)) / 2  # noqa: E731
    js = 0.5 * integrate.quad(lambda x: p(x) * np.log2(p(x) / m(x)), -12, 13)[0] \
        + 0.5 * integrate.quad(lambda x: q(x) * np.log2(q(x) / m(x)), -12, 13)[0]
    assert res["js_divergence"] == pytest.approx(js, abs=0.02)
    # the sign: B below A gives a negative gap and d, AUROC below 0.5
    rev = S.two_sample_stats(b, a, n_boot=0)
    assert rev["gap"] == pytest.approx(-res["gap"]) and rev["auroc"] == pytest.approx(1 - res["auroc"])


def test_bootstrap_intervals_cover_the_truth():
    delta, n = 0.5, 150
    truth = {"gap": delta, "cohens_d": delta, "auroc": stats.norm.cdf(delta / math.sqrt(2))}
    covered = {k: 0 for k in truth}
    for seed in range(20):
        rng = np.random.default_rng(100 + seed)
        res = S.two_sample_stats(rng.normal(0, 1, n), rng.normal(delta, 1, n), n_boot=400, seed=seed)
        for k, v in truth.items():
            covered[k] += res[f"{k}_lo"] <= v <= res[f"{k}_hi"]
            assert res[f"{k}_lo"] <= res[k] <= res[f"{k}_hi"]
    assert all(c >= 17 for c in covered.values()), covered


def test_bootstrap_is_seeded_and_independent_of_other_groups():
    rng = np.random.default_rng(5)
    t1 = table_from({"clean": rng.normal(0, 1, 200), "pgd": rng.normal(1, 1, 200)}, model="a")
    t2 = table_from({"clean": rng.normal(3, 1, 100), "pgd": rng.normal(1, 2, 100)}, model="b")
    alone = S.gap_table(t1, n_boot=100, seed=7)
    both = S.gap_table(pd.concat([t2, t1]), n_boot=100, seed=7)
    again = S.gap_table(t1, n_boot=100, seed=7)
    other = S.gap_table(t1, n_boot=100, seed=8)
    cols = [f"{s}_{e}" for s in S.STATISTICS for e in ("lo", "hi")]
    pd.testing.assert_frame_equal(alone[cols], again[cols])
    pd.testing.assert_frame_equal(alone[cols].reset_index(drop=True),
                                  both[both.model == "a"][cols].reset_index(drop=True))
    assert not np.allclose(alone[cols].to_numpy(), other[cols].to_numpy())


def test_bootstrap_is_fast():
    rng = np.random.default_rng(6)
    a, b = rng.normal(0, 1, 1000), rng.normal(1, 1, 1000)
    t = time.perf_counter()
    S.two_sample_stats(a, b, n_boot=1000, seed=0)
    assert time.perf_counter() - t < 10.0  # ~0.3 s on one core


def test_gap_table_pairs_order_sign_and_columns():
    rng = np.random.default_rng(7)
    t = table_from({"sgld": rng.normal(2, 1, 80), "foo": rng.normal(5, 1, 80), "pgd": rng.normal(1, 1, 80),
                    "clean": rng.normal(0, 1, 80)})
    g = S.gap_table(t, n_boot=20)
    assert list(zip(g.source_a, g.source_b)) == [("clean", "pgd"), ("clean", "sgld"), ("clean", "foo"),
                                                 ("pgd", "sgld"), ("pgd", "foo"), ("sgld", "foo")]
    assert g.pair.iloc[0] == "clean vs pgd"
    for r in g.itertuples():
        a = t.energy[t.source == r.source_a]
        b = t.energy[t.source == r.source_b]
        assert r.gap == pytest.approx(b.mean() - a.mean())
        assert r.auroc == pytest.approx(roc_auc_score(np.r_[np.zeros(a.size), np.ones(b.size)], np.r_[a, b]))
    assert g.attrs["n_boot"] == 20 and g.attrs["column"] == "energy"
    assert {"ks_pvalue", "gap_lo", "overlap_hi", "n_a", "mean_b"} <= set(g.columns)
    # explicit pairs, conditional energy
    h = S.gap_table(t, column="conditional_energy", pairs=[("pgd", "clean")], n_boot=0)
    assert len(h) == 1 and h.gap.iloc[0] == pytest.approx(-g.gap.iloc[0]) and h.column.iloc[0] == "conditional_energy"


def test_describe_matches_numpy():
    rng = np.random.default_rng(8)
    t = table_from({"pgd": rng.normal(1, 2, 101), "clean": rng.normal(0, 1, 57)})
    d = S.describe(t)
    assert list(d.source) == ["clean", "pgd"]
    for r in d.itertuples():
        e = t.energy[t.source == r.source].to_numpy()
        assert r.n == e.size and r.mean == pytest.approx(e.mean()) and r.std == pytest.approx(e.std(ddof=1))
        assert r.median == pytest.approx(np.median(e))
        assert [r.q05, r.q25, r.q75, r.q95] == pytest.approx(np.percentile(e, [5, 25, 75, 95]))
        assert r.accuracy == pytest.approx(t.correct[t.source == r.source].mean())


def test_alignment_summary_picks_the_largest_absolute_gap():
    rng = np.random.default_rng(9)
    t = pd.concat([table_from({"clean": rng.normal(0, 1, 100), "pgd": rng.normal(-6, 1, 100),
                               "sgld": rng.normal(2, 1, 100)}, model="x"),
                   table_from({"clean": rng.normal(0, 1, 100), "pgd": rng.normal(0.1, 1, 100)}, model="y")])
    al = S.alignment_summary(S.gap_table(t, n_boot=20))
    x = al.set_index("model").loc["x"]
    assert x.max_gap_pair == "pgd vs sgld" and x.gap == pytest.approx(x.max_abs_gap) and x.n_pairs == 3
    y = al.set_index("model").loc["y"]
    assert y.max_gap_pair == "clean vs pgd" and y.max_abs_gap < 0.5


def test_breakdowns_equal_the_gap_table_of_each_subset():
    rng = np.random.default_rng(10)
    t = table_from({"clean": rng.normal(0, 1, 300), "pgd": rng.normal(1, 1, 300)})
    by_class = S.class_breakdown(t, n_boot=10)
    assert list(by_class.label) == [0, 1, 2]  # sorted by class within the model
    for r in by_class.itertuples():
        sub = t[t.label == r.label]
        assert r.gap == pytest.approx(sub.energy[sub.source == "pgd"].mean() - sub.energy[sub.source == "clean"].mean())
    by_correct = S.correctness_breakdown(t, n_boot=10)
    assert set(by_correct.correct) == {True, False}
    for r in by_correct.itertuples():
        sub = t[t.correct == r.correct]
        assert r.n_a == (sub.source == "clean").sum()
        assert r.wasserstein == pytest.approx(stats.wasserstein_distance(sub.energy[sub.source == "clean"],
                                                                         sub.energy[sub.source == "pgd"]))


def test_non_finite_energies_are_dropped_with_a_warning(caplog):
    a = np.r_[np.random.default_rng(11).normal(size=50), np.nan, np.inf]
    with caplog.at_level(logging.WARNING, logger="landscape.analyses.stats"):
        res = S.two_sample_stats(a, np.zeros(10) + 1.0, n_boot=0)
    assert res["n_a"] == 50 and "non-finite" in caplog.text


def test_errors_are_one_line_and_say_what_was_expected():
    t = table_from({"clean": np.zeros(5), "pgd": np.ones(5)})
    with pytest.raises(LandscapeError, match=r"missing \['energy'\]"):
        S.gap_table(t.drop(columns="energy"))
    with pytest.raises(LandscapeError, match=r"absent from the energy table"):
        S.gap_table(t, pairs=[("clean", "sgld")])
    with pytest.raises(LandscapeError, match=r"ci must lie strictly between 0 and 1, got 95"):
        S.two_sample_stats([1, 2], [3, 4], ci=95)
    with pytest.raises(LandscapeError, match=r"n_boot must be a non-negative integer"):
        S.two_sample_stats([1, 2], [3, 4], n_boot=-1)
    with pytest.raises(LandscapeError, match=r"at least one finite energy, got n_A=0"):
        S.two_sample_stats([np.nan], [3, 4])
    with pytest.raises(LandscapeError, match=r"bins must be 'fd', an integer or an array of edges, got 'auto'"):
        S.shared_bin_edges([1.0, 2.0], bins="auto")
    with pytest.raises(LandscapeError, match=r"cannot group by \['nope'\]"):
        S.describe(t, by=("model", "nope"))
    with pytest.raises(LandscapeError, match=r"must be numeric"):
        S.describe(t.assign(energy="x"))


def test_shared_bins_rules():
    e = S.shared_bin_edges(np.zeros(10), np.zeros(3))
    assert list(e) == [-0.5, 0.5]
    e = S.shared_bin_edges(np.linspace(0, 1, 1000), np.linspace(5, 6, 1000))
    assert e[0] == 0 and e[-1] == 6 and 11 <= e.size <= 201
    assert S.shared_bin_edges([0, 1], bins=4).size == 5
    # a sharp and a wide sample: the sharp one sets the width (resolved by many bins)
    sharp = S.shared_bin_edges(np.random.default_rng(0).normal(0, 0.01, 500), np.random.default_rng(1).normal(0, 1, 500))
    assert sharp.size - 1 == 200


def test_basic_intervals_reflect_the_percentile_ones_and_stay_in_range():
    rng = np.random.default_rng(12)
    a, b = rng.normal(0, 1, 150), rng.normal(0.1, 1, 150)
    pct = S.two_sample_stats(a, b, n_boot=300, seed=1)
    basic = S.two_sample_stats(a, b, n_boot=300, seed=1, interval="basic")
    for k in ("gap", "cohens_d"):
        assert basic[f"{k}_lo"] == pytest.approx(2 * pct[k] - pct[f"{k}_hi"])
        assert basic[f"{k}_hi"] == pytest.approx(2 * pct[k] - pct[f"{k}_lo"])
    for k in ("ks_stat", "js_divergence", "overlap", "wasserstein"):
        assert basic[f"{k}_lo"] >= 0 and basic[f"{k}_hi"] <= (1 if k != "wasserstein" else np.inf)
    # biased plug-in distances: resampling pushes overlap down and KS up; basic intervals move back
    assert basic["overlap_hi"] > pct["overlap_hi"] and basic["ks_stat_lo"] < pct["ks_stat_lo"]
    with pytest.raises(LandscapeError, match=r"interval must be one of percentile, basic, got 'bca'"):
        S.two_sample_stats(a, b, interval="bca")


def test_trajectory_frame_summarises_each_step():
    import torch

    x = np.random.default_rng(13).normal(size=(40, 6))
    x[3, 2] = np.nan
    f = S.trajectory_frame(torch.tensor(x), "m", "sgld")
    assert list(f.columns) == ["model", "source", "step", "energy_mean", "energy_std", "n"]
    assert list(f.step) == list(range(6)) and list(f.n) == [40, 40, 39, 40, 40, 40]
    assert f.energy_mean.to_numpy() == pytest.approx(np.nanmean(x, 0))
    assert f.energy_std.to_numpy() == pytest.approx(np.nanstd(x, 0, ddof=1))
    assert (f.model == "m").all() and (f.source == "sgld").all()
    with pytest.raises(LandscapeError, match=r"N x \(steps \+ 1\) array .* got shape \(5,\)"):
        S.trajectory_frame(np.zeros(5), "m", "sgld")


def _paired_table(n=400, seed=0, shift=0.2, noise=0.2):
    """Clean energies and 'adversarial' ones of the same samples: strongly correlated."""
    rng = np.random.default_rng(seed)
    clean = rng.normal(-5.0, 2.0, n)
    adv = clean + shift + rng.normal(0.0, noise, n)
    idx = rng.permutation(n)  # the two sources list the samples in different orders
    return pd.DataFrame({"model": "m", "source": ["clean"] * n + ["pgd"] * n,
                         "index": np.concatenate([np.arange(n), idx]),
                         "energy": np.concatenate([clean, adv[idx]])}), clean, adv


def test_paired_bootstrap_matches_scipy_and_is_narrower_for_correlated_samples():
    table, clean, adv = _paired_table()
    paired = S.gap_table(table, n_boot=4000, seed=0)
    indep = S.gap_table(table, n_boot=4000, seed=0, paired=False)
    assert bool(paired.loc[0, "paired"]) and not bool(indep.loc[0, "paired"])
    assert paired.loc[0, "gap"] == pytest.approx(adv.mean() - clean.mean())
    # an independent computation: scipy's paired percentile bootstrap of the mean difference
    ref = stats.bootstrap((clean, adv), lambda c, a, axis=-1: a.mean(axis) - c.mean(axis), paired=True,
                          vectorized=True, n_resamples=4000, method="percentile", confidence_level=0.95,
                          random_state=np.random.default_rng(1)).confidence_interval
    width, ref_width = paired.loc[0, "gap_hi"] - paired.loc[0, "gap_lo"], ref.high - ref.low
    assert abs(width - ref_width) < 0.1 * ref_width
    assert abs(paired.loc[0, "gap_lo"] - ref.low) < 0.1 * ref_width
    # the clean-adversarial correlation (sd 2 shared, 0.2 own) makes the paired interval ~10x narrower
    assert width < 0.2 * (indep.loc[0, "gap_hi"] - indep.loc[0, "gap_lo"])
    assert paired.loc[0, "gap_lo"] > 0, "a real shift of 0.2 is resolved by pairing"
    assert indep.loc[0, "gap_lo"] < 0, "and lost without it"


def test_pairing_is_automatic_only_for_the_same_samples():
    table, _, _ = _paired_table(n=50)
    other = table[table.source == "clean"].assign(source="sgld", index=lambda t: t["index"] + 1000)
    gaps = S.gap_table(pd.concat([table, other]), n_boot=50)
    assert dict(zip(gaps.pair, gaps.paired)) == {"clean vs pgd": True, "clean vs sgld": False, "pgd vs sgld": False}
    with pytest.raises(LandscapeError, match="do not hold the same samples"):
        S.gap_table(pd.concat([table, other]), n_boot=50, paired=True)
    with pytest.raises(LandscapeError, match="paired must be 'auto', True or False"):
        S.gap_table(table, paired="yes")
    with pytest.raises(LandscapeError, match="paired samples must have the same length"):
        S.two_sample_stats([1.0, 2.0], [1.0], paired=True)


def test_generated_and_ood_samples_have_no_accuracy():
    import pandas as pd

    from landscape.analyses.stats import describe, has_labels

    t = pd.DataFrame({"model": "m", "source": ["clean"] * 4 + ["sgld"] * 4 + ["ood:dataset=mnist"] * 4 + ["pgd:steps=3"] * 4,
                      "energy": np.arange(16.0), "correct": [True, False] * 8})
    acc = describe(t).set_index("source")["accuracy"]
    assert acc["clean"] == 0.5 and acc["pgd:steps=3"] == 0.5
    assert np.isnan(acc["sgld"]) and np.isnan(acc["ood:dataset=mnist"])
    assert has_labels("noise") and not has_labels("replay") and has_labels("my-own-source")


def test_class_breakdown_names_the_classes():
    import pandas as pd

    from landscape.analyses.stats import class_breakdown

    rng = np.random.default_rng(0)
    t = pd.DataFrame({"model": "m", "source": ["clean"] * 40 + ["pgd"] * 40, "label": list(range(2)) * 40,
                      "index": list(range(40)) * 2, "energy": rng.normal(size=80)})
    out = class_breakdown(t, class_names=["T-shirt/top", "Trouser"], n_boot=20)
    assert list(out["class"]) == ["T-shirt/top", "Trouser"] and list(out.columns).index("class") == \
        list(out.columns).index("label") + 1
    assert "class" not in class_breakdown(t, n_boot=20).columns
