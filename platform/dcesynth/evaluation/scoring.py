"""Score generated slices against real ones: the whole metric suite on one set of pairs.

Used by checkpoint selection (validation split) and by the evaluation report (test split):
``Scorer`` builds the pretrained networks once (failing up front when their weights are
missing), caches the features of the real images, and returns every metric as mean ± std.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dcesynth.evaluation.config import NEEDS_WEIGHTS, EvalConfig
from dcesynth.evaluation.frd import FRD_METRICS
from dcesynth.evaluation.metrics import PAIRED, WINDOW, paired_metrics, summarise

log = logging.getLogger(__name__)


def pool_phases(a: np.ndarray) -> np.ndarray:
    """(N, P, S, S) → (N·P, S, S), phase-major: a run's phases scored as one set of pairs."""
    return np.ascontiguousarray(np.swapaxes(a, 0, 1).reshape(-1, *a.shape[2:]))


def widen(lo: int, hi: int, extent: int, min_px: int) -> tuple[int, int]:
    """The inclusive range ``[lo, hi]`` widened to ``min_px`` pixels, inside ``[0, extent)``.

    SSIM is a windowed statistic: inside a box narrower than its 11 × 11 window the map mostly
    measures the window's surroundings anyway, so a tumour box is scored over at least one
    window. Widening is symmetric about the box's centre (an odd surplus pixel goes to the high
    side), then the range is shifted back inside the slice, keeping its size; a slice shorter
    than ``min_px`` gives its whole extent. Ranges already ``min_px`` or wider are unchanged.

    Args:
        lo, hi: the inclusive range (a box's rows or columns).
        extent: the slice's size along that axis.
        min_px: the smallest size of the result.
    """
    size = min(min_px, extent)
    surplus = size - (hi - lo + 1)
    if surplus <= 0:
        return lo, hi
    lo -= surplus // 2
    lo = min(max(lo, 0), extent - size)  # shifted inside the slice, size kept
    return lo, lo + size - 1


def box_description(min_px: int) -> str:
    """A report's line on the tumour box its metrics used, for a ``box_min_px`` of ``min_px``."""
    if min_px <= 1:
        return "tumour box: the annotation box, as annotated"
    window = " (one SSIM window)" if min_px == WINDOW else ""
    return (
        f"tumour box: the annotation box widened to at least {min_px} px{window} per axis, "
        "about its centre and kept inside the slice"
    )


@dataclass
class Pairs:
    """Slices of one split: uint8 images at the model's size, and where they come from."""

    pre: np.ndarray  # (N, S, S)
    post: np.ndarray  # (N, P, S, S), P = the dataset's stored post phases
    mask: np.ndarray  # (N, S, S)
    box: list  # per slice: [y0, y1, x0, x1] inclusive, or None
    case_id: np.ndarray  # (N,) object
    slice_index: np.ndarray  # (N,)
    phases: list[int]  # post phase numbers of ``post``'s channels

    def __len__(self) -> int:
        return len(self.pre)

    def box_region(self, min_px: int = 1) -> np.ndarray:
        """(N, S, S) bool: the slice's tumour box (all False on slices without one).

        Args:
            min_px: a box narrower than this along an axis is widened along it to this size
                (at most the slice), see :func:`widen`; 1 leaves every box as annotated.

        Raises:
            ValueError: for ``min_px`` < 1.
        """
        if min_px < 1:
            raise ValueError(f"box min_px must be >= 1 (1: boxes as annotated), got {min_px}")
        r = np.zeros(self.pre.shape, bool)
        for i, b in enumerate(self.box):
            if b is not None:
                y0, y1 = widen(b[0], b[1], r.shape[1], min_px)
                x0, x1 = widen(b[2], b[3], r.shape[2], min_px)
                r[i, y0 : y1 + 1, x0 : x1 + 1] = True
        return r

    def pooled(self, phases: list[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(real post, pre, case ids) of ``phases`` pooled into N·P pairs, phase-major."""
        idx = [self.phases.index(p) for p in phases]
        return (
            pool_phases(self.post[:, idx]),
            np.concatenate([self.pre] * len(idx)),
            np.concatenate([self.case_id] * len(idx)),
        )

    def take(self, idx: np.ndarray) -> Pairs:
        return Pairs(
            self.pre[idx],
            self.post[idx],
            self.mask[idx],
            [self.box[i] for i in idx],
            self.case_id[idx],
            self.slice_index[idx],
            self.phases,
        )


def read_pairs(
    dataset: Path,
    split: str,
    limit: int | None = None,
    seed: int = 0,
    tumour_only: bool = False,
) -> Pairs:
    """A split's slices from the prepared dataset (no Ray needed), at most ``limit`` of them.

    The subset is seeded and kept in (case, slice) order, so every checkpoint sees the same
    pairs. ``tumour_only``: only the slices flagged as holding tumour.

    Raises:
        ValueError: naming the split and the splits the dataset has.
    """
    from dcesynth.data.dataset import load_manifest, read_slices

    b, table = read_slices(dataset, split, limit, seed, tumour_only)
    stored = list(load_manifest(dataset)["phases"][1:])
    return Pairs(
        b["pre"].copy(),
        b["post"].copy(),
        b["mask"].copy(),
        table.column("box").to_pylist(),
        b["case_id"],
        b["slice_index"],
        stored,
    )


class Scorer:
    """The metric suite of an :class:`EvalConfig`, networks built once.

    Raises (at construction):
        WeightsError: a configured metric's weights are missing or corrupt, with where to put
            them and the hint to leave the metric out.
    """

    def __init__(self, cfg: EvalConfig) -> None:
        from dcesynth import weights as W
        from dcesynth.evaluation import features as Fe

        self.cfg = cfg
        self.device = cfg.torch_device()
        self.nets: dict = {}
        builders = {
            "lpips": lambda: Fe.lpips_from_registry(cfg.lpips_net, cfg.weights_dir),
            "fid_img": lambda: Fe.extractor(cfg.fid_img_network, cfg.weights_dir),
            "fid_rad": lambda: Fe.extractor(cfg.fid_rad_network, cfg.weights_dir),
        }
        for m in NEEDS_WEIGHTS:
            if m in cfg.metrics:
                try:
                    self.nets[m] = builders[m]().to(self.device)
                except W.WeightsError as e:
                    raise W.WeightsError(
                        f"metric {m}: {e}; or leave {m} out of `metrics` (the results then "
                        "say it was not computed)"
                    ) from None
        if any(m in cfg.metrics for m in FRD_METRICS):
            from dcesynth.evaluation.frd import require

            try:
                require()
            except ImportError as e:
                raise ValueError(str(e)) from None
        self._real_feats: dict[tuple, np.ndarray] = {}

    def _cached(self, key: tuple | None, compute: Callable[[], np.ndarray]) -> np.ndarray:
        """``compute()``, kept under ``key`` (the real images' features do not change)."""
        if key is None:
            return compute()
        if key not in self._real_feats:
            self._real_feats[key] = compute()
        return self._real_feats[key]

    def features(self, metric: str, images: np.ndarray, key: tuple | None = None) -> np.ndarray:
        """Features for FID; ``key`` caches them (the real images do not change)."""
        from dcesynth.evaluation.features import features

        return self._cached(
            None if key is None else (metric, *key),
            lambda: features(self.nets[metric], images, self.cfg.batch_size),
        )

    def frd(
        self,
        real: np.ndarray,
        fake: np.ndarray,
        masks: np.ndarray | None,
        key: tuple | None,
        fake_key: tuple | None = None,
    ) -> dict[str, float]:
        """FRD v1 of ``fake`` against ``real`` (masks: the region of both, or None) on at most
        ``cfg.frd_pairs`` pairs; ``key`` caches the real set's features, ``fake_key`` the fake
        set's when it is real data too (the pre-contrast baseline: the same images for every
        phase). NaN (with a warning) when fewer than 2 pairs or no feature could be compared."""
        from dcesynth.evaluation import frd as R

        idx = R.subset(len(real), self.cfg.frd_pairs, self.cfg.seed)
        nan = {"mean": float("nan"), "std": float("nan"), "n": len(idx)}
        if len(idx) < 2:
            log.warning("FRD needs at least 2 slices, got %d: not computed", len(idx))
            return nan
        m = None if masks is None else np.asarray(masks)[idx]
        w = self.cfg.frd_workers
        try:
            fr = self._cached(
                None if key is None else ("frd", *key, masks is None),
                lambda: R.features(np.asarray(real)[idx], m, w),
            )
            ff = self._cached(
                None if fake_key is None else ("frd", *fake_key, masks is None),
                lambda: R.features(np.asarray(fake)[idx], m, w),
            )
            value = R.frd_from_features(fr, ff)
        except ValueError as e:
            log.warning("FRD not computed: %s", e)
            return nan
        return {"mean": value, "std": float("nan"), "n": len(idx)}

    def score(
        self,
        real: np.ndarray,
        fake: np.ndarray,
        region: np.ndarray | None = None,
        real_key: tuple | None = None,
        case_ids: np.ndarray | None = None,
        box: np.ndarray | None = None,
        skip: Collection[str] = (),
        fake_key: tuple | None = None,
    ) -> dict[str, dict[str, float]]:
        """Every configured metric of (N, S, S) real vs fake on [0, 255]: {metric: {mean, std, n}}.

        Args:
            real, fake: the images (uint8 or float; compared in floating point).
            region: restrict paired metrics to these pixels (tumour box or mask); FID and the
                whole-slice ``frd`` are then not computed (they compare whole-image
                distributions), ``frd_box`` uses ``region`` as its mask.
            real_key: cache key of ``real``'s features (FID, FRD).
            case_ids: with FID, also the by-patient split FID of ``real`` (``fid_*_split``).
            box: without ``region``: (N, S, S) tumour boxes; ``frd_box`` is then computed on the
                slices that have one, inside it.
            skip: configured metrics to leave out of this call (e.g. FRD where SAMe does not
                use it: each call extracts features of every fake slice).
            fake_key: cache key of ``fake``'s features when ``fake`` is real data that
                recurs (the pre-contrast baseline of every phase); None: not cached.
        """
        from dcesynth.evaluation.features import lpips_distance
        from dcesynth.evaluation.fid import by_patient_split_fid, fid

        names = tuple(m for m in PAIRED if m in self.cfg.metrics)
        vals = paired_metrics(real, fake, region, names=names, device=self.device)
        if "lpips" in self.nets:
            vals["lpips"] = lpips_distance(self.nets["lpips"], real, fake, region)
        out = summarise(vals)
        if region is None:
            for m in ("fid_img", "fid_rad"):
                if m not in self.nets:
                    continue
                fr = self.features(m, real, real_key)
                ff = self.features(m, np.asarray(fake), fake_key)
                out[m] = {"mean": fid(fr, ff), "std": float("nan"), "n": len(real)}
                if case_ids is not None and len(set(case_ids.tolist())) >= 2:
                    split = by_patient_split_fid(fr, case_ids, self.cfg.seed)
                    out[f"{m}_split"] = {"mean": split, "std": float("nan"), "n": len(real)}
        wanted = [m for m in FRD_METRICS if m in self.cfg.metrics and m not in skip]
        box_key = None if real_key is None else (*real_key, "box")
        fake_box = None if fake_key is None else (*fake_key, "box")
        if region is None and "frd" in wanted:
            out["frd"] = self.frd(real, fake, None, real_key, fake_key)
        if region is None and "frd_box" in wanted and box is not None:
            rows = np.flatnonzero(np.asarray(box).reshape(len(box), -1).any(1))
            r, f = np.asarray(real)[rows], np.asarray(fake)[rows]
            out["frd_box"] = self.frd(r, f, np.asarray(box)[rows], box_key, fake_box)
        elif region is not None and "frd_box" in wanted:
            out["frd_box"] = self.frd(real, fake, region, box_key, fake_box)
        return out


def flat(summary: dict[str, dict[str, float]]) -> dict[str, float]:
    """{metric: mean} of a summary."""
    return {k: v["mean"] for k, v in summary.items()}
