"""The training loop: :func:`fit`, readable top to bottom.

1. settle the config (recipe, then config, then keyword overrides);
2. load the training split and carve a validation split out of it (the test
   split is never used: model selection happens on validation data);
3. build the model, the optimiser, the replay buffer (JEM, EB-JDAT) and the
   objective (:mod:`landscape.train.objectives`);
4. start fresh (writing a step-0 checkpoint) or resume from ``train_state.pt``;
5. for every step: learning rate (linear warm-up, then step or cosine decay),
   batch (a fixed permutation per epoch, so resuming mid-epoch sees the same
   data), loss under optional bf16 autocast, a divergence check (roll back on a
   non-finite or exploding loss), backward, gradient all-reduce (DDP), update;
   a checkpoint every ``checkpoint_every`` steps;
6. at each epoch end: validation metrics (clean accuracy, PGD accuracy on a
   validation subset, mean energies of clean, adversarial and SGLD samples),
   ``metrics.csv`` / ``metrics.json``, a checkpoint, ``model.safetensors`` and
   ``best.safetensors`` (the best validation score so far).

Files in ``out_dir``: ``config.json``, ``train_state.pt`` (resume state, loads with
``torch.load(weights_only=True)``), ``model.safetensors`` (latest weights, native,
loads with ``landscape.load_model``), ``best.safetensors``, ``metrics.csv``,
``metrics.json``.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ..data import dataset_info, load_dataset, subset, to_tensors, train_val_split
from ..energy import EnergyModel
from ..errors import ConfigError
from ..models import create_model
from ..models.registry import get_model_entry
from ..checkpoints.native import save_model
from ..precision import autocast
from ..sources import PGD, SGLD, fit_class_gaussians
from ..utils import atomic_write_text, check_output_dir, progress, resolve_device
from .state import (BEST_FILE, MODEL_FILE, STATE_FILE, load_train_state, rng_state, save_train_state,
                         set_rng_state)
from .config import TrainConfig
from .ddp import Dist, init_distributed
from .objectives import Objective, TrackingBuffer

log = logging.getLogger(__name__)

__all__ = ["fit", "TrainResult", "resolve_config"]

#: settings that may change when a run is resumed (they do not change the result on CPU)
RESUMABLE_CHANGES = ("device", "num_threads", "notes")


@dataclass
class TrainResult:
    """What :func:`fit` returns.

    ``status`` is ``"completed"``, ``"stopped"`` (``stop_after_steps`` reached) or
    ``"diverged"`` (too many rollbacks; the last good checkpoint is kept and
    ``model`` holds its weights).
    """

    out_dir: Path
    model: EnergyModel
    status: str
    message: str
    step: int
    epoch: int
    history: list = field(default_factory=list)
    rollbacks: int = 0
    events: list = field(default_factory=list)

    @property
    def model_path(self) -> Path:
        return self.out_dir / MODEL_FILE

    @property
    def best_path(self) -> Path:
        return self.out_dir / BEST_FILE


class _Rollback(Exception):
    def __init__(self, step: int, loss: float, slots):
        super().__init__(f"loss {loss} at step {step}")
        self.step, self.loss, self.slots = step, loss, slots


def resolve_config(config: "TrainConfig | dict | None" = None, recipe: str | None = None, **overrides) -> TrainConfig:
    """Recipe settings, then ``config`` (a TrainConfig or dict), then ``overrides``."""
    data: dict = {}
    if recipe is not None:
        from .recipes import load_recipe

        data.update(load_recipe(recipe).to_dict())
    if isinstance(config, TrainConfig):
        data.update(config.to_dict())
    elif isinstance(config, dict):
        data.update(config)
    elif config is not None:
        raise ConfigError(f"config must be a TrainConfig or a dict, got {type(config).__name__}")
    data.update(overrides)
    return TrainConfig.from_dict(data)


def _mix(*values: int) -> int:
    """A seed in [0, 2**62) from integers (for per-step keyed randomness)."""
    h = 0x243F6A8885A308D3
    for v in values:
        h = (h ^ (int(v) + 0x9E3779B97F4A7C15 + (h << 6) + (h >> 2))) & ((1 << 62) - 1)
    return h


def _lr_at(cfg: TrainConfig, step: int, epoch: int, total: int, scale: float) -> float:
    lr = cfg.lr
    if cfg.schedule == "cosine":
        lr *= 0.5 * (1.0 + math.cos(math.pi * min(step, total) / max(total, 1)))
    elif cfg.schedule == "step":
        lr *= cfg.decay_rate ** sum(1 for e in cfg.decay_epochs if epoch >= e)
    if cfg.warmup_steps and step < cfg.warmup_steps:
        lr *= (step + 1) / cfg.warmup_steps
    return lr * scale


def _epoch_order(seed: int, epoch: int, n: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(_mix(seed, epoch, 17) % (2**63 - 1))
    return torch.randperm(n, generator=g)


def _build_model(cfg: TrainConfig, shape, n_classes: int, class_names) -> EnergyModel:
    kwargs = dict(cfg.arch_kwargs)
    params = get_model_entry(cfg.architecture).signature.parameters
    if "in_channels" in params:
        kwargs.setdefault("in_channels", shape[0])
    if "n_classes" in params:
        kwargs.setdefault("n_classes", n_classes)
    net = create_model(cfg.architecture, **kwargs)
    meta = {"dataset": cfg.dataset, "class_names": list(class_names)}
    return EnergyModel(net, normalization=cfg.normalization, input_shape=shape, n_classes=n_classes,
                       check_inputs=False, metadata=meta)


def _init_from(cfg: TrainConfig, model: EnergyModel, buffer) -> None:
    """Load ``cfg.init_from``'s weights into ``model`` (same architecture, arguments and
    normalisation), and its replay buffer, when it has one of the same shape, into ``buffer``."""
    from ..checkpoints.load import load_model

    src = load_model(cfg.init_from)
    if type(src.net).__name__ != type(model.net).__name__ or getattr(src.net, "arch_kwargs", None) != model.net.arch_kwargs:
        raise ConfigError(f"init_from {cfg.init_from}: its network is {getattr(src.net, 'arch_name', type(src.net).__name__)} "
                          f"{getattr(src.net, 'arch_kwargs', {})}, this run builds {cfg.architecture} "
                          f"{model.net.arch_kwargs}; set architecture and arch_kwargs to match")
    if src.normalization.to_config() != model.normalization.to_config():
        raise ConfigError(f"init_from {cfg.init_from}: its normalisation is {src.normalization.to_config()}, this run "
                          f"uses {model.normalization.to_config()}")
    model.net.load_state_dict(src.net.state_dict(), strict=True)
    start = getattr(src, "replay_buffer", None)
    if buffer is not None and start is not None and tuple(start.shape[1:]) == tuple(buffer.shape):
        n = min(start.shape[0], buffer.size)
        buffer.data[:n] = start[:n].to(buffer.data.device)
        log.info("init_from %s: weights and %d replay-buffer samples loaded", cfg.init_from, n)
    else:
        log.info("init_from %s: weights loaded", cfg.init_from)


def _make_optimizer(cfg: TrainConfig, model) -> torch.optim.Optimizer:
    if cfg.optimizer == "adam":
        return torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    return torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)


def _write_metrics(out_dir: Path, history: list, events: list) -> None:
    atomic_write_text(out_dir / "metrics.json", json.dumps({"epochs": history, "events": events}, indent=1))
    if not history:
        return
    cols: list[str] = []
    for row in history:
        cols += [k for k in row if k not in cols]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=cols)
    w.writeheader()
    for row in history:
        w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})
    atomic_write_text(out_dir / "metrics.csv", buf.getvalue())


def _evaluate(model: EnergyModel, cfg: TrainConfig, x_val, y_val, device) -> dict:
    """Validation metrics: clean accuracy, PGD accuracy on a subset, mean energies (run by the
    engine's batch loop; the sample keys are the validation positions)."""
    from ..engine import collect
    from ..sources import Clean

    precision = "bf16" if cfg.bf16 else "fp32"
    common = dict(device=device, channels_last=False, seed=cfg.seed, progress_bar=False)  # the trainer's format stays
    clean = collect(model, (x_val, y_val), {"clean": Clean()}, batch_size=512, precision=precision, **common)["clean"]
    out = {"val_acc": float(np.mean(clean["prediction"] == clean["label"])) if len(clean["label"]) else 0.0,
           "val_e_clean": float(np.mean(clean["energy"]))}
    n = min(cfg.val_pgd_size, x_val.shape[0])
    if n and cfg.val_attack_steps:
        pgd = PGD("Linf", eps=cfg.eps, step=cfg.eps / 4, steps=cfg.val_attack_steps, loss="ce")
        # always fp32, as the evaluation table measures it: this metric selects best.safetensors
        adv = collect(model, (x_val[:n], y_val[:n]), {"pgd": pgd}, batch_size=256, precision="fp32", **common)["pgd"]
        out["val_pgd_acc"] = float(np.mean(adv["prediction"] == adv["label"]))
        out["val_e_adv"] = float(np.mean(adv["energy"]))
    m = min(128, x_val.shape[0])
    if cfg.sgld_steps and m:
        sgld = SGLD(steps=cfg.sgld_steps, step_size=cfg.sgld_step_size, noise=cfg.sgld_noise, init="uniform")
        gen = collect(model, (x_val[:m], y_val[:m]), {"sgld": sgld}, batch_size=m, precision=precision,
                      **common)["sgld"]
        out["val_e_sgld"] = float(np.mean(gen["energy"]))
    return out


def fit(config: "TrainConfig | dict | None" = None, *, out_dir: str | os.PathLike, recipe: str | None = None,
        resume: bool = False, stop_after_steps: int | None = None,
        loss_hook: Callable[[int, torch.Tensor], torch.Tensor] | None = None,
        show_progress: bool | None = None, **overrides) -> TrainResult:
    """Train a model; see the module docstring for what happens and what is written.

    Args:
        config: a :class:`TrainConfig` or a dict of its fields (applied over ``recipe``).
        out_dir: the run folder (created).
        recipe: a named recipe (:func:`landscape.train.list_recipes`), the base config.
        resume: continue the run in ``out_dir`` from its last checkpoint (its stored
            config is used; ``config``/``overrides`` may only change ``device``,
            ``num_threads`` and ``epochs``). Without it, an ``out_dir`` that already
            holds a run is an error.
        stop_after_steps: return (status ``"stopped"``) once this many steps have run in
            total, without writing anything more, as if the process had been killed.
        loss_hook: ``hook(step, loss) -> loss``, called on every step's loss before the
            divergence check (tests inject NaNs with it).
        show_progress: tqdm bar (None: the process-wide setting).
        **overrides: TrainConfig fields.

    Returns a :class:`TrainResult`. A run that diverges more than ``max_rollbacks``
    times stops with status ``"diverged"`` instead of raising.
    """
    out_dir = check_output_dir(out_dir, "the run folder")  # before any work: a file there, a read-only parent
    state_path = out_dir / STATE_FILE
    saved = None
    if resume:
        if not state_path.is_file():
            raise ConfigError(f"nothing to resume in {out_dir}: no {STATE_FILE} (start the run without --resume)")
        saved = load_train_state(state_path)
        cfg = TrainConfig.from_dict(TrainConfig.upgrade(saved["config"]), where=str(state_path))
        allowed = RESUMABLE_CHANGES + ("epochs",)
        if config is not None or recipe is not None:
            asked = resolve_config(config, recipe, **overrides).to_dict()
            stored = cfg.to_dict()
            changed = sorted(k for k, v in asked.items() if v != stored[k] and k not in allowed)
        else:
            stored = cfg.to_dict()
            changed = sorted(k for k, v in overrides.items() if k not in allowed and stored.get(k, v) != v)
        if changed:
            raise ConfigError(f"cannot resume {out_dir} with different settings {changed}; "
                              f"only {', '.join(allowed)} may change")
        cfg = cfg.replace(**{k: v for k, v in overrides.items() if k in allowed})
    else:
        cfg = resolve_config(config, recipe, **overrides)
        if state_path.exists():
            raise ConfigError(f"{out_dir} already holds a run ({STATE_FILE}); pass resume=True (--resume) to continue it "
                              "or choose another output folder")

    dist = init_distributed(cfg.device)
    try:
        return _Trainer(cfg, out_dir, dist, saved, stop_after_steps, loss_hook, show_progress).run()
    finally:
        dist.close()


class _Trainer:
    """The state of one run; :meth:`run` is the loop."""

    def __init__(self, cfg: TrainConfig, out_dir: Path, dist: Dist, saved: dict | None, stop_after_steps,
                 loss_hook, show_progress):
        self.cfg, self.out_dir, self.dist = cfg, out_dir, dist
        self.stop_after_steps, self.loss_hook, self.show_progress = stop_after_steps, loss_hook, show_progress
        if cfg.num_threads:
            torch.set_num_threads(cfg.num_threads)
        if dist.enabled and cfg.device != "cpu" and torch.cuda.is_available():
            self.device = torch.device("cuda", dist.local_rank)
        else:
            self.device = resolve_device(cfg.device)
        self.channels_last = self.device.type == "cpu"  # faster on CPUs in fp32 and bf16 alike

        # -- data: a validation split carved from the training split --------------------
        info = dataset_info(cfg.dataset)
        train_ds = load_dataset(cfg.dataset, "train", root=cfg.data_root)
        if cfg.train_subset is not None:
            train_ds = subset(train_ds, cfg.train_subset, seed=cfg.seed)
        train_part, val_part = train_val_split(train_ds, cfg.val_size, seed=cfg.seed)
        self.x_train, self.y_train = to_tensors(train_part)
        self.x_val, self.y_val = to_tensors(val_part)
        self.shape = tuple(self.x_train.shape[1:])
        n_classes = info.n_classes or int(self.y_train.max()) + 1
        classes = getattr(getattr(train_ds, "dataset", train_ds), "classes", [str(i) for i in range(n_classes)])
        per_step = cfg.batch_size * dist.world_size
        self.steps_per_epoch = self.x_train.shape[0] // per_step
        if self.steps_per_epoch < 1:
            raise ConfigError(f"batch_size {cfg.batch_size} x {dist.world_size} processes is larger than the "
                              f"{self.x_train.shape[0]} training images")
        self.total_steps = self.steps_per_epoch * cfg.epochs

        # -- model, optimiser, buffer, objective -----------------------------------------
        torch.manual_seed(cfg.seed)
        self.model = _build_model(cfg, self.shape, n_classes, classes).to(self.device)
        if self.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        dist.broadcast_module(self.model)
        self.optimizer = _make_optimizer(cfg, self.model)
        self.buffer = None
        if cfg.needs_sgld:
            init = "uniform"
            if cfg.buffer_init == "gaussian":
                init = fit_class_gaussians(self.x_train, self.y_train, n_classes=n_classes)
            self.buffer = TrackingBuffer(size=cfg.buffer_size, shape=self.shape, reinit_prob=cfg.reinit_prob,
                                         init=init, device=self.device, seed=_mix(cfg.seed, dist.rank, 3) % (2**31))
        if cfg.init_from and saved is None:
            _init_from(cfg, self.model, self.buffer)
            dist.broadcast_module(self.model)
        self.objective = Objective(cfg, self.buffer)

        # -- progress of the run ---------------------------------------------------------
        self.step, self.epoch, self.step_in_epoch = 0, 0, 0
        self.lr_scale, self.rollbacks = 1.0, 0
        self.history: list = []
        self.events: list = []
        self.running: dict = {}
        self.best: dict = {}
        self.started = time.time()
        self.elapsed_before = 0.0
        if saved is not None:
            self._restore(saved)
            log.info("resumed %s at epoch %d, step %d", out_dir, self.epoch, self.step)
        else:
            torch.manual_seed(_mix(cfg.seed, dist.rank, 1) % (2**63 - 1))
            if dist.is_main:
                out_dir.mkdir(parents=True, exist_ok=True)
                atomic_write_text(out_dir / "config.json", json.dumps(cfg.to_dict(), indent=1))
            self._checkpoint()  # step 0: the first "last good" state

    # -- autocast -----------------------------------------------------------------------
    def autocast(self):
        return autocast(self.device, self.cfg.bf16)

    def _batch(self, order: torch.Tensor, i: int):
        b, r = self.cfg.batch_size, self.dist.rank
        start = (i * self.dist.world_size + r) * b
        idx = order[start:start + b]
        x, y = self.x_train[idx].to(self.device), self.y_train[idx].to(self.device)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x, y, idx

    # -- checkpoints ----------------------------------------------------------------------
    def _state(self) -> dict:
        mine = {**rng_state(), "buffer": self.buffer.state_dict() if self.buffer is not None else None}
        ranks = self.dist.gather(mine)
        if not self.dist.is_main:
            return {}
        return {
            "config": self.cfg.to_dict(), "epoch": self.epoch, "step_in_epoch": self.step_in_epoch,
            "step": self.step, "world_size": self.dist.world_size,
            "model": {k: v.detach().cpu().contiguous() for k, v in self.model.net.state_dict().items()},
            "optimizer": self.optimizer.state_dict(),
            "scheduler": {"lr_scale": self.lr_scale, "rollbacks": self.rollbacks, "total_steps": self.total_steps},
            "ranks": ranks, "history": self.history, "events": self.events, "running": self.running,
            "best": self.best, "elapsed_s": self._elapsed(),
        }

    def _checkpoint(self) -> None:
        state = self._state()
        if self.dist.is_main:
            save_train_state(self.out_dir / STATE_FILE, state)
            self._save_native(self.out_dir / MODEL_FILE)
        self.dist.barrier()

    def _save_native(self, path: Path, **extra) -> None:
        last = self.history[-1] if self.history else {}
        buf = self.buffer  # JEM-family runs carry their replay buffer: the model's own samples
        save_model(self.model, path, training={"config": self.cfg.to_dict(), "epoch": self.epoch, "step": self.step,
                                               "rollbacks": self.rollbacks},
                   validation_metrics=last, replay_buffer=buf.data.cpu() if buf is not None else False,
                   replay_labels=buf.labels.cpu() if buf is not None and buf.labels is not None else None, **extra)

    def _restore(self, saved: dict) -> None:
        if int(saved.get("world_size", 1)) != self.dist.world_size:
            raise ConfigError(f"the checkpoint was written by {saved.get('world_size')} processes, this run has "
                              f"{self.dist.world_size}; resume with the same number of processes")
        self.model.net.load_state_dict(saved["model"])
        self.optimizer.load_state_dict(saved["optimizer"])
        self.epoch, self.step_in_epoch, self.step = int(saved["epoch"]), int(saved["step_in_epoch"]), int(saved["step"])
        sched = saved.get("scheduler", {})
        self.lr_scale, self.rollbacks = float(sched.get("lr_scale", 1.0)), int(sched.get("rollbacks", 0))
        self.history, self.events = list(saved.get("history", [])), list(saved.get("events", []))
        self.running, self.best = dict(saved.get("running", {})), dict(saved.get("best", {}))
        self.elapsed_before = float(saved.get("elapsed_s", 0.0))
        self.started = time.time()
        mine = saved["ranks"][self.dist.rank]
        set_rng_state(mine)
        if self.buffer is not None and mine.get("buffer") is not None:
            self.buffer.load_state_dict(mine["buffer"])

    def _elapsed(self) -> float:
        return self.elapsed_before + (time.time() - self.started)

    # -- divergence -------------------------------------------------------------------------
    def _roll_back(self, rb: _Rollback) -> bool:
        """Return to the last checkpoint with a lower learning rate; False when out of rollbacks."""
        rollbacks, lr_scale = self.rollbacks + 1, self.lr_scale * self.cfg.rollback_lr_factor
        saved = load_train_state(self.out_dir / STATE_FILE)
        events = self.events  # the log of rollbacks survives them
        self._restore(saved)
        self.events = events
        event = {"event": "rollback", "at_step": rb.step, "loss": rb.loss, "back_to_step": self.step,
                 "lr_scale": lr_scale, "rollback": rollbacks}
        if rollbacks > self.cfg.max_rollbacks:
            self.events.append({**event, "event": "stopped"})
            self.rollbacks = self.cfg.max_rollbacks
            return False
        self.rollbacks, self.lr_scale = rollbacks, lr_scale
        reseeded = self.buffer.reseed(rb.slots) if self.buffer is not None else 0
        event["reseeded_buffer_entries"] = reseeded
        self.events.append(event)
        # a different random path from here on, so the same failure is not replayed exactly
        torch.manual_seed(_mix(self.cfg.seed, self.dist.rank, self.step, rollbacks) % (2**63 - 1))
        log.warning("loss %s at step %d: rolled back to step %d, learning rate x%g, %d buffer entries re-seeded "
                    "(rollback %d of %d)", rb.loss, rb.step, self.step, lr_scale, reseeded, rollbacks,
                    self.cfg.max_rollbacks)
        return True

    # -- the loop -----------------------------------------------------------------------------
    def run(self) -> TrainResult:
        while True:
            try:
                status = self._epochs()
                break
            except _Rollback as rb:
                if not self._roll_back(rb):
                    msg = (f"training diverged {self.cfg.max_rollbacks + 1} times (last: loss {rb.loss} at step {rb.step}); "
                           f"stopped after {self.cfg.max_rollbacks} rollbacks, the last good checkpoint "
                           f"(step {self.step}) is kept in {self.out_dir}")
                    log.error(msg)
                    if self.dist.is_main:
                        _write_metrics(self.out_dir, self.history, self.events)
                    return self._result("diverged", msg)
        if status == "stopped":
            return self._result("stopped", f"stopped after {self.step} steps as asked")
        return self._result("completed", f"trained {self.cfg.epochs} epochs ({self.step} steps) in {self._elapsed():.0f} s")

    def _result(self, status: str, message: str) -> TrainResult:
        return TrainResult(self.out_dir, self.model.eval(), status, message, self.step, self.epoch, self.history,
                           self.rollbacks, self.events)

    def _epochs(self) -> str:
        cfg, dist = self.cfg, self.dist
        while self.epoch < cfg.epochs:
            order = _epoch_order(cfg.seed, self.epoch, self.x_train.shape[0])
            bar = progress(range(self.step_in_epoch, self.steps_per_epoch),
                           enabled=(self.show_progress if dist.is_main else False),
                           desc=f"epoch {self.epoch + 1}/{cfg.epochs}", total=self.steps_per_epoch,
                           initial=self.step_in_epoch)
            self.model.train()
            for i in bar:
                lr = _lr_at(cfg, self.step, self.epoch, self.total_steps, self.lr_scale)
                for group in self.optimizer.param_groups:
                    group["lr"] = lr
                x, y, idx = self._batch(order, i)
                if cfg.input_noise > 0:
                    x = (x + cfg.input_noise * torch.randn_like(x)).clamp_(0.0, 1.0)
                with self.autocast():
                    loss, stats = self.objective(self.model, x, y, keys=idx, seed=_mix(cfg.seed, self.step) % (2**62))
                if self.loss_hook is not None:
                    loss = self.loss_hook(self.step, loss)
                value = float(loss.detach())
                bad = not math.isfinite(value) or abs(value) > cfg.loss_threshold
                if dist.any(bad):
                    slots = self.buffer.last_indices if self.buffer is not None else None
                    raise _Rollback(self.step, value, slots)
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                dist.average_gradients(self.model.parameters())
                if cfg.grad_clip > 0:
                    torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
                self.optimizer.step()
                self.step += 1
                self.step_in_epoch = i + 1
                for k, v in stats.items():
                    s, n = self.running.get(k, [0.0, 0])
                    self.running[k] = [s + float(v), n + 1]
                if hasattr(bar, "set_postfix") and (i % 10 == 0 or i + 1 == self.steps_per_epoch):
                    bar.set_postfix({k: f"{float(v):.3g}" for k, v in stats.items() if k != "e_clean"}, refresh=False)
                if cfg.checkpoint_every and self.step % cfg.checkpoint_every == 0 and i + 1 < self.steps_per_epoch:
                    self._checkpoint()
                if self.stop_after_steps is not None and self.step >= self.stop_after_steps:
                    return "stopped"
            self._end_epoch(lr)
        return "completed"

    def _end_epoch(self, lr: float) -> None:
        cfg = self.cfg
        row = {"epoch": self.epoch + 1, "step": self.step, "lr": lr, "time_s": round(self._elapsed(), 1),
               "rollbacks": self.rollbacks}
        row.update({f"train_{k}": s / max(n, 1) for k, (s, n) in self.running.items()})
        if self.dist.is_main:
            row.update(_evaluate(self.model, cfg, self.x_val, self.y_val, self.device))
            log.info("epoch %d: %s", self.epoch + 1, ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                                                                for k, v in row.items()))
        self.history.append(row)
        self.running = {}
        self.epoch += 1
        self.step_in_epoch = 0
        score = row.get(cfg.select_on, row.get("val_acc"))
        improved = self.dist.is_main and score is not None and score >= self.best.get("score", -1.0)
        if improved:
            self.best = {"score": score, "metric": cfg.select_on, "epoch": self.epoch}
        self._checkpoint()
        if self.dist.is_main:
            if improved:
                self._save_native(self.out_dir / BEST_FILE, selected_on=dict(self.best))
            _write_metrics(self.out_dir, self.history, self.events)
