"""``load_model(source)``: one entry point for every checkpoint the toolkit reads.

``source`` is a local path, an ``http(s)`` URL (downloaded into the cache), a name
from the checkpoint registry (``checkpoints/manifest.toml``, see
``landscape checkpoints list``) or, with ``family="robustbench"``, a RobustBench
zoo name. The family is detected from the file when not given:

==============  ===========================================================  =============
family          what it reads                                                 inputs
==============  ===========================================================  =============
native          this toolkit's ``.safetensors`` (:func:`landscape.save_model`) as saved
jem, jempp,     ``{"model_state_dict", "replay_buffer"}`` or a bare state_dict  2x - 1
sadajem,        of the JEM Wide-ResNet (see :mod:`landscape.checkpoints.families`)
ebjdat
robustbench     a zoo name + ``model_dir``, via ``robustbench.utils.load_model``  [0, 1]
state_dict      any state_dict, with ``architecture=`` given                   as given
==============  ===========================================================  =============

Whatever the family, the result is an :class:`~landscape.energy.EnergyModel` in
eval mode that takes pixels in [0, 1]. Every file is read with
``torch.load(weights_only=True)`` (or safetensors): a checkpoint that would run
code is refused. The JEM family's replay buffer (stored in [-1, 1]) is returned
as pixels in [0, 1]: as ``model.replay_buffer`` (a CPU tensor, ``None`` when the
file has none; it is a plain attribute, so ``model.to()`` does not move it) and
as :attr:`LoadedCheckpoint.replay_buffer` from :func:`load_checkpoint`.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..energy import EnergyModel
from ..errors import CheckpointError
from ..utils import resolve_device

log = logging.getLogger(__name__)

__all__ = ["load_model", "load_checkpoint", "LoadedCheckpoint", "buffer_to_pixels"]


@dataclass
class LoadedCheckpoint:
    """A loaded model with what came with it.

    Attributes:
        model: the :class:`EnergyModel` (eval mode, on the requested device).
        family: the family it was loaded as (``jem``, ``robustbench``, ...).
        replay_buffer: the SGLD replay buffer (JEM-family files, and native files
            that carry one) as pixels in [0, 1] (float32, CPU, ``N x C x H x W``), or None.
        replay_labels: the buffer's classes (int64 ``N``) when it is class-conditional, else None.
        source: what was asked for (path, URL or name).
        path: the file that was read (None for a zoo model read by RobustBench).
        metadata: the same dict as ``model.metadata`` (JSON-serialisable).
    """

    model: EnergyModel
    family: str
    replay_buffer: torch.Tensor | None
    source: str
    path: Path | None
    metadata: dict = field(default_factory=dict)
    replay_labels: torch.Tensor | None = None


def buffer_to_pixels(buffer: torch.Tensor) -> tuple[torch.Tensor, float]:
    """A JEM replay buffer in [-1, 1] as float32 pixels in [0, 1]: ``(x + 1) / 2``, clamped.

    Returns the pixels and the fraction of values that lay outside [-1, 1]
    (SGLD can overshoot slightly) and were clamped.
    """
    pixels = (buffer.detach().to("cpu", torch.float32) + 1.0) / 2.0
    outside = float(((pixels < 0) | (pixels > 1)).float().mean()) if pixels.numel() else 0.0
    return pixels.clamp_(0.0, 1.0), outside


def load_model(source: str | os.PathLike, family: str | None = None, device: str | torch.device = "cpu",
               **overrides) -> EnergyModel:
    """Load a checkpoint as an :class:`EnergyModel` in eval mode.

    Args:
        source: a path, an http(s) URL, a registry name, or (``family="robustbench"``)
            a RobustBench zoo name.
        family: ``native``, ``jem``, ``jempp``, ``sadajem``, ``ebjdat``,
            ``robustbench``, ``state_dict``, or None to detect it.
        device: ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"auto"``.
        **overrides: loader options, each for the families it applies to (another
            is an error): ``architecture`` (a registered name or an ``nn.Module``;
            required for ``state_dict``), ``normalization`` (``"identity"``,
            ``"jem"`` or a meanstd dict), ``temperature``, ``input_shape``
            ``(C, H, W)``, ``dataset``, ``state_key`` (which entry of a container
            holds the weights), ``load_buffer`` (False skips the replay buffer),
            ``sha256`` (verify the file), ``metadata`` (merged into
            ``model.metadata``); RobustBench: ``model_dir`` (default
            ``$LANDSCAPE_HOME/robustbench``), ``dataset`` (cifar10),
            ``threat_model`` (Linf). Any other keyword is an architecture
            argument (``depth=28, width=10, norm="batch"`` ...) that overrides
            what detection found.

    The replay buffer, when the file has one, is ``model.replay_buffer`` (pixels
    in [0, 1]); see :func:`load_checkpoint` for everything that was loaded.
    """
    return load_checkpoint(source, family=family, device=device, **overrides).model


def load_checkpoint(source: str | os.PathLike, family: str | None = None, device: str | torch.device = "cpu",
                    **overrides) -> LoadedCheckpoint:
    """Like :func:`load_model`, returning a :class:`LoadedCheckpoint` (model, family, replay buffer...)."""
    from .detect import Options, check_options
    from .resolve import resolve_source

    opts = Options.from_overrides(overrides)
    dev = resolve_device(device)
    src = resolve_source(source, family, opts)
    if src.zoo is not None:
        loaded = _load_zoo(src, opts)
    else:
        loaded = _load_file(src, opts)
    check_options(opts, loaded.family)  # (also checked before loading where the family was known)
    model = loaded.model
    if opts.temperature is not None:
        model.temperature = float(opts.temperature)
    model.metadata.update(opts.metadata)
    model.replay_buffer = loaded.replay_buffer
    model.replay_labels = loaded.replay_labels
    loaded.metadata = model.metadata
    model.to(dev).eval()
    log.info("loaded %s as %s%s", loaded.source, loaded.family,
             f" with a replay buffer of {tuple(loaded.replay_buffer.shape)}" if loaded.replay_buffer is not None else "")
    return loaded


# --------------------------------------------------------------------------- files
def _load_file(src, opts) -> LoadedCheckpoint:
    from .detect import check_options
    from .fetch import verify_sha256
    from .identify import identify

    path: Path = src.path
    family = src.family
    if family is not None:
        check_options(opts, family)
    if opts.sha256 and src.url is None:
        verify_sha256(path, opts.sha256)
    what = identify(path)
    if what.kind in ("native", "safetensors"):
        return _load_safetensors(src, path, what, opts)
    if family == "native":
        raise CheckpointError(f"family 'native' was asked for but {path} is not a safetensors file ({what.format})")
    if family == "robustbench":
        return _load_zoo_path(src, path, opts)
    from .layout import unwrap
    from .safety import safe_torch_load

    obj = safe_torch_load(path)
    unwrapped = unwrap(obj, str(path), opts.state_key)
    return _from_state(src, path, unwrapped, opts, native_hint=False)


def _load_safetensors(src, path: Path, what, opts) -> LoadedCheckpoint:
    from .detect import check_options
    from .native import load_native

    family = src.family
    if what.kind == "native":
        if family not in (None, "native"):
            raise CheckpointError(f"family {family!r} was asked for but {path} is a landscape native checkpoint")
        check_options(opts, "native")
        model = load_native(path, load_buffer=opts.load_buffer)
        model.metadata.setdefault("family", "native")
        if src.entry is not None:
            model.metadata["registry"] = _registry_summary(src.entry)
        return LoadedCheckpoint(model, "native", model.replay_buffer, src.display, path, model.metadata,
                                replay_labels=model.replay_labels)
    if family == "native":
        raise CheckpointError(f"{path} is a safetensors file but not a landscape native checkpoint (no 'landscape' metadata)")
    from safetensors.torch import load_file

    from .layout import Unwrapped

    try:
        state = load_file(str(path), device="cpu")
    except Exception as exc:
        raise CheckpointError(f"{path}: the weights could not be read ({type(exc).__name__}: {exc})") from None
    return _from_state(src, path, Unwrapped(state), opts, native_hint=True)


def _from_state(src, path: Path, unwrapped, opts, native_hint: bool) -> LoadedCheckpoint:
    from . import robustbench as rbz
    from .build import build_network
    from .detect import check_options, plan_state_dict
    from .layout import describe_keys

    where = str(path)
    plan = plan_state_dict(unwrapped, src.family, where, opts)
    if plan is None:
        guess = rbz.zoo_path_guess(path)
        if guess is not None and not native_hint:
            name, dataset, threat, model_dir = guess
            try:
                zm = rbz.zoo_model(name, dataset, threat, model_dir)
            except CheckpointError:
                zm = None
            if zm is not None:
                check_options(opts, "robustbench")
                return _load_zoo_model(src, zm, opts, path)
        what = " is a safetensors file but not a landscape native checkpoint, and its" if native_hint else ": its"
        raise CheckpointError(
            f"{where}{what} keys {describe_keys(unwrapped.state_dict)} match no known layout "
            "(JEM family: f.conv1.weight and class_output.weight; RobustBench: <model_dir>/<dataset>/<threat_model>/<Name>.pt); "
            "pass family='state_dict' and architecture=..."
        )
    check_options(opts, plan.family)
    if src.entry is not None and src.entry.arch_kwargs:
        differ = {k: (v, plan.arch_kwargs.get(k)) for k, v in src.entry.arch_kwargs.items() if plan.arch_kwargs.get(k) != v}
        if differ:
            log.warning("%s: the file's architecture differs from the registry's %s; using the file's", where, differ)
    net = build_network(plan.architecture, plan.arch_kwargs, plan.state_dict, where)
    arch_name = getattr(net, "arch_name", type(net).__name__)
    arch_kwargs = getattr(net, "arch_kwargs", plan.arch_kwargs)
    n_classes = plan.n_classes or (arch_kwargs.get("n_classes") if isinstance(arch_kwargs, dict) else None)
    metadata = {
        "family": plan.family,
        "source": src.display,
        "path": str(path.resolve()),
        "architecture": arch_name,
        "arch_kwargs": dict(arch_kwargs),
        **plan.metadata,
    }
    dataset = opts.dataset or (src.entry.dataset if src.entry is not None else None)
    if dataset:
        metadata["dataset"] = dataset
    if src.entry is not None:
        metadata["registry"] = _registry_summary(src.entry)
    buffer = None
    if plan.replay_buffer is not None:
        buffer, outside = buffer_to_pixels(plan.replay_buffer)
        metadata["replay_buffer_shape"] = list(buffer.shape)
        if outside:
            metadata["replay_buffer_clamped_fraction"] = outside
            log.info("%s: %.4f%% of the replay buffer lay outside [-1, 1] and was clamped", where, 100 * outside)
    if plan.metadata.get("family_candidates"):
        log.info("%s: detected family %s; the layout is also written by %s (pass family= to relabel)", where,
                 plan.family, ", ".join(c for c in plan.metadata["family_candidates"] if c != plan.family))
    model = EnergyModel(net, normalization=plan.normalization, input_shape=plan.input_shape, n_classes=n_classes,
                        metadata=metadata)
    return LoadedCheckpoint(model.eval(), plan.family, buffer, src.display, path, metadata)


def _registry_summary(entry) -> dict:
    keep = ("name", "paper", "paper_url", "metrics", "metrics_source", "url")
    d = entry.to_dict()
    return {k: d[k] for k in keep if k in d}


# --------------------------------------------------------------------------- RobustBench
def _load_zoo_path(src, path: Path, opts) -> LoadedCheckpoint:
    from . import robustbench as rbz

    guess = rbz.zoo_path_guess(path)
    if guess is None:
        raise CheckpointError(
            f"family 'robustbench' needs a zoo name (with model_dir=) or a file at "
            f"<model_dir>/<dataset>/<threat_model>/<Name>.pt, got {path}"
        )
    name, dataset, threat, model_dir = guess
    return _load_zoo_model(src, rbz.zoo_model(name, dataset, threat, model_dir), opts, path)


def _load_zoo(src, opts) -> LoadedCheckpoint:
    from .detect import check_options

    check_options(opts, "robustbench")
    return _load_zoo_model(src, src.zoo, opts, None)


def _load_zoo_model(src, zm, opts, path: Path | None) -> LoadedCheckpoint:
    from . import robustbench as rbz

    sha = opts.sha256 or (src.entry.sha256 if src.entry is not None else None)
    net = rbz.load_zoo_model(zm, sha256=sha)
    files = rbz.zoo_files(zm) if path is None else [path]
    metadata = {
        "family": "robustbench",
        "source": src.display,
        "path": str(files[0]) if files else None,
        "architecture": f"robustbench:{zm.name}",
        "zoo": {"name": zm.name, "dataset": zm.dataset, "threat_model": zm.threat_model, "model_dir": str(zm.model_dir)},
        "dataset": zm.dataset,
    }
    if src.entry is not None:
        metadata["registry"] = _registry_summary(src.entry)
    model = EnergyModel(net, normalization="identity", input_shape=rbz.INPUT_SHAPE[zm.dataset],
                        n_classes=rbz.N_CLASSES[zm.dataset], metadata=metadata)
    return LoadedCheckpoint(model.eval(), "robustbench", None, src.display, files[0] if files else None, metadata)
