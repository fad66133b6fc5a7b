"""``landscape info``: what this installation knows (architectures, datasets)."""

from __future__ import annotations


def add_parser(sub) -> None:
    p = sub.add_parser("info", help="list architectures and datasets, and where datasets are found")
    p.set_defaults(func=run)


def run(args) -> int:
    import torch

    from .._version import __version__
    from ..data import dataset_info, list_datasets
    from ..models import get_model_entry, list_models

    print(f"landscape {__version__}, torch {torch.__version__}, CUDA {'available' if torch.cuda.is_available() else 'not available'}")
    print("architectures:")
    for name in list_models():
        print(f"  {name:12s} {get_model_entry(name).description}")
    print("datasets:")
    for name in list_datasets():
        info = dataset_info(name)
        shape = "x".join(map(str, info.shape)) if info.shape else "any"
        print(f"  {name:14s} {shape:8s} splits: {', '.join(info.splits)}")
    return 0
