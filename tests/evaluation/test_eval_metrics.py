"""Accuracy, ECE and reliability diagrams against independent computations."""

import numpy as np
import pytest
import torch

from landscape.errors import LandscapeError
from landscape.evaluation import (accuracy, calibration_bins, confidences, expected_calibration_error,
                                  plot_reliability_diagram, softmax)


def _ece_by_hand(probs, labels, n_bins=15):
    """ECE written out bin by bin: top-label confidence, bins ((m-1)/M, m/M], weighted |acc - conf|."""
    conf = probs.max(axis=1)
    correct = probs.argmax(axis=1) == labels
    total = 0.0
    for m in range(1, n_bins + 1):
        lo, hi = (m - 1) / n_bins, m / n_bins
        in_bin = [i for i in range(len(conf)) if (lo < conf[i] <= hi) or (m == 1 and conf[i] == 0)]
        if not in_bin:
            continue
        acc = np.mean([correct[i] for i in in_bin])
        mean_conf = np.mean([conf[i] for i in in_bin])
        total += len(in_bin) / len(conf) * abs(acc - mean_conf)
    return total


def test_accuracy_of_logits_and_of_predictions():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(50, 4))
    labels = rng.integers(0, 4, 50)
    expected = sum(int(np.argmax(logits[i]) == labels[i]) for i in range(50)) / 50
    assert accuracy(logits, labels) == pytest.approx(expected)
    assert accuracy(torch.tensor(logits), torch.tensor(labels)) == pytest.approx(expected)
    assert accuracy(logits.argmax(1), labels) == pytest.approx(expected)


def test_ece_matches_a_hand_rolled_loop():
    rng = np.random.default_rng(1)
    logits = rng.normal(scale=3.0, size=(400, 10))
    labels = np.where(rng.random(400) < 0.7, logits.argmax(1), rng.integers(0, 10, 400))
    probs = softmax(logits)
    assert np.allclose(probs, torch.softmax(torch.tensor(logits), 1).numpy())
    for bins in (15, 10, 1):
        assert expected_calibration_error(probs, labels, bins) == pytest.approx(_ece_by_hand(probs, labels, bins), abs=1e-12)


def test_ece_on_known_confidences():
    # two classes; confidences 0.9, 0.9 (one right, one wrong), 0.6 right, 0.55 wrong
    probs = np.array([[0.9, 0.1], [0.9, 0.1], [0.4, 0.6], [0.55, 0.45]])
    labels = np.array([0, 1, 1, 1])
    # 15 bins: 0.9 -> (0.8667, 0.9333]; 0.6 -> (0.5333, 0.6]; 0.55 -> (0.5333, 0.6]
    # bin A: acc 0.5, conf 0.9 -> 0.4 * 2/4; bin B: acc 0.5, conf 0.575 -> 0.075 * 2/4
    assert expected_calibration_error(probs, labels) == pytest.approx(0.5 * 0.4 + 0.5 * 0.075)
    assert expected_calibration_error(np.array([[1.0, 0.0], [0.0, 1.0]]), np.array([0, 1])) == 0.0


def test_bins_are_right_closed_at_exact_edges():
    conf = np.array([0.2, 1 / 15, 1.0, 0.0])  # 0.2 = 3/15 belongs to bin 2 = (2/15, 3/15]
    table = calibration_bins(conf, np.array([1, 1, 0, 0]), 15)
    assert table.loc[2, "count"] == 1 and table.loc[3, "count"] == 0
    assert table.loc[0, "count"] == 2  # 1/15 and 0 both in the first bin
    assert table.loc[14, "count"] == 1 and table["count"].sum() == 4
    assert table.loc[14, "accuracy"] == 0.0 and np.isnan(table.loc[5, "accuracy"])


def test_calibration_errors_are_one_line():
    with pytest.raises(LandscapeError, match="probs must be probabilities"):
        expected_calibration_error(np.array([[2.0, -1.0]]), np.array([0]))
    with pytest.raises(LandscapeError, match="labels must be an integer vector of length 2"):
        confidences(np.array([[0.5, 0.5], [0.2, 0.8]]), np.array([0, 1, 1]))
    with pytest.raises(LandscapeError, match="n_bins must be a positive integer"):
        expected_calibration_error(np.array([[0.5, 0.5]]), np.array([0]), n_bins=0)


def test_reliability_diagram_is_written_as_png_and_svg(tmp_path):
    rng = np.random.default_rng(2)
    probs = softmax(rng.normal(scale=2.0, size=(200, 10)))
    conf, ok = confidences(probs, rng.integers(0, 10, 200))
    paths = plot_reliability_diagram(calibration_bins(conf, ok), tmp_path, name="rel", title="t")
    assert [p.name for p in paths] == ["rel.png", "rel.svg"]
    assert paths[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "<svg" in paths[1].read_text()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # atomic writes left nothing behind


@pytest.mark.parametrize("k, n", [(0, 50), (1, 50), (25, 50), (49, 50), (50, 50), (7475, 10000), (3, 1000)])
def test_wilson_interval_matches_scipy(k, n):
    from scipy.stats import binomtest

    from landscape.evaluation.metrics import wilson_interval

    ref = binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    lo, hi = wilson_interval(k, n)
    assert lo == pytest.approx(ref.low, abs=1e-9) and hi == pytest.approx(ref.high, abs=1e-9)
    assert 0.0 <= lo <= k / n <= hi <= 1.0


def test_wilson_interval_errors():
    from landscape.evaluation.metrics import wilson_interval

    with pytest.raises(LandscapeError, match="0 <= successes <= n and n > 0, got 5 of 3"):
        wilson_interval(5, 3)
    with pytest.raises(LandscapeError, match="confidence must lie strictly between 0 and 1"):
        wilson_interval(1, 3, confidence=1.0)
