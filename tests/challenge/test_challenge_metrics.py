"""MAMA-SYNTH metrics (dcesynth.challenge.metrics) on hand-made images and masks whose answers are
known: MSE, SSIM-map mean inside a mask, Dice/HD95 with the empty-mask convention, LPIPS's clip
and the metrics.json document."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy.ndimage import uniform_filter
from skimage.metrics import structural_similarity

from dcesynth import weights as W
from dcesynth.challenge import metrics as C

# --- MSE -------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(4, 4), (7, 13), (64, 64)])
def test_mse_of_a_constant_offset_is_its_square(shape):
    gt = np.random.default_rng(0).normal(size=shape)
    assert C.mse(gt + 2.0, gt) == pytest.approx(4.0, rel=1e-12)
    assert C.mse(gt, gt) == 0.0


def test_mse_of_one_differing_pixel():
    gt = np.zeros((4, 4))
    pred = gt.copy()
    pred[1, 2] = 3.0
    assert C.mse(pred, gt) == pytest.approx(9 / 16, rel=1e-12)


@pytest.mark.parametrize(
    ("pred", "gt"),
    [(np.zeros((4, 4)), np.zeros((4, 5))), (np.zeros((2, 4, 4)), np.zeros((2, 4, 4))),
     (np.zeros(4), np.zeros(4))],
)  # fmt: skip
def test_mse_refuses_wrong_shapes(pred, gt):
    with pytest.raises(ValueError, match="shape"):
        C.mse(pred, gt)


# --- SSIM inside the tumour -----------------------------------------------------------------


def hand_ssim_map(x: np.ndarray, y: np.ndarray, r: float = 10.0, w: int = 7) -> np.ndarray:
    """SSIM map from its definition: uniform w × w means (reflected border), sample covariances."""
    n = w * w
    mx, my = uniform_filter(x, w), uniform_filter(y, w)
    vx = (uniform_filter(x * x, w) - mx * mx) * n / (n - 1)
    vy = (uniform_filter(y * y, w) - my * my) * n / (n - 1)
    cxy = (uniform_filter(x * y, w) - mx * my) * n / (n - 1)
    c1, c2 = (0.01 * r) ** 2, (0.03 * r) ** 2
    return ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2))


def blob_mask(shape: tuple[int, int], centre: tuple[int, int], radius: float) -> np.ndarray:
    yy, xx = np.indices(shape)
    return (yy - centre[0]) ** 2 + (xx - centre[1]) ** 2 <= radius**2


def test_ssim_of_identical_images_is_one():
    x = np.random.default_rng(1).normal(size=(32, 32))
    assert C.ssim_tumour(x, x, blob_mask(x.shape, (16, 16), 5)) == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize(("a", "b"), [(1.0, 0.0), (2.0, -1.0), (0.5, 0.5)])
def test_ssim_of_constant_images_is_the_luminance_term(a, b):
    """Constant images have no variance: SSIM = (2ab + C1) / (a² + b² + C1), C1 = (0.01·10)²."""
    shape = (16, 16)
    mask = np.zeros(shape, bool)
    mask[0:3, 10:16] = True  # border pixels included
    got = C.ssim_tumour(np.full(shape, a), np.full(shape, b), mask)
    assert got == pytest.approx((2 * a * b + 0.01) / (a * a + b * b + 0.01), rel=1e-9)


@pytest.mark.parametrize("shape", [(20, 24), (64, 64)])
def test_ssim_tumour_is_the_mean_of_the_map_from_its_definition(shape):
    rng = np.random.default_rng(2)
    gt = rng.normal(size=shape) * 2
    pred = gt + rng.normal(size=shape)
    mask = blob_mask(shape, (2, shape[1] // 2), 6)  # touches the image border
    want = hand_ssim_map(pred, gt)[mask].mean()
    assert C.ssim_tumour(pred, gt, mask) == pytest.approx(want, rel=1e-6)


def test_ssim_over_the_interior_equals_skimages_mean_ssim():
    """scikit-image's scalar SSIM is its map's mean with a 3-pixel border cropped."""
    rng = np.random.default_rng(3)
    gt = rng.normal(size=(40, 30))
    pred = 0.7 * gt + 0.3 * rng.normal(size=gt.shape)
    interior = np.zeros(gt.shape, bool)
    interior[3:-3, 3:-3] = True
    want = structural_similarity(pred, gt, data_range=10.0)
    assert C.ssim_tumour(pred, gt, interior) == pytest.approx(want, rel=1e-9)


def test_ssim_is_skipped_without_a_mask_or_with_an_empty_one():
    x = np.ones((16, 16))
    assert C.ssim_tumour(x, x, None) is None
    assert C.ssim_tumour(x, x, np.zeros((16, 16))) is None


@pytest.mark.parametrize(
    ("pred", "mask"),
    [(np.zeros((16, 16)), np.ones((16, 15))), (np.zeros((5, 5)), np.ones((5, 5)))],
)
def test_ssim_refuses_bad_inputs(pred, mask):
    with pytest.raises(ValueError):
        C.ssim_tumour(pred, np.zeros_like(pred), mask)


# --- Dice and HD95 ----------------------------------------------------------------------------


def square(shape, top: int, left: int, side: int) -> np.ndarray:
    m = np.zeros(shape, bool)
    m[top : top + side, left : left + side] = True
    return m


@pytest.mark.parametrize("k", [1, 2, 3, 5])
@pytest.mark.parametrize("side", [8, 12])
def test_squares_offset_by_k_pixels(k, side):
    """Each square's far edge lies k px outside the other (about a quarter of the boundary), so
    the 95th percentile of the boundary distances is k; Dice = (side − k) / side."""
    ref = square((32, 32), 10, 6, side)
    pred = square((32, 32), 10, 6 + k, side)
    assert C.hausdorff_95(pred, ref) == pytest.approx(k)
    assert C.dice(pred, ref) == pytest.approx((side - k) / side)
    assert C.segmentation_scores(pred, ref) == pytest.approx({"dice": (side - k) / side,
                                                              "hausdorff_95": k})  # fmt: skip


def test_single_pixels_three_four_five():
    a, b = np.zeros((10, 10), bool), np.zeros((10, 10), bool)
    a[1, 1], b[4, 5] = True, True
    assert C.hausdorff_95(a, b) == pytest.approx(5.0)
    assert C.dice(a, b) == 0.0


@pytest.mark.parametrize("shape", [(64, 64), (48, 80), (512, 512)])
def test_empty_prediction_scores_dice_zero_and_the_diagonal(shape):
    ref = square(shape, 5, 5, 6)
    got = C.segmentation_scores(np.zeros(shape, bool), ref)
    assert got == {"dice": 0.0, "hausdorff_95": pytest.approx(math.hypot(*shape))}


def test_empty_mask_conventions_of_the_plain_functions():
    e, m = np.zeros((8, 8), bool), square((8, 8), 2, 2, 3)
    assert C.dice(e, e) == 1.0 and C.hausdorff_95(e, e) == 0.0
    assert C.hausdorff_95(e, m) == math.inf and C.hausdorff_95(m, e) == math.inf
    with pytest.raises(ValueError, match="empty"):
        C.segmentation_scores(m, e)
    with pytest.raises(ValueError, match="shape"):
        C.dice(np.zeros((8, 9)), m)


# --- LPIPS ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def alexnet_file(tmp_path_factory):
    """A randomly initialised torchvision AlexNet state dict (the real weights cannot be
    downloaded here); enough to test the plumbing, never a reportable LPIPS."""
    import torch
    import torchvision

    with torch.device("meta"):  # shapes only, no initialisation
        shapes = {k: v.shape for k, v in torchvision.models.alexnet().state_dict().items()}
    g = torch.Generator().manual_seed(0)
    state = {  # random backbone; the classifier is unused by LPIPS
        k: torch.randn(s, generator=g) * 0.05 if k.startswith("features") else torch.zeros(s)
        for k, s in shapes.items()
    }
    path = tmp_path_factory.mktemp("w") / "random-alexnet.pth"
    torch.save(state, path)
    return path


def test_lpips_uses_the_given_file_without_downloading(alexnet_file, monkeypatch):
    import torch
    import torch.hub

    def no_download(*a, **k):
        raise AssertionError("LPIPS tried to download")

    monkeypatch.setattr(torch.hub, "download_url_to_file", no_download)
    hub_before = torch.hub.get_dir()
    model = C.lpips_model(alexnet_file)
    assert torch.hub.get_dir() == hub_before
    state = torch.load(alexnet_file)
    assert torch.equal(model.net.net.slice1[0].weight, state["features.0.weight"])

    rng = np.random.default_rng(4)
    gt = rng.normal(size=(64, 64))
    assert C.lpips(model, gt, gt) == pytest.approx(0.0, abs=1e-6)
    assert C.lpips(model, gt + rng.normal(size=gt.shape), gt) > 1e-4
    beyond = gt.copy()
    beyond[gt > 1.0] = 100.0  # both sides of the pair agree after the ±5 clip
    clipped = np.where(gt > 1.0, 5.0, gt)
    assert C.lpips(model, beyond, clipped) == pytest.approx(0.0, abs=1e-6)


def test_lpips_without_weights_names_what_is_missing(tmp_path):
    with pytest.raises(W.WeightsError, match="lpips_alexnet") as e:
        C.lpips_model(tmp_path / "nowhere.pth")
    assert W.LPIPS_ALEX.filename in str(e.value)
    with pytest.raises(W.WeightsError):
        C.lpips_model_from_registry(tmp_path)


# --- aggregates and metrics.json --------------------------------------------------------------


def test_aggregates_count_only_cases_with_a_number():
    rows = {
        "a": {"mse": 1.0, "ssim_tumour": 0.5},
        "b": {"mse": 3.0},
        "c": {"error": "prediction missing"},
        "d": {"mse": float("nan")},
    }
    agg = C.aggregate(rows)
    assert agg["mse"] == {"mean": 2.0, "std": 1.0, "n": 2}
    assert agg["ssim_tumour"] == {"mean": 0.5, "std": 0.0, "n": 1}
    assert "lpips" not in agg


def test_metrics_document_and_writer(tmp_path):
    rows = {"b": {"mse": 2.0, "hausdorff_95": math.inf}, "a": {"error": "wrong shape (3, 3)"}}
    doc = C.metrics_document(
        rows, {"frd": (12.5, 1)}, [C.NotComputed("lpips", "AlexNet weights not found")]
    )
    path = tmp_path / "out" / "metrics.json"
    C.write_metrics(path, doc)
    got = json.loads(path.read_text())
    assert list(got["case"]) == ["a", "b"]
    assert got["case"]["b"]["hausdorff_95"] is None  # inf → null, as the official writer
    assert got["aggregates"]["mse"] == {"mean": 2.0, "std": 0.0, "n": 1}
    assert got["aggregates"]["frd"] == {"mean": 12.5, "n": 1}
    assert got["n_cases"] == 2 and got["n_errors"] == 1
    assert got["not_computed"] == [{"metric": "lpips", "reason": "AlexNet weights not found"}]
    assert [p.name for p in path.parent.iterdir()] == ["metrics.json"]


# --- FRD (the computation itself is compared with the official evaluator, not unit-tested:
# radiomics extraction takes ~5 s per call here) ------------------------------------------------


@pytest.mark.parametrize(
    ("n_gt", "n_pred", "n_mask", "match"),
    [(1, 1, 1, "at least 2"), (2, 1, 2, "one prediction"), (0, 0, 0, "at least 2")],
)
def test_frd_refuses_too_few_or_unpaired_cases(tmp_path, n_gt, n_pred, n_mask, match):
    files = [tmp_path / f"{i}.mha" for i in range(3)]
    with pytest.raises(ValueError, match=match):
        C.frd(files[:n_gt], files[:n_pred], files[:n_mask])
