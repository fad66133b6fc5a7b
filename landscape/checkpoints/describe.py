"""What a checkpoint is, without running it: :func:`inspect_checkpoint`.

Reads the file the same safe way :func:`landscape.load_model` does (memory-mapped
where possible), detects family and architecture, and counts parameters on a
network built on the ``meta`` device: no weights are copied, no forward pass runs,
and nothing is downloaded (a registry entry that is not cached is described from
the registry alone).
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from ..errors import CheckpointError
from .build import build_meta, check_state, count_values, describe_architecture, safetensors_meta
from .detect import Options, plan_state_dict
from .layout import Unwrapped, describe_keys, unwrap
from .resolve import resolve_source
from .identify import identify
from .safety import safe_torch_load, sniff_format

__all__ = ["CheckpointInfo", "inspect_checkpoint", "check_loadable", "training_summary", "TRAINING_COLUMNS"]


@dataclass
class CheckpointInfo:
    source: str
    path: str | None = None
    cached: bool | None = None           # registry/URL sources: is the file in the cache?
    expected_path: str | None = None     # where a registry/URL file is (or would be) cached
    format: str | None = None
    size_bytes: int | None = None
    family: str | None = None
    family_candidates: list = field(default_factory=list)
    architecture: str | None = None
    arch_kwargs: dict = field(default_factory=dict)
    n_parameters: int | None = None
    n_buffer_values: int | None = None
    normalization: object = None
    input_shape: tuple | None = None
    n_classes: int | None = None
    replay_buffer: dict | None = None
    metadata: dict = field(default_factory=dict)
    registry: dict | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def _buffer_summary(buffer: torch.Tensor) -> dict:
    out = {"shape": list(buffer.shape), "dtype": str(buffer.dtype).replace("torch.", "")}
    if buffer.numel() and buffer.is_floating_point():
        lo, hi = torch.aminmax(buffer)
        out["min"], out["max"] = float(lo), float(hi)
    return out


def inspect_checkpoint(source, family: str | None = None, **overrides) -> CheckpointInfo:
    """Describe ``source`` (path, URL, registry or zoo name) without loading it into a model."""
    opts = Options.from_overrides(overrides)
    src = resolve_source(source, family, opts, download=False)
    info = CheckpointInfo(source=src.display)
    if src.entry is not None:
        info.registry = src.entry.to_dict()
        info.family = src.family
        info.architecture = src.entry.architecture
        info.arch_kwargs = dict(src.entry.arch_kwargs)
    if src.expected_path is not None:
        info.expected_path = str(src.expected_path)
        info.cached = src.path is not None
    if src.zoo is not None:
        return _inspect_zoo(info, src.zoo)
    if src.path is None:
        return info
    path = Path(src.path)
    info.path = str(path)
    info.size_bytes = path.stat().st_size
    what = identify(path)
    info.format = what.format
    if what.kind == "native":
        return _inspect_native(info, path, what.header)
    if what.kind == "safetensors":
        return _inspect_state(info, path, Unwrapped(safetensors_meta(path)), src.family, opts)
    obj = safe_torch_load(path, mmap=True)
    return _inspect_state(info, path, unwrap(obj, str(path), opts.state_key), src.family, opts)


def check_loadable(source, family: str | None = None, **overrides) -> CheckpointInfo:
    """:func:`inspect_checkpoint`, raising :class:`CheckpointError` when the file would not
    load (the checks a command runs on every model before any work starts)."""
    info = inspect_checkpoint(source, family=family, **overrides)
    problem = info.metadata.get("problem")
    if problem:
        raise CheckpointError(f"{info.source} cannot be loaded: {problem}")
    return info


def _inspect_native(info: CheckpointInfo, path: Path, header: dict) -> CheckpointInfo:
    info.family = "native"
    info.architecture = header.get("architecture")
    info.arch_kwargs = dict(header.get("arch_kwargs") or {})
    info.normalization = header.get("normalization")
    info.input_shape = tuple(header["input_shape"]) if header.get("input_shape") else None
    info.n_classes = header.get("n_classes")
    info.metadata = dict(header.get("metadata") or {})
    info.metadata.update({k: header[k] for k in ("landscape_version", "created", "temperature") if k in header})
    net = build_meta(info.architecture, info.arch_kwargs, str(path))
    info.n_parameters, info.n_buffer_values = count_values(net)
    from .native import BUFFER_KEY, LABELS_KEY

    tensors = safetensors_meta(path)
    shapes = {k: v for k, v in tensors.items() if k not in (BUFFER_KEY, LABELS_KEY)}
    if BUFFER_KEY in tensors:
        info.replay_buffer = {"shape": list(tensors[BUFFER_KEY].shape),
                              "dtype": str(tensors[BUFFER_KEY].dtype).replace("torch.", ""),
                              "conditional": LABELS_KEY in tensors}
    try:
        check_state(net.state_dict(), shapes, str(path), describe_architecture(info.architecture, info.arch_kwargs))
    except CheckpointError as exc:
        # the header's count describes a network the file does not hold: do not report it as the file's
        info.metadata["problem"] = str(exc)
        info.n_parameters = info.n_buffer_values = None
    return info


def _inspect_state(info: CheckpointInfo, path: Path, unw: Unwrapped, family, opts: Options) -> CheckpointInfo:
    from . import robustbench as rbz

    plan = plan_state_dict(unw, family, str(path), opts)
    if plan is None:
        guess = rbz.zoo_path_guess(path)
        if guess is not None:
            name, dataset, threat, model_dir = guess
            return _inspect_zoo(info, rbz.zoo_model(name, dataset, threat, model_dir))
        raise CheckpointError(
            f"{path}: keys {describe_keys(unw.state_dict)} match no known layout; pass family='state_dict' and architecture=..."
        )
    info.family = plan.family
    info.family_candidates = list(plan.metadata.get("family_candidates", []))
    info.normalization = plan.normalization
    info.input_shape = plan.input_shape
    info.n_classes = plan.n_classes
    info.metadata = {k: v for k, v in plan.metadata.items() if k != "family_candidates"}
    if isinstance(plan.architecture, str):
        net = build_meta(plan.architecture, plan.arch_kwargs, str(path))
        info.architecture = plan.architecture
        info.arch_kwargs = dict(net.arch_kwargs)
        info.n_parameters, info.n_buffer_values = count_values(net)
        try:
            check_state(net.state_dict(), plan.state_dict, str(path), describe_architecture(plan.architecture, plan.arch_kwargs))
        except CheckpointError as exc:
            info.metadata["problem"] = str(exc)
    if unw.replay_buffer is not None:
        info.replay_buffer = _buffer_summary(unw.replay_buffer)
    return info


def _inspect_zoo(info: CheckpointInfo, zm) -> CheckpointInfo:
    from . import robustbench as rbz

    info.family = "robustbench"
    info.architecture = info.architecture or f"robustbench:{zm.name}"
    info.normalization = "identity (the zoo model normalises inside)"
    info.input_shape = rbz.INPUT_SHAPE[zm.dataset]
    info.n_classes = rbz.N_CLASSES[zm.dataset]
    info.metadata = {"zoo": {"name": zm.name, "dataset": zm.dataset, "threat_model": zm.threat_model,
                             "model_dir": str(zm.model_dir)}}
    files = rbz.zoo_files(zm)
    info.expected_path = str(files[0])
    info.cached = all(f.is_file() for f in files)
    if info.cached:
        info.path = str(files[0])
        info.size_bytes = sum(os.path.getsize(f) for f in files)
        info.format = sniff_format(files[0])
    try:
        net = rbz.build_zoo_network_meta(zm)
        info.n_parameters, info.n_buffer_values = count_values(net)
    except Exception:  # some zoo constructors do real work at build time; the count is optional
        pass
    return info


#: the columns of :func:`training_summary`, in order
TRAINING_COLUMNS = ("family", "objective", "epochs", "adversarial search", "SGLD sampler", "energy regulariser",
                    "selected")
_NOT_RECORDED = "not recorded"


def _num(value) -> str:
    return f"{value:g}" if isinstance(value, (int, float)) and not isinstance(value, bool) else str(value)


def training_summary(metadata) -> dict:
    """How a model was trained, in a few words per column (:data:`TRAINING_COLUMNS`), from
    its metadata (a native file's header, as ``model.metadata``).

    Native files written by ``landscape train`` record their whole config; files of other
    code bases (JEM-family, RobustBench...) do not, and say so. Energy regularisers are
    named with the samples they act on, so a report states what shaped each landscape.
    """
    meta = dict(metadata or {})
    row = dict.fromkeys(TRAINING_COLUMNS, _NOT_RECORDED)
    row["family"] = str(meta.get("family") or "unknown")
    cfg = (meta.get("training") or {}).get("config") if isinstance(meta.get("training"), dict) else None
    if not isinstance(cfg, dict):
        return row
    objective = str(cfg.get("objective", "?"))
    if objective == "ebjdat":
        objective += f" (inner: {cfg.get('inner', '?')}, weights: {cfg.get('weight_preset', '?')})"
    row["objective"] = objective
    row["epochs"] = _num(cfg.get("epochs", "?"))
    searched = cfg.get("objective") in ("pgdat", "trades", "ebjdat")
    row["adversarial search"] = (
        f"{cfg.get('attack_norm', 'Linf')} eps {_num(cfg.get('eps', '?'))}, {_num(cfg.get('attack_steps', '?'))} steps "
        f"of {_num(cfg.get('attack_step', '?'))}" + (", bf16" if cfg.get("attack_bf16") else ", fp32")
        if searched else "none")
    weights = dict(cfg.get("weights") or {})
    sampled = cfg.get("objective") in ("jem", "ebjdat") or "px" in weights
    row["SGLD sampler"] = (
        f"{_num(cfg.get('sgld_steps', '?'))} steps (step {_num(cfg.get('sgld_step_size', '?'))}, noise "
        f"{_num(cfg.get('sgld_noise', '?'))}), {_num(cfg.get('n_negatives', '?'))} chains from a buffer of "
        f"{_num(cfg.get('buffer_size', '?'))} ({_num(cfg.get('reinit_prob', '?'))} re-init from "
        f"{cfg.get('buffer_init', '?')})" if sampled else "none")
    l2 = weights.get("energy_l2")
    row["energy regulariser"] = (f"energy_l2 {_num(l2)}: mean E(x+)^2 + mean E(x-)^2 (data and SGLD samples)"
                                 if l2 else "none")
    chosen = meta.get("selected_on")
    if isinstance(chosen, dict) and chosen:
        score = chosen.get("score")
        score = f"{score:.3f}" if isinstance(score, float) else _num(score)
        row["selected"] = f"epoch {chosen.get('epoch', '?')}, best {chosen.get('metric', '?')} ({score})"
    else:
        training = meta.get("training") or {}
        row["selected"] = f"final (epoch {training.get('epoch', '?')})"
    return row
