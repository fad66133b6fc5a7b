"""Robust accuracy under PGD-20 and AutoAttack, on the same samples.

* **PGD-20**: :class:`landscape.sources.PGD` with 20 steps of size ``step``, cross-entropy
  loss, a uniform random start in the Linf ball, ``restarts`` random starts (each
  sample keeps its worst case), projected onto the eps-ball and [0, 1] after every
  step (Madry et al., ICLR 2018). ``eps`` and ``step`` default to the dataset's
  entry in :mod:`landscape.sources.defaults` (pixel units: e.g. 8/255 and 2/255 on
  CIFAR-10, 0.1 and 0.01 on Fashion-MNIST); an ``eps`` given without ``step`` keeps
  the default ratio ``step / eps``.
* **AutoAttack**: :class:`landscape.sources.AutoAttack` (``pyautoattack``, the code
  of Croce & Hein, ICML 2020); ``version="standard"`` runs APGD-CE, APGD-T, FAB-T
  and Square, as reported by RobustBench.

Both attacks run through :func:`landscape.engine.score` in one pass over the same
samples, so the two numbers are paired. A sample counts as robust when its clean
image *and* its adversarial example are classified correctly (AutoAttack's own
definition, applied to PGD as well). ``worst_case`` is robust under both attacks:
it can never exceed either, and it is the number to quote when PGD-20 happens to
find an adversarial example AutoAttack missed (logged as a warning, a hint of
gradient masking).
"""

from __future__ import annotations

import importlib.metadata
import logging
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..errors import LandscapeError
from ..sources import PGD, AutoAttack, Clean, attack_defaults
from ..validate import check_int, check_number

log = logging.getLogger(__name__)

__all__ = ["PGD_STEPS", "AA_STANDARD_ATTACKS", "pgd20", "autoattack", "RobustAccuracy", "robust_accuracy",
           "eps_text"]

#: iterations of the reported PGD attack
PGD_STEPS = 20
#: the attacks of AutoAttack's standard version, in the order they run
AA_STANDARD_ATTACKS = ("apgd-ce", "apgd-t", "fab-t", "square")
_AA_ATTACKS = {"standard": list(AA_STANDARD_ATTACKS), "plus": ["apgd-ce", "apgd-dlr", "fab", "square", "apgd-t", "fab-t"],
               "rand": ["apgd-ce", "apgd-dlr"]}


def eps_text(eps: float, norm: str = "Linf") -> str:
    """``0.0314 (8/255)``-style text: the radius in pixel units, and in 255ths when Linf."""
    text = f"{eps:.4g}"
    if norm == "Linf":
        k = eps * 255
        text += f" ({k:.4g}/255)" if abs(k - round(k)) > 1e-6 else f" ({int(round(k))}/255)"
    return text


def _radius(dataset: str | None, norm: str, eps, step) -> tuple[float, float]:
    if dataset is None:
        if eps is None:
            raise LandscapeError("the attack radius is unknown: the data has no dataset name, pass eps= (pixel units)")
        eps = check_number("eps", eps, low=0.0)
        return eps, (check_number("step", step, low=0.0, low_open=True) if step is not None else eps / 4)
    d = attack_defaults(dataset, norm)
    if eps is None:
        return d["eps"], d["step"] if step is None else step
    eps = check_number("eps", eps, low=0.0)
    if step is None:
        step = d["step"] * eps / d["eps"] if eps > 0 else d["step"]
    return eps, step


def pgd20(dataset: str | None = None, *, eps: float | None = None, step: float | None = None,
          steps: int = PGD_STEPS, restarts: int = 1, norm: str = "Linf") -> PGD:
    """The reported PGD attack: cross-entropy, random start, ``steps`` (20) steps, dataset-default radius."""
    eps, step = _radius(dataset, norm, eps, step)
    return PGD(norm=norm, eps=eps, step=step, steps=steps, loss="ce", random_start=True, restarts=restarts)


def autoattack(dataset: str | None = None, *, eps: float | None = None, version: str = "standard",
               attacks=None, norm: str = "Linf", n_classes: int | None = None) -> AutoAttack:
    """AutoAttack at the dataset-default radius (``version="standard"``: the benchmark)."""
    eps, _ = _radius(dataset, norm, eps, None)
    return AutoAttack(norm=norm, eps=eps, version=version, attacks=attacks, n_classes=n_classes)


def _package_version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:  # pragma: no cover
        return "unknown"


@dataclass
class RobustAccuracy:
    """Per-sample results of :func:`robust_accuracy` and the settings of each attack.

    ``samples`` has one row per sample: ``index`` (dataset index), ``label``,
    ``clean`` (clean image correct), then per attack a robust flag (clean and
    adversarial correct), and ``worst_case`` (robust under every attack run).
    ``settings`` maps ``clean``/``pgd20``/``autoattack``/``worst_case`` to their settings.
    """

    samples: pd.DataFrame
    settings: dict = field(default_factory=dict)

    def accuracy(self, column: str) -> float:
        if column not in self.samples.columns or column in ("index", "label"):
            raise LandscapeError(f"no accuracy {column!r}; have {[c for c in self.samples.columns if c not in ('index', 'label')]}")
        return float(self.samples[column].mean())

    @property
    def n(self) -> int:
        return len(self.samples)


def robust_accuracy(model, data, *, dataset: str | None = None, pgd: bool = True, aa: bool = True,
                    eps: float | None = None, step: float | None = None, steps: int = PGD_STEPS, restarts: int = 1,
                    norm: str = "Linf", aa_version: str = "standard", aa_attacks=None, batch_size: int = 256,
                    device=None, precision: str = "fp32", channels_last: bool | None = None, seed: int = 0,
                    checks: str = "error", progress_bar: bool | None = None,
                    model_name: str | None = None) -> RobustAccuracy:
    """PGD-20 and AutoAttack robust accuracy of ``model`` on every sample of ``data``.

    Args:
        model: an EnergyModel.
        data: a Dataset of ``(x, y)`` (e.g. a :func:`landscape.subset` of a test split)
            or a tuple ``(x, y)``; all of it is attacked.
        dataset: the dataset name whose default radius applies (default: the data's own name).
        pgd, aa: which attacks to run.
        eps, step, steps, restarts, norm: the PGD settings (eps also AutoAttack's), pixel units.
        aa_version, aa_attacks: AutoAttack version (``"custom"`` with a list of attacks).
        batch_size, device, precision, channels_last, seed, checks: as :func:`landscape.engine.score`
            (channels-last is recorded in the attacks' settings when on: it changes float
            rounding, not the attack).
            AutoAttack draws its random starts per batch, so its result depends
            on ``batch_size`` (recorded in its settings); PGD's does not.

    Returns:
        a :class:`RobustAccuracy`.
    """
    from ..engine import score, selection, use_channels_last

    if not (pgd or aa):
        raise LandscapeError("robust_accuracy needs at least one attack: pgd=True or aa=True")
    sel = selection(data)
    dataset = dataset or sel.dataset
    seed = check_int("seed", seed)
    sources = {"clean": Clean()}
    settings: dict = {"clean": {"n": len(sel), "data": sel.describe(), "seed": seed}}
    if pgd:
        src = pgd20(dataset, eps=eps, step=step, steps=steps, restarts=restarts, norm=norm)
        sources["pgd20"] = src
        settings["pgd20"] = {"attack": f"PGD-{src.steps}", "norm": src.norm, "eps": src.eps, "step": src.step,
                             "steps": src.steps, "restarts": src.restarts, "random_start": True, "loss": "ce",
                             "n": len(sel), "data": sel.describe(), "seed": seed}
    if aa:
        src = autoattack(dataset, eps=eps, version=aa_version, attacks=aa_attacks, norm=norm,
                         n_classes=getattr(model, "n_classes", None))
        sources["autoattack"] = src
        settings["autoattack"] = {"attack": "AutoAttack", "version": src.version,
                                  "attacks": list(src.attacks or _AA_ATTACKS[src.version]), "norm": src.norm,
                                  "eps": src.eps, "n": len(sel), "data": sel.describe(), "seed": seed,
                                  "batch_size": batch_size, "package": f"pyautoattack {_package_version('pyautoattack')}"}
    if model_name is None:
        from ..engine import default_model_name as _name

        model_name = _name(model)
    table = score(model, data, sources, model_name=model_name, batch_size=batch_size, device=device,
                  precision=precision, channels_last=channels_last, seed=seed, cache=False, checks=checks,
                  distributed=None, progress_bar=progress_bar)
    if use_channels_last(precision, channels_last):
        for name in sources:
            if name != "clean":
                settings[name]["channels_last"] = True
    clean = table[table["source"] == "clean"].reset_index(drop=True)
    out = pd.DataFrame({"index": clean["index"].to_numpy(), "label": clean["label"].to_numpy(),
                        "clean": clean["correct"].to_numpy(bool)})
    worst = out["clean"].to_numpy().copy()
    for name in sources:
        if name == "clean":
            continue
        part = table[table["source"] == name].reset_index(drop=True)
        if not np.array_equal(part["index"].to_numpy(), out["index"].to_numpy()):  # pragma: no cover - engine contract
            raise LandscapeError(f"internal error: the {name} rows are not aligned with the clean rows")
        robust = out["clean"].to_numpy() & part["correct"].to_numpy(bool)
        out[name] = robust
        worst &= robust
    if pgd and aa:
        out["worst_case"] = worst
        settings["worst_case"] = {"attacks": ["clean", settings["pgd20"]["attack"], "AutoAttack"],
                                  "norm": norm, "eps": settings["pgd20"]["eps"], "n": len(sel),
                                  "data": sel.describe(), "seed": seed}
        missed = int((out["autoattack"] & ~out["pgd20"]).sum())
        if missed:
            log.warning("%s: PGD-20 found adversarial examples AutoAttack missed on %d of %d samples "
                        "(a hint of gradient masking or randomness); quote worst_case (%.4f)",
                        model_name, missed, len(out), float(worst.mean()))
    return RobustAccuracy(out, settings)
