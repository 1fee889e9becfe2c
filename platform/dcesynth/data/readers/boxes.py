"""``Annotation_Boxes`` tables (.csv or .xlsx) in the Duke format, and their conventions.

Columns: ``Patient ID, Start Row, End Row, Start Column, End Column, Start Slice, End Slice``.
All indices are 1-based and inclusive. Rows and columns index the stored image matrix (DICOM
Rows × Columns; for NIfTI, j and i). Slices are numbered in the order of the series'
InstanceNumber for DICOM (Duke's convention — InstanceNumber runs along +z in some series and
along −z in others) and along k for NIfTI, which has no InstanceNumber.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dcesynth.data.readers.common import CaseError

COLUMNS = [
    "Patient ID",
    "Start Row",
    "End Row",
    "Start Column",
    "End Column",
    "Start Slice",
    "End Slice",
]


def read_boxes(path: Path) -> dict[str, list[dict[str, int]]]:
    """Rows per case key (a list: duplicates are kept so that each case can report them).

    Raises:
        ValueError: naming the file and the missing columns.
    """
    import pandas as pd  # here, not at the top: ~0.3 s a `dcectl predict` would pay for nothing

    path = Path(path)
    if path.suffix.lower() == ".xlsx":
        df = pd.read_excel(path)
    elif path.suffix.lower() == ".csv":
        df = pd.read_csv(path)
    else:
        raise ValueError(f"{path}: boxes must be .csv or .xlsx")
    df.columns = [str(c).strip() for c in df.columns]
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"{path}: missing columns {missing}; expected {COLUMNS}")
    out: dict[str, list[dict[str, int | None]]] = {}
    for _, row in df.iterrows():
        if pd.isna(row["Patient ID"]):
            continue  # a row that names no case cannot be attributed
        # blank cells stay None: that case reports an incomplete box, the others go on
        values = {c: None if pd.isna(row[c]) else int(row[c]) for c in COLUMNS[1:]}
        out.setdefault(str(row["Patient ID"]).strip(), []).append(values)
    return out


def box_in_stored_indices(
    case: str,
    row: dict[str, int | None],
    shape: tuple[int, int, int],
    slice_numbers: np.ndarray,
    file: str | None = None,
) -> tuple[int, int, int, int, int, int]:
    """A Duke box → 0-based inclusive ``(z0, z1, y0, y1, x0, x1)`` in stored array order.

    Args:
        case: for error messages.
        row: one Annotation_Boxes row.
        shape: stored ``(nz, ny, nx)``.
        slice_numbers: the box "slice" number of each stored slice (see the module docstring).
        file: the boxes file, named in errors.

    Raises:
        CaseError: for an empty box or one outside the volume.
    """
    if blank := [c for c, v in row.items() if v is None]:
        raise CaseError(case, f"incomplete box: blank {blank}", file)
    y0, y1 = row["Start Row"] - 1, row["End Row"] - 1
    x0, x1 = row["Start Column"] - 1, row["End Column"] - 1
    s0, s1 = row["Start Slice"], row["End Slice"]
    if y0 > y1 or x0 > x1 or s0 > s1:
        raise CaseError(case, f"empty box {row}", file)
    nz, ny, nx = shape
    inside = (
        y0 >= 0
        and y1 < ny
        and x0 >= 0
        and x1 < nx
        and s0 >= slice_numbers.min()
        and s1 <= slice_numbers.max()
    )
    if not inside:
        raise CaseError(
            case, f"box {row} lies outside the volume of {nz}×{ny}×{nx} (slices×rows×cols)", file
        )
    zs = np.flatnonzero((slice_numbers >= s0) & (slice_numbers <= s1))
    return int(zs.min()), int(zs.max()), y0, y1, x0, x1
