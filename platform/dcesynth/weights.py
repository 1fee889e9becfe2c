"""Pretrained weights on local disk: a registry of named files, each checked against a checksum.

Nothing here downloads (the machines this runs on often cannot): a run or a metric only looks
for its file. Downloading is one explicit step, ``dcectl weights fetch``
(:mod:`dcesynth.weights_fetch`), from the official ``url`` of an entry that has one. Every file
the platform can use has a name, a file name, an expected sha256 and where it comes from. Where
the source publishes no checksum (the RadImageNet releases), ``dcectl weights add`` records the
file's sha256 in ``checksums.json`` beside it and every later use is checked against that record
(trust on first use, said so in ``weights status``).

A missing or corrupt file is a :class:`WeightsError` that says where the file is expected and
where it comes from.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

DEFAULT_WEIGHTS_DIR = Path.home() / ".cache" / "dcesynth" / "weights"
RECORDED = "checksums.json"  # sha256 recorded by `weights add` for files without a published one
TV = "https://download.pytorch.org/models/"  # torchvision's official model files


class WeightsError(ValueError):
    """A weights file is missing, unknown, or does not match its checksum."""


@dataclass(frozen=True)
class WeightsSpec:
    """A pretrained file.

    Args:
        name: registry name (``dcectl weights status`` lists them).
        filename: its name on disk in the weights directory.
        sha256: full digest, torchvision/torch-hub's 8-hex prefix, or None when the source
            publishes none (then the digest recorded by ``weights add`` is enforced).
        source: where a user gets it.
        used_by: what needs it.
        url: the official direct download, or None where there is no stable one (then
            ``weights fetch`` says where to get the file by hand instead of guessing a URL).
    """

    name: str
    filename: str
    sha256: str | None
    source: str
    used_by: str
    url: str | None = None


VGG19_IMAGENET = WeightsSpec(
    "vgg19_imagenet",
    "vgg19-dcbb9e9d.pth",
    "dcbb9e9d",  # torchvision names files by the first 8 hex digits of their sha256
    "torchvision VGG19_Weights.IMAGENET1K_V1: https://download.pytorch.org/models/vgg19-dcbb9e9d.pth",
    "perceptual loss (training)",
    TV + "vgg19-dcbb9e9d.pth",
)
FID_INCEPTION = WeightsSpec(
    "fid_inception",
    "pt_inception-2015-12-05-6726825d.pth",
    "6726825d",
    "pytorch-fid release: https://github.com/mseitzer/pytorch-fid/releases/download/"
    "fid_weights/pt_inception-2015-12-05-6726825d.pth",
    "FID_Img (TensorFlow FID Inception, pool3 2048-d)",
    "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/"
    "pt_inception-2015-12-05-6726825d.pth",
)
RADIMAGENET_INCEPTIONV3 = WeightsSpec(
    "radimagenet_inceptionv3",
    "RadImageNet-InceptionV3.pt",
    None,
    "RadImageNet PyTorch release (github.com/BMEII-AI/RadImageNet → RadImageNet_pytorch/"
    "InceptionV3.pt); add it with `dcectl weights add FILE --name radimagenet_inceptionv3`",
    "FID_Rad, the study's network",
)
RADIMAGENET_RESNET50 = WeightsSpec(
    "radimagenet_resnet50",
    "RadImageNet-ResNet50.pt",
    None,
    "RadImageNet PyTorch release (github.com/BMEII-AI/RadImageNet → RadImageNet_pytorch/"
    "ResNet50.pt); add it with `dcectl weights add FILE --name radimagenet_resnet50`",
    "FID_Rad, the common ResNet50 variant",
)
LPIPS_ALEX = WeightsSpec(
    "lpips_alexnet",
    "alexnet-owt-7be5be79.pth",
    "7be5be79",
    "torchvision AlexNet_Weights.IMAGENET1K_V1: https://download.pytorch.org/models/"
    "alexnet-owt-7be5be79.pth",
    "LPIPS (alex, the lpips package's default backbone)",
    TV + "alexnet-owt-7be5be79.pth",
)
LPIPS_VGG16 = WeightsSpec(
    "lpips_vgg16",
    "vgg16-397923af.pth",
    "397923af",
    "torchvision VGG16_Weights.IMAGENET1K_V1: https://download.pytorch.org/models/vgg16-397923af.pth",
    "LPIPS (vgg)",
    TV + "vgg16-397923af.pth",
)
LPIPS_SQUEEZE = WeightsSpec(
    "lpips_squeezenet",
    "squeezenet1_1-b8a52dc0.pth",
    "b8a52dc0",
    "torchvision SqueezeNet1_1_Weights.IMAGENET1K_V1: https://download.pytorch.org/models/"
    "squeezenet1_1-b8a52dc0.pth",
    "LPIPS (squeeze)",
    TV + "squeezenet1_1-b8a52dc0.pth",
)

REGISTRY: dict[str, WeightsSpec] = {
    s.name: s
    for s in (
        FID_INCEPTION,
        RADIMAGENET_INCEPTIONV3,
        RADIMAGENET_RESNET50,
        LPIPS_ALEX,
        LPIPS_VGG16,
        LPIPS_SQUEEZE,
        VGG19_IMAGENET,
    )
}


def spec(name: str) -> WeightsSpec:
    if name not in REGISTRY:
        raise WeightsError(f"unknown weights {name!r}; known: {sorted(REGISTRY)}")
    return REGISTRY[name]


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with Path(path).open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _recorded(weights_dir: Path) -> dict[str, str]:
    path = weights_dir / RECORDED
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise WeightsError(
            f"{path}: unreadable ({e}); delete it and `dcectl weights add` again"
        ) from None


def expected_sha256(s: WeightsSpec, weights_dir: Path | None = None) -> str | None:
    """The published digest (prefix), else the one recorded by ``weights add``, else None."""
    return s.sha256 or _recorded(Path(weights_dir or DEFAULT_WEIGHTS_DIR)).get(s.name)


def resolve(s: WeightsSpec, weights_dir: Path | None = None) -> Path:
    """The verified path of ``s`` in ``weights_dir``.

    Raises:
        WeightsError: naming the expected path and the source when missing; the expected and
            actual checksum when corrupt.
    """
    wdir = Path(weights_dir or DEFAULT_WEIGHTS_DIR)
    path = wdir / s.filename
    if not path.is_file():
        fetch = f"run `dcectl weights fetch {s.name}` or " if s.url and s.sha256 else ""
        raise WeightsError(
            f"weights {s.name!r} not found: {fetch}put {s.filename} in {wdir} "
            f"(source: {s.source}), or choose a config that does not need them"
        )
    expected = expected_sha256(s, wdir)
    if expected is None:
        raise WeightsError(
            f"weights {s.name!r}: {path} has no checksum on record (its source publishes "
            f"none); install it with `dcectl weights add {path} --name {s.name}`"
        )
    digest = sha256_of(path)
    if not digest.startswith(expected.lower()):
        raise WeightsError(
            f"weights {s.name!r}: {path} has sha256 {digest[:16]}…, "
            f"expected {expected[:16]}…; the file is corrupt or another release"
        )
    return path


def status(weights_dir: Path | None = None) -> list[dict]:
    """One row per registry entry: name, file, state (ok / missing / corrupt / unrecorded)."""
    wdir = Path(weights_dir or DEFAULT_WEIGHTS_DIR)
    rows = []
    for s in REGISTRY.values():
        path = wdir / s.filename
        try:
            resolve(s, wdir)
            state = "ok" if s.sha256 else "ok (checksum recorded on add)"
        except WeightsError as e:
            state = "missing" if not path.is_file() else str(e).split(": ", 1)[1]
        rows.append(
            {
                "name": s.name,
                "file": str(path),
                "state": state,
                "used_by": s.used_by,
                "source": s.source,
            }
        )
    return rows


def add(file: Path, name: str | None = None, weights_dir: Path | None = None) -> tuple[str, Path]:
    """Verify ``file`` and copy it into ``weights_dir`` under its registry file name.

    Args:
        file: the downloaded file.
        name: its registry entry; None identifies it by its published checksum.
        weights_dir: where the platform looks (default ``~/.cache/dcesynth/weights``).

    Returns:
        (registry name, installed path).

    Raises:
        WeightsError: when the file is unknown, names a different entry, or fails its checksum.
    """
    file = Path(file)
    if not file.is_file():
        raise WeightsError(f"{file}: no such file")
    wdir = Path(weights_dir or DEFAULT_WEIGHTS_DIR)
    digest = sha256_of(file)
    if name is None:
        matches = [s for s in REGISTRY.values() if s.sha256 and digest.startswith(s.sha256)]
        if not matches:
            raise WeightsError(
                f"{file}: sha256 {digest[:16]}… matches no registry entry with a published "
                f"checksum; name it with --name (one of {sorted(REGISTRY)})"
            )
        s = matches[0]
    else:
        s = spec(name)
        if s.sha256 and not digest.startswith(s.sha256):
            raise WeightsError(
                f"{file}: sha256 {digest[:16]}… is not {s.name!r} (expected {s.sha256}…)"
            )
    wdir.mkdir(parents=True, exist_ok=True)
    dest = wdir / s.filename
    tmp = wdir / f".tmp-{s.filename}"
    shutil.copyfile(file, tmp)  # a half-copied file never carries the real name
    tmp.replace(dest)
    if s.sha256 is None:
        rec = _recorded(wdir)
        rec[s.name] = digest
        tmp_rec = wdir / f".tmp-{RECORDED}"
        tmp_rec.write_text(json.dumps(rec, indent=1, sort_keys=True))
        tmp_rec.replace(wdir / RECORDED)
    return s.name, dest
