"""Paired metrics (dcesynth.evaluation.metrics) against scikit-image, pytorch-msssim and
hand-computed answers: SSIM, MS-SSIM, PSNR/MAE/MSE, regions, batching, summaries."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from pytorch_msssim import ms_ssim as ref_ms_ssim
from skimage import data, filters
from skimage.metrics import structural_similarity

from dcesynth.evaluation import metrics as M

R = 255.0


def sk_ssim(a: np.ndarray, b: np.ndarray, **kw) -> float:
    """scikit-image's SSIM with the settings the module documents as equal to ours."""
    return structural_similarity(
        a, b, data_range=R, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, **kw
    )


def ref_ms(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """pytorch-msssim's per-pair MS-SSIM of (N, H, W) arrays (it wants (N, 1, H, W) float)."""
    x = torch.as_tensor(a[:, None], dtype=torch.float32)
    y = torch.as_tensor(b[:, None], dtype=torch.float32)
    return ref_ms_ssim(x, y, data_range=R, size_average=False).numpy()


def scales_by_definition(h: int, w: int) -> int:
    """The largest m ≤ 5 with min(h, w) // 2**(m - 1) ≥ 11."""
    return max(m for m in range(1, 6) if min(h, w) // 2 ** (m - 1) >= 11)


def pool2(a: np.ndarray) -> np.ndarray:
    """2 × 2 average pooling (floor), as between MS-SSIM scales."""
    h, w = a.shape[0] // 2, a.shape[1] // 2
    return a[: 2 * h, : 2 * w].reshape(h, 2, w, 2).mean((1, 3))


def ref_ms_small(a: np.ndarray, b: np.ndarray) -> float:
    """float64 MS-SSIM of one pair built from scikit-image, for any number of scales.

    SSIM at the coarsest scale; contrast-structure (CS) at the finer ones, taken as SSIM with
    K1 = 1e6 — a huge C1 makes the luminance factor 1 to ~1e-12. The first M published weights,
    renormalised to sum to 1 when M < 5; negative terms clipped to 0.
    """
    m = scales_by_definition(*a.shape)
    w = np.array(M.MS_SSIM_WEIGHTS[:m])
    if m < 5:
        w = w / w.sum()
    terms = []
    for j in range(m):
        t = sk_ssim(a, b) if j == m - 1 else sk_ssim(a, b, K1=1e6)
        terms.append(max(t, 0.0))
        a, b = pool2(a), pool2(b)
    return float(np.prod(np.array(terms) ** w))


@pytest.fixture(scope="module")
def camera_pair() -> tuple[np.ndarray, np.ndarray]:
    """skimage's camera (512²) and a blurred, noisy copy, both float64 on [0, 255]."""
    cam = data.camera().astype(np.float64)
    rng = np.random.default_rng(0)
    deg = filters.gaussian(cam, sigma=1.0, preserve_range=True) + rng.normal(0, 10, cam.shape)
    return cam, np.clip(deg, 0, 255)


def random_pair(shape: tuple[int, ...], seed: int = 0, noise: float = 40.0):
    """Uniform images and a noisy copy (correlated, so SSIM is well away from 0)."""
    rng = np.random.default_rng(seed)
    a = rng.uniform(0, 255, shape)
    return a, np.clip(a + rng.normal(0, noise, shape), 0, 255)


# --- SSIM -------------------------------------------------------------------------------


def test_ssim_natural_image_matches_skimage(camera_pair) -> None:
    a, b = camera_pair
    ours = M.ssim(a[None], b[None]).item()
    assert 0.3 < ours < 0.9  # a real degradation, not a trivial 0 or 1
    assert ours == pytest.approx(sk_ssim(a, b), abs=1e-4)


@pytest.mark.parametrize("shape", [(11, 11), (11, 40), (32, 32), (64, 64), (96, 130), (130, 96)])
@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.uint8])
def test_ssim_random_matches_skimage(shape: tuple[int, int], dtype: type) -> None:
    a, b = random_pair(shape, seed=sum(shape))
    a, b = a.astype(dtype), b.astype(dtype)
    ours = M.ssim(a[None], b[None]).item()
    assert ours == pytest.approx(sk_ssim(a, b), abs=1e-4)


def test_ssim_independent_uniform_images_matches_skimage() -> None:
    rng = np.random.default_rng(3)
    a, b = rng.uniform(0, 255, (2, 64, 64))
    assert M.ssim(a[None], b[None]).item() == pytest.approx(sk_ssim(a, b), abs=1e-4)


@pytest.mark.parametrize("shape", [(5, 32, 32), (3, 96, 130)])
def test_ssim_batched_equals_one_at_a_time(shape: tuple[int, int, int]) -> None:
    a, b = random_pair(shape, seed=1)
    batched = M.ssim(a, b).numpy()
    single = np.array([M.ssim(a[i : i + 1], b[i : i + 1]).item() for i in range(len(a))])
    assert batched.shape == (shape[0],)
    np.testing.assert_allclose(batched, single, atol=1e-6)
    np.testing.assert_allclose(
        batched, [sk_ssim(x, y) for x, y in zip(a, b, strict=True)], atol=1e-4
    )


@pytest.mark.parametrize("size", [11, 32, 64])
def test_ssim_identical_is_one(size: int) -> None:
    a, _ = random_pair((2, size, size))
    np.testing.assert_allclose(M.ssim(a, a).numpy(), 1.0, atol=1e-6)


@pytest.mark.parametrize(
    ("real", "fake", "match"),
    [
        (np.zeros((1, 10, 10)), np.zeros((1, 10, 10)), "at least 11 px"),
        (np.zeros((1, 10, 64)), np.zeros((1, 10, 64)), "at least 11 px"),
        (np.zeros((1, 32, 32)), np.zeros((1, 32, 33)), "differ in shape"),
        (np.zeros((32, 32)), np.zeros((32, 32)), r"\(N, H, W\)"),
        (np.zeros((1, 1, 32, 32)), np.zeros((1, 1, 32, 32)), r"\(N, H, W\)"),
    ],
)
def test_ssim_invalid_inputs(real: np.ndarray, fake: np.ndarray, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        M.ssim(real, fake)


# --- MS-SSIM ----------------------------------------------------------------------------


@pytest.mark.parametrize("crop", [512, 256])
def test_ms_ssim_natural_image_matches_pytorch_msssim(camera_pair, crop: int) -> None:
    a, b = (x[None, :crop, :crop] for x in camera_pair)
    ours = M.ms_ssim(a, b).numpy()
    ref = ref_ms(a, b)
    assert 0.5 < ours[0] < 0.99
    np.testing.assert_allclose(ours, ref, atol=1e-4)


@pytest.mark.parametrize("shape", [(2, 176, 176), (2, 192, 256), (1, 256, 192), (1, 208, 176)])
@pytest.mark.parametrize("noise", [20.0, 1000.0])  # correlated, and ~independent images
def test_ms_ssim_random_matches_pytorch_msssim(shape: tuple[int, ...], noise: float) -> None:
    a, b = random_pair(shape, seed=shape[1], noise=noise)
    np.testing.assert_allclose(M.ms_ssim(a, b).numpy(), ref_ms(a, b), atol=1e-4)


@pytest.mark.parametrize("shape", [(176, 176), (64, 64), (96, 130), (32, 32), (48, 200)])
def test_ms_ssim_matches_skimage_built_reference(shape: tuple[int, int]) -> None:
    """Also covers fewer scales with renormalised weights, which pytorch-msssim refuses."""
    a, b = random_pair(shape, seed=7)
    assert M.ms_ssim(a[None], b[None]).item() == pytest.approx(ref_ms_small(a, b), abs=1e-4)


def test_skimage_built_reference_agrees_with_pytorch_msssim() -> None:
    """The reference of the test above is itself right where pytorch-msssim applies."""
    a, b = random_pair((192, 176), seed=8)
    assert ref_ms_small(a, b) == pytest.approx(ref_ms(a[None], b[None])[0], abs=1e-4)


@pytest.mark.parametrize(
    ("h", "w", "expected"),
    [
        (512, 512, 5),
        (176, 176, 5),
        (176, 4000, 5),
        (175, 175, 4),
        (88, 88, 4),
        (87, 87, 3),
        (64, 64, 3),
        (64, 512, 3),
        (512, 64, 3),
        (44, 44, 3),
        (43, 43, 2),
        (22, 22, 2),
        (21, 21, 1),
        (11, 11, 1),
    ],
)
def test_ms_ssim_scales(h: int, w: int, expected: int) -> None:
    assert scales_by_definition(h, w) == expected
    assert M.ms_ssim_scales(h, w) == expected


@pytest.mark.parametrize(("h", "w"), [(10, 10), (10, 512), (512, 10), (0, 0)])
def test_ms_ssim_scales_rejects_small_images(h: int, w: int) -> None:
    with pytest.raises(ValueError, match="at least 11 px"):
        M.ms_ssim_scales(h, w)


def test_ms_ssim_rejects_small_images() -> None:
    with pytest.raises(ValueError, match="at least 11 px"):
        M.ms_ssim(np.zeros((1, 10, 10)), np.zeros((1, 10, 10)))


@pytest.mark.parametrize("size", [11, 32, 64, 100, 176])
def test_ms_ssim_identical_is_one(size: int) -> None:
    a, _ = random_pair((2, size, size))
    np.testing.assert_allclose(M.ms_ssim(a, a).numpy(), 1.0, atol=1e-6)


# --- MAE, MSE, PSNR -----------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(1, 16, 16), (3, 11, 40)])
def test_known_pair_mae_mse_psnr(shape: tuple[int, ...]) -> None:
    x, y = np.zeros(shape), np.full(shape, 10.0)
    np.testing.assert_allclose(M.mae(x, y).numpy(), 10.0)
    np.testing.assert_allclose(M.mse(x, y).numpy(), 100.0)
    # PSNR = 10 log10(255² / 100) = 10 log10(650.25)
    np.testing.assert_allclose(M.psnr(x, y).numpy(), 28.130803608679, rtol=1e-6)
    np.testing.assert_allclose(M.psnr(x, y, data_range=1.0).numpy(), -20.0, rtol=1e-6)


def test_known_pair_mixed_differences() -> None:
    real = np.array([[[0.0, 0.0], [0.0, 0.0]]])
    fake = np.array([[[1.0, -3.0], [0.0, 2.0]]])
    assert M.mae(real, fake).item() == pytest.approx((1 + 3 + 0 + 2) / 4)
    assert M.mse(real, fake).item() == pytest.approx((1 + 9 + 0 + 4) / 4)


def test_psnr_identical_is_inf() -> None:
    a, _ = random_pair((2, 16, 16))
    assert np.all(np.isposinf(M.psnr(a, a).numpy()))


@pytest.mark.parametrize("kind", ["numpy", "torch"])
@pytest.mark.parametrize(("r", "f"), [(0, 255), (255, 0), (3, 250)])
def test_uint8_does_not_wrap(kind: str, r: int, f: int) -> None:
    real = np.full((1, 12, 12), r, np.uint8)
    fake = np.full((1, 12, 12), f, np.uint8)
    if kind == "torch":
        real, fake = torch.from_numpy(real), torch.from_numpy(fake)
    d = abs(r - f)
    assert M.mae(real, fake).item() == pytest.approx(d)  # 1 with wrapping for (0, 255)
    assert M.mse(real, fake).item() == pytest.approx(d * d)
    assert M.psnr(real, fake).item() == pytest.approx(10 * math.log10(255**2 / d**2), abs=1e-4)


# --- regions ------------------------------------------------------------------------------


def box(shape: tuple[int, ...], r0: int, r1: int, c0: int, c1: int) -> np.ndarray:
    reg = np.zeros(shape, bool)
    reg[:, r0:r1, c0:c1] = True
    return reg


@pytest.mark.parametrize(
    ("shape", "bounds"),
    [((2, 32, 32), (4, 20, 8, 30)), ((1, 40, 64), (0, 40, 0, 1)), ((3, 16, 16), (5, 6, 5, 6))],
)
def test_region_mae_mse_psnr_equal_numpy_over_box(
    shape: tuple[int, ...], bounds: tuple[int, int, int, int]
) -> None:
    a, b = random_pair(shape, seed=2)
    r0, r1, c0, c1 = bounds
    reg = box(shape, *bounds)
    d = (a - b)[:, r0:r1, c0:c1]
    exp_mse = (d**2).mean(axis=(1, 2))
    np.testing.assert_allclose(M.mae(a, b, reg).numpy(), np.abs(d).mean(axis=(1, 2)), rtol=1e-5)
    np.testing.assert_allclose(M.mse(a, b, reg).numpy(), exp_mse, rtol=1e-5)
    np.testing.assert_allclose(M.psnr(a, b, reg).numpy(), 10 * np.log10(R**2 / exp_mse), rtol=1e-5)


def test_region_differs_from_whole_image() -> None:
    """A guard that the region is actually used: only the box carries an error."""
    a = np.zeros((1, 32, 32))
    b = a.copy()
    b[:, 8:16, 8:16] = 10.0
    reg = box(a.shape, 8, 16, 8, 16)
    assert M.mae(a, b, reg).item() == pytest.approx(10.0)
    assert M.mae(a, b).item() == pytest.approx(10.0 * 64 / 1024)


@pytest.mark.parametrize("fn", [M.mae, M.mse, M.psnr, M.ssim])
def test_empty_region_gives_nan_only_for_that_pair(fn) -> None:
    a, b = random_pair((2, 32, 32))
    reg = box(a.shape, 4, 28, 4, 28)
    reg[1] = False
    out = fn(a, b, reg).numpy()
    assert np.isfinite(out[0])
    assert np.isnan(out[1])


def test_ssim_full_region_equals_no_region(camera_pair) -> None:
    a, b = (x[None, :128, :96] for x in camera_pair)
    full = np.ones(a.shape, bool)
    np.testing.assert_allclose(M.ssim(a, b, full).numpy(), M.ssim(a, b).numpy(), atol=1e-7)


def test_ssim_region_is_mean_of_skimage_map_over_region(camera_pair) -> None:
    a, b = (x[:128, :96] for x in camera_pair)
    reg = box((1, 128, 96), 2, 60, 30, 96)[0]  # crosses the 5-px border the map leaves out
    _, smap = sk_ssim(a, b, full=True)
    expected = smap[5:-5, 5:-5][reg[5:-5, 5:-5]].mean()
    assert M.ssim(a[None], b[None], reg[None]).item() == pytest.approx(expected, abs=1e-4)


def test_region_of_wrong_shape_is_rejected() -> None:
    a, b = random_pair((2, 16, 16))
    with pytest.raises(ValueError, match="region of shape"):
        M.mae(a, b, np.ones((2, 16, 15), bool))


# --- paired_metrics -----------------------------------------------------------------------


def test_paired_metrics_matches_single_functions() -> None:
    a, b = random_pair((3, 64, 64), seed=4)
    out = M.paired_metrics(a, b)
    assert list(out) == list(M.PAIRED)
    for name, fn in [("mae", M.mae), ("mse", M.mse), ("psnr", M.psnr), ("ssim", M.ssim)]:
        assert out[name].dtype == np.float64 and out[name].shape == (3,)
        np.testing.assert_allclose(out[name], fn(a, b).numpy(), rtol=1e-6)
    np.testing.assert_allclose(out["ms_ssim"], M.ms_ssim(a, b).numpy(), rtol=1e-6)


@pytest.mark.parametrize("use_region", [False, True])
def test_paired_metrics_batch_size_does_not_change_results(use_region: bool) -> None:
    a, b = random_pair((5, 48, 64), seed=5)
    reg = box(a.shape, 3, 40, 10, 60) if use_region else None
    one = M.paired_metrics(a, b, reg, batch=1)
    two = M.paired_metrics(a, b, reg, batch=2)
    many = M.paired_metrics(a, b, reg, batch=64)
    assert set(one) == set(many) == set(two)
    for k in many:
        assert many[k].shape == (5,)
        np.testing.assert_allclose(one[k], many[k], rtol=1e-6)
        np.testing.assert_allclose(two[k], many[k], rtol=1e-6)


def test_paired_metrics_with_region_leaves_out_ms_ssim() -> None:
    a, b = random_pair((2, 32, 32))
    out = M.paired_metrics(a, b, np.ones(a.shape, bool))
    assert list(out) == ["mae", "mse", "psnr", "ssim"]
    assert list(M.paired_metrics(a, b, names=("ms_ssim", "mae"))) == ["ms_ssim", "mae"]
    assert list(M.paired_metrics(a, b, np.ones(a.shape, bool), names=("ms_ssim",))) == []


def test_paired_metrics_data_range() -> None:
    x, y = np.zeros((1, 16, 16)), np.full((1, 16, 16), 0.1)
    out = M.paired_metrics(x, y, data_range=1.0, names=("psnr",))
    assert out["psnr"][0] == pytest.approx(20.0, rel=1e-5)  # 10 log10(1 / 0.01)


@pytest.mark.parametrize(
    ("real", "fake", "kw", "match"),
    [
        (np.zeros((2, 16, 16)), np.zeros((2, 16, 16)), {"names": ("mae", "lpips")}, "valid"),
        (np.zeros((2, 16, 16)), np.zeros((3, 16, 16)), {}, "2 real vs 3 fake"),
        (np.zeros((2, 16, 16)), np.zeros((2, 16, 17)), {}, "differ in shape"),
        (np.zeros((16, 16)), np.zeros((16, 16)), {}, r"\(N, H, W\)"),
        (np.zeros((2, 1, 16, 16)), np.zeros((2, 1, 16, 16)), {}, r"\(N, H, W\)"),
        (
            np.zeros((2, 16, 16)),
            np.zeros((2, 16, 16)),
            {"region": np.ones((2, 8, 8), bool)},
            "region of shape",
        ),
    ],
)
def test_paired_metrics_invalid_inputs(
    real: np.ndarray, fake: np.ndarray, kw: dict, match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        M.paired_metrics(real, fake, **kw)


def test_paired_metrics_unknown_name_lists_valid_ones() -> None:
    with pytest.raises(ValueError, match="lpips") as e:
        M.paired_metrics(np.zeros((1, 16, 16)), np.zeros((1, 16, 16)), names=("lpips",))
    assert all(repr(n) in str(e.value) for n in M.PAIRED)


# --- summarise, subtraction ---------------------------------------------------------------


def test_summarise_mean_population_std_n() -> None:
    out = M.summarise({"mae": np.array([1.0, 2.0, 3.0, 6.0]), "ssim": [0.5, 0.5]})
    assert out["mae"]["mean"] == pytest.approx(3.0)
    # population variance: (4 + 1 + 0 + 9) / 4 = 3.5
    assert out["mae"]["std"] == pytest.approx(math.sqrt(3.5))
    assert out["mae"]["n"] == 4
    assert out["ssim"] == {"mean": 0.5, "std": 0.0, "n": 2}


def test_summarise_leaves_out_nan() -> None:
    out = M.summarise({"mae": [1.0, math.nan, 3.0], "mse": [math.nan, math.nan]})
    assert out["mae"] == {"mean": 2.0, "std": 1.0, "n": 2}
    assert math.isnan(out["mse"]["mean"]) and math.isnan(out["mse"]["std"])
    assert out["mse"]["n"] == 0


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.uint8, np.int16])
def test_subtraction_clips_negatives_in_float32(dtype: type) -> None:
    post = np.array([[5, 1], [0, 200]], dtype)
    pre = np.array([[2, 4], [0, 10]], dtype)
    out = M.subtraction(post, pre)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, [[3, 0], [0, 190]])  # uint8 wrap would give 253 at [0,1]
