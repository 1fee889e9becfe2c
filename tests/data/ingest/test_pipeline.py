"""Ingest round trips on the phantom: every layout (DICOM tree, NIfTI tree, the whole output
folder, a flat folder of DICOM files) gives one dataset, equal to the truth."""

from __future__ import annotations

import gzip
import json
import logging
import shutil
import uuid
from pathlib import Path

import nibabel as nib
import numpy as np
import pyarrow.parquet as pq
import pytest

from dcesynth.data.ingest import IngestConfig, ingest, source
from dcesynth.data.ingest.shards import images
from dcesynth.data.ingest.transforms import minmax, pseudonym, unnormalise

CFG = IngestConfig(image_size=48, phases=(1, 2, 3, 4), selection="all")


def flat_copy(tree: Path, flat: Path) -> None:
    """Every DICOM file of every case in one folder, under random names (a PACS export)."""
    flat.mkdir()
    for f in sorted(tree.rglob("*.dcm")):
        shutil.copy(f, flat / uuid.uuid4().hex)


# SOURCE given to ingest, and options beside CFG
LAYOUTS = {
    "dicom": ("dicom", {}),
    "nifti": ("nifti/images", {}),
    "root": (".", {}),  # the phantom's output folder: DICOM and NIfTI side by side
    "root-nifti": (".", {"format": "nifti"}),
    "flat": ("<flat>", {"boxes": "Annotation_Boxes.csv", "masks": "nifti/masks"}),
    # the same in local processes (engine local, what `dcectl ingest` runs without a cluster):
    # header scan and cases off Ray, the dataset byte for byte the Ray engine's
    "flat-local": ("<flat>", {"boxes": "Annotation_Boxes.csv", "masks": "nifti/masks"}),
}


@pytest.fixture(scope="module")
def datasets(ray_session, phantom_source: Path, tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("datasets")
    flat_copy(phantom_source / "dicom", root / "export")
    out, results = {}, {}
    for name, (where, extra) in LAYOUTS.items():
        src = root / "export" if where == "<flat>" else phantom_source / where
        opts = {k: phantom_source / v if k != "format" else v for k, v in extra.items()}
        cfg = IngestConfig(**{**CFG.model_dump(), **opts})
        with pytest.MonkeyPatch.context() as mp:
            if name.startswith("flat"):  # headers read by tasks of 64 files, as for many
                mp.setattr(source, "SCAN_CHUNK", 64)
            engine = "local" if name.endswith("-local") else "auto"  # auto: this session's Ray
            res = ingest(src, root / name, cfg, progress=False, engine=engine)
        assert not res.skipped and not res.ignored and sum(res.cases.values()) == 4, name
        out[name], results[name] = root / name, res
    assert results["root"].source_format == "dicom"
    assert results["root"].notes == [
        "SOURCE holds DICOM files and a NIfTI tree (nifti/images): reading the DICOM files "
        "(`--format nifti` reads the NIfTI tree)"
    ]
    assert results["root-nifti"].source_format == "nifti"
    assert results["root-nifti"].notes == ["reading the NIfTI tree nifti/images below SOURCE"]
    assert results["dicom"].notes == results["nifti"].notes == results["flat"].notes == []
    assert results["flat-local"].notes == []
    return out


def _files(d: Path) -> list[Path]:
    return sorted(p.relative_to(d) for p in d.rglob("*") if p.is_file())


@pytest.mark.parametrize("other", [k for k in LAYOUTS if k != "dicom"])
def test_every_layout_gives_the_identical_dataset(datasets: dict[str, Path], other: str) -> None:
    """The phantom's DICOM tree, its NIfTI tree, its whole output folder (read as DICOM, or as
    NIfTI when asked) and all its DICOM files in one folder: byte for byte one dataset."""
    a, b = datasets["dicom"], datasets[other]
    assert _files(a) == _files(b)
    for f in _files(a):
        if f.name == "manifest.json":  # names the source format and has a timestamp
            ma, mb = json.loads((a / f).read_text()), json.loads((b / f).read_text())
            assert ma["counts"] == mb["counts"] and ma["phases"] == mb["phases"]
            assert ma["source_format"] == "dicom"
            assert mb["source_format"] == ("nifti" if "nifti" in other else "dicom")
            continue
        assert (a / f).read_bytes() == (b / f).read_bytes(), f


def test_slices_match_phantom_ground_truth(datasets: dict[str, Path], phantom_cases) -> None:
    """Geometry, box, mask and phase order of every case against the phantom's own record."""
    d = datasets["dicom"]
    rows = {r["case_id"]: r for r in pq.read_table(d / "cases.parquet").to_pylist()}
    tables = [pq.read_table(f) for f in sorted((d / "slices").rglob("*.parquet"))]
    by_case: dict[str, list] = {}
    for t in tables:
        pre, post, mask = (images(t, k) for k in ("pre", "post", "mask"))  # shapes: field metadata
        assert post.shape[1:] == (4, 48, 48) and pre.dtype == np.uint8
        for i, (cid, z) in enumerate(
            zip(t.column("case_id").to_pylist(), t.column("slice_index").to_pylist(), strict=True)
        ):
            by_case.setdefault(cid, []).append(
                (z, pre[i], post[i], mask[i], t.column("box")[i].as_py())
            )
    for key, case in phantom_cases.items():
        cid = pseudonym(key, CFG.salt)
        row = rows[cid]
        g = case.geometry.as_float32()
        assert row["shape"] == list(g.shape) and row["spacing"] == pytest.approx(list(g.spacing))
        assert row["origin"] == pytest.approx(list(g.origin))
        assert row["box_zyx"] == case.ground_truth["box_zyx"]
        assert row["phases_kept"] == [0, 1, 2, 3, 4]
        times = case.protocol.acquisition_s
        assert row["acquisition_s"] == pytest.approx(list(times), abs=1e-3)
        expected = [minmax(case.images[p].astype(np.float32)) for p in range(5)]
        got = sorted(by_case[cid], key=lambda s: s[0])
        assert [s[0] for s in got] == list(range(case.geometry.shape[0]))  # selection "all"
        z0, z1, y0, y1, x0, x1 = case.ground_truth["box_zyx"]
        for z, pre, post, mask, box in got:
            np.testing.assert_array_equal(pre, expected[0][z])  # 48² in, 48² out: no resampling
            for p in range(4):  # phase order: post k is the k-th acquisition
                np.testing.assert_array_equal(post[p], expected[p + 1][z])
            np.testing.assert_array_equal(mask, case.mask[z])
            assert box == ([y0, y1, x0, x1] if z0 <= z <= z1 else None)
        vol = np.asarray(nib.load(d / "volumes" / f"{cid}_0002.nii.gz").dataobj).transpose(2, 1, 0)
        np.testing.assert_array_equal(vol, expected[2])
        # each phase's window: its extremes, so the uint8 volume maps back to within half a step
        raw = case.images[2].astype(np.float32)
        lo, hi = row["intensity_window"][2]
        assert (lo, hi) == pytest.approx((float(raw.min()), float(raw.max())))
        assert np.abs(unnormalise(vol, (lo, hi)) - raw).max() <= (hi - lo) / 510 * 1.001
        assert len(row["intensity_window"]) == len(row["phases_kept"])


def test_tumour_selection_keeps_box_plus_margin(
    ray_session, phantom_source, phantom_cases, tmp_path
):
    cfg = IngestConfig(image_size=32, phases=(1,), selection="tumour", margin_fraction=0.5)
    ingest(phantom_source / "dicom", tmp_path / "ds", cfg, progress=False)
    rows = pq.read_table(tmp_path / "ds" / "cases.parquet").to_pylist()
    for key, case in phantom_cases.items():
        row = next(r for r in rows if r["case_id"] == pseudonym(key, cfg.salt))
        z0, z1 = case.ground_truth["box_zyx"][:2]
        m = int(np.ceil(0.5 * (z1 - z0 + 1)))
        lo, hi = max(0, z0 - m), min(case.geometry.shape[0] - 1, z1 + m)
        assert row["n_slices"] == hi - lo + 1 and row["n_tumour_slices"] == z1 - z0 + 1


def _texts(d: Path) -> dict[str, bytes]:
    """Every byte a reader could see: raw files, gunzipped NIfTI, decoded Parquet values."""
    out = {}
    for f in (p for p in d.rglob("*") if p.is_file()):
        out[str(f)] = f.read_bytes()
        if f.suffix == ".gz":
            out[f"{f}:gunzip"] = gzip.decompress(f.read_bytes())
        if f.suffix == ".parquet":
            t = pq.read_table(f)
            cols = [c for c in t.column_names if c not in ("pre", "post", "mask")]
            out[f"{f}:values"] = (
                json.dumps(t.select(cols).to_pylist(), default=str) + str(t.schema.metadata)
            ).encode()
    return out


def test_no_identity_reaches_the_dataset_or_logs(ray_session, phantom_source, tmp_path, caplog):
    """Names, birth dates, accession numbers, other IDs and patient IDs of the phantom's DICOM
    headers appear in no file of the dataset (raw, gunzipped or decoded) and in no log line."""
    import csv

    with (phantom_source / "identities.csv").open() as f:
        identities = list(csv.DictReader(f))
    secrets = [v for idn in identities for k, v in idn.items() if k != "Patient ID"]
    secrets += [idn["PatientName"].split("^")[0] for idn in identities]  # surname alone
    assert len(secrets) == 5 * len(identities)
    caplog.set_level(logging.DEBUG)
    ingest(phantom_source / "dicom", tmp_path / "ds", CFG, progress=False)
    blobs = _texts(tmp_path / "ds")
    assert len(blobs) > 10
    for s in secrets:
        needle = s.encode()
        assert not [k for k, b in blobs.items() if needle in b], f"{s!r} leaked"
        assert s not in caplog.text
    # The folder names (Duke's Patient ID) are not in the dataset either: ids are pseudonyms.
    for idn in identities:
        assert not [k for k, b in blobs.items() if idn["Patient ID"].encode() in b]
