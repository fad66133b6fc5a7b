"""Generation quality of SGLD samples: FID / Inception Score, and an offline Fréchet distance.

Two measures, never to be confused:

**FID and IS** (Heusel et al., NeurIPS 2017; Salimans et al., NeurIPS 2016), the
field's standard, through ``torch-fidelity`` with its Inception-v3 weights
(``weights-inception-2015-12-05-6726825d.pth``, the TensorFlow FID network converted
to PyTorch). The weights are never downloaded by this toolkit: they are looked
for at the ``inception_weights`` path, then ``$LANDSCAPE_INCEPTION_WEIGHTS``, then
where torch-fidelity's own download leaves them (``<torch hub dir>/checkpoints/``,
normally ``~/.cache/torch/hub/checkpoints/``). When they are missing,
:func:`inception_weights_path` raises a one-line error naming the URL and where to
put the file. Grayscale images are repeated to three channels; images are
quantised to uint8 as torch-fidelity expects. Numbers on 28x28 grayscale images
are not comparable with published CIFAR-10 FIDs.

**FD (reference-classifier features), not FID**: the same Fréchet distance between
Gaussians fitted to features, but the features are the penultimate-layer
activations (the input of the classifier's last Linear layer) of a *reference
classifier* instead of Inception-v3. It runs offline. For Fashion-MNIST the default
reference is the bundled ``checkpoints/fmnist/standard.safetensors``; any
EnergyModel can serve (``feature_model=``). Values depend on the reference
classifier, so compare them only under the same one (the settings name its hash).

Fréchet distance of ``N(mu1, S1)`` and ``N(mu2, S2)``:
``||mu1 - mu2||^2 + Tr(S1) + Tr(S2) - 2 Tr((S1^{1/2} S2 S1^{1/2})^{1/2})``, computed with
symmetric eigendecompositions in float64 (no complex ``sqrtm`` round-off).
Covariances use ``N - 1`` in the denominator.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..energy import EnergyModel
from ..errors import LandscapeError
from ..paths import CHECKPOINTS_DIR
from ..sources import SGLD as SGLDSource  # noqa: F401 - also used by evaluate.py

log = logging.getLogger(__name__)

__all__ = [
    "INCEPTION_URL", "INCEPTION_FILENAME", "INCEPTION_ENV", "REFERENCE_CLASSIFIERS", "FD_LABEL",
    "penultimate_features", "feature_statistics", "frechet_distance", "feature_frechet_distance",
    "reference_classifier", "reference_fd", "default_sampler", "class_gaussians_for", "SGLD_INITS", "generate",
    "inception_weights_path",
    "inception_metrics",
]

#: where torch-fidelity downloads its Inception-v3 weights from (torch_fidelity.feature_extractor_inceptionv3)
INCEPTION_URL = ("https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/"
                 "weights-inception-2015-12-05-6726825d.pth")
INCEPTION_FILENAME = "weights-inception-2015-12-05-6726825d.pth"
#: environment variable naming a local copy of the Inception weights
INCEPTION_ENV = "LANDSCAPE_INCEPTION_WEIGHTS"
#: the label every table uses for the offline distance
FD_LABEL = "FD (reference-classifier features), not FID"

#: dataset -> bundled reference classifier for the offline FD
REFERENCE_CLASSIFIERS = {"fashion-mnist": CHECKPOINTS_DIR / "fmnist" / "standard.safetensors"}


# ============================================================================ features
class _LastLinearInput:
    """Forward hooks on every Linear of a net; remembers each call's input and output width."""

    def __init__(self, net: nn.Module, layer: str | None):
        self.calls: list[tuple[torch.Tensor, int]] = []
        modules = dict(net.named_modules())
        if layer is not None:
            if layer not in modules:
                raise LandscapeError(f"layer {layer!r} is not a submodule of the network; some are: "
                                     f"{', '.join(list(modules)[1:8])}")
            targets = [modules[layer]]
        else:
            targets = [m for m in net.modules() if isinstance(m, nn.Linear)]
        self.handles = [m.register_forward_hook(self._hook) for m in targets]

    def _hook(self, module, inputs, output):
        self.calls.append((inputs[0].detach(), output.shape[-1] if output.dim() else 0))

    def close(self):
        for h in self.handles:
            h.remove()


def penultimate_features(model: EnergyModel, x, *, layer: str | None = None, batch_size: int = 256, device=None,
                         precision: str = "fp32", progress_bar: bool | None = None) -> torch.Tensor:
    """Penultimate features of ``model`` for pixels ``x`` (``N x C x H x W`` in [0, 1]): ``N x D`` float32, CPU.

    The features are the input of the last ``nn.Linear`` the network calls whose
    output has one entry per class (the classifier head; an unused head such as
    JEM's ``energy_output`` is never called and so never picked). ``layer=`` names
    another submodule whose (flattened) input to take instead.
    """
    from ..engine import collect
    from ..sources import Clean

    if not isinstance(model, EnergyModel):
        raise LandscapeError(f"the feature model must be an EnergyModel (see landscape.load_model), got {type(model).__name__}")
    if isinstance(x, torch.Tensor):
        data = (x, torch.zeros(len(x), dtype=torch.long))
    else:
        data = x
    hook = _LastLinearInput(model.net, layer)

    def pick(model, samples, logits):
        try:
            if layer is not None:
                picked = hook.calls[-1][0] if hook.calls else None
            else:
                k = logits.shape[-1]
                picked = next((inp for inp, width in reversed(hook.calls)
                               if width == k and inp.shape[0] == len(samples)), None)
            if picked is None:
                raise LandscapeError("could not find the classifier's last Linear layer in the network "
                                     "(pass layer= the name of the submodule whose input are the features)")
            return picked.flatten(1)
        finally:
            hook.calls.clear()

    try:
        part = collect(model, data, {"features": Clean()}, keep=("features",), features=pick, batch_size=batch_size,
                       device=device, precision=precision, channels_last=False, progress_bar=progress_bar,
                       label="features", distributed=None)["features"]
    finally:
        hook.close()
    return part["features"]


def feature_statistics(features) -> tuple[np.ndarray, np.ndarray]:
    """Mean (D) and covariance (D x D, ``N - 1`` denominator) of ``N x D`` features, float64."""
    f = features.detach().cpu().double().numpy() if isinstance(features, torch.Tensor) else np.asarray(features, np.float64)
    if f.ndim != 2 or f.shape[0] < 2:
        raise LandscapeError(f"features must be N x D with N >= 2, got shape {f.shape}")
    if not np.all(np.isfinite(f)):
        raise LandscapeError("features must be finite")
    if f.shape[0] <= f.shape[1]:
        log.warning("Fréchet distance from %d samples of %d-dimensional features: the covariance is singular, "
                    "the estimate is biased upwards; use more samples", f.shape[0], f.shape[1])
    return f.mean(axis=0), np.cov(f, rowvar=False).reshape(f.shape[1], f.shape[1])


def _psd_sqrt(s: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh((s + s.T) / 2)
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    """Fréchet distance of two Gaussians ``N(mu1, sigma1)``, ``N(mu2, sigma2)`` (see the module docstring)."""
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    s1, s2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    d = mu1.shape[0]
    if mu1.shape != (d,) or mu2.shape != (d,) or s1.shape != (d, d) or s2.shape != (d, d):
        raise LandscapeError(f"means must be D vectors and covariances D x D alike, got {mu1.shape}, {s1.shape}, "
                             f"{mu2.shape}, {s2.shape}")
    r1 = _psd_sqrt(s1)
    m = r1 @ s2 @ r1
    w = np.linalg.eigvalsh((m + m.T) / 2)
    cross = np.sqrt(np.clip(w, 0, None)).sum()
    diff = mu1 - mu2
    value = float(diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * cross)
    return max(value, 0.0)


def feature_frechet_distance(features1, features2) -> float:
    """Fréchet distance of Gaussians fitted to two ``N x D`` feature sets."""
    return frechet_distance(*feature_statistics(features1), *feature_statistics(features2))


# ============================================================================ reference classifier
def reference_classifier(dataset: str | None = "fashion-mnist", path=None, device="cpu") -> EnergyModel:
    """The reference classifier of the offline FD: ``path`` if given, else the bundled one for ``dataset``."""
    from ..checkpoints.load import load_model

    if path is None:
        from ..data import dataset_info

        key = dataset
        if dataset is not None:
            try:
                key = dataset_info(dataset).name
            except LandscapeError:
                pass
        if key not in REFERENCE_CLASSIFIERS:
            raise LandscapeError(f"no bundled reference classifier for dataset {dataset!r} (there is one for "
                                 f"{', '.join(REFERENCE_CLASSIFIERS)}); pass feature_model= a classifier of that data")
        path = REFERENCE_CLASSIFIERS[key]
        if not Path(path).is_file():
            raise LandscapeError(f"the bundled {key} reference classifier {path} is missing; train or restore "
                                 "checkpoints/fmnist/standard.safetensors, or pass feature_model= another classifier")
    return load_model(path, device=device)


def _describe_feature_model(model: EnergyModel) -> dict:
    from ..cache import model_fingerprint

    from ..engine import default_model_name as model_name

    meta = getattr(model, "metadata", {}) or {}
    src = meta.get("source")
    return {"name": Path(str(src)).name if src else model_name(model),
            "sha256": str(meta.get("sha256") or model_fingerprint(model))[:12]}


def reference_fd(samples, reference, *, feature_model: EnergyModel | str | None = None, dataset: str | None = None,
                 layer: str | None = None, batch_size: int = 256, device=None, precision: str = "fp32",
                 progress_bar: bool | None = None) -> tuple[float, dict]:
    """FD (reference-classifier features), not FID, of ``samples`` against ``reference`` images.

    Both are ``N x C x H x W`` pixels in [0, 1] of the reference classifier's input shape.
    Returns ``(value, settings)``; settings name the feature model (file, hash) and both sizes.
    """
    if feature_model is None or isinstance(feature_model, (str, os.PathLike)):
        feature_model = reference_classifier(dataset, feature_model)
    fa = penultimate_features(feature_model, samples, layer=layer, batch_size=batch_size, device=device,
                              precision=precision, progress_bar=progress_bar)
    fb = penultimate_features(feature_model, reference, layer=layer, batch_size=batch_size, device=device,
                              precision=precision, progress_bar=progress_bar)
    value = feature_frechet_distance(fa, fb)
    settings = {"measure": FD_LABEL, "feature_model": _describe_feature_model(feature_model),
                "features": layer or "input of the last Linear (penultimate)", "dim": int(fa.shape[1]),
                "n_samples": int(fa.shape[0]), "n_reference": int(fb.shape[0])}
    return value, settings


# ============================================================================ samples
SGLD_INITS = ("auto", "uniform", "gaussian", "buffer")


def class_gaussians_for(dataset: str, root=None, covariance: str = "full"):
    """JEM++'s informative SGLD initialisation for ``dataset``: per-class Gaussians fitted on its train split."""
    from ..data import load_dataset
    from ..sources import fit_class_gaussians

    return fit_class_gaussians(load_dataset(dataset, "train", root=root), covariance=covariance)


def default_sampler(model: EnergyModel, seed: int = 0, init: str | None = "auto", class_gaussians=None,
                    **overrides):
    """The SGLD source generation is measured with: the :class:`~landscape.sources.SGLD` defaults
    (JEM's 20 steps, step 1, noise 0.01, or ``overrides``) started from

    * ``init="buffer"``: the model's replay buffer (``reinit_prob=0``: its persistent chains);
    * ``init="gaussian"``: per-class Gaussians (``class_gaussians``, see
      :func:`class_gaussians_for`; JEM++'s informative initialisation), class ``i mod K``
      for sample ``i``;
    * ``init="uniform"``: uniform noise;
    * ``init="auto"`` (or None): the buffer when the model has one, else uniform noise.
    """
    from ..sources import SGLD, ReplayBuffer

    init = "auto" if init is None else init
    if init not in SGLD_INITS:
        raise LandscapeError(f"the SGLD init must be one of {', '.join(SGLD_INITS)}, got {init!r}")
    buffer = getattr(model, "replay_buffer", None)
    if init == "auto":
        init = "buffer" if buffer is not None else "uniform"
    try:
        if init == "buffer":
            if buffer is None:
                raise LandscapeError("SGLD init 'buffer' needs a model with a replay buffer (model.replay_buffer), "
                                     "this one has none; use init 'uniform' or 'gaussian'")
            rb = ReplayBuffer.from_tensor(buffer, reinit_prob=0.0, seed=seed, device="cpu")
            return SGLD(init="buffer", buffer=rb, **overrides)
        if init == "gaussian":
            if class_gaussians is None:
                raise LandscapeError("SGLD init 'gaussian' needs class_gaussians= (see class_gaussians_for)")
            return SGLD(init="gaussian", class_gaussians=class_gaussians, **overrides)
        return SGLD(init="uniform", **overrides)
    except TypeError as exc:
        raise LandscapeError(f"bad SGLD settings {sorted(overrides)}: {exc}") from None


def generate(model: EnergyModel, n: int, *, sampler=None, batch_size: int = 256, device=None,
             precision: str = "fp32", seed: int = 0, labels=None, progress_bar: bool | None = None) -> torch.Tensor:
    """``n`` samples of ``model`` (float32 CPU ``n x C x H x W`` in [0, 1]) from an SGLD source.

    ``sampler``: an SGLD source, a dict of SGLD settings, or ``None`` (:func:`default_sampler`).
    Sample ``i`` is drawn with key ``i`` (its noise does not depend on the batch size);
    ``labels`` (``n`` integers) are passed to conditional samplers (default: ``i mod K``).
    """
    from ..sources import Source
    from ..engine import selection
    from ._common import source_samples

    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise LandscapeError(f"the number of generated samples must be a positive integer, got {n!r}")
    if sampler is None:
        sampler = default_sampler(model, seed=seed)
    elif isinstance(sampler, dict):
        sampler = default_sampler(model, seed=seed, **sampler)
    elif not isinstance(sampler, Source):
        raise LandscapeError(f"sampler must be an SGLD source, a dict of SGLD settings or None, got {type(sampler).__name__}")
    if model.input_shape is None:
        raise LandscapeError("the model does not declare its input_shape, so the shape of samples is unknown")
    k = model.n_classes or 10
    y = torch.arange(n) % k if labels is None else torch.as_tensor(labels, dtype=torch.long)
    x = torch.zeros((n, *model.input_shape))
    return source_samples(model, selection((x, y)), sampler, batch_size=batch_size, device=device,
                          precision=precision, seed=seed, progress_bar=progress_bar, desc="sgld")


# ============================================================================ FID / IS
def inception_weights_path(path=None) -> Path:
    """The local file of torch-fidelity's Inception-v3 weights, or a one-line error saying how to get it.

    Looks at ``path``, else ``$LANDSCAPE_INCEPTION_WEIGHTS``, else torch-fidelity's own
    download location (``<torch.hub.get_dir()>/checkpoints/weights-inception-2015-12-05-6726825d.pth``).
    Never touches the network.
    """
    how = f"download {INCEPTION_URL} and pass its path (inception_weights=, --inception-weights or ${INCEPTION_ENV})"
    if path is not None or os.environ.get(INCEPTION_ENV):
        given = Path(path if path is not None else os.environ[INCEPTION_ENV]).expanduser()
        where = "inception_weights" if path is not None else f"${INCEPTION_ENV}"
        if not given.is_file():
            raise LandscapeError(f"FID/IS need torch-fidelity's Inception-v3 weights, but {where} = {str(given)!r} "
                                 f"is not a file; {how}")
        return given
    hub = Path(torch.hub.get_dir()) / "checkpoints" / INCEPTION_FILENAME
    if hub.is_file():
        return hub
    raise LandscapeError(f"FID/IS need torch-fidelity's Inception-v3 weights, not found (looked in ${INCEPTION_ENV} and "
                         f"{hub}); {how}, or put the file at {hub}")


def _check_weights(path: Path) -> None:
    """Refuse a weights file that is not plain tensors before torch-fidelity unpickles it (it loads with weights_only=False)."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any failure: not a safe plain state_dict
        raise LandscapeError(f"{path} is not a plain state_dict of tensors (refused before loading: "
                             f"{type(exc).__name__}); expected torch-fidelity's {INCEPTION_FILENAME}") from None
    if not isinstance(state, dict) or "Conv2d_1a_3x3.conv.weight" not in state:
        raise LandscapeError(f"{path} does not hold torch-fidelity's Inception-v3 weights (no 'Conv2d_1a_3x3.conv.weight'); "
                             f"expected {INCEPTION_FILENAME} from {INCEPTION_URL}")


class _Uint8Images(torch.utils.data.Dataset):
    """Pixels in [0, 1] as the uint8 3 x H x W tensors torch-fidelity reads."""

    def __init__(self, images: torch.Tensor):
        if not isinstance(images, torch.Tensor) or images.dim() != 4 or images.shape[1] not in (1, 3):
            raise LandscapeError(f"images must be N x 1 x H x W or N x 3 x H x W pixels in [0, 1], "
                                 f"got {getattr(images, 'shape', type(images).__name__)}")
        x = images.detach().float().cpu().clamp(0, 1).mul(255).round().to(torch.uint8)
        self.x = x.expand(-1, 3, -1, -1).contiguous() if x.shape[1] == 1 else x

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return self.x[i]


def inception_metrics(samples: torch.Tensor, reference: torch.Tensor, *, weights=None, device=None,
                      batch_size: int = 64, isc_splits: int = 10, seed: int = 0) -> tuple[dict, dict]:
    """FID of ``samples`` against ``reference`` and the Inception Score of ``samples``, by torch-fidelity.

    Returns ``({"fid", "is_mean", "is_std"}, settings)``. Needs the Inception weights
    locally (:func:`inception_weights_path`); torch-fidelity's on-disk feature cache is
    not used.
    """
    from ..utils import resolve_device

    path = inception_weights_path(weights)
    a, b = _Uint8Images(samples), _Uint8Images(reference)
    if len(a) < isc_splits:
        raise LandscapeError(f"the Inception Score needs at least isc_splits={isc_splits} samples, got {len(a)}")
    if len(a) < 2 or len(b) < 2:
        raise LandscapeError(f"FID needs at least 2 samples and 2 reference images, got {len(a)} and {len(b)}")
    _check_weights(path)
    dev = resolve_device(device)
    try:
        import torch_fidelity
    except ImportError as exc:  # pragma: no cover - a broken install
        raise LandscapeError("FID/IS need the 'torch-fidelity' package; run: pip install torch-fidelity") from exc
    result = torch_fidelity.calculate_metrics(
        input1=a, input2=b, cuda=dev.type == "cuda", isc=True, fid=True, feature_extractor_weights_path=str(path),
        batch_size=batch_size, isc_splits=isc_splits, cache=False, verbose=False, save_cpu_ram=True, rng_seed=seed)
    values = {"fid": float(result["frechet_inception_distance"]),
              "is_mean": float(result["inception_score_mean"]), "is_std": float(result["inception_score_std"])}
    settings = {"package": f"torch-fidelity {getattr(torch_fidelity, '__version__', '?')}",
                "weights": path.name, "n_samples": len(a), "n_reference": len(b), "isc_splits": isc_splits,
                "seed": seed}
    return values, settings
