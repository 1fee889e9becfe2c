"""Pretrained weights on local disk: named files, checked against their published checksum.

Nothing is ever downloaded. A missing or corrupt file is an error that says where the file is
expected and where it comes from. (The evaluation registry, FID and LPIPS backbones, builds on
this; VGG19 for the perceptual loss is the first entry.)
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

DEFAULT_WEIGHTS_DIR = Path.home() / ".cache" / "dcesynth" / "weights"


class WeightsError(RuntimeError):
    """A weights file is missing or does not match its checksum."""


@dataclass(frozen=True)
class WeightsSpec:
    """A pretrained file: its name on disk, its sha256 (full or torchvision's 8-hex prefix)."""

    name: str
    filename: str
    sha256: str
    source: str


VGG19_IMAGENET = WeightsSpec(
    name="vgg19_imagenet",
    filename="vgg19-dcbb9e9d.pth",
    sha256="dcbb9e9d",  # torchvision names files by the first 8 hex digits of their sha256
    source="torchvision VGG19_Weights.IMAGENET1K_V1 (pytorch.org models/vgg19-dcbb9e9d.pth)",
)


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with Path(path).open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def resolve(spec: WeightsSpec, weights_dir: Path | None = None) -> Path:
    """The verified path of ``spec`` in ``weights_dir``.

    Raises:
        WeightsError: naming the expected path and the source when missing; the expected and
            actual checksum when corrupt.
    """
    path = Path(weights_dir or DEFAULT_WEIGHTS_DIR) / spec.filename
    if not path.is_file():
        raise WeightsError(
            f"weights {spec.name!r} not found: put {spec.filename} in {path.parent} "
            f"(source: {spec.source}), or choose a config that does not need them"
        )
    digest = sha256_of(path)
    if not digest.startswith(spec.sha256.lower()):
        raise WeightsError(
            f"weights {spec.name!r}: {path} has sha256 {digest[:16]}…, "
            f"expected {spec.sha256}…; the file is corrupt or another release"
        )
    return path
