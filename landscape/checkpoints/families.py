"""The JEM family's on-disk layouts (JEM, JEM++, SADA-JEM, EB-JDAT) and how to read them.

All four save the state_dict of the same model: a Wide-ResNet trunk under ``f.``
plus a class head ``class_output`` and an unused ``energy_output`` head, as
``torch.save({"model_state_dict": ..., "replay_buffer": Tensor[N, C, H, W]})``
(or a bare state_dict), sometimes with a ``module.`` prefix (DataParallel). They
differ in what else the state_dict carries:

========  =======================================  ==================================
family    normalisation layers                     extra keys (harmless, dropped)
========  =======================================  ==================================
jem       none (``norm="none"``)                   ``f.linear.*``: a classifier head
                                                   JEM's Wide_ResNet builds but its
                                                   CCF model never calls
jempp     BatchNorm                                ``f.layer_one.*`` and
                                                   ``f.other_layers.*``: aliases that
                                                   JEM++'s YOPO Wide_ResNet registers
                                                   for f.conv1, f.layer1-3 and f.bn1
sadajem   BatchNorm                                none
ebjdat    as its base (jem, jempp or sadajem)      as its base
========  =======================================  ==================================

An EB-JDAT file is byte-for-byte the layout of its base, so detection reports
the base family; say ``family="ebjdat"`` (or use a registry entry) to label it.
Layouts without a fingerprint (BatchNorm without aliases is SADA-JEM's, and also
JEM++ trained with ``--model wrn``) load identically under every candidate; the
candidates are recorded in the model's metadata. BatchNorm statistics
(``num_batches_tracked``) missing from old saves are filled in (harmless: used
only in training with ``momentum=None``). Everything else that is missing or
unexpected is an error.

The architecture (depth, width, norm, input channels, classes, whether the
energy head is present) is read from the keys and shapes: depth = 6n + 4 for n
blocks per stage, width = output channels of ``f.layer1.0.conv1`` / 16.
"""

from __future__ import annotations

import logging
import re

import torch

from ..errors import CheckpointError

log = logging.getLogger(__name__)

__all__ = ["JEM_FAMILIES", "JEM_BASES", "MARKERS", "HARMLESS", "fingerprint", "canonicalise", "detect_wrn_kwargs",
           "harmless_for"]

JEM_BASES = ("jem", "jempp", "sadajem")
JEM_FAMILIES = (*JEM_BASES, "ebjdat")
MARKERS = ("f.conv1.weight", "class_output.weight")

HARMLESS = {
    "jem": {"f.linear.": "JEM's Wide_ResNet builds a classifier head f.linear that its CCF model never calls"},
    "jempp": {
        "f.layer_one.": "JEM++'s YOPO Wide_ResNet registers f.layer_one as an alias of f.conv1 (same tensors)",
        "f.other_layers.": "JEM++'s YOPO Wide_ResNet registers f.other_layers.0-3 as aliases of f.layer1-3 and f.bn1 (same tensors)",
    },
    "sadajem": {},
}
_ALIAS = re.compile(r"^f\.other_layers\.(\d+)\.(.*)$")


def harmless_for(family: str) -> dict[str, str]:
    """Key prefixes that ``family`` may carry and that are dropped (with the reason)."""
    if family == "ebjdat":
        merged: dict[str, str] = {}
        for base in JEM_BASES:
            merged.update(HARMLESS[base])
        return merged
    return dict(HARMLESS[family])


def _norm_kind(state: dict, where: str) -> str:
    if any(k.endswith(".running_mean") for k in state if k.startswith("f.")):
        return "batch"
    norm_keys = [k for k in state if re.match(r"^f\.(layer\d+\.\d+\.bn[12]|bn1)\.", k)]
    if norm_keys:
        raise CheckpointError(
            f"{where} has normalisation layers without running statistics ({norm_keys[0]}: instance, group or act "
            "norm); the wrn architecture supports norm 'none' and 'batch'"
        )
    return "none"


def fingerprint(state: dict, where: str) -> tuple[str, list[str]]:
    """``(family, candidates)`` for a JEM-family state_dict (prefix already stripped).

    ``candidates`` lists every family whose released code writes this layout
    (they all load to the same network); an error lists them when the layout
    mixes fingerprints that no single family accepts.
    """
    has_alias = any(k.startswith(("f.layer_one.", "f.other_layers.")) for k in state)
    has_linear = any(k.startswith("f.linear.") for k in state)
    if has_alias and has_linear:
        raise CheckpointError(
            f"{where} carries both JEM's unused head f.linear and JEM++'s aliases f.layer_one/f.other_layers; "
            "candidates: jem, jempp; pass family='ebjdat' (accepts both) or remove the extra keys"
        )
    if has_alias:
        return "jempp", ["jempp", "ebjdat"]
    if has_linear:
        return "jem", ["jem", "ebjdat"]
    if _norm_kind(state, where) == "batch":
        return "sadajem", ["sadajem", "jempp", "ebjdat"]
    return "jem", ["jem", "jempp", "ebjdat"]


def _same(a: torch.Tensor, b: torch.Tensor) -> bool:
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    if a.device == b.device and a.data_ptr() == b.data_ptr() and a.stride() == b.stride():
        return True
    return bool(torch.equal(a, b))


def _alias_target(key: str) -> str | None:
    if key.startswith("f.layer_one."):
        return "f.conv1." + key[len("f.layer_one."):]
    m = _ALIAS.match(key)
    if m:
        i, rest = int(m.group(1)), m.group(2)
        if i in (0, 1, 2):
            return f"f.layer{i + 1}.{rest}"
        if i == 3:
            return f"f.bn1.{rest}"
    return None


def canonicalise(state: dict, family: str, where: str) -> tuple[dict, dict[str, str]]:
    """Drop the keys ``family`` documents as harmless; return ``(state, dropped)``.

    ``dropped`` maps each dropped prefix (``"f.linear.*"``) to how many keys and why.
    JEM++ aliases are checked against the keys they alias: equal tensors are
    dropped, a canonical key that is missing is restored from its alias, and
    different values are an error (the file is inconsistent).
    """
    allowed = harmless_for(family)
    out: dict = {}
    aliases: dict[str, torch.Tensor] = {}
    counts: dict[str, int] = {}
    for key, value in state.items():
        prefix = next((p for p in allowed if key.startswith(p)), None)
        if prefix is None:
            out[key] = value
            continue
        counts[prefix] = counts.get(prefix, 0) + 1
        if prefix in ("f.layer_one.", "f.other_layers."):
            aliases[key] = value
    dropped = {f"{p}*": f"{n} key(s): {allowed[p]}" for p, n in counts.items()}
    for key, value in aliases.items():
        target = _alias_target(key)
        if target is None:
            raise CheckpointError(f"{where}: {key} does not alias any key of the JEM++ Wide-ResNet")
        if target not in out:
            log.info("%s: restoring %s from its alias %s", where, target, key)
            out[target] = value
        elif not _same(out[target], value):
            raise CheckpointError(f"{where}: {key} should be an alias of {target} but holds different values; the file is inconsistent")
    return out, dropped


def _blocks(state: dict, stage: int) -> list[int]:
    pattern = re.compile(rf"^f\.layer{stage}\.(\d+)\.")
    return sorted({int(m.group(1)) for k in state if (m := pattern.match(k))})


def detect_wrn_kwargs(state: dict, where: str) -> dict:
    """``depth, width, norm, in_channels, n_classes, energy_head`` of the ``wrn`` architecture."""
    for key in MARKERS:
        if key not in state:
            raise CheckpointError(f"{where}: no {key}; not a JEM-family Wide-ResNet")
    conv1, head = state["f.conv1.weight"], state["class_output.weight"]
    if conv1.dim() != 4 or head.dim() != 2:
        raise CheckpointError(f"{where}: f.conv1.weight has shape {tuple(conv1.shape)} and class_output.weight "
                              f"{tuple(head.shape)}; expected a 4-D convolution and a 2-D linear weight")
    if conv1.shape[0] != 16:
        raise CheckpointError(f"{where}: f.conv1 has {conv1.shape[0]} output channels, the JEM Wide-ResNet has 16")
    counts = [_blocks(state, s) for s in (1, 2, 3)]
    n = len(counts[0])
    if n == 0 or any(c != list(range(n)) for c in counts):
        raise CheckpointError(
            f"{where}: the Wide-ResNet stages have blocks {counts[0]}, {counts[1]}, {counts[2]}; "
            "expected the same n >= 1 consecutive blocks in f.layer1, f.layer2 and f.layer3"
        )
    key = "f.layer1.0.conv1.weight"
    if key not in state:
        raise CheckpointError(f"{where}: no {key}; cannot read the width")
    planes = state[key].shape[0]
    if planes % 16:
        raise CheckpointError(f"{where}: {key} has {planes} output channels, not a multiple of 16 (16 x width)")
    width = planes // 16
    if head.shape[1] != 64 * width:
        raise CheckpointError(
            f"{where}: class_output.weight has {head.shape[1]} inputs, a WRN of width {width} has {64 * width}"
        )
    return {
        "depth": 6 * n + 4,
        "width": width,
        "norm": _norm_kind(state, where),
        "in_channels": int(conv1.shape[1]),
        "n_classes": int(head.shape[0]),
        "energy_head": "energy_output.weight" in state,
    }
