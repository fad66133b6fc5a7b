"""Write each recipe's current notes into its bundled file's header; nothing else changes.

A file's header stores the training config, notes included, as it was when the run
started. The recipes' notes are written (and corrected) afterwards, with what the run
showed; this puts that text into the file too, so that `landscape checkpoints info`
does not describe a different recipe from the config beside it. The weights, the replay
buffer and every other header field stay exactly as they were (checked after writing);
the header records when its notes were replaced. Update checkpoints/manifest.toml's
sha256 lines afterwards (the script prints them).

    .venv/bin/python checkpoints/fmnist/sync_notes.py [standard pgdat trades jem ebjdat]
"""
import datetime as dt
import json
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from landscape.checkpoints.native import META_KEY, read_native_header  # noqa: E402
from landscape.train import load_recipe  # noqa: E402
from landscape.utils import atomic_path, file_sha256  # noqa: E402

ROOT = Path(__file__).resolve().parent


def sync(name: str) -> bool:
    path = ROOT / f"{name}.safetensors"
    header = read_native_header(path)
    training = header["metadata"]["training"]
    notes = load_recipe(f"fmnist-{name}").notes
    if training["config"].get("notes") == notes:
        print(f"{name}: notes already current")
        return False
    before = file_sha256(path)
    tensors = load_file(str(path))
    training["config"]["notes"] = notes
    training["notes_updated"] = (f"{dt.date.today().isoformat()}: notes replaced by the recipe's text, written "
                                 "after the run; the weights, buffer and every other field are the run's")
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata={META_KEY: json.dumps(header, sort_keys=True)})
    again = load_file(str(path))
    if again.keys() != tensors.keys() or not all(torch.equal(again[k], tensors[k]) for k in tensors):
        raise SystemExit(f"{name}: the tensors changed on rewriting; restore the file from git")
    print(f"{name}: notes replaced; sha256 {before} -> {file_sha256(path)}")
    return True


if __name__ == "__main__":
    for n in sys.argv[1:] or ["standard", "pgdat", "trades", "jem", "ebjdat"]:
        sync(n)
