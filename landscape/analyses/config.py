"""Declarative analyses: a TOML file naming models x data x sources x statistics.

Example (``analyses/fmnist-demo.toml``)::

    title = "Fashion-MNIST: energy landscapes of five training objectives"
    seed = 0
    precision = "bf16"          # fp32 | bf16
    device = "auto"             # auto | cpu | cuda | cuda:N
    batch_size = 250
    cache = true                # reuse the engine's energy cache

    [data]
    name = "fashion-mnist"
    split = "test"
    n = 1000                    # a deterministic subset (seeded by `seed`); omit for all
    # root = "/data"            # where the dataset is (default: the standard search path)
    # download = true           # fetch it through torchvision when missing (needs the network)

    [[models]]
    name = "standard"
    checkpoint = "../checkpoints/fmnist/standard.safetensors"   # relative to this file, or a registry name

    [sources.clean]
    kind = "clean"
    [sources.pgd]
    kind = "pgd"                # settings not given come from the dataset's defaults
    steps = 10
    [sources.sgld]
    kind = "sgld"
    steps = 20

    [statistics]
    column = "energy"           # or conditional_energy
    n_boot = 1000
    [figures]
    trajectories = 128          # samples whose energy is followed along PGD/SGLD steps (0: none)
    samples = 64                # generated samples shown per model (0: none): the replay buffer's
                                # when a `replay` source is scored and the model has one, else SGLD's
    sensitivity_steps = 60      # sampler sensitivity panel: the gap to clean along SGLD chains of this
                                # length from noise and (JEM-family models) from the replay buffer (0: off)

Every table and key is checked: an unknown key is an error naming it and the keys
that are allowed, so a typo never silently falls back to a default.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError

__all__ = ["AnalysisConfig", "ModelSpec", "DataSpec", "SourceSpec", "load_analysis", "parse_analysis"]


@dataclass(frozen=True)
class ModelSpec:
    name: str
    checkpoint: str
    family: str | None = None
    options: dict = field(default_factory=dict)


@dataclass(frozen=True)
class DataSpec:
    name: str
    split: str = "test"
    n: int | None = None
    root: str | None = None
    download: bool = False


@dataclass(frozen=True)
class SourceSpec:
    name: str
    kind: str
    options: dict = field(default_factory=dict)


@dataclass(frozen=True)
class AnalysisConfig:
    title: str
    data: DataSpec
    models: tuple[ModelSpec, ...]
    sources: tuple[SourceSpec, ...]
    seed: int = 0
    precision: str = "fp32"
    device: str = "auto"
    batch_size: int = 256
    cache: bool = True
    column: str = "energy"
    n_boot: int = 1000
    ci: float = 0.95
    interval: str = "percentile"
    breakdowns: bool = True
    breakdown_n_boot: int | None = None
    trajectories: int = 128
    samples: int = 64
    sensitivity_steps: int = 0
    path: str | None = None

    def settings(self) -> dict[str, Any]:
        """What the report shows as its settings (everything that determines the result)."""
        return {
            "data": {"name": self.data.name, "split": self.data.split, "n": self.data.n},
            "models": {m.name: m.checkpoint for m in self.models},
            "sources": {s.name: {"kind": s.kind, **s.options} for s in self.sources},
            "seed": self.seed, "precision": self.precision, "batch_size": self.batch_size,
            "statistics": {"column": self.column, "n_boot": self.n_boot, "ci": self.ci, "interval": self.interval},
            "sensitivity_steps": self.sensitivity_steps,
            "analysis": self.path,
        }


_TOP = {"title", "seed", "precision", "device", "batch_size", "cache", "data", "models", "sources",
        "statistics", "figures"}
_DATA = {"name", "split", "n", "root", "download"}
_MODEL = {"name", "checkpoint", "family", "options"}
_STATS = {"column", "n_boot", "ci", "interval", "breakdowns", "breakdown_n_boot"}
_FIGURES = {"trajectories", "samples", "sensitivity_steps"}


def _check_keys(table: dict, allowed: set[str], where: str) -> None:
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise ConfigError(f"unknown key{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))} in {where}; "
                          f"allowed: {', '.join(sorted(allowed))}")


def _typed(value, types, what: str):
    if isinstance(value, bool) and bool not in (types if isinstance(types, tuple) else (types,)):
        raise ConfigError(f"{what} must be {types}, got {value!r}")
    if not isinstance(value, types):
        names = " or ".join(t.__name__ for t in (types if isinstance(types, tuple) else (types,)))
        raise ConfigError(f"{what} must be a {names}, got {value!r}")
    return value


def _resolve_checkpoint(value: str, base: Path | None) -> str:
    if base is not None and not os.path.isabs(value) and not value.startswith(("http://", "https://")):
        candidate = (base / value)
        if candidate.exists() or "/" in value or value.endswith((".pt", ".pth", ".safetensors", ".ckpt")):
            return str(candidate.resolve())
    return value


def parse_analysis(doc: dict, path: str | os.PathLike | None = None) -> AnalysisConfig:
    """Validate a parsed TOML document (``path`` anchors relative checkpoint paths)."""
    from ..sources import SOURCES

    where = str(path) if path else "the analysis"
    base = Path(path).resolve().parent if path else None
    _check_keys(doc, _TOP, where)
    title = _typed(doc.get("title", "Energy landscape report"), str, "title")

    data = _typed(doc.get("data"), dict, f"[data] of {where}") if "data" in doc else None
    if data is None:
        raise ConfigError(f"{where} needs a [data] table with at least name = \"DATASET\"")
    _check_keys(data, _DATA, f"[data] of {where}")
    if "name" not in data:
        raise ConfigError(f"[data] of {where} needs name = \"DATASET\"")
    n = data.get("n")
    if n is not None and (not isinstance(n, int) or isinstance(n, bool) or n < 1):
        raise ConfigError(f"[data] n must be a positive integer, got {n!r}")
    dspec = DataSpec(_typed(data["name"], str, "[data] name"), _typed(data.get("split", "test"), str, "[data] split"),
                     n, data.get("root"), _typed(data.get("download", False), bool, "[data] download"))

    models = doc.get("models")
    if not isinstance(models, list) or not models:
        raise ConfigError(f"{where} needs at least one [[models]] table with name and checkpoint")
    mspecs, names = [], set()
    for i, m in enumerate(models):
        _typed(m, dict, f"[[models]] #{i + 1}")
        _check_keys(m, _MODEL, f"[[models]] #{i + 1} of {where}")
        if "name" not in m or "checkpoint" not in m:
            raise ConfigError(f"[[models]] #{i + 1} of {where} needs name and checkpoint, got keys {sorted(m)}")
        name = _typed(m["name"], str, f"[[models]] #{i + 1} name")
        if name in names:
            raise ConfigError(f"two [[models]] are named {name!r}")
        names.add(name)
        mspecs.append(ModelSpec(name, _resolve_checkpoint(_typed(m["checkpoint"], str, f"model {name!r} checkpoint"), base),
                                m.get("family"), dict(_typed(m.get("options", {}), dict, f"model {name!r} options"))))

    sources = doc.get("sources")
    if not isinstance(sources, dict) or not sources:
        raise ConfigError(f"{where} needs at least one [sources.NAME] table with kind = \"clean\" | \"pgd\" | ...")
    sspecs = []
    for name, s in sources.items():
        _typed(s, dict, f"[sources.{name}]")
        kind = s.get("kind")
        if kind not in SOURCES:
            raise ConfigError(f"[sources.{name}] kind must be one of {', '.join(SOURCES)}, got {kind!r}")
        sspecs.append(SourceSpec(name, kind, {k: v for k, v in s.items() if k != "kind"}))

    stats = _typed(doc.get("statistics", {}), dict, "[statistics]")
    _check_keys(stats, _STATS, f"[statistics] of {where}")
    figs = _typed(doc.get("figures", {}), dict, "[figures]")
    _check_keys(figs, _FIGURES, f"[figures] of {where}")
    column = stats.get("column", "energy")
    if column not in ("energy", "conditional_energy"):
        raise ConfigError(f"[statistics] column must be 'energy' or 'conditional_energy', got {column!r}")
    precision = doc.get("precision", "fp32")
    if precision not in ("fp32", "bf16"):
        raise ConfigError(f"precision must be 'fp32' or 'bf16', got {precision!r}")
    ints = {"seed": doc.get("seed", 0), "batch_size": doc.get("batch_size", 256),
            "n_boot": stats.get("n_boot", 1000), "trajectories": figs.get("trajectories", 128),
            "samples": figs.get("samples", 64), "sensitivity_steps": figs.get("sensitivity_steps", 0)}
    for key, value in ints.items():
        low = 1 if key in ("batch_size", "n_boot") else 0
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            raise ConfigError(f"{key} must be an integer >= {low}, got {value!r}")
    return AnalysisConfig(
        title=title, data=dspec, models=tuple(mspecs), sources=tuple(sspecs), seed=ints["seed"],
        precision=precision, device=_typed(doc.get("device", "auto"), str, "device"), batch_size=ints["batch_size"],
        cache=_typed(doc.get("cache", True), bool, "cache"), column=column, n_boot=ints["n_boot"],
        ci=float(_typed(stats.get("ci", 0.95), (int, float), "[statistics] ci")),
        interval=_typed(stats.get("interval", "percentile"), str, "[statistics] interval"),
        breakdowns=_typed(stats.get("breakdowns", True), bool, "[statistics] breakdowns"),
        breakdown_n_boot=stats.get("breakdown_n_boot"), trajectories=ints["trajectories"], samples=ints["samples"],
        sensitivity_steps=ints["sensitivity_steps"], path=str(path) if path else None,
    )


def load_analysis(path: str | os.PathLike) -> AnalysisConfig:
    """Read and validate an analysis TOML file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"analysis file {path} does not exist")
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from exc
    return parse_analysis(doc, path)
