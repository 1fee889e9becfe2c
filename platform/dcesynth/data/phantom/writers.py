"""Write a phantom case as a Duke-style DICOM tree and/or the NIfTI layout.

Every artifact is built under a hidden temporary name beside its destination and renamed into
place in one step, so an interrupted run leaves either the whole artifact or nothing that a
reader would take for it (hidden ``.tmp-*`` leftovers are removed by the next run).
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid

from dcesynth.data.geometry import Geometry
from dcesynth.data.phantom.case import ORDINALS, PhantomCase
from dcesynth.data.phantom.kinetics import AGENT_TRADE_NAMES

TMP_PREFIX = ".tmp-"


def _tmp_beside(final: Path) -> Path:
    return final.parent / f"{TMP_PREFIX}{final.name}-{uuid.uuid4().hex[:8]}"


def publish(tmp: Path, final: Path) -> None:
    """Move a finished artifact into place (replacing a stale one) in one rename."""
    if final.exists():
        shutil.rmtree(final) if final.is_dir() else final.unlink()
    os.replace(tmp, final)


def remove_stale_tmp(root: Path) -> int:
    """Delete leftovers of interrupted runs below ``root``; returns how many were removed."""
    n = 0
    for p in list(root.rglob(f"{TMP_PREFIX}*")) if root.exists() else []:
        shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)
        n += 1
    return n


# --- DICOM --------------------------------------------------------------------------------------


def series_descriptions(case: PhantomCase) -> list[str]:
    """Series description per phase as Duke's scanners wrote them (a typo where configured)."""
    p = case.protocol
    if p.naming == "dyn":
        names = ["ax dyn pre"] + [f"ax dyn {o} pass" for o in ORDINALS[: p.post_phases]]
    else:
        names = ["ax 3d dyn pre"] + [f"ax 3d dyn {o} pass" for o in ORDINALS[: p.post_phases]]
    if p.typo and len(names) > 1:
        names[1] = names[1].removesuffix("s")  # e.g. "ax dyn 1st pas", seen in the wild
    return names


def _clock(seconds: float) -> str:
    seconds %= 86400
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{int(h):02d}{int(m):02d}{s:09.6f}"


def _uid(case: PhantomCase, *parts: object) -> str:
    """Deterministic UID from the case and the object's role (hash under pydicom's root).

    With ``prefix=None`` pydicom ignores ``entropy_srcs`` and returns a random 2.25 UUID UID.
    """
    srcs = [case.ground_truth["fingerprint"], case.case_id, *map(str, parts)]
    return generate_uid(entropy_srcs=srcs)


def _base_dataset(case: PhantomCase, geom: Geometry) -> Dataset:
    p, idn = case.protocol, case.identity
    ds = Dataset()
    ds.PatientName = idn["PatientName"]
    ds.PatientID = idn["Patient ID"]
    ds.PatientBirthDate = idn["PatientBirthDate"]
    ds.PatientSex = "F"
    ds.OtherPatientIDs = idn["OtherPatientIDs"]
    ds.AccessionNumber = idn["AccessionNumber"]
    ds.InstitutionName = "DCESYNTH PHANTOM HOSPITAL"
    ds.ReferringPhysicianName = "PHYSICIAN^REFERRING"
    ds.StudyInstanceUID = _uid(case, "study")
    ds.FrameOfReferenceUID = _uid(case, "frame")
    ds.StudyDate = f"{p.study_year}0101"
    ds.StudyTime = _clock(p.start_clock_s - 300)
    ds.StudyID = "1"
    ds.StudyDescription = "MRI BREAST BILATERAL W WO CONTRAST"
    ds.Modality = "MR"
    ds.Manufacturer = p.manufacturer
    ds.ManufacturerModelName = p.model
    ds.MagneticFieldStrength = p.field_t
    ds.RepetitionTime = p.tr_ms
    ds.EchoTime = p.te_ms
    ds.FlipAngle = p.flip_deg
    ds.ScanningSequence = "GR"
    ds.SequenceVariant = "SP"
    ds.MRAcquisitionType = "3D"
    ds.BodyPartExamined = "BREAST"
    ds.PatientPosition = "FFP"
    ds.ImageOrientationPatient = [
        float(v) for v in (*geom.direction_matrix[:, 0], *geom.direction_matrix[:, 1])
    ]
    ds.PixelSpacing = [
        float(geom.spacing[1]),
        float(geom.spacing[0]),
    ]  # row spacing, column spacing
    ds.SliceThickness = float(geom.spacing[2])
    ds.SpacingBetweenSlices = float(geom.spacing[2])
    ds.Rows, ds.Columns = geom.shape[1], geom.shape[2]
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    return ds


def _write_series(
    case, folder: Path, base: Dataset, desc: str, number: int, phases: list[int]
) -> None:
    """One series holding ``phases`` (several → a multiphase series with temporal positions)."""
    p, geom = case.protocol, case.geometry
    folder.mkdir(parents=True)
    series_uid = _uid(case, "series", number)
    nz = geom.shape[0]
    for t, ph in enumerate(phases):
        acq = _clock(p.start_clock_s + float(p.acquisition_s[ph]))
        for k in range(nz):
            order = k if p.instance_order > 0 else nz - 1 - k
            inst = t * nz + order + 1
            ds = Dataset()
            ds.update(base)
            ds.SOPClassUID = MRImageStorage
            ds.SOPInstanceUID = _uid(case, "image", number, ph, k)
            ds.SeriesInstanceUID = series_uid
            ds.SeriesDescription = desc
            ds.SeriesNumber = number
            ds.SeriesTime = _clock(p.start_clock_s + float(p.acquisition_s[phases[0]]))
            ds.AcquisitionTime = acq
            ds.ContentTime = acq
            ds.InstanceNumber = inst
            if len(phases) > 1:
                ds.TemporalPositionIdentifier = t + 1
                ds.NumberOfTemporalPositions = len(phases)
            if ph > 0:
                ds.ContrastBolusAgent = AGENT_TRADE_NAMES[p.agent]
                ds.ContrastBolusStartTime = _clock(p.start_clock_s + p.injection_s)
            pos = geom.slice_position(k)
            ds.ImagePositionPatient = [round(float(v), 4) for v in pos]
            ds.SliceLocation = round(float(pos[2]), 4)
            ds.PixelData = np.ascontiguousarray(case.images[ph, k]).tobytes()
            ds.file_meta = FileMetaDataset()
            ds.file_meta.MediaStorageSOPClassUID = MRImageStorage
            ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
            ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
            pydicom.dcmwrite(folder / f"1-{inst:03d}.dcm", ds, enforce_file_format=True)


def write_dicom(case: PhantomCase, root: Path) -> Path:
    """``root/<patient>/<study>/<series>/1-NNN.dcm``, one series per phase (or one multiphase)."""
    final = root / case.case_id
    tmp = _tmp_beside(final)
    p = case.protocol
    base = _base_dataset(case, case.geometry)
    study = (
        tmp / f"01-01-{p.study_year}-NA-MRI BREAST BILATERAL W WO-{10000 + case.index * 37 % 90000}"
    )
    try:
        if p.multiphase_series:
            phases = list(range(p.post_phases + 1))
            _write_series(
                case,
                study / "3.000000-Ax Vibrant MultiPhase-00001",
                base,
                "Ax Vibrant MultiPhase",
                3,
                phases,
            )
        else:
            for ph, desc in enumerate(series_descriptions(case)):
                num = 3 + ph
                _write_series(
                    case, study / f"{num}.000000-{desc.strip()}-{num:05d}", base, desc, num, [ph]
                )
        publish(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


# --- NIfTI --------------------------------------------------------------------------------------


def _nifti(array_zyx: np.ndarray, geom: Geometry) -> nib.Nifti1Image:
    # The (x, y, z) view of a C-ordered (z, y, x) array is Fortran-contiguous, which is NIfTI's
    # on-disk order: nibabel writes it without a copy.
    img = nib.Nifti1Image(array_zyx.transpose(2, 1, 0), geom.affine_ras)
    img.set_qform(geom.affine_ras, code=1)
    img.set_sform(geom.affine_ras, code=1)
    img.header.set_xyzt_units("mm", "sec")
    return img


def save_nifti_atomic(array_zyx: np.ndarray, geom: Geometry, final: Path) -> None:
    tmp = final.parent / f"{TMP_PREFIX}{uuid.uuid4().hex[:8]}-{final.name}"
    try:
        nib.save(_nifti(array_zyx, geom), tmp)
        os.replace(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _bids_clock(seconds: float) -> str:
    c = _clock(seconds)
    return f"{c[:2]}:{c[2:4]}:{c[4:]}"


def nifti_sidecars(case: PhantomCase) -> list[dict]:
    """dcm2niix-style (BIDS) JSON sidecar per phase: acquisition facts, no identities.

    BIDS units: RepetitionTime and EchoTime in seconds, FlipAngle in degrees.
    """
    p = case.protocol
    out = []
    for ph, desc in enumerate(series_descriptions(case)):
        d = {
            "Modality": "MR",
            "Manufacturer": p.manufacturer,
            "ManufacturersModelName": p.model,
            "MagneticFieldStrength": p.field_t,
            "SeriesDescription": desc,
            "SeriesNumber": 3 + ph,
            "RepetitionTime": p.tr_ms / 1000,
            "EchoTime": p.te_ms / 1000,
            "FlipAngle": p.flip_deg,
            "AcquisitionTime": _bids_clock(p.start_clock_s + float(p.acquisition_s[ph])),
        }
        if ph > 0:
            d["ContrastBolusAgent"] = AGENT_TRADE_NAMES[p.agent]
        out.append(d)
    return out


def write_nifti(case: PhantomCase, images_root: Path, masks_root: Path, labels_root: Path) -> None:
    """``images_root/<case>/<case>_000k.nii.gz``, ``masks_root/<case>.nii.gz`` and tissue labels."""
    final = images_root / case.case_id
    tmp = _tmp_beside(final)
    tmp.mkdir(parents=True)
    try:
        for ph, sidecar in enumerate(nifti_sidecars(case)):
            stem = f"{case.case_id}_{ph:04d}"
            nib.save(_nifti(case.images[ph], case.geometry), tmp / f"{stem}.nii.gz")
            (tmp / f"{stem}.json").write_text(json.dumps(sidecar, indent=1))
        publish(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    masks_root.mkdir(parents=True, exist_ok=True)
    labels_root.mkdir(parents=True, exist_ok=True)
    save_nifti_atomic(case.mask, case.geometry, masks_root / f"{case.case_id}.nii.gz")
    save_nifti_atomic(case.labels, case.geometry, labels_root / f"{case.case_id}_labels.nii.gz")
