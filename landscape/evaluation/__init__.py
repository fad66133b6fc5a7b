"""Evaluation to the field's standard: accuracy, robustness, calibration, OOD detection, generation.

* :mod:`~landscape.evaluation.metrics` -- clean accuracy, expected calibration error
  (15 equal-width bins, top-label confidence), reliability diagrams.
* :mod:`~landscape.evaluation.robustness` -- PGD-20 and AutoAttack robust accuracy on
  the same samples (and their per-sample worst case).
* :mod:`~landscape.evaluation.ood` -- AUROC of the energy score ``-E(x)`` and of
  max-softmax against another dataset or noise images.
* :mod:`~landscape.evaluation.generation` -- FID / Inception Score through
  torch-fidelity (local Inception weights), and the offline FD in a reference
  classifier's features (not FID).
* :mod:`~landscape.evaluation.evaluate` -- :func:`evaluate`: all of it for several
  models as one table, every value with its settings; :func:`format_table`,
  :func:`write_table`.

``torch_fidelity`` is imported only when FID/IS are computed.
"""

from __future__ import annotations

from .evaluate import (COLUMNS, DEFAULT_METRICS, METRICS, evaluate, format_table, parse_metrics, read_table,
                       wide_table, write_table)
from .generation import (FD_LABEL, INCEPTION_URL, feature_frechet_distance, frechet_distance, generate,
                         inception_metrics, inception_weights_path, penultimate_features, reference_classifier,
                         reference_fd)
from .metrics import (ECE_BINS, accuracy, calibration_bins, confidences, expected_calibration_error,
                      plot_reliability_diagram, softmax)
from .ood import GaussianImages, UniformImages, auroc, fpr_at_tpr, ood_scores, ood_source
from .robustness import RobustAccuracy, autoattack, pgd20, robust_accuracy

__all__ = [
    "evaluate", "format_table", "wide_table", "write_table", "read_table", "parse_metrics", "METRICS",
    "DEFAULT_METRICS", "COLUMNS",
    "accuracy", "softmax", "confidences", "calibration_bins", "expected_calibration_error", "plot_reliability_diagram",
    "ECE_BINS",
    "pgd20", "autoattack", "robust_accuracy", "RobustAccuracy",
    "auroc", "fpr_at_tpr", "ood_scores", "ood_source", "GaussianImages", "UniformImages",
    "frechet_distance", "feature_frechet_distance", "penultimate_features", "reference_classifier", "reference_fd",
    "generate", "inception_weights_path", "inception_metrics", "FD_LABEL", "INCEPTION_URL",
]
