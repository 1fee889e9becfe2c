"""Calibration against the study's real-data baselines: CNR, the ratios and their verdict."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from dcesynth.data.phantom.anatomy import Tissue, lesion_label
from dcesynth.segmentation import calibrate as C


def _volume(contrast_pre: float, contrast_post: float, sigma: float) -> tuple:
    """A 2-phase cube: FGT background 100, a 4×6×6 lesion, a necrotic voxel inside it."""
    labels = np.full((8, 16, 16), Tissue.FGT, np.uint8)
    labels[:, :, :3] = Tissue.FAT  # parenchyma far from the lesion: outside any ring
    labels[2:6, 5:11, 5:11] = lesion_label(0)
    labels[3, 7, 7] = lesion_label(0, necrotic=True)
    images = np.full((2, *labels.shape), 100.0, np.float32)
    lesion = labels == lesion_label(0)
    images[0][lesion] += contrast_pre
    images[1][lesion] += contrast_post
    images[:, 3, 7, 7] = 0.0  # a dark core must not count
    gt = {
        "case_id": "X",
        "noise_sigma": sigma,
        "lesions": [{"index": 0, "diameter_mm": 10.0, "shape": "oval", "curve_type": "III"}],
    }
    return images, labels, gt


@pytest.mark.parametrize(("pre", "post", "sigma"), [(5.0, 60.0, 2.5), (-8.0, 30.0, 4.0)])
def test_lesion_cnr_known_answer(pre: float, post: float, sigma: float) -> None:
    """CNR is (lesion − ring)/σ per phase; necrosis and other tissue are left out; the width
    across is the equivalent diameter of the largest axial section (6×6 px → 6.77)."""
    images, labels, gt = _volume(pre, post, sigma)
    (row,) = C.lesion_cnr(images, labels, gt)
    assert row["cnr_pre"] == pytest.approx(pre / sigma)
    assert row["cnr_post"] == [pytest.approx(post / sigma)]
    assert row["across_px"] == pytest.approx(2 * math.sqrt(36 / math.pi))


def test_lesion_cnr_refuses_a_bad_noise_sigma() -> None:
    images, labels, gt = _volume(5.0, 50.0, 1.0)
    with pytest.raises(ValueError, match="noise_sigma"):
        C.lesion_cnr(images, labels, {**gt, "noise_sigma": 0.0})


def _cells(pre: float | None, post: float | None, cross: float | None) -> list[dict]:
    return [
        {"scenario": 1, "set": "A", "mean": pre},
        {"scenario": 3, "set": "D", "mean": post},
        {"scenario": 4, "set": "D", "mean": cross},
    ]


def test_the_study_itself_is_within_tolerance() -> None:
    """The study's own Dice give exactly its ratios (0.72, 0.21): within, miss 0."""
    r = C.ratios(_cells(0.569, 0.790, 0.164))
    assert r["pre_over_post"] == pytest.approx(0.7203, abs=1e-4)
    assert r["cross_over_post"] == pytest.approx(0.2076, abs=1e-4)
    assert C.within(r) and C.miss(r) == pytest.approx(0.0)


@pytest.mark.parametrize(
    ("cells", "ok"),
    [
        ((0.50, 0.80, 0.20), True),  # 0.625 and 0.25: both within 0.15
        ((0.0, 0.63, 0.0), False),  # today's phantom: nothing before contrast
        ((0.60, 0.62, 0.58), False),  # lesions look the same before and after
        ((0.5, None, 0.1), False),  # a failed cell is never within
        ((0.5, 0.0, 0.1), False),  # no post Dice: no ratio
    ],
)
def test_within_and_miss(cells: tuple, ok: bool) -> None:
    r = C.ratios(_cells(*cells))
    assert C.within(r) is ok
    assert (C.miss(r) <= C.TOLERANCE) is ok


def test_write_reports_every_candidate_and_the_best(tmp_path) -> None:
    base = {"ssim": 0.9, "ms_ssim": 0.95, "psnr": 30.0}
    cnr = {"lesions": 3, "cnr_pre_median": 1.0, "cnr_post1_median": 9.0}
    results = [
        {"tumour_pd": pd, "cnr": cnr, "baseline": base, "ratios": C.ratios(_cells(*c))}
        for pd, c in ((1.0, (0.1, 0.7, 0.05)), (1.3, (0.5, 0.7, 0.2)))
    ]
    md = C.write(tmp_path, results, "2d, 5 folds").read_text()
    data = json.loads((tmp_path / "calibration.json").read_text())
    assert data["best_tumour_pd"] == 1.3 and data["best_within_tolerance"] is True
    assert md.count("| 1 |") == 1 and md.count("| 1.3 |") == 1
    assert "0.705" in md and "32.42" in md  # the study's real-data row beside ours


# --- the CPU budget's batch cap, written into nnU-Net's plans --------------------------------


@pytest.mark.parametrize(("planned", "cap", "expect"), [(29, 12, 12), (8, 12, 8), (12, 12, 12)])
def test_cap_batch_size_lowers_only_larger_batches(tmp_path, planned, cap, expect) -> None:
    from dcesynth.segmentation.backend import PLANS, SetSpec, cap_batch_size
    from dcesynth.segmentation.config import SegmentConfig

    spec = SetSpec("A", 501, str(tmp_path), {}, [], SegmentConfig())
    folder = spec.folder("preprocessed")
    folder.mkdir(parents=True)
    plans = {"configurations": {"2d": {"batch_size": planned, "patch_size": [160, 80]}}}
    (folder / f"{PLANS}.json").write_text(json.dumps(plans))
    cap_batch_size(spec, "2d", cap)
    got = json.loads((folder / f"{PLANS}.json").read_text())["configurations"]["2d"]
    assert got == {"batch_size": expect, "patch_size": [160, 80]}
    with pytest.raises(ValueError, match="3d_fullres"):
        cap_batch_size(spec, "3d_fullres", cap)


def test_the_batch_cap_is_part_of_a_plan_fingerprint(tmp_path) -> None:
    """A changed cap means planning again, not reusing a plan made with another batch."""
    from dcesynth.segmentation.backend import SetSpec
    from dcesynth.segmentation.config import SegmentConfig

    a = SetSpec("A", 501, str(tmp_path), {}, [], SegmentConfig())
    b = SetSpec("A", 501, str(tmp_path), {}, [], SegmentConfig(max_batch_size=12))
    assert a.fingerprint() != b.fingerprint()


@pytest.mark.parametrize(
    ("planned", "base", "expect"),
    [
        ([32, 64, 128, 256, 512], 16, [16, 32, 64, 128, 256]),
        ([32, 64, 128, 256, 320, 320], 16, [16, 32, 64, 128, 160, 160]),  # 3d: capped at 320
        ([32, 64, 128], 32, [32, 64, 128]),
    ],
)
def test_scale_unet_width_scales_every_stage(tmp_path, planned, base, expect) -> None:
    from dcesynth.segmentation.backend import PLANS, SetSpec, scale_unet_width
    from dcesynth.segmentation.config import SegmentConfig

    spec = SetSpec("A", 501, str(tmp_path), {}, [], SegmentConfig())
    folder = spec.folder("preprocessed")
    folder.mkdir(parents=True)
    arch = {"features_per_stage": planned, "n_stages": len(planned)}
    plans = {"configurations": {"2d": {"batch_size": 8, "architecture": {"arch_kwargs": arch}}}}
    (folder / f"{PLANS}.json").write_text(json.dumps(plans))
    assert scale_unet_width(spec, "2d", base) == expect
    got = json.loads((folder / f"{PLANS}.json").read_text())["configurations"]["2d"]
    assert got["architecture"]["arch_kwargs"] == {
        "features_per_stage": expect,
        "n_stages": len(planned),
    }
    assert got["batch_size"] == 8
    with pytest.raises(ValueError, match="3d_fullres"):
        scale_unet_width(spec, "3d_fullres", base)


def test_the_unet_width_is_part_of_a_plan_fingerprint(tmp_path) -> None:
    from dcesynth.segmentation.backend import SetSpec
    from dcesynth.segmentation.config import SegmentConfig

    a = SetSpec("A", 501, str(tmp_path), {}, [], SegmentConfig())
    b = SetSpec("A", 501, str(tmp_path), {}, [], SegmentConfig(unet_base_features=16))
    assert a.fingerprint() != b.fingerprint()


@pytest.mark.parametrize("bad", [0, 3, 65])
def test_unet_base_features_out_of_range_is_refused(bad: int) -> None:
    from pydantic import ValidationError

    from dcesynth.segmentation.config import SegmentConfig

    with pytest.raises(ValidationError, match="unet_base_features"):
        SegmentConfig(unet_base_features=bad)


@pytest.mark.parametrize(("share", "expect"), [(None, 0.33), (0.9, 0.9)])
def test_trainer_gets_the_budget_settings(monkeypatch, tmp_path, share, expect) -> None:
    """Epochs, iterations and foreground oversampling are set on the plain trainer instance
    (None keeps nnU-Net's own 0.33)."""
    import types

    import nnunetv2.run.run_training as rt

    from dcesynth.segmentation.backend import NnUNetBackend, SetSpec
    from dcesynth.segmentation.config import SegmentConfig

    made = types.SimpleNamespace(oversample_foreground_percent=0.33)
    monkeypatch.setattr(rt, "get_trainer_from_args", lambda *a, **k: made)
    cfg = SegmentConfig(epochs=7, iterations_per_epoch=5, foreground_oversampling=share)
    spec = SetSpec("D", 501, str(tmp_path), {}, [], cfg)
    t = NnUNetBackend()._trainer(spec, 0, "cpu", False)
    assert (t.num_epochs, t.num_iterations_per_epoch) == (7, 5)
    assert t.oversample_foreground_percent == expect


# --- the baseline row's diagnostic: post rescaled onto pre -----------------------------------


@pytest.mark.parametrize("factor", [0.5, 0.8, 2.0])
def test_rescale_onto_undoes_a_per_slice_scale(factor: float) -> None:
    rng = np.random.default_rng(0)
    pre = rng.uniform(10, 100, size=(3, 16, 16))
    post = pre * factor
    np.testing.assert_allclose(C.rescale_onto(post, pre), pre, rtol=1e-12)


def test_rescale_onto_keeps_integer_dtype_and_range() -> None:
    pre = np.full((2, 8, 8), 200, np.uint8)
    post = np.full((2, 8, 8), 50, np.uint8)
    out = C.rescale_onto(post, pre)
    assert out.dtype == np.uint8 and int(out.max()) == 200
    zero = C.rescale_onto(np.zeros_like(post), pre)  # an empty slice stays empty, no NaN
    assert int(zero.max()) == 0


def test_write_shows_the_rescaled_row_only_when_measured(tmp_path) -> None:
    base = {"ssim": 0.5, "ms_ssim": 0.7, "psnr": 18.0}
    cnr = {"lesions": 3, "cnr_pre_median": 1.0, "cnr_post1_median": 9.0}
    r = {"tumour_pd": 1.0, "cnr": cnr, "baseline": base, "ratios": C.ratios(_cells(0, 0.5, 0))}
    assert "rescaled onto pre |" not in C.markdown([r], "b")
    md = C.markdown([{**r, "baseline_rescaled": {**base, "ssim": 0.6}}], "b")
    assert "| phantom, tumour_pd 1, post rescaled onto pre | 0.600 |" in md


def test_merge_keeps_earlier_candidates_of_the_same_budget(tmp_path) -> None:
    base = {"ssim": 0.5, "ms_ssim": 0.7, "psnr": 18.0}
    cnr = {"lesions": 3, "cnr_pre_median": 1.0, "cnr_post1_median": 9.0}

    def cand(pd: float, pre: float) -> dict:
        return {
            "tumour_pd": pd,
            "cnr": cnr,
            "baseline": base,
            "ratios": C.ratios(_cells(pre, 0.8, 0.1)),
        }

    C.write(tmp_path, [cand(1.6, 0.7), cand(1.3, 0.0)], "budget A")
    merged = C.merge(tmp_path, [cand(0.7, 0.1), cand(1.3, 0.4)], "budget A")
    assert [r["tumour_pd"] for r in merged] == [0.7, 1.3, 1.6]
    assert merged[1]["ratios"]["dice_pre_pre"] == 0.4  # measured again: the new one wins
    assert [r["tumour_pd"] for r in C.merge(tmp_path, [cand(0.7, 0.1)], "budget B")] == [0.7]
    (tmp_path / "calibration.json").write_text("{not json")
    assert [r["tumour_pd"] for r in C.merge(tmp_path, [cand(0.7, 0.1)], "budget A")] == [0.7]
