"""The MAMA-SYNTH submission contract, run by the container ``dcectl challenge container``
builds: ``python -m dcesynth.challenge.entrypoint``.

Per run (one case; the container runs as a non-root user, without network):

* input: the first of ``*.mha``, ``*.nii.gz``, ``*.nii`` (sorted) in
  ``<input>/images/pre-contrast-dce-mri-slice-breast/`` — one 2D pre-contrast slice z-scored
  with the challenge's dataset constants (a warning when there are several, an error listing
  the folder when there is none);
* output: ``<output>/images/synthetic-contrast-dce-mri-slice-breast/output.mha``: float32, the
  input's size, spacing, origin and direction (``CopyInformation``), compressed as the official
  baseline writes it; written under a temporary name and renamed;
* folders from ``--input``/``--output`` or ``MAMA_INPUT_DIR``/``MAMA_OUTPUT_DIR`` (defaults
  ``/input``, ``/output``); the slugs can be changed with ``MAMA_INPUT_SLUG`` /
  ``MAMA_PREDICTION_SLUG``; the model with ``--model`` or ``DCESYNTH_MODEL``.

**Intensities.** A model trained on challenge-prepared slices (``dcectl challenge dataset``)
saw one fixed z-score window mapped to [0, 255] (``normalisation: window``); the input is mapped
with that window and the output back with it, so enhancement levels are the ones it learned.
Other models see uint8 slices: each volume min-max (or percentile / z-score clip, as the model
file says) normalised to [0, 255], and write the same scale, while the challenge input is
z-scored. The mapping is explicit and affine (:func:`to_model_scale`): the
slice's own range [lo, hi] (min-max, or the model's percentiles or ±clip sd, computed on the
slice) → [0, 255], which equals the training normalisation of that slice up to using the
slice's range instead of its volume's; the generated slice is mapped back with the same lo, hi
(:func:`from_model_scale`), so the output is on the input's z-score scale. The generated phase
was normalised to its own range in training, not the pre-contrast one, so absolute enhancement
levels are approximate: a generator trained on the challenge's own z-scored slices is the clean
path (:mod:`dcesynth.challenge.dataset`).

**Geometry.** The slice is resized to the model's square (physical aspect from the file's
spacing, zero padding; :class:`~dcesynth.data.ingest.transforms.SquareResize`) and resized
back. The challenge slices carry no orientation (identity direction); ``--rot90 K`` (or
``DCESYNTH_ROT90``) turns the slice by K × 90° before the generator and back after, for a
model trained in another orientation.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

log = logging.getLogger("dcesynth.challenge.entrypoint")

INPUT_SLUG = "pre-contrast-dce-mri-slice-breast"
OUTPUT_SLUG = "synthetic-contrast-dce-mri-slice-breast"
PATTERNS = ("*.mha", "*.nii.gz", "*.nii")
DEFAULT_MODEL = "/opt/app/model.dcem"


def find_input(input_dir: Path, slug: str = INPUT_SLUG) -> Path:
    """The first ``*.mha``, then ``*.nii.gz``, then ``*.nii`` in ``input_dir/images/<slug>/``.

    Raises:
        FileNotFoundError: no such folder or no image in it (the message lists what is there).
    """
    folder = Path(input_dir) / "images" / slug
    if not folder.is_dir():
        seen = sorted(p.name for p in (Path(input_dir) / "images").glob("*")) if (
            Path(input_dir) / "images").is_dir() else []  # fmt: skip
        raise FileNotFoundError(f"{folder}: no such folder (images/ holds {seen or 'nothing'})")
    found = [p for pat in PATTERNS for p in sorted(folder.glob(pat)) if p.is_file()]
    if not found:
        listing = sorted(p.name for p in folder.iterdir())
        raise FileNotFoundError(
            f"{folder}: no .mha/.nii.gz/.nii image (holds {listing or 'nothing'})"
        )
    if len(found) > 1:
        log.warning("%d images in %s; using %s", len(found), folder, found[0].name)
    return found[0]


def intensity_range(image: np.ndarray, normalisation: dict) -> tuple[float, float]:
    """[lo, hi] of ``image`` that the model's normalisation maps to [0, 255].

    Args:
        image: the 2D slice (any scale; the z-score is affine, so min-max is unaffected).
        normalisation: the model file's ``input.normalisation`` (method and parameters).

    Raises:
        ValueError: an unknown method.
    """
    v = np.asarray(image, np.float64)
    method = normalisation.get("method", "minmax")
    if method == "minmax":
        return float(v.min()), float(v.max())
    if method == "percentile":
        lo, hi = np.percentile(v, normalisation.get("percentiles", (0.5, 99.5)))
        return float(lo), float(hi)
    if method == "zscore":
        c = float(normalisation.get("zscore_clip", 3.0))
        return float(v.mean() - c * v.std()), float(v.mean() + c * v.std())
    if method == "window":  # trained on challenge-prepared slices: one fixed z-score window
        lo, hi = (float(x) for x in normalisation["window"])
        return lo, hi
    raise ValueError(
        f"model normalisation {method!r}: expected minmax, percentile, zscore or window"
    )


def to_model_scale(image: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """``image`` clipped to [lo, hi] and mapped to uint8 [0, 255] (hi > lo)."""
    out = (np.clip(np.asarray(image, np.float64), lo, hi) - lo) * (255.0 / (hi - lo))
    return np.rint(out).astype(np.uint8)


def from_model_scale(u: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """The inverse of :func:`to_model_scale` (up to its rounding), as float32."""
    return (lo + np.asarray(u, np.float64) * ((hi - lo) / 255.0)).astype(np.float32)


class LoadedModel:
    """A model file loaded once (checksums verified) and its generator built on ``device``:
    what :func:`synthesise` needs per slice, so a folder of cases loads it once."""

    def __init__(self, model: Path, device: str = "cpu") -> None:
        from dcesynth.inference.artifact import load_artifact

        self.path, self.device = Path(model), device
        self.art = load_artifact(model)
        self.G, self.cfg = self.art.spec().build(device)


def synthesise(
    image: np.ndarray,
    spacing: tuple[float, float],
    model: Path | LoadedModel,
    device: str = "cpu",
    phase: int | None = None,
    rot90: int = 0,
) -> np.ndarray:
    """One z-scored 2D pre-contrast slice → the generated post-contrast slice, same scale.

    Args:
        image: (H, W) slice, SimpleITK's array order.
        spacing: (row, column) pixel size in mm (aspect of the square resize).
        model: a model file (``dcectl export``; its checksums are verified) or a
            :class:`LoadedModel` (then ``device`` is the one it was built on).
        device: ``cpu`` or ``cuda``.
        phase: the generated post phase to return (default: the model's first).
        rot90: quarter turns applied before the generator and undone after.

    Raises:
        ValueError: not 2D, a bad model file, or a phase the model does not generate.
    """
    from dcesynth.data.ingest.transforms import SquareResize
    from dcesynth.training.validation import generate

    img = np.asarray(image, np.float64)
    if img.ndim != 2:
        raise ValueError(f"expected a 2D slice, got shape {img.shape}")
    m = model if isinstance(model, LoadedModel) else LoadedModel(model, device)
    art = m.art
    want = art.phases[0] if phase is None else int(phase)
    if want not in art.phases:
        raise ValueError(f"{m.path}: generates phases {art.phases}, not {want}")
    lo, hi = intensity_range(img, art.normalisation)
    if not hi > lo:
        log.warning("constant input slice (%g): written unchanged", lo)
        return img.astype(np.float32)
    x = np.rot90(img, rot90)
    dy, dx = (spacing[0], spacing[1]) if rot90 % 2 == 0 else (spacing[1], spacing[0])
    rs = SquareResize.plan(x.shape[0], x.shape[1], dy, dx, art.image_size)
    square = rs.apply(to_model_scale(x, lo, hi)[None, None])[:, 0]
    fake = generate(m.G, square, m.cfg, m.device, 1)[:, [art.phases.index(want)]]
    back = rs.invert(fake)[0, 0]
    return from_model_scale(np.rot90(back, -rot90), lo, hi)


def predict_folder(
    input_dir: Path,
    out_dir: Path,
    model: Path,
    device: str = "cpu",
    cases: list[str] | None = None,
) -> list[Path]:
    """Every ``<case>.mha`` of ``input_dir`` (prepare's ``mha/input``) → ``out_dir/<case>.mha``,
    the flat layout ``dcectl challenge evaluate`` scores; the model is loaded once.

    Args:
        input_dir: folder of z-scored 2D pre-contrast slices.
        out_dir: where the predictions go (each written through a temporary sibling).
        model: the model file.
        device: ``cpu`` or ``cuda``.
        cases: only these case ids (e.g. the test split); default every file.

    Raises:
        FileNotFoundError: no input folder, no ``.mha`` in it, or a listed case missing.
    """
    import SimpleITK as sitk

    files = sorted(Path(input_dir).glob("*.mha"))
    if not files:
        raise FileNotFoundError(f"{input_dir}: no .mha slices")
    if cases is not None:
        have = {f.stem: f for f in files}
        if missing := sorted(set(cases) - set(have)):
            raise FileNotFoundError(f"{input_dir}: no slice for {missing[:5]}")
        files = [have[c] for c in sorted(cases)]
    m = LoadedModel(model, device)
    written = []
    for f in files:
        ref = sitk.ReadImage(str(f))
        if ref.GetDimension() != 2:
            raise ValueError(f"{f}: expected a 2D slice, got a {ref.GetDimension()}D image")
        sx, sy = ref.GetSpacing()
        fake = synthesise(sitk.GetArrayFromImage(ref), (sy, sx), m)
        write_output(fake, ref, Path(out_dir) / f.name)
        written.append(Path(out_dir) / f.name)
    return written


def write_output(array: np.ndarray, reference, path: Path) -> None:
    """``array`` as float32 ``.mha`` with ``reference``'s spacing, origin and direction,
    compressed, through a temporary sibling renamed into place."""
    import SimpleITK as sitk

    out = sitk.GetImageFromArray(np.ascontiguousarray(array, dtype=np.float32))
    out.CopyInformation(reference)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-output.", suffix=".mha", dir=path.parent)
    os.close(fd)
    try:
        sitk.WriteImage(out, tmp, useCompression=True)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def run(
    input_dir: Path,
    output_dir: Path,
    model: Path,
    device: str = "auto",
    phase: int | None = None,
    rot90: int = 0,
) -> Path:
    """Read the case, generate, write ``output.mha``; returns its path.

    Args:
        input_dir: the ``/input`` folder.
        output_dir: the ``/output`` folder.
        model: the model file.
        device: ``auto`` (cuda when available), ``cpu`` or ``cuda``.
        phase: the post phase to write (default: the model's first).
        rot90: quarter turns for the generator (see the module docstring).

    Raises:
        FileNotFoundError / ValueError: no input, a bad input or model.
    """
    import SimpleITK as sitk

    src = find_input(input_dir, os.environ.get("MAMA_INPUT_SLUG", INPUT_SLUG))
    ref = sitk.ReadImage(str(src))
    if ref.GetDimension() != 2:
        raise ValueError(f"{src}: expected a 2D slice, got a {ref.GetDimension()}D image")
    if device == "auto":
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
    arr = sitk.GetArrayFromImage(ref)
    sx, sy = ref.GetSpacing()
    fake = synthesise(arr, (sy, sx), model, device, phase, rot90)
    slug = os.environ.get("MAMA_PREDICTION_SLUG", OUTPUT_SLUG)
    dest = Path(output_dir) / "images" / slug / "output.mha"
    write_output(fake, ref, dest)
    log.info("%s → %s (%s, %s)", src.name, dest, fake.shape, device)
    return dest


def main(argv: list[str] | None = None) -> int:
    """Command line: ``python -m dcesynth.challenge.entrypoint [--input DIR] [--output DIR]
    [--model FILE] [--device auto|cpu|cuda] [--phase P] [--rot90 K]``; exit 1 on failure."""
    p = argparse.ArgumentParser(description="MAMA-SYNTH submission: pre-contrast → synthetic post")
    p.add_argument("--input", type=Path, default=Path(os.environ.get("MAMA_INPUT_DIR", "/input")))
    p.add_argument(
        "--output", type=Path, default=Path(os.environ.get("MAMA_OUTPUT_DIR", "/output"))
    )
    p.add_argument(
        "--model", type=Path, default=Path(os.environ.get("DCESYNTH_MODEL", DEFAULT_MODEL))
    )
    p.add_argument("--device", default=os.environ.get("DCESYNTH_DEVICE", "auto"),
                   choices=("auto", "cpu", "cuda"))  # fmt: skip
    p.add_argument("--phase", type=int, default=os.environ.get("DCESYNTH_PHASE") or None)
    p.add_argument("--rot90", type=int, default=int(os.environ.get("DCESYNTH_ROT90", "0")))
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        run(a.input, a.output, a.model, a.device, a.phase, a.rot90)
    except (FileNotFoundError, ValueError) as e:
        log.error("%s", e)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
