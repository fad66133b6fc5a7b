"""The package's structure: who may import whom, and what the wheel contains.

Layers, lowest first (README "Layout"): a module may import from its own layer or
a lower one, never a higher one, and never a private name (or a private module) of
another package.
"""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "landscape"

#: unit (a subpackage or a top-level module of landscape) -> layer
LAYERS = {
    # core: no toolkit imports above it
    "errors": 0, "_version": 0, "_compat": 0, "utils": 0, "validate": 0, "rng": 0, "precision": 0, "paths": 0,
    "energy": 1, "cache": 1, "checks": 1,
    # files, networks and data
    "models": 2, "data": 2, "checkpoints": 2, "native": 2, "loading": 2,
    # what gets scored
    "sources": 3,
    # the one batch loop
    "engine": 4,
    # jobs built on the engine
    "analyses": 5, "evaluation": 5, "train": 5, "quickstart": 5,
    # the command line
    "commands": 6, "cli": 6, "__main__": 7, "__init__": 7,
}
#: top-level helper modules whose names every unit may import
SHARED_PRIVATE = {"_version", "_compat"}


def _unit(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _imports():
    """``(file, line, importer unit, imported module, imported name)`` for every toolkit import."""
    for path in sorted(PKG.rglob("*.py")):
        rel = path.relative_to(ROOT).with_suffix("")
        module = ".".join(rel.parts)
        package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
        if module.endswith(".__init__"):
            module = module[: -len(".__init__")]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - node.level + 1]
                    target = ".".join(base + ([node.module] if node.module else []))
                elif node.module and node.module.split(".")[0] == "landscape":
                    target = node.module
                else:
                    continue
                for alias in node.names:
                    submodule = (PKG / f"{alias.name}.py").exists() or (PKG / alias.name).is_dir()
                    if target == "landscape" and submodule:  # from . import sources
                        yield path, node.lineno, _unit(module), f"landscape.{alias.name}", None
                    else:
                        yield path, node.lineno, _unit(module), target, alias.name
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.split(".")[0] == "landscape":
                        yield path, node.lineno, _unit(module), alias.name, None


def test_every_unit_has_a_layer():
    units = {p.stem if p.is_file() else p.name for p in PKG.iterdir()
             if (p.suffix == ".py" or (p.is_dir() and (p / "__init__.py").exists()))}
    assert units <= set(LAYERS), sorted(units - set(LAYERS))


def test_imports_point_only_downward():
    upward = []
    for path, line, me, target, _ in _imports():
        them = _unit(target)
        if them != me and LAYERS[them] > LAYERS[me]:
            upward.append(f"{path.relative_to(ROOT)}:{line}: {me} (layer {LAYERS[me]}) imports {target} "
                          f"(layer {LAYERS[them]})")
    assert not upward, "\n".join(upward)


def test_no_private_name_crosses_a_package():
    crossing = []
    for path, line, me, target, name in _imports():
        them = _unit(target)
        if them == me or them in SHARED_PRIVATE:
            continue
        private_module = any(part.startswith("_") for part in target.split(".")[1:])
        if private_module or (name or "").startswith("_"):
            crossing.append(f"{path.relative_to(ROOT)}:{line}: {me} imports {target}.{name}")
    assert not crossing, "\n".join(crossing)


def test_the_wheel_lists_every_package():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    on_disk = {".".join(p.parent.relative_to(ROOT).parts) for p in PKG.rglob("__init__.py")}
    listed = set(config["packages"])
    assert on_disk <= listed, sorted(on_disk - listed)
    for pkg, folder in config["package-dir"].items():
        assert pkg in listed and (ROOT / folder).is_dir()


def test_no_two_packages_import_each_other():
    edges = {(me, _unit(target)) for _, _, me, target, _ in _imports() if _unit(target) != me}
    mutual = sorted(f"{a} <-> {b}" for a, b in edges if (b, a) in edges and a < b)
    assert not mutual, mutual
