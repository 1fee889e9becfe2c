"""DICOM written with pydicom for the discovery and dynamic-series tests.

Classic MR slices with several vendors' temporal tags (GE-like TriggerTime, Siemens-like
AcquisitionTime/ContentTime, Philips-like TemporalPositionIdentifier), an enhanced multi-frame
MR object, and objects that are no DCE image: a structured report, a presentation state, a
secondary capture without pixel geometry, a DICOMDIR. File names are random, so that nothing
can depend on them. Volumes are ``(t, z, y, x)`` arrays stored along +z with identity
orientation, which is already the readers' canonical orientation.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import (
    BasicTextSRStorage,
    EnhancedMRImageStorage,
    ExplicitVRLittleEndian,
    GrayscaleSoftcopyPresentationStateStorage,
    MediaStorageDirectoryStorage,
    MRImageStorage,
    SecondaryCaptureImageStorage,
    generate_uid,
)

START_S = 8 * 3600.0  # 08:00:00, the first frame of every series written here
SPACING = (0.8, 1.2)  # between rows, between columns (mm): unequal, to catch swaps
DZ = 3.0
VENDORS = ("ge", "siemens", "siemens-content", "philips")


def clock(seconds: float) -> str:
    h, rem = divmod(seconds % 86400, 3600)
    m, s = divmod(rem, 60)
    return f"{int(h):02d}{int(m):02d}{s:09.6f}"


def truth(t: int, z: int, ny: int = 12, nx: int = 10, seed: int = 0) -> np.ndarray:
    """Distinct random uint16 volumes (t, z, y, x)."""
    return np.random.default_rng(seed).integers(0, 4000, (t, z, ny, nx)).astype(np.uint16)


def save(ds: Dataset, path: Path) -> Path:
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    path.parent.mkdir(parents=True, exist_ok=True)
    pydicom.dcmwrite(path, ds, enforce_file_format=True)
    return path


def random_name(folder: Path) -> Path:
    return folder / uuid.uuid4().hex[:12]


def base(patient: str, study: str, sop_class: str, modality: str = "MR") -> Dataset:
    ds = Dataset()
    ds.PatientID, ds.PatientName = patient, f"TEST^{patient}"
    ds.StudyInstanceUID, ds.StudyDate = study, "20240101"
    ds.Modality, ds.SOPClassUID, ds.SOPInstanceUID = modality, sop_class, generate_uid()
    return ds


def image(ds: Dataset, pixels: np.ndarray) -> Dataset:
    ds.Rows, ds.Columns = pixels.shape[-2:]
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.PixelData = np.ascontiguousarray(pixels, np.uint16).tobytes()
    return ds


def mr_slice(
    patient: str, study: str, series: str, desc: str, z: int, pixels: np.ndarray, **tags
) -> Dataset:
    ds = base(patient, study, MRImageStorage)
    ds.SeriesInstanceUID, ds.SeriesDescription, ds.SeriesNumber = series, desc, 3
    ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    ds.ImagePositionPatient = [-10.0, -20.0, 5.0 + z * DZ]
    ds.PixelSpacing = list(SPACING)
    ds.SliceThickness = DZ
    for k, v in tags.items():
        setattr(ds, k, v)
    return image(ds, pixels)


def write_phases(
    folder: Path | list[Path],
    patient: str,
    vols: np.ndarray,
    times_s: list[float],
    study: str | None = None,
    descs: list[str] | None = None,
) -> list[Path]:
    """Duke-like: one series per phase ("ax dyn pre", "ax dyn 1st pass", …); ``folder`` may
    be one per phase (a patient spread over folders)."""
    study = study or generate_uid()
    descs = descs or ["ax dyn pre"] + [f"ax dyn {n} pass" for n in ("1st", "2nd", "3rd", "4th")]
    folders = folder if isinstance(folder, list) else [folder] * len(vols)
    out = []
    for t, vol in enumerate(vols):
        series = generate_uid()
        agent = {"ContrastBolusAgent": "GADAVIST"} if t else {}
        for z in range(vol.shape[0]):
            ds = mr_slice(
                patient,
                study,
                series,
                descs[t],
                z,
                vol[z],
                InstanceNumber=vol.shape[0] - z,  # runs against z, as in some Duke series
                AcquisitionTime=clock(START_S + times_s[t]),
                **agent,
            )
            out.append(save(ds, random_name(folders[t])))
    return out


def write_dynamic(
    folder: Path,
    patient: str,
    vols: np.ndarray,
    times_s: list[float],
    vendor: str,
    desc: str = "ax dyn",
    study: str | None = None,
) -> list[Path]:
    """All time points in ONE series, told apart the way ``vendor`` does it:

    * ge: TriggerTime (ms) per time point; AcquisitionTime and ContentTime of the series start.
    * siemens: AcquisitionTime and ContentTime per time point and slice (a 2-D acquisition:
      each slice 0.2 s after the previous one), no TriggerTime.
    * siemens-content: ContentTime only.
    * philips: TemporalPositionIdentifier (1-based), AcquisitionTime per time point,
      TriggerTime 0 for all.
    """
    study, series = study or generate_uid(), generate_uid()
    nt, nz = vols.shape[:2]
    out = []
    for t in range(nt):
        for z in range(nz):
            tags: dict = {"InstanceNumber": t * nz + z + 1}
            if t:
                tags["ContrastBolusAgent"] = "GADAVIST"
            if vendor == "ge":
                tags.update(TriggerTime=times_s[t] * 1000, AcquisitionTime=clock(START_S))
                tags.update(ContentTime=clock(START_S), Manufacturer="GE MEDICAL SYSTEMS")
            elif vendor == "siemens":
                at = clock(START_S + times_s[t] + 0.2 * z)
                tags.update(AcquisitionTime=at, ContentTime=at, Manufacturer="SIEMENS")
            elif vendor == "siemens-content":
                tags.update(ContentTime=clock(START_S + times_s[t]), Manufacturer="SIEMENS")
            elif vendor == "philips":
                tags.update(TemporalPositionIdentifier=t + 1, NumberOfTemporalPositions=nt)
                tags.update(AcquisitionTime=clock(START_S + times_s[t]), TriggerTime=0)
                tags.update(Manufacturer="Philips Medical Systems")
            else:
                raise ValueError(f"vendor {vendor!r}: one of {VENDORS}")
            ds = mr_slice(patient, study, series, desc, z, vols[t, z], **tags)
            out.append(save(ds, random_name(folder)))
    return out


def write_enhanced(
    path: Path,
    patient: str,
    vols: np.ndarray,
    times_s: list[float],
    desc: str = "ax dyn enhanced",
    study: str | None = None,
) -> Path:
    """One enhanced MR object: per-frame position and FrameContentSequence (temporal position
    index, frame acquisition/reference date-times), shared pixel measures and orientation;
    frames stored slice-major and in a shuffled order."""
    nt, nz = vols.shape[:2]
    ds = base(patient, study or generate_uid(), EnhancedMRImageStorage)
    ds.SeriesInstanceUID, ds.SeriesDescription, ds.SeriesNumber = generate_uid(), desc, 5
    ds.InstanceNumber, ds.Manufacturer = 1, "Philips"
    shared = Dataset()
    measures, orient = Dataset(), Dataset()
    measures.PixelSpacing, measures.SliceThickness = list(SPACING), DZ
    orient.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    shared.PixelMeasuresSequence = Sequence([measures])
    shared.PlaneOrientationSequence = Sequence([orient])
    ds.SharedFunctionalGroupsSequence = Sequence([shared])
    order = [(t, z) for z in range(nz) for t in range(nt)]
    np.random.default_rng(1).shuffle(order)
    per = []
    for t, z in order:
        item, pos, content = Dataset(), Dataset(), Dataset()
        pos.ImagePositionPatient = [-10.0, -20.0, 5.0 + z * DZ]
        content.TemporalPositionIndex = t + 1
        content.InStackPositionNumber = z + 1
        content.FrameAcquisitionDateTime = "20240101" + clock(START_S + times_s[t])
        content.FrameReferenceDateTime = "20240101" + clock(START_S + times_s[t] + 0.5)
        item.PlanePositionSequence = Sequence([pos])
        item.FrameContentSequence = Sequence([content])
        per.append(item)
    ds.PerFrameFunctionalGroupsSequence = Sequence(per)
    ds.NumberOfFrames = len(order)
    image(ds, np.stack([vols[t, z] for t, z in order]))
    return save(ds, path)


def write_sr(path: Path, patient: str, study: str) -> Path:
    ds = base(patient, study, BasicTextSRStorage, "SR")
    ds.SeriesInstanceUID, ds.SeriesDescription = generate_uid(), "ax dyn report"
    ds.ValueType, ds.CompletionFlag = "CONTAINER", "COMPLETE"
    return save(ds, path)


def write_pr(path: Path, patient: str, study: str) -> Path:
    ds = base(patient, study, GrayscaleSoftcopyPresentationStateStorage, "PR")
    ds.SeriesInstanceUID, ds.SeriesDescription = generate_uid(), "ax dyn annotations"
    ds.ContentLabel = "ANNOTATION"
    return save(ds, path)


def write_sc(path: Path, patient: str, study: str) -> Path:
    """A screenshot of a DCE curve: pixels, no position or orientation in the patient."""
    ds = base(patient, study, SecondaryCaptureImageStorage, "OT")
    ds.SeriesInstanceUID, ds.SeriesDescription = generate_uid(), "ax dyn curve screenshot"
    ds.ConversionType = "WSD"
    return save(image(ds, np.zeros((8, 8), np.uint16)), path)


def write_dicomdir(path: Path) -> Path:
    ds = Dataset()
    ds.SOPClassUID, ds.SOPInstanceUID = MediaStorageDirectoryStorage, generate_uid()
    ds.FileSetID = "EXPORT"
    ds.DirectoryRecordSequence = Sequence([])
    return save(ds, path)


class Dicom:
    """The writers above, for tests (a fixture hands out this namespace)."""

    clock = staticmethod(clock)
    truth = staticmethod(truth)
    mr_slice = staticmethod(mr_slice)
    save = staticmethod(save)
    random_name = staticmethod(random_name)
    write_phases = staticmethod(write_phases)
    write_dynamic = staticmethod(write_dynamic)
    write_enhanced = staticmethod(write_enhanced)
    write_sr = staticmethod(write_sr)
    write_pr = staticmethod(write_pr)
    write_sc = staticmethod(write_sc)
    write_dicomdir = staticmethod(write_dicomdir)
    VENDORS = VENDORS


@pytest.fixture
def dcm() -> type[Dicom]:
    return Dicom
