"""Sample sources: what gets scored (torchattacks-style, one class per file).

Every source is built with its hyper-parameters and called as
``source(model, x, y, keys=None, seed=0)``: it returns detached samples in [0, 1]
on ``x``'s device and leaves ``model.training`` as it found it (see
:mod:`landscape.sources.base`).

| source | file | paper |
|---|---|---|
| :class:`Clean` | clean.py | - |
| :class:`PGD` (Linf/L2; ce, energy, conditional) | pgd.py | Madry et al. 2018 |
| :class:`AutoAttack` (via ``pyautoattack``) | autoattack.py | Croce & Hein 2020 |
| :class:`SGLD` (uniform, replay-buffer or class-Gaussian init) | sgld.py | Grathwohl et al. 2020 (JEM); Yang & Ji 2021 (JEM++) |
| :class:`Replay` (the model's own replay-buffer samples) | replay.py | JEM's generation and FID code |
| :class:`ReplayBuffer`, :func:`fit_class_gaussians` | buffer.py | JEM; JEM++ / SADA-JEM |
| :class:`Noise` (Gaussian corruption) | noise.py | - |
| :class:`Dataset` (out-of-distribution images) | ood.py | - |
| :class:`GaussianImages`, :class:`UniformImages` (noise images, OOD baselines) | synthetic.py | - |

Per-dataset attack radii and steps live in one table, :mod:`landscape.sources.defaults`.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

from ..errors import LandscapeError
from .autoattack import AutoAttack
from ._common import attack_context, logits_of
from .base import Source, rand_like_keyed, randn_like_keyed
from .buffer import ClassGaussians, ReplayBuffer, fit_class_gaussians
from .clean import Clean
from .defaults import ATTACK_DEFAULTS, attack_defaults
from .noise import Noise
from .ood import Dataset, OODDataset, match_shape
from .pgd import PGD, SearchLoss
from .replay import Replay
from .sgld import SGLD
from .synthetic import GaussianImages, UniformImages

log = logging.getLogger(__name__)

__all__ = [
    "Source", "Clean", "PGD", "AutoAttack", "SGLD", "Replay", "ReplayBuffer", "ClassGaussians", "fit_class_gaussians",
    "Noise", "Dataset", "OODDataset", "GaussianImages", "UniformImages", "match_shape", "ATTACK_DEFAULTS", "attack_defaults",
    "randn_like_keyed", "rand_like_keyed", "attack_context", "logits_of", "SOURCES", "REGISTRY", "SourceKind",
    "source_kind", "SearchLoss", "parse_spec", "create_source", "source_settings",
]

@dataclass(frozen=True)
class SourceKind:
    """A registered source: its short name (command line, TOML ``kind``), class, place in
    the canonical order of reports, display name, colour (Okabe-Ito) and role."""

    name: str
    cls: type
    display: str
    color: str
    role: str  # "reference", "adversarial", "generated", "corruption" or "out-of-distribution"


#: every source, in the canonical order of tables and figures (clean first, then
#: adversarial, generated, corrupted and out-of-distribution samples)
REGISTRY: tuple[SourceKind, ...] = (
    SourceKind("clean", Clean, "clean", "#0072B2", "reference"),                        # blue
    SourceKind("pgd", PGD, "PGD", "#D55E00", "adversarial"),                             # vermillion
    SourceKind("autoattack", AutoAttack, "AutoAttack", "#CC79A7", "adversarial"),        # reddish purple
    SourceKind("replay", Replay, "replay buffer", "#56B4E9", "generated"),              # sky blue
    SourceKind("sgld", SGLD, "SGLD", "#009E73", "generated"),                            # bluish green
    SourceKind("noise", Noise, "noise", "#7F7F7F", "corruption"),                        # grey
    SourceKind("ood", Dataset, "OOD", "#E69F00", "out-of-distribution"),                 # orange
    SourceKind("gaussian", GaussianImages, "Gaussian images", "#F0E442", "out-of-distribution"),  # yellow
    SourceKind("uniform", UniformImages, "uniform images", "#999999", "out-of-distribution"),     # light grey
)

#: short names (as used on the command line) -> source classes, in the canonical order
SOURCES = {k.name: k.cls for k in REGISTRY}


_BY_NAME = {k.name: k for k in REGISTRY}


def source_kind(label: str) -> SourceKind | None:
    """The registry entry of a source label: a registered name (``"pgd"``) or a spec of one
    (``"pgd:steps=20"``); ``None`` for anything else."""
    label = str(label)
    return _BY_NAME.get(label) or _BY_NAME.get(label.split(":", 1)[0])


_FRACTION = re.compile(r"^\s*(\d+(?:\.\d*)?)\s*/\s*(\d+(?:\.\d*)?)\s*$")


def _fraction(value):
    """``"8/255"`` -> 0.0313...; any other value unchanged."""
    if isinstance(value, str):
        m = _FRACTION.match(value)
        if m and float(m.group(2)) != 0:
            return float(m.group(1)) / float(m.group(2))
    return value


def source_settings(cls) -> list[str]:
    """The settings (constructor arguments) a source class takes, in order."""
    import inspect

    return [p.name for p in inspect.signature(cls.__init__).parameters.values()
            if p.name != "self" and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]


def create_source(name: str, dataset: str | None = None, /, **kwargs) -> Source:
    """Build a source by its short name; ``pgd``/``autoattack`` take the radius of ``dataset`` from the defaults table.

    ``create_source("pgd", "fashion-mnist", steps=20)``. For ``ood`` a ``dataset=``
    setting names the out-of-distribution dataset and wins over the positional one
    (the dataset being analysed), so ``create_source("ood", "fashion-mnist",
    dataset="mnist")`` (what a spec ``ood:dataset=mnist`` or a TOML source table
    becomes) scores MNIST images; ``create_source("ood", "svhn")`` scores SVHN.
    For every other source, ``dataset=`` is the same as the positional argument.
    """
    if name not in SOURCES:
        raise LandscapeError(f"unknown source {name!r}; known: {', '.join(SOURCES)}")
    cls = SOURCES[name]
    if name == "ood":
        if dataset is not None:
            kwargs.setdefault("dataset", dataset)
    elif "dataset" in kwargs:
        given = kwargs.pop("dataset")
        if dataset is not None and given != dataset:
            raise LandscapeError(f"source {name!r} got two datasets, {dataset!r} and {given!r}")
        dataset = given
    kwargs = {k: _fraction(v) for k, v in kwargs.items()}  # eps = "8/255" as written in papers
    settings = source_settings(cls)
    unknown = sorted(set(kwargs) - set(settings))
    if unknown:
        raise LandscapeError(f"source {name!r} has no setting{'s' if len(unknown) > 1 else ''} "
                             f"{', '.join(map(repr, unknown))}; its settings are: {', '.join(settings)}")
    if name in ("pgd", "autoattack") and dataset is not None and "eps" not in kwargs:
        src = cls.for_dataset(dataset, **kwargs)
        log.info("source %r: eps %.6g (%s/255) is %s's default, not given", name, src.eps, f"{src.eps * 255:.4g}",
                 dataset)
        return src
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise LandscapeError(f"source {name!r} got bad arguments {sorted(kwargs)}: {exc}") from None


def parse_spec(spec: str, dataset: str | None = None) -> Source:
    """Build a source from ``"name"`` or ``"name:key=value:key=value"`` (the command line's
    and the OOD sets' syntax).

    ``"pgd"`` and ``"autoattack"`` take their radius from the per-dataset defaults;
    ``"pgd:steps=20:loss=energy"`` overrides settings; ``"ood:dataset=mnist"`` scores
    images of another dataset. Values are Python literals or plain words.
    """
    import ast

    if not isinstance(spec, str) or not spec.strip():
        raise LandscapeError(f"a source spec must look like name or name:key=value, got {spec!r}")
    name, *pairs = [p.strip() for p in spec.split(":")]
    kwargs = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise LandscapeError(f"source settings must look like name:key=value, got {spec!r}")
        try:
            kwargs[key.strip()] = ast.literal_eval(value.strip())
        except (ValueError, SyntaxError):
            kwargs[key.strip()] = value.strip()
    if name == "ood" and "dataset" not in kwargs:
        raise LandscapeError(f"source 'ood' needs the out-of-distribution dataset, e.g. 'ood:dataset=mnist', got {spec!r}")
    return create_source(name, dataset, **kwargs)
