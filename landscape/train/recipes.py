"""Named training recipes: ``recipes/<name>.toml`` next to this file.

A recipe is a partial :class:`~landscape.train.config.TrainConfig` (a flat TOML
table of its fields) plus a ``notes`` string saying why its numbers are what
they are. ``landscape train --recipe fmnist-ebjdat`` trains with one;
``landscape train --list-recipes`` lists them. A path to any ``.toml`` file of
TrainConfig fields works as well.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

from ..errors import ConfigError
from .config import TrainConfig

__all__ = ["list_recipes", "load_recipe", "recipe_path", "RECIPE_DIR"]

RECIPE_DIR = Path(__file__).resolve().parent / "recipes"


def list_recipes() -> list[str]:
    """Names of the bundled recipes."""
    return sorted(p.stem for p in RECIPE_DIR.glob("*.toml"))


def recipe_path(name: str) -> Path:
    p = Path(name)
    if p.suffix == ".toml" and p.is_file():
        return p
    candidate = RECIPE_DIR / f"{name}.toml"
    if not candidate.is_file():
        raise ConfigError(f"unknown recipe {name!r}; known: {', '.join(list_recipes())} (or a path to a .toml file)")
    return candidate


def load_recipe(name: str) -> TrainConfig:
    """The TrainConfig of recipe ``name`` (a bundled name or a .toml path)."""
    path = recipe_path(name)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"recipe {path} is not valid TOML: {exc}") from None
    return TrainConfig.from_dict(data, where=f"recipe {path.name}")
