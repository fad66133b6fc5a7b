"""RobustBench zoo models, through ``robustbench.utils.load_model``.

RobustBench keeps a model's weights at ``<model_dir>/<dataset>/<threat_model>/<Name>.pt``
(ensembles: ``<Name>.pt_m0.pt``, ``<Name>.pt_m1.pt``...), a state_dict or
``{"state_dict": ...}`` whose ``module.``/``model.`` prefixes RobustBench strips
itself. Its models take pixels in [0, 1] and normalise inside, so the
EnergyModel uses the identity normalisation.

When the file is there, ``robustbench.utils.load_model`` reads it and never
touches the network. Before handing a file over, we read it once with the
toolkit's safe loader (``weights_only=True``) so that a malicious file is
refused here whatever RobustBench's own ``torch.load`` defaults to. When the file
is missing, RobustBench downloads it (from Google Drive, with gdown) unless
``LANDSCAPE_OFFLINE=1``, in which case the error says which file is missing where.
Zoo entries that RobustBench serves through timm (the Hugging Face hub) cannot be
read from a model directory and are refused offline.

robustbench is imported only through :func:`landscape._compat.import_robustbench`.
"""

from __future__ import annotations

import contextlib
import difflib
import io
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch

from ..errors import CheckpointError
from .fetch import landscape_home, offline, verify_sha256
from .safety import extra_safe_globals, safe_torch_load, sniff_format

log = logging.getLogger(__name__)

__all__ = ["ZooModel", "zoo_model", "zoo_files", "load_zoo_model", "zoo_path_guess", "default_model_dir",
           "DATASETS", "THREAT_MODELS", "N_CLASSES"]

DATASETS = ("cifar10", "cifar100", "imagenet")
THREAT_MODELS = ("Linf", "L2", "corruptions", "corruptions_3d")
N_CLASSES = {"cifar10": 10, "cifar100": 100, "imagenet": 1000}
INPUT_SHAPE = {"cifar10": (3, 32, 32), "cifar100": (3, 32, 32), "imagenet": None}


def default_model_dir() -> Path:
    return landscape_home() / "robustbench"


def _robustbench():
    from .._compat import import_robustbench

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return import_robustbench()


@dataclass(frozen=True)
class ZooModel:
    """One RobustBench zoo entry and where its weights live."""

    name: str
    dataset: str
    threat_model: str
    model_dir: Path

    @property
    def folder(self) -> Path:
        # RobustBench keeps corruptions_3d models in the corruptions folder.
        return self.model_dir / self.dataset / self.threat_model.replace("_3d", "")

    def describe(self) -> str:
        return f"RobustBench model {self.name} ({self.dataset}, {self.threat_model})"


def zoo_model(name: str, dataset: str | None = None, threat_model: str | None = None,
              model_dir: str | Path | None = None) -> ZooModel:
    """Validate a zoo name for ``dataset`` / ``threat_model`` (defaults cifar10, Linf)."""
    dataset = dataset or "cifar10"
    threat_model = threat_model or "Linf"
    if dataset not in DATASETS:
        raise CheckpointError(f"RobustBench dataset must be one of {', '.join(DATASETS)}, got {dataset!r}")
    if threat_model not in THREAT_MODELS:
        raise CheckpointError(f"RobustBench threat_model must be one of {', '.join(THREAT_MODELS)}, got {threat_model!r}")
    rb = _robustbench()
    from robustbench.model_zoo import model_dicts
    from robustbench.model_zoo.enums import BenchmarkDataset, ThreatModel

    del rb
    tm = threat_model.replace("_3d", "")
    models = model_dicts[BenchmarkDataset(dataset)].get(ThreatModel(tm), {})
    if name not in models:
        close = difflib.get_close_matches(name, list(models), n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise CheckpointError(f"{name!r} is not a RobustBench {dataset} {threat_model} zoo model{hint}")
    return ZooModel(name, dataset, threat_model, Path(model_dir).expanduser() if model_dir else default_model_dir())


def _zoo_record(zm: ZooModel) -> dict:
    from robustbench.model_zoo import model_dicts
    from robustbench.model_zoo.enums import BenchmarkDataset, ThreatModel

    return model_dicts[BenchmarkDataset(zm.dataset)][ThreatModel(zm.threat_model.replace("_3d", ""))][zm.name]


def _is_timm(zm: ZooModel) -> bool:
    import timm

    return timm.is_model(f"{zm.name.lower().replace('-', '_')}_{zm.dataset}_{zm.threat_model.lower()}")


def zoo_files(zm: ZooModel) -> list[Path]:
    """The weight files RobustBench reads for ``zm`` (several for an ensemble)."""
    record = _zoo_record(zm)
    base = zm.folder / f"{zm.name}.pt"
    if isinstance(record.get("gdrive_id"), list):
        return [Path(f"{base}_m{i}.pt") for i in range(len(record["gdrive_id"]))]
    return [base]


def zoo_path_guess(path: Path) -> tuple[str, str, str, Path] | None:
    """``(name, dataset, threat_model, model_dir)`` when ``path`` sits where RobustBench keeps a model."""
    parts = path.resolve().parts
    if len(parts) < 4 or path.suffix != ".pt":
        return None
    dataset, threat = parts[-3], parts[-2]
    if dataset not in DATASETS or threat not in THREAT_MODELS:
        return None
    return path.stem, dataset, threat, path.resolve().parents[2]


def build_zoo_network_meta(zm: ZooModel) -> torch.nn.Module:
    """The zoo architecture on the meta device (no memory, no weights): for counting parameters."""
    record = _zoo_record(zm)
    with torch.device("meta"):
        return record["model"]()


def load_zoo_model(zm: ZooModel, sha256: str | None = None) -> torch.nn.Module:
    """``robustbench.utils.load_model`` for ``zm``, offline when its files are present."""
    rb = _robustbench()
    timm_backed = _is_timm(zm)
    files = [] if timm_backed else zoo_files(zm)
    missing = [f for f in files if not f.is_file()]
    if timm_backed and offline():
        raise CheckpointError(
            f"LANDSCAPE_OFFLINE is set and {zm.describe()} is served by timm from the Hugging Face hub, "
            "not from a model directory; it needs the network"
        )
    if missing and offline():
        raise CheckpointError(
            f"LANDSCAPE_OFFLINE is set and {zm.describe()} is not downloaded: expected the file {missing[0]} "
            f"(RobustBench's layout <model_dir>/<dataset>/<threat_model>/<Name>.pt, model_dir={zm.model_dir})"
        )
    if sha256 and len(files) == 1 and files[0].is_file():
        verify_sha256(files[0], sha256)
    for f in files:
        if f.is_file():
            if sniff_format(f) == "html":
                raise CheckpointError(f"{f} is an HTML page, not {zm.describe()} (a failed Google Drive download); delete it")
            safe_torch_load(f, mmap=True)  # refuses unsafe pickles before RobustBench reads the file
    if missing:
        log.info("RobustBench downloads %s into %s", zm.describe(), zm.folder)
    out = io.StringIO()
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(out), \
                torch.serialization.safe_globals(extra_safe_globals()):
            warnings.simplefilter("ignore")
            net = rb.load_model(zm.name, model_dir=str(zm.model_dir), dataset=zm.dataset, threat_model=zm.threat_model)
    except CheckpointError:
        raise
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"the weights in {files[0] if files else zm.folder} do not fit {zm.describe()}: {first[:300]}") from None
    except Exception as exc:  # RobustBench and gdown raise many types
        raise CheckpointError(f"RobustBench could not load {zm.describe()}: {type(exc).__name__}: {str(exc)[:300]}") from None
    for f in files:
        if missing and f in missing:
            if not f.is_file() or sniff_format(f) == "html":
                raise CheckpointError(f"the download of {zm.describe()} did not produce a checkpoint at {f}")
            if sha256:
                verify_sha256(f, sha256)
    return net.eval()
