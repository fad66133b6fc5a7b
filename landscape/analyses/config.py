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
from ..validate import (Bool, Choice, Int, Optional, Real, Setting, Str, Table, check_settings, defaults,
                        describe_settings, toml_value)

__all__ = ["AnalysisConfig", "ModelSpec", "DataSpec", "SourceSpec", "load_analysis", "parse_analysis", "schema",
           "starter",
           "SECTIONS"]


#: the settings of an analysis file, declared once: what each accepts, its default, what it does
TOP = (
    Setting("title", Str(), "Energy landscape report", "the report's title"),
    Setting("seed", Int(low=0), 0, "seed of the data subset, every keyed random draw and the bootstrap"),
    Setting("precision", Choice("fp32", "bf16"), "fp32", "network precision (bf16: autocast)"),
    Setting("device", Str(), "auto", "auto (CUDA when present), cpu, cuda or cuda:N"),
    Setting("batch_size", Int(low=1), 256, "clean images per batch"),
    Setting("cache", Bool(), True, "reuse the engine's energy cache"),
)
DATA = (
    Setting("name", Str(), doc="dataset name (fashion-mnist, cifar10, digits, ...)"),
    Setting("split", Str(), "test", "dataset split"),
    Setting("n", Optional(Int(low=1)), None, "a deterministic subset of n samples (seeded by seed); all when left out"),
    Setting("root", Optional(Str()), None, "where the dataset is (default: the standard search path)"),
    Setting("download", Bool(), False, "fetch the dataset through torchvision when missing (needs the network)"),
)
MODEL = (
    Setting("name", Str(), doc="the model's name in tables and figures"),
    Setting("checkpoint", Str(), doc="a path (relative to the analysis file), URL or registry name"),
    Setting("family", Optional(Str()), None, "the checkpoint family, when detection should not decide"),
    Setting("options", Table(), {}, "loader options (architecture, normalization, ...)"),
)
STATISTICS = (
    Setting("column", Choice("energy", "conditional_energy"), "energy", "the energy analysed: E(x) or E(x, y)"),
    Setting("n_boot", Int(low=1), 1000, "bootstrap replicates of every interval"),
    Setting("ci", Real(low=0.0, high=1.0, low_open=True, high_open=True), 0.95, "coverage of the intervals"),
    Setting("interval", Choice("percentile", "basic"), "percentile", "bootstrap interval kind"),
    Setting("breakdowns", Bool(), True, "gap tables by class and by correctness"),
    Setting("breakdown_n_boot", Optional(Int(low=1)), None, "bootstrap replicates of the breakdowns (default: n_boot)"),
)
FIGURES = (
    Setting("trajectories", Int(low=0), 128, "samples whose energy is followed along PGD/SGLD steps (0: none)"),
    Setting("samples", Int(low=0), 64, "generated samples shown per model (0: none)"),
    Setting("sensitivity_steps", Int(low=0), 0, "length of the sampler-sensitivity chains (0: off)"),
    Setting("kde", Bool(), False, "draw a kernel density estimate over each histogram"),
)
#: [sources.NAME] tables: kind, then the source's own settings (see landscape.sources)
SOURCE = (Setting("kind", Str(), doc="clean, pgd, autoattack, replay, sgld, noise, ood, gaussian, uniform"),)
SECTIONS = {"": TOP, "data": DATA, "models": MODEL, "sources.NAME": SOURCE, "statistics": STATISTICS,
            "figures": FIGURES}
_D = {**defaults(TOP), **defaults(STATISTICS), **defaults(FIGURES)}


@dataclass(frozen=True)
class ModelSpec:
    name: str
    checkpoint: str
    family: str | None = None
    options: dict = field(default_factory=dict)


@dataclass(frozen=True)
class DataSpec:
    name: str
    split: str = defaults(DATA)["split"]
    n: int | None = None
    root: str | None = None
    download: bool = defaults(DATA)["download"]


@dataclass(frozen=True)
class SourceSpec:
    name: str
    kind: str
    options: dict = field(default_factory=dict)


@dataclass(frozen=True)
class AnalysisConfig:
    """A validated analysis; its defaults are the declared settings' (:data:`TOP`, :data:`STATISTICS`, :data:`FIGURES`)."""

    title: str
    data: DataSpec
    models: tuple[ModelSpec, ...]
    sources: tuple[SourceSpec, ...]
    seed: int = _D["seed"]
    precision: str = _D["precision"]
    device: str = _D["device"]
    batch_size: int = _D["batch_size"]
    cache: bool = _D["cache"]
    column: str = _D["column"]
    n_boot: int = _D["n_boot"]
    ci: float = _D["ci"]
    interval: str = _D["interval"]
    breakdowns: bool = _D["breakdowns"]
    breakdown_n_boot: int | None = _D["breakdown_n_boot"]
    trajectories: int = _D["trajectories"]
    samples: int = _D["samples"]
    sensitivity_steps: int = _D["sensitivity_steps"]
    kde: bool = _D["kde"]
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


def _table(value, what: str) -> dict:
    if not isinstance(value, dict):
        raise ConfigError(f"{what} must be a table, got {value!r}")
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
    sections = {"data", "models", "sources", "statistics", "figures"}
    top = check_settings({k: v for k, v in doc.items() if k not in sections}, TOP, where, ConfigError)

    if "data" not in doc:
        raise ConfigError(f"{where} needs a [data] table with at least name = \"DATASET\"")
    data = check_settings(_table(doc["data"], f"[data] of {where}"), DATA, f"[data] of {where}", ConfigError)
    dspec = DataSpec(**data)

    models = doc.get("models")
    if not isinstance(models, list) or not models:
        raise ConfigError(f"{where} needs at least one [[models]] table with name and checkpoint")
    mspecs, names = [], set()
    for i, m in enumerate(models):
        m = check_settings(_table(m, f"[[models]] #{i + 1}"), MODEL, f"[[models]] #{i + 1} of {where}", ConfigError)
        if m["name"] in names:
            raise ConfigError(f"two [[models]] are named {m['name']!r}")
        names.add(m["name"])
        mspecs.append(ModelSpec(m["name"], _resolve_checkpoint(m["checkpoint"], base), m["family"], m["options"]))

    sources = doc.get("sources")
    if not isinstance(sources, dict) or not sources:
        raise ConfigError(f"{where} needs at least one [sources.NAME] table with kind = \"clean\" | \"pgd\" | ...")
    sspecs = []
    for name, s in sources.items():
        _table(s, f"[sources.{name}]")
        kind = s.get("kind")
        if kind not in SOURCES:
            raise ConfigError(f"[sources.{name}] kind must be one of {', '.join(SOURCES)}, got {kind!r}")
        sspecs.append(SourceSpec(name, kind, {k: v for k, v in s.items() if k != "kind"}))

    stats = check_settings(_table(doc.get("statistics", {}), "[statistics]"), STATISTICS, f"[statistics] of {where}",
                           ConfigError)
    figs = check_settings(_table(doc.get("figures", {}), "[figures]"), FIGURES, f"[figures] of {where}", ConfigError)
    return AnalysisConfig(data=dspec, models=tuple(mspecs), sources=tuple(sspecs), **top, **stats, **figs,
                          path=str(path) if path else None)


def starter() -> str:
    """A commented starter analysis file: every key with its default and what it does
    (generated from the declarations), on the bundled Fashion-MNIST models."""
    def block(settings, skip=()):
        out = []
        for st in settings:
            if st.name in skip:
                continue
            value = toml_value(st.default) if not st.required else '"..."'
            line = f"{st.name} = {value}" if st.default is not None else f"# {st.name} = ..."
            out.append(f"{line:38s} # {st.doc}")
        return out

    lines = ["# A landscape analysis: models x data x sources -> energies, gap statistics and a report.",
             "# Run it with: landscape report THIS_FILE --out report/NAME",
             "# Every key: landscape report --schema (an unknown key is an error naming the allowed ones).", ""]
    lines += ['title = "My energy landscape"'] + block(TOP, skip=("title",))
    lines += ["", "[data]", 'name = "fashion-mnist"                 # dataset name (fashion-mnist, cifar10, digits, ...)']
    lines += block(DATA, skip=("name", "n")) + ["n = 1000                               # a deterministic subset; leave out for all"]
    for name in ("standard", "pgdat", "jem"):
        lines += ["", "[[models]]", f'name = "{name}"',
                  f'{f"checkpoint = {chr(34)}fmnist-{name}{chr(34)}":38s} # a path (relative to this file), URL or registry name']
    lines += ["", "[sources.clean]", 'kind = "clean"', "",
              "[sources.pgd]                          # settings not given come from the dataset's defaults",
              'kind = "pgd"', "steps = 20", "",
              "[sources.replay]                       # the JEM-family models' own samples (skipped for others)",
              'kind = "replay"', "",
              "[sources.sgld]                         # short chains from noise: measures the sampler too",
              'kind = "sgld"', "steps = 20", "", "[statistics]"] + block(STATISTICS) + ["", "[figures]"] + block(FIGURES)
    return "\n".join(lines) + "\n"


def schema() -> str:
    """Every key of an analysis file, with what it accepts, its default and what it does (Markdown)."""
    lines = ["| table | key | accepts | default | what it does |", "|---|---|---|---|---|"]
    for section, settings in SECTIONS.items():
        table = f"[{section}]" if section and section != "models" else ("[[models]]" if section else "(top level)")
        for name, accepts, default, doc in describe_settings(settings):
            lines.append(f"| `{table}` | `{name}` | {accepts} | {default} | {doc} |")
    lines += ["", "Each `[sources.NAME]` table takes `kind` and that source's own settings (PGD's and "
              "AutoAttack's `eps` and `step` default to the dataset's; radii may be written `\"8/255\"`):", "",
              "| kind | setting | default |", "|---|---|---|"]
    for kind, setting, default in source_settings_table():
        lines.append(f"| `{kind}` | `{setting}` | {default} |")
    return "\n".join(lines)


def source_settings_table() -> list[tuple[str, str, str]]:
    """``(kind, setting, default)`` of every registered source's constructor arguments."""
    import inspect

    from ..sources import REGISTRY, source_settings

    rows = []
    for k in REGISTRY:
        params = inspect.signature(k.cls.__init__).parameters
        for name in source_settings(k.cls):
            if name in ("record_trajectory", "buffer", "class_gaussians"):
                continue  # set by the toolkit, not in a file
            default = params[name].default
            shown = "the dataset's" if k.name in ("pgd", "autoattack") and name in ("eps", "step") else (
                "(required)" if default is inspect.Parameter.empty else toml_value(default))
            rows.append((k.name, name, shown))
    return rows


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
