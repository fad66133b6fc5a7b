"""The training configuration: one flat, validated, JSON-serialisable record.

Every setting of a run lives in :class:`TrainConfig`; recipes (``recipes/*.toml``)
are partial configs, the CLI's flags are overrides, and the whole record is
stored in every checkpoint so a run describes itself.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from dataclasses import dataclass, field
from typing import Any

from ..errors import ConfigError, LandscapeError
from ..validate import Bool, Choice, Constraint, Int, Optional, Real

__all__ = ["TrainConfig", "OBJECTIVES", "INNER_MODES", "WEIGHT_PRESETS", "TERMS"]

#: the named objectives (see :mod:`landscape.train.objectives`)
OBJECTIVES = ("standard", "pgdat", "trades", "jem", "ebjdat")
#: EB-JDAT's inner maximisation objectives
INNER_MODES = ("saddle", "ce", "released", "released-compat")
#: loss terms and what they are
TERMS = {
    "ce": "cross-entropy on clean data, CE(f(x+), y)",
    "adv_ce": "cross-entropy on adversarial data, CE(f(x~), y)",
    "trades_kl": "TRADES: KL(p(.|x+) || p(.|x~)), x~ maximising that KL",
    "px": "JEM maximum likelihood: mean E(x+) - mean E(x-), x- from SGLD",
    "energy_align": "EB-JDAT energy alignment: mean E(x+) - mean E(x~)",
    "energy_l2": ("energy magnitude regulariser mean E(x+)^2 + mean E(x-)^2 on data and SGLD samples "
                  "(Du & Mordatch 2019), the same in JEM and EB-JDAT; off unless weighted"),
}
#: EB-JDAT weight presets (w_px, w_ce, w_adv = energy_align, w_advce = adv_ce)
WEIGHT_PRESETS = {
    # the paper's ablation setting (w_px, w_adv, w_ce + w_advce) = (1, 1, 1),
    # the classification weight shared equally by clean and adversarial CE
    "paper": {"px": 1.0, "ce": 0.5, "energy_align": 1.0, "adv_ce": 0.5},
    # the released training scripts (EB-JDAT-JEM++ / EB-JDAT-SADAJEM train.sh)
    "released": {"px": 1.0, "ce": 1.0, "energy_align": 0.1, "adv_ce": 1.0},
    # the released script of the JEM base (EB-JDAT-JEM): .45/.45/.05/.45 literally
    "released-jem": {"px": 0.45, "ce": 0.45, "energy_align": 0.05, "adv_ce": 0.45},
}


@dataclass
class TrainConfig:
    """Every setting of a training run.

    Data: ``dataset`` (a :func:`landscape.load_dataset` name), ``data_root``,
    ``train_subset`` (use a random subset of the training split, None: all),
    ``val_size`` (fraction or count carved out of the *training* split; the test
    split is never touched), ``val_pgd_size`` (validation images attacked each epoch).

    Model: ``architecture`` and ``arch_kwargs`` (:func:`landscape.create_model`;
    ``in_channels``/``n_classes`` are filled from the dataset), ``normalization``,
    ``init_from`` (a checkpoint path or registry name to fine-tune instead of
    training from scratch; same architecture and normalisation; its replay buffer,
    if any, seeds this run's buffer. The released EB-JDAT scripts train from
    scratch, and so do the bundled recipes).

    Objective: ``objective`` (``standard``, ``pgdat``, ``trades``, ``jem``,
    ``ebjdat``), ``weights`` (per-term overrides, see :data:`TERMS`),
    ``weight_preset`` (EB-JDAT: ``released`` (default), ``released-jem``, ``paper``),
    ``inner`` (EB-JDAT's inner maximisation: ``saddle`` (default: maximise the outer
    loss's terms in x~), ``ce``, ``released``, ``released-compat``; see
    :mod:`landscape.train.objectives`), ``trades_beta``.

    Threat model (pixel units, [0, 1]): ``eps``, ``attack_step``, ``attack_steps``,
    ``attack_norm``; ``inner = "released-compat"`` reproduces the released EB-JDAT
    code's inner search (eps and step applied in [-1, 1] units, i.e. halved in
    pixels, and no projection onto the eps-ball); it must be asked for by name.

    SGLD (JEM, EB-JDAT): ``sgld_steps``, ``sgld_step_size``, ``sgld_noise`` (JEM's
    [-1, 1] units, see :class:`landscape.sources.SGLD`), ``n_negatives`` (chains
    per step, None: the batch size), ``buffer_size``, ``reinit_prob``,
    ``buffer_init`` (``uniform`` or ``gaussian``: JEM++'s per-class Gaussians fitted
    to the training data), ``input_noise`` (JEM's Gaussian noise on clean inputs,
    sigma in pixels; 0 turns it off).

    Optimisation: ``optimizer`` (``sgd``/``adam``), ``lr``, ``momentum``,
    ``weight_decay``, ``warmup_steps`` (linear), ``schedule`` (``constant``,
    ``step``: times ``decay_rate`` at each of ``decay_epochs``, ``cosine``),
    ``epochs``, ``batch_size`` (per process), ``grad_clip`` (0: off).

    Run: ``seed``, ``device``, ``bf16`` (autocast of the training forward and
    backward pass and of SGLD, through :func:`landscape.precision.autocast`),
    ``attack_bf16`` (run the inner adversarial search under that autocast too; off
    by default: in ``benchmarks/attack_precision.py`` the PGD-AT model trained
    against the bf16 search was less robust than the fp32-search one, and bf16 is
    only cheaper where it is native; validation attacks are always fp32),
    ``num_threads`` (CPU threads,
    0: torch's default), ``checkpoint_every`` (steps; 0: epoch ends only),
    ``select_on`` (validation metric for ``best.safetensors``: ``val_acc`` or
    ``val_pgd_acc``).

    Divergence: a non-finite loss or ``|loss| > loss_threshold`` rolls back to the
    last checkpoint, multiplies the learning rate by ``rollback_lr_factor`` and
    re-seeds the buffer entries of the failed step; after ``max_rollbacks`` the run
    stops, keeping the last good checkpoint.
    """

    # data
    dataset: str = "digits"
    data_root: str | None = None
    train_subset: int | None = None
    val_size: float | int = 0.1
    val_pgd_size: int = 500
    # model
    init_from: str | None = None
    architecture: str = "smallcnn"
    arch_kwargs: dict = field(default_factory=dict)
    normalization: str = "identity"
    # objective
    objective: str = "standard"
    weights: dict = field(default_factory=dict)
    weight_preset: str = "released"
    inner: str = "saddle"
    trades_beta: float = 6.0
    # threat model
    eps: float = 0.1
    attack_step: float = 0.025
    attack_steps: int = 5
    attack_norm: str = "Linf"
    val_attack_steps: int = 10
    # SGLD
    sgld_steps: int = 20
    sgld_step_size: float = 1.0
    sgld_noise: float = 0.01
    n_negatives: int | None = None
    buffer_size: int = 10000
    reinit_prob: float = 0.05
    buffer_init: str = "uniform"
    input_noise: float = 0.0
    # optimisation
    optimizer: str = "sgd"
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 5e-4
    warmup_steps: int = 0
    schedule: str = "cosine"
    decay_epochs: list = field(default_factory=list)
    decay_rate: float = 0.2
    epochs: int = 10
    batch_size: int = 128
    grad_clip: float = 0.0
    # run
    seed: int = 0
    device: str = "auto"
    bf16: bool = False
    attack_bf16: bool = False
    num_threads: int = 0
    checkpoint_every: int = 0
    select_on: str = "val_acc"
    # divergence
    loss_threshold: float = 1e4
    max_rollbacks: int = 3
    rollback_lr_factor: float = 0.5
    # free text (a recipe's notes on its choices)
    notes: str = ""

    def __post_init__(self):
        self.validate()

    # -- construction ------------------------------------------------------------------
    @staticmethod
    def upgrade(data: dict) -> dict:
        """A stored config (a checkpoint header, an old run's ``config.json``) in today's settings.

        Settings that changed: ``released_compat`` (a flag) became ``inner =
        "released-compat"``; ``inner = "energy"`` (raise E(x~, y), the wrong sign for
        EB-JDAT's saddle point) was removed: objectives other than EB-JDAT never used
        ``inner``, so it becomes the default there, and an EB-JDAT config with it is an error.
        """
        out = dict(data)
        compat = out.pop("released_compat", False)
        if compat:
            out["inner"] = "released-compat"
        if out.get("inner") == "energy":
            if out.get("objective") == "ebjdat":
                raise ConfigError("inner 'energy' (raise E(x~, y)) was removed: it pushed E(x~) the same way as the "
                                  "outer alignment term and diverged; use inner = 'saddle' (the default)")
            out["inner"] = TrainConfig.inner
        return out

    @classmethod
    def from_dict(cls, data: dict, where: str = "config") -> "TrainConfig":
        if not isinstance(data, dict):
            raise ConfigError(f"{where} must be a table of settings, got {type(data).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"{where}: unknown settings {unknown}; known: {', '.join(sorted(known))}")
        return cls(**data)

    def replace(self, **changes) -> "TrainConfig":
        return TrainConfig.from_dict({**self.to_dict(), **changes})

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    # -- derived -----------------------------------------------------------------------
    def term_weights(self) -> dict[str, float]:
        """The weight of every active loss term (weights of 0 dropped)."""
        if self.objective == "standard":
            base = {"ce": 1.0}
        elif self.objective == "pgdat":
            base = {"adv_ce": 1.0}
        elif self.objective == "trades":
            base = {"ce": 1.0, "trades_kl": self.trades_beta}
        elif self.objective == "jem":
            base = {"ce": 1.0, "px": 1.0}
        else:
            base = dict(WEIGHT_PRESETS[self.weight_preset])
        base.update({k: float(v) for k, v in self.weights.items()})
        return {k: v for k, v in base.items() if v != 0.0}

    # -- validation --------------------------------------------------------------------
    def validate(self) -> None:
        """Check every setting against its declared constraint (:data:`CONSTRAINTS`), then the
        settings whose shape is not a single value."""
        for name, accepts in CONSTRAINTS.items():
            try:
                accepts.check(name, getattr(self, name))
            except LandscapeError as exc:
                raise ConfigError(str(exc)) from None
        if not isinstance(self.weights, dict) or any(k not in TERMS for k in self.weights):
            raise ConfigError(f"weights must map terms {', '.join(TERMS)} to numbers, got {self.weights!r}")
        for k, v in self.weights.items():
            if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(v) or v < 0:
                raise ConfigError(f"weight of {k!r} must be a finite number >= 0, got {v!r}")
        if not isinstance(self.arch_kwargs, dict):
            raise ConfigError(f"arch_kwargs must be a table, got {self.arch_kwargs!r}")
        if not isinstance(self.decay_epochs, list) or not all(isinstance(e, int) and e > 0 for e in self.decay_epochs):
            raise ConfigError(f"decay_epochs must be a list of positive integers, got {self.decay_epochs!r}")
        try:
            (Real(low=0.0, high=1.0, low_open=True) if isinstance(self.val_size, float) else Int(low=1)).check(
                "val_size", self.val_size)
        except LandscapeError as exc:
            raise ConfigError(str(exc)) from None
        if self.init_from is not None and (not isinstance(self.init_from, str) or not self.init_from):
            raise ConfigError(f"init_from must be a checkpoint path or registry name, got {self.init_from!r}")
        if not isinstance(self.device, str):
            raise ConfigError(f"device must be a string ('auto', 'cpu', 'cuda'), got {self.device!r}")
        if not self.term_weights():
            raise ConfigError("every loss term has weight 0: nothing to train")

    def uses(self, term: str) -> bool:
        return term in self.term_weights()

    @property
    def needs_sgld(self) -> bool:
        return self.uses("px") or self.uses("energy_l2")

    @property
    def needs_adversarial(self) -> bool:
        return self.uses("adv_ce") or self.uses("energy_align") or self.uses("trades_kl")

    def describe(self) -> dict[str, Any]:
        """A short summary for logs."""
        return {"objective": self.objective, "terms": self.term_weights(), "dataset": self.dataset,
                "epochs": self.epochs, "batch_size": self.batch_size, "lr": self.lr}


#: what each single-valued setting accepts, declared once (TrainConfig.validate checks them;
#: the defaults are the dataclass fields')
CONSTRAINTS: dict[str, Constraint] = {
    "objective": Choice(*OBJECTIVES), "weight_preset": Choice(*WEIGHT_PRESETS), "inner": Choice(*INNER_MODES),
    "attack_norm": Choice("Linf"), "buffer_init": Choice("uniform", "gaussian"), "optimizer": Choice("sgd", "adam"),
    "schedule": Choice("constant", "step", "cosine"), "select_on": Choice("val_acc", "val_pgd_acc"),
    "normalization": Choice("identity", "jem"), "bf16": Bool(), "attack_bf16": Bool(),
    "train_subset": Optional(Int(low=2)), "val_pgd_size": Int(low=0), "trades_beta": Real(low=0.0),
    "eps": Real(low=0.0, high=1.0), "attack_step": Real(low=0.0, low_open=True), "attack_steps": Int(low=1),
    "val_attack_steps": Int(low=0), "sgld_steps": Int(low=0), "sgld_step_size": Real(low=0.0),
    "sgld_noise": Real(low=0.0), "n_negatives": Optional(Int(low=1)), "buffer_size": Int(low=1),
    "reinit_prob": Real(low=0.0, high=1.0), "input_noise": Real(low=0.0), "lr": Real(low=0.0, low_open=True),
    "momentum": Real(low=0.0, high=1.0), "weight_decay": Real(low=0.0), "warmup_steps": Int(low=0),
    "decay_rate": Real(low=0.0, low_open=True), "epochs": Int(low=1), "batch_size": Int(low=1),
    "grad_clip": Real(low=0.0), "seed": Int(low=0), "num_threads": Int(low=0), "checkpoint_every": Int(low=0),
    "loss_threshold": Real(low=0.0, low_open=True), "max_rollbacks": Int(low=0),
    "rollback_lr_factor": Real(low=0.0, high=1.0, low_open=True),
}
