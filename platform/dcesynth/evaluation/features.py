"""Pretrained networks of the metric suite, built from local files only: FID feature extractors
and LPIPS.

Each network says how it wants its input; :class:`FeatureExtractor` does that conversion from
our (N, H, W) images on [0, 255]:

* ``fid_inception`` (FID_Img): pytorch-fid's port of the TensorFlow FID InceptionV3, pool3
  2048-d features. Input: grey replicated to 3 channels, scaled to [0, 1], bilinearly resized to
  299² and mapped to [−1, 1] inside the network (pytorch-fid's own ``resize_input`` and
  ``normalize_input``), so numbers are comparable with pytorch-fid's.
* ``radimagenet_inceptionv3`` / ``radimagenet_resnet50`` (FID_Rad): the RadImageNet PyTorch
  release (torchvision architectures, classifier removed, global average pooling: 2048-d).
  Input: 3 channels on [0, 1], resized to 299² / 224², normalised with the ImageNet mean and
  std as torchvision models expect. The release's state dict ("backbone.N.…" keys of
  ``Sequential(*children[:-1])``, or torchvision names) is mapped onto the trunk.
* ``torchscript:PATH``: any TorchScript module taking (N, 3, H, W) on [0, 1] and returning
  (N, d) or (N, d, h, w) (averaged over h, w); its file is checked by sha256 when one is given.

LPIPS is the ``lpips`` package's, with its shipped linear layers and the torchvision backbone
loaded from the weights registry (the package itself would download it).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from dcesynth import weights as W

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass
class FeatureExtractor:
    """A feature network and the input it expects.

    Args:
        name: registry or ``torchscript:`` name (recorded in results).
        net: module mapping (N, 3, size, size) to (N, d[, h, w]).
        size: input side the images are bilinearly resized to (None: as they are).
        normalise: None or (mean, std) per channel applied to [0, 1] inputs.
    """

    name: str
    net: nn.Module
    size: int | None
    normalise: tuple[tuple[float, ...], tuple[float, ...]] | None = None

    def to(self, device) -> FeatureExtractor:
        self.net.to(device)
        return self

    @torch.no_grad()
    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        """(N, H, W) on [0, 255] → (N, d) float64 features."""
        dev = next(self.net.parameters(), torch.empty(0)).device
        x = torch.as_tensor(images, device=dev).float()[:, None].expand(-1, 3, -1, -1) / 255.0
        if self.size is not None and tuple(x.shape[-2:]) != (self.size, self.size):
            x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False)
        if self.normalise is not None:
            mean, std = (torch.tensor(v, device=dev).view(1, 3, 1, 1) for v in self.normalise)
            x = (x - mean) / std
        f = self.net(x)
        if isinstance(f, list | tuple):  # pytorch-fid returns a list of blocks
            f = f[-1]
        if f.ndim == 4:
            f = f.mean(dim=(2, 3))
        if f.ndim != 2:
            raise ValueError(f"feature network {self.name!r} returned shape {tuple(f.shape)}")
        return f.double()


def features(extractor: FeatureExtractor, images, batch: int = 32, device=None) -> np.ndarray:
    """Features of (N, H, W) images on [0, 255], in batches → (N, d) float64."""
    out = []
    for i in range(0, len(images), batch):
        out.append(extractor(torch.as_tensor(np.asarray(images[i : i + batch]))).cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, 0))


# --- FID_Img: pytorch-fid's InceptionV3 ------------------------------------------------------


def fid_inception(state_dict: dict | None) -> nn.Module:
    """pytorch-fid's InceptionV3 (pool3) with ``state_dict``; None keeps random weights (tests).

    pytorch-fid can only download its weights; its builder is handed our verified local file
    instead. The FID blocks subclass torchvision's with the same parameters, so a plain
    torchvision Inception3's state dict has exactly the right keys for random weights.
    """
    from unittest import mock

    import pytorch_fid.inception as pfi

    if state_dict is None:
        state_dict = pfi._inception_v3(
            num_classes=1008, aux_logits=False, weights=None
        ).state_dict()
    with mock.patch.object(pfi, "load_state_dict_from_url", lambda *a, **k: state_dict):
        # our FeatureExtractor resizes to 299 (bilinear, as pytorch-fid); [0, 1] → [−1, 1] here
        net = pfi.InceptionV3([3], resize_input=False, normalize_input=True)
    return net.eval()


# --- FID_Rad: RadImageNet trunks -------------------------------------------------------------


def _trunk(arch: str) -> tuple[nn.Sequential, list[str]]:
    """The release's Backbone, ``Sequential(*children[:-1])``, and the torchvision child names."""
    from torchvision import models

    if arch == "resnet50":
        ref = models.resnet50(weights=None)
    elif arch == "inceptionv3":
        ref = models.inception_v3(weights=None, aux_logits=False, init_weights=False)
    else:
        raise ValueError(f"unknown RadImageNet architecture {arch!r}; valid: resnet50, inceptionv3")
    named = list(ref.named_children())[:-1]  # everything but the classifier
    return nn.Sequential(*(m for _, m in named)), [n for n, _ in named]


def _release_keys(state: dict, trunk: nn.Sequential, names: list[str], path: str) -> dict:
    """Map 'backbone.N.…' (the release), 'module.…' or torchvision names onto the trunk."""
    index = {n: str(i) for i, n in enumerate(names)}
    out = {}
    for k, v in state.items():
        k = k.removeprefix("module.").removeprefix("backbone.")
        head, _, rest = k.partition(".")
        if head in ("fc", "AuxLogits"):
            continue
        out[f"{index[head]}.{rest}" if head in index else k] = v
    expected = set(trunk.state_dict())
    missing, unexpected = sorted(expected - set(out)), sorted(set(out) - expected)
    if missing or unexpected:
        raise W.WeightsError(
            f"{path}: not a RadImageNet trunk of this architecture; "
            f"missing {missing[:3]}, unexpected {unexpected[:3]}"
        )
    return out


def radimagenet(arch: str, state_dict: dict | None, path: str = "<random>") -> nn.Module:
    """A RadImageNet trunk (global-average-pooled 2048-d); None keeps random weights (tests)."""
    trunk, names = _trunk(arch)
    if state_dict is not None:
        trunk.load_state_dict(_release_keys(state_dict, trunk, names, path))
    return trunk.eval()


def _load_state(path: Path) -> dict:
    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise W.WeightsError(f"{path}: expected a state dict, got {type(state).__name__}")
    return state


# --- the registry of extractors --------------------------------------------------------------


def _fid_img(weights_dir: Path | None) -> FeatureExtractor:
    path = W.resolve(W.FID_INCEPTION, weights_dir)
    return FeatureExtractor("fid_inception", fid_inception(_load_state(path)), 299)


def _rad(arch: str, spec: W.WeightsSpec, size: int) -> Callable[[Path | None], FeatureExtractor]:
    def build(weights_dir: Path | None) -> FeatureExtractor:
        path = W.resolve(spec, weights_dir)
        net = radimagenet(arch, _load_state(path), str(path))
        return FeatureExtractor(spec.name, net, size, (IMAGENET_MEAN, IMAGENET_STD))

    return build


EXTRACTORS: dict[str, Callable[[Path | None], FeatureExtractor]] = {
    "fid_inception": _fid_img,
    "radimagenet_inceptionv3": _rad("inceptionv3", W.RADIMAGENET_INCEPTIONV3, 299),
    "radimagenet_resnet50": _rad("resnet50", W.RADIMAGENET_RESNET50, 224),
}


def torchscript_extractor(path: Path, sha256: str | None = None, size: int | None = 299):
    """A user's TorchScript feature network (input (N, 3, H, W) on [0, 1])."""
    path = Path(path)
    if not path.is_file():
        raise W.WeightsError(f"TorchScript feature network {path} not found")
    if sha256 and not W.sha256_of(path).startswith(sha256.lower()):
        raise W.WeightsError(f"{path}: sha256 does not start with {sha256}")
    net = torch.jit.load(str(path), map_location="cpu").eval()
    return FeatureExtractor(f"torchscript:{path}", net, size)


def extractor(name: str, weights_dir: Path | None = None) -> FeatureExtractor:
    """Build a feature extractor by name (``EXTRACTORS`` or ``torchscript:PATH``).

    Raises:
        WeightsError: unknown name, or its file missing/corrupt (with where to put it).
    """
    if name.startswith("torchscript:"):
        return torchscript_extractor(Path(name.split(":", 1)[1]))
    if name not in EXTRACTORS:
        raise W.WeightsError(
            f"unknown feature network {name!r}; valid: {sorted(EXTRACTORS)} or torchscript:PATH"
        )
    return EXTRACTORS[name](weights_dir)


def required_weights(name: str) -> W.WeightsSpec | None:
    return {
        "fid_inception": W.FID_INCEPTION,
        "radimagenet_inceptionv3": W.RADIMAGENET_INCEPTIONV3,
        "radimagenet_resnet50": W.RADIMAGENET_RESNET50,
    }.get(name)


# --- LPIPS -----------------------------------------------------------------------------------

LPIPS_BACKBONES = {"alex": W.LPIPS_ALEX, "vgg": W.LPIPS_VGG16, "squeeze": W.LPIPS_SQUEEZE}


def lpips_network(net: str = "alex", backbone: dict | None = None) -> nn.Module:
    """``lpips.LPIPS`` with its shipped linear layers and ``backbone`` (torchvision state dict).

    Args:
        net: ``alex`` (the package default), ``vgg`` or ``squeeze``.
        backbone: the torchvision ImageNet state dict of that network; None keeps random
            backbone weights (tests only: never a reportable LPIPS).
    """
    import lpips
    from torchvision import models

    if net not in LPIPS_BACKBONES:
        raise ValueError(f"unknown LPIPS network {net!r}; valid: {sorted(LPIPS_BACKBONES)}")
    import warnings

    # pnet_rand: the package would otherwise download the backbone; we load it below
    with warnings.catch_warnings():  # lpips still passes torchvision's deprecated `pretrained`
        warnings.simplefilter("ignore", UserWarning)
        m = lpips.LPIPS(net=net, pnet_rand=True, verbose=False)
    if backbone is not None:
        tv = {"alex": models.alexnet, "vgg": models.vgg16, "squeeze": models.squeezenet1_1}[net]()
        tv.load_state_dict(backbone)
        for sl in m.net.children():  # the package's slices hold features[i] under name str(i)
            for name, layer in sl.named_children():
                layer.load_state_dict(tv.features[int(name)].state_dict())
    return m.eval()


def lpips_from_registry(net: str = "alex", weights_dir: Path | None = None) -> nn.Module:
    path = W.resolve(LPIPS_BACKBONES[net], weights_dir)
    return lpips_network(net, _load_state(path))


@torch.no_grad()
def lpips_distance(model: nn.Module, real, fake, region=None, batch: int = 16) -> np.ndarray:
    """Per-pair LPIPS of (N, H, W) images on [0, 255] (grey replicated to 3 channels, [−1, 1]).

    With ``region`` (N, H, W) bool: the mean of LPIPS's spatial map over the region (NaN when
    empty); without: the package's standard spatially averaged distance.
    """
    dev = next(model.parameters()).device
    out = []
    for i in range(0, len(real), batch):
        a, b = (
            torch.as_tensor(np.asarray(v[i : i + batch]), device=dev)
            .float()[:, None]
            .expand(-1, 3, -1, -1)
            / 127.5
            - 1
            for v in (real, fake)
        )
        if region is None:
            out.append(model(a, b).flatten().double().cpu().numpy())
            continue
        r = torch.as_tensor(np.asarray(region[i : i + batch]), device=dev).float()
        model.spatial = True
        try:
            d = model(a, b)[:, 0]
        finally:
            model.spatial = False
        out.append(((d * r).flatten(1).sum(1) / r.flatten(1).sum(1)).double().cpu().numpy())
    return np.concatenate(out) if out else np.zeros(0)
