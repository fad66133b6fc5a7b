"""``landscape info``: what this installation knows (architectures, datasets)."""

from __future__ import annotations


def add_parser(sub) -> None:
    p = sub.add_parser("info", help="list architectures and datasets, and where datasets are found")
    p.set_defaults(func=run)


def run(args) -> int:
    import torch

    from .._version import __version__
    from ..data import dataset_info, dataset_location, list_datasets
    from ..models import get_model_entry, list_models

    print(f"landscape {__version__}, torch {torch.__version__}, CUDA {'available' if torch.cuda.is_available() else 'not available'}")
    print("architectures:")
    for name in list_models():
        print(f"  {name:12s} {get_model_entry(name).description}")
    print("datasets (test split; where each was found, as load_dataset searches):")
    for name in list_datasets():
        info = dataset_info(name)
        shape = "x".join(map(str, info.shape)) if info.shape else "any"
        where = dataset_location(name) if name != "imagefolder" else "a folder given as root="
        print(f"  {name:14s} {shape:8s} splits: {', '.join(info.splits):17s} {where or 'not found'}")
    print("checkpoints (the registry; bundled ones are available offline):")
    from ..checkpoints.manifest import load_manifest
    from ..checkpoints.resolve import entry_cache_path
    from ..checkpoints.robustbench import default_model_dir

    for e in load_manifest().values():
        if e.family == "robustbench":
            cached = (default_model_dir() / e.dataset / e.threat_model / f"{e.zoo_name or e.name}.pt").is_file()
        else:
            cached = entry_cache_path(e).is_file()
        state = "bundled, available offline" if getattr(e, "local", None) else ("cached" if cached else "not cached")
        print(f"  {e.name:32s} {e.family:12s} {state}")
    return 0
