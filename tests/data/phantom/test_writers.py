"""The written cohort read back with independent readers (pydicom, SimpleITK, nibabel) equals
the in-memory cases, pixels and geometry alike."""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
import SimpleITK as sitk

from dcesynth.data.geometry import Geometry
from dcesynth.data.phantom.case import ORDINALS, PhantomCase
from dcesynth.data.phantom.kinetics import AGENT_TRADE_NAMES
from dcesynth.data.phantom.writers import series_descriptions

CASE_IDS = [f"Phantom_MRI_{i:03d}" for i in (1, 2, 3)]


def _normal(ds: pydicom.Dataset) -> np.ndarray:
    iop = np.asarray(ds.ImageOrientationPatient, float)
    return np.cross(iop[:3], iop[3:])


def read_dicom_phases(case_dir: Path) -> list[list[pydicom.Dataset]]:
    """All phases of a case, each a list of slices ordered along the slice normal.

    Series are split by TemporalPositionIdentifier (multiphase series) and phases ordered by
    acquisition time; file names and InstanceNumbers are deliberately not trusted.
    """
    groups: dict[tuple[str, int], list[pydicom.Dataset]] = defaultdict(list)
    for f in case_dir.rglob("*.dcm"):
        ds = pydicom.dcmread(f)
        groups[(ds.SeriesInstanceUID, int(ds.get("TemporalPositionIdentifier", 1)))].append(ds)
    phases = sorted(groups.values(), key=lambda g: float(g[0].AcquisitionTime))
    return [
        sorted(g, key=lambda d: float(np.dot(d.ImagePositionPatient, _normal(d)))) for g in phases
    ]


def dicom_geometry(slices: list[pydicom.Dataset]) -> Geometry:
    """Geometry of one phase from its headers alone."""
    first = slices[0]
    iop = np.asarray(first.ImageOrientationPatient, float)
    normal = _normal(first)
    pos = np.array([np.dot(d.ImagePositionPatient, normal) for d in slices])
    steps = np.diff(pos)
    assert np.allclose(steps, steps.mean(), atol=1e-3), "slices are not evenly spaced"
    direction = np.column_stack([iop[:3], iop[3:], normal])
    return Geometry(
        shape=(len(slices), int(first.Rows), int(first.Columns)),
        spacing=(float(first.PixelSpacing[1]), float(first.PixelSpacing[0]), float(steps.mean())),
        origin=tuple(float(v) for v in first.ImagePositionPatient),
        direction=tuple(float(v) for v in direction.ravel()),
    )


def _to_seconds(clock: str) -> float:
    return int(clock[:2]) * 3600 + int(clock[2:4]) * 60 + float(clock[4:])


@pytest.mark.parametrize("cid", CASE_IDS)
def test_dicom_pixels_and_geometry(cohort, cohort_cases: dict[str, PhantomCase], cid: str) -> None:
    """Every phase read back from DICOM equals case.images exactly, on the recorded geometry."""
    case = cohort_cases[cid]
    phases = read_dicom_phases(cohort.case_dir("dicom", cid))
    assert len(phases) == case.images.shape[0] == case.protocol.post_phases + 1
    gt_geom = Geometry.from_dict(cohort.records[case.index]["geometry"])
    assert gt_geom == case.geometry
    for ph, slices in enumerate(phases):
        vol = np.stack([d.pixel_array for d in slices])
        assert vol.dtype == np.uint16
        np.testing.assert_array_equal(vol, case.images[ph])
        assert dicom_geometry(slices).allclose(gt_geom, atol=1e-3)


@pytest.mark.parametrize("cid", CASE_IDS)
def test_dicom_headers(cohort, cohort_cases: dict[str, PhantomCase], cid: str) -> None:
    """Acquisition facts, timing, agent, identity and series naming are in the headers."""
    case = cohort_cases[cid]
    proto = case.protocol
    phases = read_dicom_phases(cohort.case_dir("dicom", cid))
    times = np.array([_to_seconds(p[0].AcquisitionTime) for p in phases])
    np.testing.assert_allclose(times - times[0], proto.acquisition_s, atol=1e-3)
    for ph, slices in enumerate(phases):
        assert len({d.SOPInstanceUID for d in slices}) == len(slices)
        for ds in (slices[0], slices[-1]):
            assert ds.Modality == "MR"
            assert float(ds.MagneticFieldStrength) == proto.field_t
            assert float(ds.RepetitionTime) == pytest.approx(proto.tr_ms)
            assert float(ds.FlipAngle) == pytest.approx(proto.flip_deg)
            assert str(ds.PatientName) == case.identity["PatientName"]
            assert ds.PatientBirthDate == case.identity["PatientBirthDate"]
            assert float(ds.SliceThickness) == pytest.approx(case.geometry.spacing[2], abs=1e-4)
            if ph == 0:
                assert "ContrastBolusAgent" not in ds
            else:
                assert ds.ContrastBolusAgent == AGENT_TRADE_NAMES[proto.agent]
        desc = slices[0].SeriesDescription
        if proto.multiphase_series:
            assert desc == "Ax Vibrant MultiPhase"
            assert int(slices[0].NumberOfTemporalPositions) == len(phases)
        else:
            assert ("pre" in desc) if ph == 0 else (ORDINALS[ph - 1] in desc)
    series = {p[0].SeriesInstanceUID for p in phases}
    assert len(series) == (1 if proto.multiphase_series else len(phases))


@pytest.mark.parametrize("naming", ["dyn", "3d dyn"])
def test_series_description_typo(cohort_cases: dict[str, PhantomCase], naming: str) -> None:
    """A configured typo drops the last letter of the first post phase's description only."""
    case = cohort_cases[CASE_IDS[0]]
    clean = dataclasses.replace(
        case, protocol=dataclasses.replace(case.protocol, naming=naming, typo=False)
    )
    typo = dataclasses.replace(clean, protocol=dataclasses.replace(clean.protocol, typo=True))
    names, typos = series_descriptions(clean), series_descriptions(typo)
    prefix = f"ax {naming}"
    assert names == [f"{prefix} pre"] + [f"{prefix} {o} pass" for o in ORDINALS]
    assert typos == [names[0], f"{prefix} 1st pas", *names[2:]]


def _per_phase_series(case_dir: Path) -> list[Path]:
    """Series folders of a per-phase case, in acquisition order (from their headers)."""
    folders = {f.parent for f in case_dir.rglob("*.dcm")}
    first = {d: pydicom.dcmread(next(d.glob("*.dcm")), stop_before_pixels=True) for d in folders}
    return sorted(folders, key=lambda d: float(first[d].AcquisitionTime))


def test_simpleitk_dicom_equals_nifti(cohort) -> None:
    """SimpleITK reads a per-phase DICOM series and the NIfTI of that phase identically:
    same voxels, origin, spacing and direction (both in LPS)."""
    per_phase = [r["case_id"] for r in cohort.records if not r["protocol"]["multiphase_series"]]
    assert per_phase
    for cid in per_phase:
        folders = _per_phase_series(cohort.case_dir("dicom", cid))
        assert len(folders) == 5
        for ph, folder in enumerate(folders):
            reader = sitk.ImageSeriesReader()
            reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(folder)))
            from_dicom = reader.Execute()
            nifti = cohort.out / "nifti" / "images" / cid / f"{cid}_{ph:04d}.nii.gz"
            from_nifti = sitk.ReadImage(str(nifti))
            np.testing.assert_array_equal(
                sitk.GetArrayFromImage(from_dicom), sitk.GetArrayFromImage(from_nifti)
            )
            for attr in ("GetOrigin", "GetSpacing", "GetDirection"):
                np.testing.assert_allclose(
                    getattr(from_dicom, attr)(), getattr(from_nifti, attr)(), atol=1e-3
                )
            geom = Geometry.from_dict(cohort.records[int(cid[-3:]) - 1]["geometry"])
            np.testing.assert_allclose(from_nifti.GetOrigin(), geom.origin, atol=1e-3)
            np.testing.assert_allclose(from_nifti.GetSpacing(), geom.spacing, atol=1e-4)


@pytest.mark.parametrize("cid", CASE_IDS)
def test_nibabel_layout(cohort, cohort_cases: dict[str, PhantomCase], cid: str) -> None:
    """nibabel sees (x, y, z) arrays and the RAS affine of the geometry, for images, mask and
    tissue labels."""
    case = cohort_cases[cid]
    root = cohort.out / "nifti"
    files = sorted((root / "images" / cid).glob("*.nii.gz"))
    assert [f.name for f in files] == [f"{cid}_{ph:04d}.nii.gz" for ph in range(5)]
    expected = [*case.images, case.mask, case.labels]
    paths = [*files, root / "masks" / f"{cid}.nii.gz", root / "labels" / f"{cid}_labels.nii.gz"]
    for arr, path in zip(expected, paths, strict=True):
        img = nib.load(path)
        data = np.asarray(img.dataobj)
        assert data.dtype == arr.dtype
        np.testing.assert_array_equal(data, arr.transpose(2, 1, 0))
        np.testing.assert_allclose(img.affine, case.geometry.affine_ras, atol=1e-4)
        assert int(img.header["qform_code"]) == 1 and int(img.header["sform_code"]) == 1
        assert img.header.get_xyzt_units()[0] == "mm"


def test_geometry_affines() -> None:
    """Known answer: voxel (k, j, i) = (2, 3, 4) of a scaled, shifted grid, in LPS and RAS."""
    geom = Geometry(shape=(5, 6, 7), spacing=(0.5, 0.7, 1.1), origin=(-10.0, 20.0, 3.0))
    np.testing.assert_allclose(geom.index_to_lps(np.array([2, 3, 4])), [-8.0, 22.1, 5.2])
    ras = geom.affine_ras @ np.array([4, 3, 2, 1.0])
    np.testing.assert_allclose(ras[:3], [8.0, -22.1, 5.2])
    np.testing.assert_allclose(geom.slice_position(3), [-10.0, 20.0, 6.3])
    assert Geometry.from_dict(geom.to_dict()) == geom


@pytest.mark.parametrize(
    "kwargs",
    [
        {"shape": (5, 6)},
        {"shape": (0, 6, 7)},
        {"spacing": (0.5, 0.0, 1.0)},
        {"spacing": (1.0, 1.0)},
        {"direction": (1.0, 0.0, 0.0)},
    ],
)
def test_geometry_rejects_invalid(kwargs: dict) -> None:
    base = {"shape": (5, 6, 7), "spacing": (1.0, 1.0, 1.0), "origin": (0.0, 0.0, 0.0)}
    with pytest.raises(ValueError, match="Geometry"):
        Geometry(**{**base, **kwargs})
