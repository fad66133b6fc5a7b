"""Every checkpoint format, read and written: the toolkit's own, other people's, the registry.

* :mod:`.identify`   what a file is (native, safetensors state_dict, pickle): the one decision
* :mod:`.native`     the toolkit's own format (one self-describing ``.safetensors`` file)
* :mod:`.load`       building an EnergyModel from any of them (``landscape.load_model``)
* :mod:`.safety`     ``torch.load(weights_only=True)`` with one clear error per failure
* :mod:`.fetch`      the download cache (``$LANDSCAPE_HOME``), sha256, HTML pages, offline mode
* :mod:`.manifest`   the registry ``checkpoints/manifest.toml``
* :mod:`.layout`     state_dict containers and key prefixes
* :mod:`.families`   the JEM family's layouts (JEM, JEM++, SADA-JEM, EB-JDAT)
* :mod:`.robustbench` RobustBench zoo models
* :mod:`.detect`     from a state_dict to a loading plan
* :mod:`.build`      building the network and loading the weights strictly
* :mod:`.resolve`    from a path / URL / name to a file or a zoo model
* :mod:`.describe`   describing a checkpoint without running it

The entry points are :func:`landscape.load_model` / :func:`landscape.loading.load_checkpoint`
(short paths of :mod:`.load`), :func:`landscape.save_model` and :func:`inspect_checkpoint`.
"""

from .detect import FAMILIES
from .families import JEM_FAMILIES
from .fetch import landscape_home, offline
from .describe import CheckpointInfo, inspect_checkpoint
from .manifest import ManifestEntry, get_entry, load_manifest

__all__ = ["FAMILIES", "JEM_FAMILIES", "landscape_home", "offline", "CheckpointInfo", "inspect_checkpoint",
           "ManifestEntry", "get_entry", "load_manifest"]
