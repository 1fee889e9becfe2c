"""What INPUT holds for prediction: one patient or many, DICOM or NIfTI.

* a NIfTI file: one patient (``<case>_0000.nii.gz`` names the case ``<case>``);
* a folder with DICOM files anywhere below it (one series, one study, or a PACS export of many
  patients): patients by PatientID from the headers, as ingest finds them;
* otherwise a folder of NIfTI files (one patient each; ``<case>_000k`` files grouped by case,
  the pre-contrast ``_0000`` used) and NIfTI trees ``<case>/<case>_0000.nii.gz``.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from dcesynth.data.readers.discovery import survey
from dcesynth.data.readers.nifti import PHASE_FILE


@dataclass(frozen=True)
class PatientInput:
    """One patient to predict for.

    Attributes:
        key: PatientID (DICOM) or case name (NIfTI).
        kind: ``dicom`` or ``nifti``.
        root: DICOM: the folder ``files`` are relative to; NIfTI: the file.
        files: DICOM: the patient's files.
        where: the patient's folder or file relative to INPUT (for reports).
    """

    key: str
    kind: str
    root: str
    files: tuple[str, ...] = ()
    where: str = ""


def _stem(path: Path) -> str:
    return path.name.split(".nii")[0]


def _nifti_patients(root: Path, files: list[Path]) -> tuple[list[PatientInput], list[dict]]:
    """Group ``<case>_000k`` files by case (the pre, ``_0000``, when present); any other name
    is a patient of its own."""
    by_case: dict[str, dict[int, Path]] = {}
    for f in files:
        m = PHASE_FILE.match(f.name)
        case, k = (m.group("case"), int(m.group("k"))) if m else (_stem(f), 0)
        by_case.setdefault(case, {})[k] = f
    patients, ignored = [], []
    for case, phases in sorted(by_case.items()):
        first = min(phases)  # _0000 if present; else a post phase, which the reader refuses
        f = phases[first]
        patients.append(PatientInput(case, "nifti", str(f), where=str(f.relative_to(root))))
        ignored += [
            {"source": str(g.relative_to(root)), "reason": f"post-contrast phase {k} of {case}"}
            for k, g in sorted(phases.items())
            if k != first
        ]
    return patients, ignored


def find_patients(
    source: Path, address: str | None = None
) -> tuple[list[PatientInput], list[dict], list[dict]]:
    """Patients in ``source``, patients that cannot be used (``{"patient", "where", "error"}``)
    and what was left out (``{"source", "reason"}``).

    Raises:
        ValueError: no such path, a single file that is not NIfTI, nothing usable found.
    """
    p = Path(source)
    if not p.exists():
        raise ValueError(f"INPUT {p}: no such file or folder")
    if p.is_file():
        if not re.search(r"\.nii(\.gz)?$", p.name):
            raise ValueError(
                f"INPUT {p}: a single file that is not NIfTI (.nii, .nii.gz); for DICOM give the "
                "series' folder, the patient's folder or a folder of patients"
            )
        pts, ignored = _nifti_patients(p.parent, [p])
        return pts, [], ignored
    found = survey(p)
    if found.has_dicom():
        from dcesynth.data.ingest.source import Source, discover

        cohort = discover(Source("dicom", p, None, None, "instance", found.dicom), address, None)
        patients = [
            PatientInput(k, "dicom", str(p), tuple(fs), os.path.commonpath(fs) if fs else ".")
            for k, fs in sorted(cohort.cases.items())
            if k not in cohort.errors
        ]
        bad = [
            {"patient": k, "where": "", "error": f"{k}: {e}"}
            for k, e in sorted(cohort.errors.items())
        ]
        return patients, bad, list(cohort.ignored)
    files = [*p.glob("*.nii"), *p.glob("*.nii.gz")]
    for tree in found.nifti_roots:
        if tree.is_relative_to(p):  # (a case folder given as INPUT makes its parent a "tree")
            files += [*tree.glob("*/*.nii"), *tree.glob("*/*.nii.gz")]
    files = [f for f in files if not f.name.startswith(".")]
    patients, ignored = _nifti_patients(p, sorted(set(files)))
    if not patients:
        raise ValueError(
            f"INPUT {p}: no DICOM image and no NIfTI file found (a pre-contrast series' folder, a "
            "patient's folder, a folder of patients, or .nii/.nii.gz files)"
        )
    return patients, [], ignored
