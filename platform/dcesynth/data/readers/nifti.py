"""NIfTI trees: ``<root>/<case>/<case>_000k.nii.gz`` (k = 0 pre, 1.. post), masks elsewhere.

The layout of Duke conversions and of MAMA-MIA. dcm2niix-style JSON sidecars beside the images
(``<case>_000k.json``), when present, give acquisition times and scanner facts.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import nibabel as nib
import numpy as np

from dcesynth.data.geometry import LPS_TO_RAS, Geometry
from dcesynth.data.readers.common import CaseError, RawCase, canonical, clock_seconds
from dcesynth.durable import is_machine_error
from dcesynth.names import child

PHASE_FILE = re.compile(r"^(?P<case>.+)_(?P<k>\d{4})\.nii(\.gz)?$")


def list_cases(root: Path) -> list[str]:
    return sorted(p.name for p in Path(root).iterdir() if p.is_dir() and not p.name.startswith("."))


def load_nifti(path: Path) -> tuple[np.ndarray, Geometry]:
    """A NIfTI file as a ``(z, y, x)`` float32 array in stored order with its LPS geometry."""
    img = nib.load(str(path))
    data = np.asarray(img.dataobj, dtype=np.float32)  # applies scl_slope / scl_inter
    if data.ndim == 4 and data.shape[3] == 1:  # (x, y, z, 1), as some converters write
        data = data[..., 0]
    if data.ndim != 3:
        raise ValueError(f"expected a 3-D image, got shape {data.shape}")
    aff = LPS_TO_RAS @ img.affine  # RAS → LPS (the same flip both ways)
    spacing = np.linalg.norm(aff[:3, :3], axis=0)
    direction = aff[:3, :3] / spacing
    geom = Geometry(
        shape=tuple(int(n) for n in data.shape[::-1]),
        spacing=tuple(float(s) for s in spacing),
        origin=tuple(float(v) for v in aff[:3, 3]),
        direction=tuple(float(v) for v in direction.ravel()),
    )
    return np.ascontiguousarray(data.transpose(2, 1, 0)), geom


def read_case(
    root: Path, key: str, masks: Path | None = None, keep: list[int] | None = None
) -> RawCase:
    """Read ``root/key/key_000k.nii.gz`` (+ sidecars) and ``masks/key.nii.gz`` if given.

    ``keep``: phase indices (0 = pre) to load; the others come back as None. Default: all.

    Raises:
        CaseError: naming the case and file.
    """
    root = Path(root)
    folder = root / key
    found: dict[int, Path] = {}
    for f in sorted(folder.iterdir()):
        m = PHASE_FILE.match(f.name)
        if not m:
            continue
        if m.group("case") != key:
            raise CaseError(
                key, f"file names another case ({m.group('case')!r})", str(f.relative_to(root))
            )
        found[int(m.group("k"))] = f
    if 0 not in found:
        raise CaseError(
            key,
            f"missing phase: no pre-contrast image {key}_0000.nii.gz",
            str(folder.relative_to(root)),
        )
    ks = sorted(found)
    if ks != list(range(len(ks))):
        raise CaseError(
            key,
            f"missing phase: phases present {ks}, expected 0..{ks[-1]}",
            str(folder.relative_to(root)),
        )
    volumes, geoms = [], []
    ks_read = [k for k in ks if keep is None or k == 0 or k in keep]
    for k in ks_read:
        try:
            vol, geom = load_nifti(found[k])
        except Exception as e:
            if is_machine_error(e):  # a full disk or I/O error: not the case's fault
                raise
            raise CaseError(
                key, f"unreadable NIfTI ({type(e).__name__}: {e})", str(found[k].relative_to(root))
            ) from None
        volumes.append(vol)
        geoms.append(geom)
    for k, g in zip(ks_read[1:], geoms[1:], strict=True):
        if not g.allclose(geoms[0], atol=1e-2):
            raise CaseError(
                key,
                f"pre and post phase {k} have different geometry: "
                f"{geoms[0].to_dict()} vs {g.to_dict()}",
                str(found[k].relative_to(root)),
            )
    vols, geom, reo = canonical(key, volumes, geoms[0])
    by_phase = dict(zip(ks_read, vols, strict=True))
    vols = [by_phase.get(k) for k in ks]
    mask = None
    if masks is not None:
        mpath = child(masks, key, ".nii.gz")  # never outside masks, whatever the key
        if mpath.is_file():
            try:
                mvol, mgeom = load_nifti(mpath)
            except Exception as e:
                if is_machine_error(e):  # a full disk or I/O error: not the case's fault
                    raise
                raise CaseError(
                    key, f"unreadable mask ({type(e).__name__}: {e})", mpath.name
                ) from None
            if not mgeom.allclose(geoms[0], atol=1e-2):
                raise CaseError(
                    key,
                    f"mask does not match its image: {mgeom.to_dict()} vs {geoms[0].to_dict()}",
                    mpath.name,
                )
            mask = np.ascontiguousarray(reo.array((mvol > 0.5).astype(np.uint8)))
    sidecars = [_sidecar(found[k]) for k in ks]
    times = [clock_seconds(sc.get("AcquisitionTime")) for sc in sidecars]
    acq = [
        round(t - times[0], 3) if t is not None and times[0] is not None else None for t in times
    ]
    first, post = sidecars[0], sidecars[1] if len(sidecars) > 1 else {}
    tr = first.get("RepetitionTime")
    facts = {
        "manufacturer": first.get("Manufacturer"),
        "model": first.get("ManufacturersModelName"),
        "field_t": first.get("MagneticFieldStrength"),
        "tr_ms": round(tr * 1000, 6) if tr is not None else None,  # BIDS stores seconds
        "flip_deg": first.get("FlipAngle"),
        "agent": post.get("ContrastBolusAgent"),
    }
    return RawCase(
        key=key,
        phases=vols,
        geometry=geom,
        acquisition_s=acq,
        facts=facts,
        identity=key.lower(),
        slice_numbers=np.arange(1, geoms[0].shape[0] + 1),
        reorientation=reo,
        mask=mask,
        sources=[str(found[k].relative_to(root)) for k in ks],
    )


def _sidecar(image: Path) -> dict:
    path = image.with_name(image.name.split(".nii")[0] + ".json")
    return json.loads(path.read_text()) if path.is_file() else {}
