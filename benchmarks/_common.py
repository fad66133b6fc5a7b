"""Shared benchmark helpers: timing by repeated runs (median), a small trained model."""

from __future__ import annotations

import statistics
import time

import torch


def timeit(fn, repeat: int = 5, warmup: int = 1, sync=None) -> float:
    """Median wall time of ``fn()`` over ``repeat`` runs after ``warmup`` runs."""
    for _ in range(warmup):
        fn()
    if sync:
        sync()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        if sync:
            sync()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def compare(fn_a, fn_b, repeat: int = 5, warmup: int = 1, sync=None) -> tuple[float, float]:
    """Median times of ``fn_a`` and ``fn_b``, measured alternately (a, b, a, b, ...).

    Alternating spreads any load from other processes over both sides, so their
    ratio is steadier than two separate series on a shared machine.
    """
    for _ in range(warmup):
        fn_a()
        fn_b()
    ta, tb = [], []
    for _ in range(repeat):
        for fn, acc in ((fn_a, ta), (fn_b, tb)):
            if sync:
                sync()
            t = time.perf_counter()
            fn()
            if sync:
                sync()
            acc.append(time.perf_counter() - t)
    return statistics.median(ta), statistics.median(tb)


def sync_for(device: torch.device):
    return torch.cuda.synchronize if device.type == "cuda" else None


def trained_fmnist_model(n_train: int = 10000, epochs: int = 1, seed: int = 0):
    """A small CNN trained briefly on Fashion-MNIST (the bundled checkpoint when present)."""
    from pathlib import Path

    bundled = Path(__file__).resolve().parents[1] / "checkpoints" / "fmnist" / "standard.safetensors"
    if bundled.exists():
        from landscape import load_model

        return load_model(bundled)
    from landscape.quickstart import quick_landscape

    model, _ = quick_landscape("fashion-mnist", n_train=n_train, n_test=10, epochs=epochs, seed=seed,
                               progress_bar=False)
    return model.eval()
