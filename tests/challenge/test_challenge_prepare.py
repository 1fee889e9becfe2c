"""MAMA-SYNTH preparation (dcesynth.challenge.prepare): each rule on arrays whose answer is known
(pre and peak phase, slice axis, slice, rotation, z-score constants), the .mha round trip, and a
hand-made MAMA-MIA folder prepared end to end."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk

from dcesynth.challenge import prepare as P

# --- the rules --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "phase"),
    [("P_001_0000.nii.gz", 0), ("P_001_0003.nii", 3), ("DUKE_012_0002.mha", 2),
     ("P001.nii.gz", None), ("P_001_0001.json", None), ("P_001_pre.nii.gz", None),
     ("P_001.nii.gz", 1)],  # the official rule reads any numeric tail after the last "_"
)  # fmt: skip
def test_phase_of_file_names(name, phase):
    assert P.phase_of(Path(name)) == phase


def test_pre_phase_is_the_lowest_index():
    assert P.pick_pre_phase([3, 1, 2]) == 1
    with pytest.raises(ValueError):
        P.pick_pre_phase([])


def phases_with_tumour_means(means: list[float], shape=(6, 6, 4)):
    mask = np.zeros(shape, np.float32)
    mask[2:4, 2:4, 1] = 1
    vols = {}
    for k, m in enumerate(means):
        v = np.full(shape, 1000.0, np.float32)  # outside the tumour: brighter than inside
        v[mask > 0] = m
        vols[k] = v
    return vols, mask


@pytest.mark.parametrize(
    ("means", "target"),
    [([10, 50, 80, 70], 2), ([10, 90, 80, 70], 1), ([10, 80, 80, 20], 1), ([99, 50, 80], 0)],
)
def test_target_is_the_phase_with_the_highest_tumour_mean(means, target):
    """Ties go to the lowest index; every phase is a candidate, the pre one too (official)."""
    vols, mask = phases_with_tumour_means(means)
    got = P.tumour_means(vols, mask)
    assert got == pytest.approx(dict(enumerate(map(float, means))))
    assert P.pick_target_phase(got) == target


def test_tumour_means_refuse_an_empty_mask_or_other_shapes():
    vols, mask = phases_with_tumour_means([1, 2])
    with pytest.raises(ValueError, match="empty"):
        P.tumour_means(vols, np.zeros_like(mask))
    with pytest.raises(ValueError, match="shape"):
        P.tumour_means({0: np.zeros((2, 2, 2))}, mask)


@pytest.mark.parametrize(
    ("shape", "axis"),
    [((64, 64, 16), 2), ((16, 64, 64), 0), ((64, 16, 64), 1), ((512, 512, 160), 2),
     ((8, 8, 8), 2)],
)  # fmt: skip
def test_slice_axis_is_the_one_with_a_unique_size(shape, axis):
    assert P.pick_slice_axis(shape) == axis


@pytest.mark.parametrize("shape", [(3, 4, 5), (64, 64), (2, 2, 2, 2)])
def test_slice_axis_refuses_ambiguous_shapes(shape):
    with pytest.raises(ValueError):
        P.pick_slice_axis(shape)


@pytest.mark.parametrize("axis", [0, 1, 2])
def test_slice_with_the_largest_tumour_area(axis):
    areas = [0, 3, 7, 7, 2]  # a tie between 2 and 3: the first wins
    m = np.zeros((5, 5, 5), np.int16)
    for i, a in enumerate(areas):
        m[i].flat[:a] = 1
    m = np.moveaxis(m, 0, axis)
    assert P.pick_slice(m, axis) == 2
    with pytest.raises(ValueError):
        P.pick_slice(m, 3)


def test_rotation_is_rot90_counter_clockwise():
    a = np.array([[1, 2, 3], [4, 5, 6]])
    np.testing.assert_array_equal(P.rotate(a), [[3, 6], [2, 5], [1, 4]])
    with pytest.raises(ValueError):
        P.rotate(np.zeros((2, 2, 2)))


def test_zscore_uses_the_challenge_constants():
    assert P.CHALLENGE_ZSCORE.mean == 107.41193853581365
    assert P.CHALLENGE_ZSCORE.std == 219.96180535228203
    x = np.array([[107.41193853581365, 107.41193853581365 + 219.96180535228203, 0.0]])
    got = P.zscore(x)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, [[0.0, 1.0, -107.41193853581365 / 219.96180535228203]])


@pytest.mark.parametrize(("mean", "std"), [(0.0, 0.0), (0.0, -1.0), (float("nan"), 1.0)])
def test_zscore_refuses_degenerate_constants(mean, std):
    with pytest.raises(ValueError):
        P.ZScore(mean, std, "test")


def test_dataset_zscore_is_the_population_statistic_over_pre_volumes(tmp_path):
    rng = np.random.default_rng(0)
    pre = [rng.normal(100, 20, size=(4, 4, 3)), rng.normal(300, 50, size=(5, 5, 2))]
    cases = []
    for i, v in enumerate(pre):
        p0, p1 = tmp_path / f"c{i}_0000.nii.gz", tmp_path / f"c{i}_0001.nii.gz"
        nib.save(nib.Nifti1Image(v.astype(np.float32), np.eye(4)), p0)
        nib.save(nib.Nifti1Image(v.astype(np.float32) * 9, np.eye(4)), p1)
        cases.append(P.SourceCase(f"c{i}", {0: p0, 1: p1}, None))
    allv = np.concatenate([v.astype(np.float32).ravel() for v in pre]).astype(np.float64)
    z = P.dataset_zscore(cases, "test")
    assert z.mean == pytest.approx(allv.mean(), rel=1e-12)
    assert z.std == pytest.approx(allv.std(), rel=1e-12)


# --- .mha files -------------------------------------------------------------------------------


@pytest.mark.parametrize(("label", "dtype"), [(False, np.float32), (True, np.int16)])
@pytest.mark.parametrize("shape", [(5, 7), (64, 64)])
def test_mha_round_trip_keeps_dtype_shape_and_unit_spacing(tmp_path, label, dtype, shape):
    a = np.random.default_rng(1).normal(size=shape) * 3
    path = tmp_path / "sub" / "x.mha"
    P.write_mha(a, path, label=label)
    img = sitk.ReadImage(str(path))
    got = sitk.GetArrayFromImage(img)
    assert got.dtype == dtype and got.shape == shape
    assert img.GetSpacing() == (1.0, 1.0) and img.GetOrigin() == (0.0, 0.0)
    np.testing.assert_array_equal(got, np.rint(a).astype(dtype) if label else a.astype(dtype))
    assert [p.name for p in path.parent.iterdir()] == ["x.mha"]  # no temporary left behind


@pytest.mark.parametrize("bad", [np.zeros((2, 2, 2)), np.array([[1.0, np.nan]])])
def test_mha_writer_refuses_bad_arrays(tmp_path, bad):
    with pytest.raises(ValueError, match=r"x\.mha"):
        P.write_mha(bad, tmp_path / "x.mha")


def test_unreadable_volume_names_the_file(tmp_path):
    bad = tmp_path / "P_0000.nii.gz"
    bad.write_bytes(b"not a nifti")
    with pytest.raises(ValueError, match=r"P_0000\.nii\.gz"):
        P.load_volume(bad)


# --- a hand-made MAMA-MIA folder, end to end --------------------------------------------------

SHAPE = (12, 12, 5)  # nibabel (i, j, k): k is the unique, through-plane axis


def write_patient(root: Path, pid: str, peak: int, seg_dir: str = "segmentations/expert"):
    """Three phases; the tumour is largest on slice k = 3 and brightest in phase ``peak``."""
    seg = np.zeros(SHAPE, np.uint8)
    seg[4:8, 3:9, 3] = 1  # 24 voxels
    seg[5:7, 4:6, 1] = 1  # 4 voxels
    (root / "images" / pid).mkdir(parents=True, exist_ok=True)
    base = np.arange(np.prod(SHAPE), dtype=np.float32).reshape(SHAPE)
    vols = {}
    for k in range(3):
        v = base + 10 * k
        v[seg > 0] += 500 if k == peak else 100 * k
        vols[k] = v
        nib.save(nib.Nifti1Image(v.astype(np.int16), np.eye(4)),
                 root / "images" / pid / f"{pid}_000{k}.nii.gz")  # fmt: skip
    (root / seg_dir).mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(seg, np.eye(4)), root / seg_dir / f"{pid}.nii.gz")
    return vols, seg


def read(path: Path) -> np.ndarray:
    return sitk.GetArrayFromImage(sitk.ReadImage(str(path)))


@pytest.mark.parametrize("seg_dir", ["segmentations/expert", "masks"])
def test_prepare_a_mama_mia_folder(tmp_path, seg_dir):
    src, out = tmp_path / "src", tmp_path / "out"
    vols, seg = write_patient(src, "P_001", peak=1, seg_dir=seg_dir)
    write_patient(src, "P_002", peak=2, seg_dir=seg_dir)
    (src / "images" / "P_003").mkdir()  # a patient without a segmentation
    nib.save(nib.Nifti1Image(np.zeros(SHAPE, np.int16), np.eye(4)),
             src / "images" / "P_003" / "P_003_0000.nii.gz")  # fmt: skip

    manifest = P.prepare(src, out, ratios={"train": 1, "test": 1})

    rows = {c["patient_id"]: c for c in manifest["cases"]}
    assert rows["P_001"]["target_phase"] == 1 and rows["P_002"]["target_phase"] == 2
    assert rows["P_001"]["pre_phase"] == 0
    assert rows["P_001"]["axis"] == 2 and rows["P_001"]["slice_index"] == 3
    assert [s["patient_id"] for s in manifest["skipped"]] == ["P_003"]
    assert "segmentation" in manifest["skipped"][0]["reason"]
    z = P.CHALLENGE_ZSCORE
    pre = read(out / "mha/input/P_001.mha")
    want = np.rot90((vols[0][:, :, 3].astype(np.float64) - z.mean) / z.std)
    assert pre.dtype == np.float32 and pre.shape == (12, 12)
    np.testing.assert_allclose(pre, want, rtol=0, atol=1e-6)
    target = read(out / "mha/ground_truth/P_001.mha")
    np.testing.assert_allclose(target, np.rot90((vols[1][:, :, 3] - z.mean) / z.std), atol=1e-5)
    mask = read(out / "mha/mask/P_001.mha")
    assert mask.dtype == np.int16
    np.testing.assert_array_equal(mask, np.rot90(seg[:, :, 3]))
    assert json.loads((out / "manifest.json").read_text())["zscore"]["mean"] == z.mean
    assert (out / "splits.csv").read_text().splitlines()[0] == "patient_id,split"
    assert set(manifest["splits"].values()) == {"train", "test"}


def test_prepare_with_the_training_split_statistic(tmp_path):
    src, out = tmp_path / "src", tmp_path / "out"
    vols, _ = write_patient(src, "P_001", peak=1)
    write_patient(src, "P_002", peak=2)
    manifest = P.prepare(src, out, z="train", ratios={"train": 1, "test": 1}, seed=3)
    (train,) = [k for k, v in manifest["splits"].items() if v == "train"]
    assert manifest["zscore"]["mean"] == pytest.approx(float(np.rint(vols[0]).mean()))
    assert "training" in manifest["zscore"]["source"]
    assert train in {"P_001", "P_002"}
    with pytest.raises(ValueError, match="train"):
        P.prepare(src, out, z="everything")


def test_prepare_reports_an_empty_mask_with_its_file(tmp_path):
    src = tmp_path / "src"
    write_patient(src, "P_001", peak=1)
    write_patient(src, "P_002", peak=1)
    nib.save(nib.Nifti1Image(np.zeros(SHAPE, np.uint8), np.eye(4)),
             src / "segmentations/expert/P_002.nii.gz")  # fmt: skip
    manifest = P.prepare(src, tmp_path / "out")
    (skip,) = manifest["skipped"]
    assert skip["patient_id"] == "P_002" and "P_002.nii.gz" in skip["reason"]
    assert "empty" in skip["reason"]


def test_prepare_refuses_a_folder_without_images(tmp_path):
    with pytest.raises(ValueError, match="images"):
        P.prepare(tmp_path, tmp_path / "out")
