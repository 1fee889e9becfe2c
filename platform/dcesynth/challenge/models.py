"""The organisers' model files for MAMA-SYNTH's weight-dependent metrics, and the rule that
guards them: a pickle is loaded only when the user vouches for its checksum.

Layout (the official evaluator's ``MAMA_MODELS_DIR``)::

    MODELS/classification/contrast_classifier.pkl    auroc_contrast   (pickled scikit-learn)
    MODELS/classification/tumor_roi_classifier.pkl   auroc_tumor_roi
    MODELS/segmentation/                             dice, hausdorff_95 (nnU-Net 2D, fold 0:
                                                     dataset.json, plans.json,
                                                     fold_0/checkpoint_final.pth)

Unpickling runs code, and nnU-Net loads its checkpoints with a full ``torch.load``
— an unpickle as well. So each of these files is opened only when its sha256 is among the
checksums given with ``--trust-pickles``; otherwise its metrics are listed as not computed,
with the checksum to pass if the user trusts the file.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

CLASSIFIERS = {
    "auroc_contrast": "classification/contrast_classifier.pkl",
    "auroc_tumor_roi": "classification/tumor_roi_classifier.pkl",
}
SEGMENTATION = "segmentation"
CHECKPOINT = "checkpoint_final.pth"
_HEX = re.compile(r"^(sha256[:=])?([0-9a-fA-F]{64})$")


class Untrusted(ValueError):
    """A pickle whose checksum the user has not vouched for; the message says how to."""


def parse_trusted(values: Iterable[str]) -> frozenset[str]:
    """``--trust-pickles`` values → lower-case sha256 hex digests.

    Args:
        values: each ``HEX``, ``sha256:HEX`` or ``sha256=HEX`` (64 hex digits).

    Raises:
        ValueError: a value that is not a sha256 digest.
    """
    out = set()
    for v in values:
        m = _HEX.match(v.strip())
        if not m:
            raise ValueError(
                f"--trust-pickles {v!r}: expected a sha256 checksum (64 hex digits, optionally "
                "prefixed sha256:), e.g. the value `sha256sum FILE` prints"
            )
        out.add(m.group(2).lower())
    return frozenset(out)


def sha256(path: Path) -> str:
    """The file's sha256, hex."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def check_trusted(path: Path, trusted: frozenset[str]) -> None:
    """Raise :class:`Untrusted` unless ``path``'s sha256 is in ``trusted``."""
    digest = sha256(path)
    if digest not in trusted:
        raise Untrusted(
            f"{path} is a pickle (loading it runs code) and its sha256 {digest} was not "
            f"vouched for; if you trust this file, pass --trust-pickles {digest}"
        )


def classifier_status(models: Path | None, trusted: frozenset[str]) -> dict[str, str]:
    """Why each ``auroc_*`` metric is not computed (every one, in this version).

    The checksum rule is applied first, so the reason says what the user can do; a trusted
    classifier is still not run: the official AUROC needs the organisers' exact radiomics
    feature vector (their extraction settings and feature order) and their mirrored-mask
    midline detection, which are not reimplemented here.
    """
    out = {}
    for metric, rel in CLASSIFIERS.items():
        path = None if models is None else Path(models) / rel
        if path is None:
            out[metric] = "no --models folder (needs the organisers' " + rel + ")"
        elif not path.is_file():
            out[metric] = f"{path}: not found (the organisers' pickled classifier)"
        else:
            try:
                check_trusted(path, trusted)
                out[metric] = (
                    f"{path} is trusted, but its feature vector (the organisers' radiomics "
                    "settings, feature order and mirrored-mask midline) is not implemented here"
                )
            except Untrusted as e:
                out[metric] = str(e)
    return out


def nnunet_segmenter(
    models: Path, trusted: frozenset[str], fold: int = 0, device: str | None = None
) -> Callable[[list[np.ndarray]], list[np.ndarray]]:
    """The organisers' 2D nnU-Net (``MODELS/segmentation``, one fold) as a function from 2D
    slices to boolean masks, configured as the official evaluator configures it (tile step
    0.5, Gaussian weighting, mirroring, ``checkpoint_final.pth``). Each slice is written as a
    (1, H, W) NIfTI; a slice without output gets an empty mask.

    Args:
        models: the models folder.
        trusted: sha256 digests the user vouched for (the checkpoint is a pickle).
        fold: the fold to load (official default 0).
        device: ``cuda``/``cpu`` (default: cuda when available).

    Raises:
        ValueError: the folder or checkpoint is missing, or the checkpoint is not trusted.
        ImportError: nnunetv2 is not installed.
    """
    seg = Path(models) / SEGMENTATION
    ckpt = seg / f"fold_{fold}" / CHECKPOINT
    if not seg.is_dir():
        raise ValueError(f"{seg}: no nnU-Net folder (dataset.json, plans.json, fold_{fold}/)")
    if not ckpt.is_file():
        raise ValueError(f"{ckpt}: not found (the organisers' nnU-Net checkpoint)")
    check_trusted(ckpt, trusted)
    # nnU-Net reads its three folders from the environment when first imported and warns when
    # they are unset; prediction needs none of them. Set them only around the import and put the
    # environment back, so nothing leaks into the caller's process (or a study run after us).
    keys = ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results")
    unset = [k for k in keys if k not in os.environ]
    os.environ.update({k: tempfile.gettempdir() for k in unset})
    try:
        import SimpleITK as sitk
        import torch
        from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor
    finally:
        for k in unset:
            os.environ.pop(k, None)

    dev = device or ("cuda" if torch.cuda.is_available() else "cpu")
    predictor = nnUNetPredictor(
        tile_step_size=0.5,
        use_gaussian=True,
        use_mirroring=True,
        perform_everything_on_device=dev == "cuda",
        device=torch.device(dev),
        verbose=False,
        allow_tqdm=False,
    )
    predictor.initialize_from_trained_model_folder(
        str(seg), use_folds=(fold,), checkpoint_name=CHECKPOINT
    )

    def segment(images: list[np.ndarray]) -> list[np.ndarray]:
        with tempfile.TemporaryDirectory(prefix="dcesynth-nnunet-") as tmp:
            ins, outs = [], []
            (Path(tmp) / "out").mkdir()
            for i, im in enumerate(images):
                ins.append([str(Path(tmp) / f"c{i:05d}_0000.nii.gz")])
                outs.append(str(Path(tmp) / "out" / f"c{i:05d}"))
                arr = np.asarray(im, np.float32)[None]
                sitk.WriteImage(sitk.GetImageFromArray(arr), ins[-1][0])
            predictor.predict_from_files_sequential(ins, outs, False, True)
            masks = []
            for im, o in zip(images, outs, strict=True):
                p = Path(o + ".nii.gz")
                if not p.is_file():
                    masks.append(np.zeros(np.shape(im), bool))
                    continue
                m = sitk.GetArrayFromImage(sitk.ReadImage(str(p))) > 0
                masks.append(m[0] if m.ndim == 3 else m)
            return masks

    return segment
