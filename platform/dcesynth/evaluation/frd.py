"""FRD, the Fréchet Radiomics Distance (``frd-score`` v1): a distribution metric with no network
weights, for the platform's own evaluation (``frd`` on whole slices, ``frd_box`` inside the
tumour box).

FRD v1 extracts pyradiomics features (Original, LoG σ 2–5 and wavelet images, first-order and
texture classes; frd-score's ``extraction_2d.yaml``: resampled to 2 × 2 mm from the file's
spacing, per-image intensity normalisation) from every image of two sets, z-scores both sets'
features with the first (real) set's mean and std, drops feature columns holding NaN/inf,
and reports **log(d_F²)** of the two Gaussians (``use_paper_log=False``, frd-score's default).
So lower is better, values may be negative, and identical sets give −inf (d_F² = 0); SAMe
works on d_F² = exp(FRD) instead (:mod:`dcesynth.evaluation.same`).

Cost: the feature extraction is the whole cost (measured here, on two busy cores: 0.2–0.35 s
per 64²–128² slice, plus ~1 s to start frd-score's worker pool per set). Two choices keep a
selection over many checkpoints affordable: the real set's features are extracted once per
evaluation (:class:`dcesynth.evaluation.scoring.Scorer` caches them; v1 normalises with the real
set's statistics, so only the cheap post-processing is repeated per checkpoint), and FRD uses
at most ``EvalConfig.frd_pairs`` slices (a seeded subset, the same for every checkpoint).

:func:`features` runs frd-score's own extractor and per-image pipeline on temporary ``.mha``
files (spacing 1 × 1, as the MAMA-SYNTH task's files have), and :func:`frd_from_features`
repeats frd-score's v1 post-processing with its own functions; a test checks the two together
against ``frd_score.compute_frd`` on the same files.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import tempfile
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

FRD_METRICS = ("frd", "frd_box")


def require() -> None:
    """Fail early, with the fix, when frd-score or its pyradiomics is missing.

    Raises:
        ImportError: naming the packages to install.
    """
    try:
        import frd_score  # noqa: F401
        import radiomics  # noqa: F401  # frd-score imports it lazily and fails late
    except ImportError as e:
        raise ImportError(
            f"FRD needs the packages frd-score and pyradiomics-bhklab ({e}); install them "
            "with `pip install 'frd-score>=1.0.1,<1.1' 'pyradiomics-bhklab>=3.1.4'` or leave "
            "frd/frd_box out of `metrics`"
        ) from e


def _write(array: np.ndarray, path: Path) -> None:
    import SimpleITK as sitk

    img = sitk.GetImageFromArray(np.ascontiguousarray(array))
    img.SetSpacing((1.0, 1.0))
    sitk.WriteImage(img, str(path))


_QUIET_FORKS = False


def quiet_forked_children() -> None:
    """Forked children of this process end quietly on SIGTERM.

    frd-score extracts features in a forked ``multiprocessing.Pool`` and ends it with
    ``terminate()`` (SIGTERM). A driver connected to Ray carries Ray's C++ failure-signal
    handler, which the children inherit: every ended pool worker then printed a "SIGTERM
    received" stack trace into the demo's log. The children get the default action back;
    this process keeps its own handler. Registered once per process.
    """
    global _QUIET_FORKS
    if _QUIET_FORKS:
        return
    import contextlib
    import os
    import signal

    def child() -> None:
        with contextlib.suppress(ValueError):  # not the child's main thread: leave it
            signal.signal(signal.SIGTERM, signal.SIG_DFL)

    os.register_at_fork(after_in_child=child)
    _QUIET_FORKS = True


def features(images: np.ndarray, masks: np.ndarray | None = None, workers: int = 1) -> np.ndarray:
    """frd-score v1 radiomics features of each 2D image: ``(n, F)`` float64.

    Args:
        images: ``(N, H, W)`` slices (any real dtype; pyradiomics normalises each image).
        masks: ``(N, H, W)`` regions (pixels > 0) or None for the whole image (frd-score then
            leaves out one corner pixel, a pyradiomics workaround). Images whose mask has at most
            one pixel are skipped by frd-score, so ``n`` may be smaller than ``N``.
        workers: frd-score's feature-extraction processes.

    Raises:
        ValueError: not ``(N, H, W)``, masks of another shape, or no image could be used.
        ImportError: see :func:`require`.
    """
    require()
    quiet_forked_children()
    import radiomics
    from frd_score import frd as F

    radiomics.setVerbosity(60)  # pyradiomics logs every feature class of every image otherwise
    logging.getLogger("radiomics").setLevel(logging.ERROR)

    imgs = np.asarray(images)
    if imgs.ndim != 3 or len(imgs) == 0:
        raise ValueError(f"FRD features: expected images (N, H, W), got shape {imgs.shape}")
    if masks is not None and np.shape(masks) != imgs.shape:
        raise ValueError(f"FRD features: masks of shape {np.shape(masks)} for {imgs.shape}")
    with tempfile.TemporaryDirectory(prefix="dcesynth-frd-") as tmp:
        files, mask_files = [], []
        for i, im in enumerate(imgs):
            files.append(Path(tmp) / f"img_{i:05d}.mha")
            _write(im.astype(np.float32), files[-1])
            if masks is not None:
                mask_files.append(Path(tmp) / f"mask_{i:05d}.mha")
                _write((np.asarray(masks[i]) > 0).astype(np.uint8), mask_files[-1])
        extractor = F.get_feature_extractor(frd_version="v1", image_dim=2)
        try:
            with _single_threaded_itk():
                feats, _, _ = F.compute_features(
                    [str(f) for f in files],
                    extractor,
                    masks=[str(f) for f in mask_files] if masks is not None else None,
                    num_workers=max(1, workers),
                    frd_version="v1",
                )
        except RuntimeError as e:  # frd-score: "No features could be extracted from any image."
            raise ValueError(f"FRD features: {e}") from e
    return np.asarray(feats, dtype=np.float64)


@contextlib.contextmanager
def _single_threaded_itk():
    """SimpleITK with one thread while pyradiomics extracts features, then as it was.

    Why: with ITK's default threads (2 here) the same image gave features differing in the
    last float32 bit from run to run, and FRD's z-scoring (no guard for a near-zero std, as
    frd-score) blew that up: the FRD of 8 slices against themselves came out 0.11–0.33 instead
    of −inf, depending on the run (measured; 6 of 6 runs bit-identical with one thread). The
    images are 2D, so one thread costs little. The environment variable reaches frd-score's
    worker processes however they are started.
    """
    import SimpleITK as sitk

    before = sitk.ProcessObject.GetGlobalDefaultNumberOfThreads()
    env = os.environ.get("ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS")
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(1)
    os.environ["ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS"] = "1"
    try:
        yield
    finally:
        sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(before)
        if env is None:
            os.environ.pop("ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS", None)
        else:
            os.environ["ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS"] = env


def frd_from_features(real: np.ndarray, fake: np.ndarray) -> float:
    """FRD v1 = log(d_F²) of two feature sets, as ``frd_score.compute_frd`` post-processes them:
    images with a NaN feature dropped, float32, z-scored to the real set's statistics (no guard
    for a zero std), columns with NaN/inf in either set dropped, Fréchet distance of the means
    and covariances; −inf when d_F² ≤ 0 (identical sets).

    Args:
        real: ``(n, F)`` features of the reference set (frd-score's first set).
        fake: ``(m, F)`` features of the compared set.

    Raises:
        ValueError: different feature counts, or fewer than 2 usable images in a set.
    """
    from frd_score import frd as F

    sets = [np.asarray(real, np.float64), np.asarray(fake, np.float64)]
    if sets[0].ndim != 2 or sets[1].ndim != 2 or sets[0].shape[1] != sets[1].shape[1]:
        raise ValueError(f"FRD: feature sets of shapes {sets[0].shape} and {sets[1].shape}")
    sets = [s[~np.isnan(s).any(axis=1)].astype(np.float32) for s in sets]
    if min(len(s) for s in sets) < 2:
        raise ValueError(
            f"FRD needs at least 2 usable images per set, got {[len(s) for s in sets]}"
        )
    norm = [
        F.z_score_normalize(
            s, 0.0, 1.0, replace_nan=False, base_distribution=sets[0], handle_std_zero=False
        )
        for s in sets
    ]
    bad = np.zeros(norm[0].shape[1], dtype=bool)
    for n in norm:
        bad |= ~np.isfinite(n).all(axis=0)
    norm = [n[:, ~bad] for n in norm]
    if norm[0].shape[1] == 0:
        raise ValueError("FRD: no feature column is finite in both sets")
    mu = [np.mean(n, axis=0) for n in norm]
    sigma = [np.cov(n, rowvar=False) for n in norm]
    d2 = float(F.calculate_frechet_distance(mu[0], sigma[0], mu[1], sigma[1]))
    return math.log(d2) if d2 > 0 else -math.inf


def subset(n: int, limit: int, seed: int) -> np.ndarray:
    """Sorted indices of at most ``limit`` of ``n`` items, seeded (the same for every call)."""
    if n <= limit:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=limit, replace=False))


def frd(
    real: np.ndarray,
    fake: np.ndarray,
    masks: np.ndarray | None = None,
    workers: int = 1,
    real_features: np.ndarray | None = None,
) -> float:
    """FRD v1 of two sets of 2D images (see the module docstring).

    Args:
        real: ``(N, H, W)`` reference images.
        fake: ``(M, H, W)`` compared images.
        masks: ``(N, H, W)`` regions used for both sets (needs ``M == N``), or None.
        workers: feature-extraction processes.
        real_features: ``real``'s features from :func:`features`, to skip their extraction.
    """
    fr = features(real, masks, workers) if real_features is None else real_features
    return frd_from_features(fr, features(fake, masks, workers))
