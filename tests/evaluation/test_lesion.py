"""Known answers for the lesion-vs-surroundings contrast (evaluation/lesion.py)."""

import numpy as np
import pytest

from dcesynth.evaluation.lesion import contrast_kept, lesion_contrasts


def _disc(n: int = 3, size: int = 32, r: int = 4) -> np.ndarray:
    yy, xx = np.mgrid[:size, :size]
    m = ((yy - 16) ** 2 + (xx - 16) ** 2 <= r * r).astype(np.uint8)
    return np.stack([m] * n)


def _image(mask: np.ndarray, lesion: float, tissue: float) -> np.ndarray:
    return np.where(mask > 0, lesion, tissue).astype(np.float32)


def test_contrast_is_lesion_mean_minus_ring_mean() -> None:
    # one lesion pixel; the default (cross) dilation by 1 px rings it with its 4 neighbours
    img = np.zeros((1, 5, 5), np.float32)
    mask = np.zeros((1, 5, 5), np.uint8)
    mask[0, 2, 2], img[0, 2, 2] = 1, 200.0
    for y, x in ((1, 2), (3, 2), (2, 1), (2, 3)):
        img[0, y, x] = 50.0
    img[0, 1, 1] = 255.0  # diagonal: outside a 1-px ring
    assert lesion_contrasts(img, mask, ring_px=1)[0] == pytest.approx(150.0)


def test_slices_without_lesion_are_nan() -> None:
    mask = _disc(2)
    mask[1] = 0
    c = lesion_contrasts(_image(mask, 200, 100), mask)
    assert c[0] == pytest.approx(100.0) and np.isnan(c[1])


@pytest.mark.parametrize("synthetic,expected", [(150.0, 0.5), (200.0, 1.0), (100.0, 0.0)])
def test_kept_is_the_share_of_the_real_contrast(synthetic: float, expected: float) -> None:
    mask = _disc()
    real = _image(mask, 200, 100)  # contrast 100
    pre = _image(mask, 110, 100)  # barely visible before contrast: kept 0.1
    out = contrast_kept(pre, real, _image(mask, synthetic, 100), mask)
    assert out["slices"] == 3
    assert out["synthetic_kept"] == pytest.approx(expected)
    assert out["pre_kept"] == pytest.approx(0.1) and out["real"] == pytest.approx(100.0)


def test_slices_whose_real_lesion_does_not_stand_out_are_left_out() -> None:
    mask = _disc(2)
    real = np.stack([_image(mask[0:1], 200, 100)[0], _image(mask[0:1], 102, 100)[0]])
    out = contrast_kept(real, real, real, mask, min_contrast=5.0)
    assert out["slices"] == 1 and out["synthetic_kept"] == pytest.approx(1.0)
    none = contrast_kept(real, real, real, mask, min_contrast=500.0)
    assert none["slices"] == 0 and none["synthetic_kept"] is None and none["real"] is None


@pytest.mark.parametrize(
    "images,mask,ring,match",
    [
        (np.zeros((2, 8, 8)), np.zeros((2, 8, 9)), 3, "equal"),
        (np.zeros((8, 8)), np.zeros((8, 8)), 3, "equal"),
        (np.zeros((2, 8, 8)), np.zeros((2, 8, 8)), 0, "ring_px"),
    ],
)
def test_invalid_input_is_named(images, mask, ring, match) -> None:
    with pytest.raises(ValueError, match=match):
        lesion_contrasts(images, mask, ring)


def test_box_by_case_averages_each_case_and_tests_over_cases() -> None:
    from dcesynth.evaluation.lesion import box_by_case

    rng = np.random.default_rng(0)
    real = rng.uniform(0, 255, (6, 16, 16))
    pre = np.clip(real + 40, 0, 255)  # the baseline is off by ~40 everywhere
    fake = real.copy()
    fake[4:] = np.clip(real[4:] + 80, 0, 255)  # case c: synthetic worse than the baseline
    ids = np.array(["a", "a", "b", "b", "c", "c"], dtype=object)
    region = np.ones(real.shape, bool)
    out = box_by_case(real, fake, pre, region, ids)
    mae = out["mae"]
    assert mae["cases"] == 3 and mae["synthetic_better"] == 2
    # per-case means averaged over cases: a, b exact (0), c about 80 (clipped at 255)
    per_c = np.abs(fake[4:] - real[4:]).mean()
    assert mae["synthetic"] == pytest.approx(per_c / 3)
    assert out["ssim"]["synthetic_better"] == 2 and out["psnr"]["synthetic_better"] == 2
    # 3 cases, signs +, +, −: the smallest two-sided exact p with n = 3 is 0.25; here larger
    assert 0.25 < mae["p"] <= 1.0


def test_box_by_case_all_cases_better_gives_the_exact_minimum_p() -> None:
    from dcesynth.evaluation.lesion import box_by_case

    real = np.full((4, 12, 12), 100.0)
    pre = real + np.array([10.0, 20.0, 30.0, 40.0])[:, None, None]  # distinct baseline errors
    ids = np.array(["a", "b", "c", "d"], dtype=object)
    out = box_by_case(real, real.copy(), pre, np.ones(real.shape, bool), ids)
    assert out["mae"]["synthetic_better"] == 4
    assert out["mae"]["p"] == pytest.approx(0.125)  # 2 / 2**4, exact


@pytest.mark.parametrize(
    "p,text", [(None, "–"), (float("nan"), "–"), (3e-6, "< 0.0001"), (0.41712, "0.4171")]
)
def test_p_values_are_printed_without_a_false_zero(p, text) -> None:
    from dcesynth.evaluation.tables import fmt_p

    assert fmt_p(p) == text
