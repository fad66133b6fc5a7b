"""``landscape train``: train a model with a named recipe or a TOML config.

Examples::

    landscape train --recipe fmnist-ebjdat --out runs/ebjdat
    landscape train --recipe fmnist-jem --out runs/jem --resume       # after a crash or kill -9
    landscape train --objective trades --dataset digits --epochs 3 --out runs/t
    landscape train --config my.toml --set lr=0.01 --set inner=ce --out runs/x
    torchrun --nproc_per_node=2 -m landscape.cli train --recipe fmnist-standard --out runs/ddp
    landscape train --recipe fmnist-ebjdat --init-from checkpoints/fmnist/jem.safetensors --out runs/ft
    landscape train --list-recipes
"""

from __future__ import annotations

import json
import sys

# flags that map one-to-one onto TrainConfig fields
_FIELDS = {
    "objective": str, "dataset": str, "data_root": str, "epochs": int, "batch_size": int, "lr": float,
    "optimizer": str, "seed": int, "device": str, "eps": float, "inner": str, "weight_preset": str,
    "checkpoint_every": int, "num_threads": int, "init_from": str,
}


def add_parser(sub) -> None:
    p = sub.add_parser("train", help="train EB-JDAT or a baseline (standard, pgdat, trades, jem)",
                       description="Train a model; writes a resumable run folder with model.safetensors, "
                                   "best.safetensors, train_state.pt, metrics.csv and metrics.json.")
    p.add_argument("--recipe", help="a named recipe (see --list-recipes) or a .toml file of settings")
    p.add_argument("--config", help="a .toml file of TrainConfig settings, applied over the recipe")
    p.add_argument("--out", help="run folder (default: runs/<recipe or objective>)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    p.add_argument("--list-recipes", action="store_true", help="list the named recipes and exit")
    for name, typ in _FIELDS.items():
        p.add_argument(f"--{name.replace('_', '-')}", dest=name, type=typ, default=None, help=f"set {name}")
    p.add_argument("--bf16", dest="bf16", action="store_true", default=None, help="bf16 autocast")
    p.add_argument("--no-bf16", dest="bf16", action="store_false", help="no autocast")
    p.add_argument("--attack-bf16", dest="attack_bf16", action="store_true", default=None,
                   help="run the inner adversarial search under the bf16 autocast too (faster where bf16 is native; "
                        "by default it runs in float32, see README 'Training')")
    p.add_argument("--released-compat", dest="released_compat", action="store_true", default=None,
                   help="the same as --inner released-compat: the released EB-JDAT code's inner search, eps and "
                        "step in [-1, 1] units (half in pixels) and no projection onto the eps-ball (for comparison only)")
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                   help="any TrainConfig setting, VALUE parsed as TOML (repeatable), e.g. --set 'weights={px=0.5}'")
    p.set_defaults(func=run)


def _parse_sets(items: list[str]) -> dict:
    import tomllib

    from ..errors import ConfigError

    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"--set takes KEY=VALUE, got {item!r}")
        try:
            out[key] = tomllib.loads(f"v = {value}")["v"]
        except tomllib.TOMLDecodeError:
            out[key] = value  # a bare string
    return out


def run(args) -> int:
    import tomllib
    from pathlib import Path

    from ..errors import ConfigError
    from ..train import fit, list_recipes, load_recipe

    if args.list_recipes:
        for name in list_recipes():
            cfg = load_recipe(name)
            print(f"{name:18s} {cfg.objective:9s} {cfg.dataset:14s} {cfg.epochs} epochs  "
                  + " + ".join(f"{w:g} {k}" for k, w in cfg.term_weights().items()))
        return 0
    config = None
    if args.config:
        try:
            config = tomllib.loads(Path(args.config).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"config file {args.config} does not exist") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {args.config} is not valid TOML: {exc}") from None
    overrides = {k: getattr(args, k) for k in list(_FIELDS) + ["bf16", "attack_bf16"] if getattr(args, k) is not None}
    if args.released_compat:
        if overrides.get("inner", "released-compat") != "released-compat":
            raise ConfigError(f"--released-compat is --inner released-compat; it contradicts --inner {overrides['inner']}")
        overrides["inner"] = "released-compat"
    overrides.update(_parse_sets(args.sets))
    if args.resume and not args.out:
        raise ConfigError("--resume needs --out, the run folder to continue")
    name = args.recipe or overrides.get("objective") or (config or {}).get("objective") or "standard"
    out = Path(args.out) if args.out else Path("runs") / Path(name).stem
    if args.resume:
        result = fit(out_dir=out, resume=True, **overrides)
    else:
        result = fit(config, out_dir=out, recipe=args.recipe, **overrides)
    last = result.history[-1] if result.history else {}
    summary = {k: round(v, 4) for k, v in last.items() if k.startswith("val_") and isinstance(v, float)}
    if result.status == "diverged":
        print(f"landscape: training stopped: {result.message}", file=sys.stderr)
        return 1
    print(f"{result.message}; model: {result.model_path}; best: {result.best_path}")
    if summary:
        print("validation: " + json.dumps(summary))
    return 0
