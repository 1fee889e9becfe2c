"""Volume preparation: N4 removes a known bias field; crops keep the tumour and world positions."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest

from dcesynth.data.phantom import PhantomConfig
from dcesynth.data.phantom.anatomy import Tissue
from dcesynth.data.phantom.case import generate_case
from dcesynth.segmentation.cases import StudyCase, count_lesions
from dcesynth.segmentation.config import N4Config, SegmentConfig
from dcesynth.segmentation.prepare import (
    column_ranges,
    cropped_affine,
    n4_correct,
    prepare_case,
)


@pytest.fixture(scope="module")
def clean_case():
    """A phantom case without its own coil bias field, so that ours is the only one."""
    return generate_case(PhantomConfig(cases=1, matrix=96, slices=24, bias_field=0.0, seed=3), 0)


def _cov(a: np.ndarray, m: np.ndarray) -> float:
    return float(a[m].std() / a[m].mean())


def test_n4_removes_a_known_smooth_bias_field(clean_case) -> None:
    pre = clean_case.images[0].astype(np.float32)
    _, y, x = np.meshgrid(*[np.linspace(-1, 1, n) for n in pre.shape], indexing="ij")
    field = np.exp(0.35 * x + 0.2 * y - 0.25 * x * x)  # known, smooth, ×0.6 … ×1.5
    biased = pre * field
    corrected, estimate = n4_correct(biased, clean_case.geometry.spacing, N4Config())
    muscle = clean_case.labels == Tissue.MUSCLE
    before, after, clean = _cov(biased, muscle), _cov(corrected, muscle), _cov(pre, muscle)
    # measured: 0.223 → 0.052 (0.046 without the field)
    assert after < 0.35 * before
    assert after < 1.25 * clean
    body = clean_case.labels > 0
    assert np.corrcoef(np.log(estimate[body]), np.log(field[body]))[0, 1] > 0.9
    assert corrected.shape == pre.shape and corrected.dtype == np.float32


def _mask(nx: int, cols: tuple[int, int]) -> np.ndarray:
    m = np.zeros((6, 10, nx), np.uint8)
    m[2:4, 3:6, cols[0] : cols[1]] = 1
    return m


@pytest.mark.parametrize("left", [True, False])
@pytest.mark.parametrize(("nx", "cols"), [(64, (5, 12)), (64, (40, 50)), (63, (33, 40))])
def test_tumour_side_crop_holds_the_mask(nx: int, cols: tuple[int, int], left: bool) -> None:
    m = _mask(nx, cols)
    ((part, (x0, x1)),) = column_ranges(nx, "tumour_side", m, left).items()
    assert part == "T"
    assert m[:, :, x0:x1].sum() == m.sum()  # the whole mask in the kept half
    assert x1 - x0 in (nx // 2, nx - nx // 2)


def test_tumour_across_the_middle_widens_the_crop() -> None:
    m = _mask(64, (28, 40))
    ((x0, x1),) = column_ranges(64, "tumour_side", m, True).values()
    assert (x0, x1) == (28, 64) and m[:, :, x0:x1].sum() == m.sum()


@pytest.mark.parametrize(
    ("left", "expected"),
    [(True, {"R": (0, 32), "L": (32, 64)}), (False, {"R": (32, 64), "L": (0, 32)})],
)
def test_both_halves_are_named_by_patient_side(left: bool, expected: dict) -> None:
    assert column_ranges(64, "both_halves", None, left) == expected
    assert column_ranges(64, "none", None, left) == {"W": (0, 64)}


@pytest.mark.parametrize(
    ("rule", "mask", "message"),
    [("left", None, "unknown rule"), ("tumour_side", None, "non-empty")],
)
def test_bad_crop_requests(rule, mask, message) -> None:
    with pytest.raises(ValueError, match=message):
        column_ranges(64, rule, mask, True)


def test_cropped_affine_keeps_world_positions() -> None:
    rng = np.random.default_rng(0)
    aff = np.eye(4)
    aff[:3, :3] = rng.normal(size=(3, 3))
    aff[:3, 3] = rng.normal(size=3) * 50
    new = cropped_affine(aff, 17)
    ijk = rng.integers(0, 20, size=(50, 3)).astype(float)
    here = np.c_[ijk, np.ones(50)] @ new.T
    there = np.c_[ijk + np.array([17, 0, 0]), np.ones(50)] @ aff.T
    np.testing.assert_allclose(here, there)


def test_prepare_case_writes_parts_whose_voxels_sit_where_they_were(clean_case, tmp_path) -> None:
    """End to end on files: crop + N4 of a phantom case; labels and world positions kept."""
    geom = clean_case.geometry
    files = {}
    for name, vol in (
        ("pre", clean_case.images[0]),
        ("post", clean_case.images[1]),
        ("mask", clean_case.mask),
    ):
        files[name] = str(tmp_path / f"{name}.nii.gz")
        nib.save(nib.Nifti1Image(vol.transpose(2, 1, 0), geom.affine_ras), files[name])
    case = StudyCase("c000000000001", "train", "fold", files)
    cfg = SegmentConfig(scenarios=(3,), sets=("F",))  # versions pre + post
    rec = prepare_case(case, cfg, tmp_path / "prepared")
    assert rec == json.loads((tmp_path / "prepared" / case.case_id / "case.json").read_text())
    ((part, info),) = rec["parts"].items()
    assert part == "T"
    x0, x1 = info["columns"]
    assert info["label_voxels"] == int(clean_case.mask.sum())  # the whole mask is kept
    label = nib.load(tmp_path / "prepared" / case.case_id / "T_label.nii.gz")
    np.testing.assert_array_equal(np.asarray(label.dataobj), clean_case.mask[:, :, x0:x1].T)
    # voxel (i, j, k) of the crop = voxel (i + x0, j, k) of the original, in world mm
    np.testing.assert_allclose(label.affine @ [0, 0, 0, 1], geom.affine_ras @ [x0, 0, 0, 1])
    pre = nib.load(tmp_path / "prepared" / case.case_id / "T_pre.nii.gz")
    assert pre.shape == label.shape and pre.get_data_dtype() == np.float32
    assert set(info["files"]) == {"pre", "post"} and set(rec["n4"]) == {"pre", "post"}
    mtime = (tmp_path / "prepared" / case.case_id / "T_pre.nii.gz").stat().st_mtime_ns
    assert prepare_case(case, cfg, tmp_path / "prepared") == rec  # done: not prepared again
    assert (tmp_path / "prepared" / case.case_id / "T_pre.nii.gz").stat().st_mtime_ns == mtime


def test_count_lesions_ignores_specks() -> None:
    m = np.zeros((10, 10, 10), np.uint8)
    m[1:4, 1:4, 1:4] = 1
    m[6:9, 6:9, 6:9] = 1
    m[0, 9, 9] = 1  # a 1-voxel speck
    assert count_lesions(m, 8) == 2 and count_lesions(m, 1) == 3
    assert count_lesions(np.zeros_like(m), 8) == 0


# --- in-plane downsampling (a CPU budget) -------------------------------------------------------


@pytest.mark.parametrize("factor", [2, 3])
def test_downsample_block_mean_label_rule_and_world_position(factor: int) -> None:
    """Images: block means; labels: tumour where ≥ half the block is; each new voxel's centre
    is the centre of its block in world coordinates; ragged edges are dropped."""
    from dcesynth.segmentation.prepare import downsample

    rng = np.random.default_rng(0)
    vol = rng.random((3, 7, 8)).astype(np.float32)
    aff = np.array([[-1.5, 0, 0, 10.0], [0, -1.5, 0, 20.0], [0, 0, 4.0, -5.0], [0, 0, 0, 1]])
    out, new = downsample(vol, aff, factor)
    by, bx = 7 // factor, 8 // factor
    assert out.shape == (3, by, bx) and out.dtype == np.float32
    np.testing.assert_allclose(out[1, 0, 1], vol[1, :factor, factor : 2 * factor].mean(), 1e-6)
    # world position: new voxel (i, j, k) = centre of old block (x = i·f … i·f+f−1)
    for i, j, k in ((0, 0, 0), (bx - 1, by - 1, 2)):
        old = aff @ np.array([i * factor + (factor - 1) / 2, j * factor + (factor - 1) / 2, k, 1])
        np.testing.assert_allclose(new @ np.array([i, j, k, 1]), old)
    label = np.zeros((1, 2 * factor, 2 * factor), np.uint8)
    label[0, :factor, :factor].flat[: (factor * factor + 1) // 2] = 1  # half (or more) of a block
    label[0, factor:, factor:].flat[: (factor * factor) // 2 - (factor % 2 == 0)] = 1  # less
    lab, _ = downsample(label, aff, factor)
    assert lab.dtype == np.uint8 and lab[0].tolist() == [[1, 0], [0, 0]]


def test_downsample_factor_one_is_identity_and_bad_factors_are_refused() -> None:
    from dcesynth.segmentation.prepare import downsample

    vol = np.ones((2, 4, 4), np.float32)
    out, aff = downsample(vol, np.eye(4), 1)
    assert out is vol and np.array_equal(aff, np.eye(4))
    for bad in (0, 5):
        with pytest.raises(ValueError, match="in_plane_factor"):
            downsample(vol, np.eye(4), bad)
