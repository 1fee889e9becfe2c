"""Issue 23, ingest: a full disk, two processes on one folder, hostile PatientIDs, CT files.

Each test injects one fault and asserts what the user gets: a full disk fails the ingest (one
line naming the path), marks nothing complete, and the re-run gives the dataset a clean ingest
gives, byte for byte; a second ingest into one folder is refused naming the first; a PatientID
never makes a mask lookup leave ``--masks``; a CT file is reported by name and modality.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.uid import CTImageStorage, generate_uid
from typer.testing import CliRunner

from dcesynth.cli.app import app
from dcesynth.data.ingest import IngestConfig, ingest
from dcesynth.data.ingest import pipeline as pipeline_mod
from dcesynth.data.ingest.prepare import CaseSpec, prepare_case
from dcesynth.data.ingest.source import DatasetError
from dcesynth.data.ingest.transforms import pseudonym
from dcesynth.durable import MachineError
from dcesynth.locks import FolderLocked
from dcesynth.names import safe_name

CFG = IngestConfig(image_size=32, phases=(1, 2), split={"ratios": {"train": 0.5, "val": 0.5}})
TIMES = [0.0, 60.0, 120.0]


def _files(root: Path) -> dict[str, bytes]:
    """Every file of a dataset by relative path; the manifest without its creation time."""
    out = {}
    for f in sorted(p for p in root.rglob("*") if p.is_file()):
        data = f.read_bytes()
        if f.name == "manifest.json":
            m = json.loads(data)
            m.pop("created")
            data = json.dumps(m, sort_keys=True).encode()
        out[str(f.relative_to(root))] = data
    return out


def _leftovers(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if p.name.startswith(".tmp-"))


@pytest.fixture(scope="module")
def clean(ray_session, phantom_source: Path, tmp_path_factory) -> Path:
    """The NIfTI cohort ingested on a healthy disk: what every re-run must reproduce."""
    out = tmp_path_factory.mktemp("clean") / "ds"
    ingest(phantom_source / "nifti" / "images", out, CFG, progress=False)
    return out


# --- a full disk ------------------------------------------------------------------------------


@pytest.mark.slow
def test_full_disk_fails_marks_nothing_and_rerun_completes(
    clean: Path, phantom_source: Path, small_disk
) -> None:
    """A real ENOSPC (a nearly full tmpfs) while Ray tasks write volumes and the driver writes
    shards: the ingest fails naming the path, nothing is marked complete, and once space is
    freed the same command produces the clean dataset."""
    src = phantom_source / "nifti" / "images"
    out = small_disk.root / "ds"
    need = sum(len(b) for b in _files(clean).values())
    small_disk.fill(leave=need // 3)
    with pytest.raises(MachineError) as e:
        ingest(src, out, CFG, progress=False)
    msg = str(e.value)
    assert "No space left on device (ENOSPC)" in msg and str(small_disk.root) in msg
    assert "free on that file system" in msg and "nothing marked complete" in msg
    assert "\n" not in msg
    assert not (out / "manifest.json").exists() and _leftovers(small_disk.root) == []
    small_disk.free()
    res = ingest(src, out, CFG, progress=False)
    assert not res.up_to_date and not res.skipped
    assert _files(out) == _files(clean)


def _enospc_on_second_shard(monkeypatch) -> None:
    real = pipeline_mod.ShardWriter.write
    calls = {"n": 0}

    def write(self, table):
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self.folder))
        return real(self, table)

    monkeypatch.setattr(pipeline_mod.ShardWriter, "write", write)


def test_enospc_in_the_driver_fails_and_rerun_is_identical(
    clean: Path, phantom_source: Path, tmp_path: Path, monkeypatch
) -> None:
    """The same fault without root (a patched shard writer raising ENOSPC on the 2nd case)."""
    src, out = phantom_source / "nifti" / "images", tmp_path / "ds"
    _enospc_on_second_shard(monkeypatch)
    with pytest.raises(MachineError, match=r"ENOSPC.*nothing marked complete|nothing marked"):
        ingest(src, out, CFG, progress=False)
    assert not out.exists() and _leftovers(tmp_path) == []
    monkeypatch.undo()
    again = ingest(src, out, CFG, progress=False)
    assert not again.up_to_date  # not "up to date: nothing to do": the work is redone
    assert _files(out) == _files(clean)


@pytest.mark.parametrize("err", [errno.ENOSPC, errno.EIO, errno.EACCES])
def test_an_os_error_in_a_case_task_is_the_machines(
    phantom_source: Path, tmp_path: Path, monkeypatch, err: int
) -> None:
    """Inside the Ray task: a failing volume write comes back marked ``machine`` (the driver
    stops the ingest), never as a skipped case."""
    import nibabel as nib

    def save(img, path):
        raise OSError(err, os.strerror(err))

    monkeypatch.setattr(nib, "save", save)
    root = phantom_source / "nifti" / "images"
    key = sorted(p.name for p in root.iterdir())[0]
    (tmp_path / "volumes").mkdir()
    spec = CaseSpec(
        key, "c1", "train", "nifti", str(root), None, (), "array", str(tmp_path / "volumes")
    )
    res = prepare_case(spec, CFG)
    assert not res["ok"] and res["machine"] and res["errno"] == err
    assert res["filename"] == str(tmp_path / "volumes")


def test_cli_prints_one_line_and_traceback_only_with_verbose(
    ray_session, phantom_source: Path, tmp_path: Path, monkeypatch
) -> None:
    _enospc_on_second_shard(monkeypatch)
    args = ["ingest", str(phantom_source / "nifti" / "images"), "--out", str(tmp_path / "ds")]
    args += ["--image-size", "32", "--phases", "1,2"]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 1, res.output
    errors = [ln for ln in res.output.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and "No space left on device" in errors[0], res.output
    assert "Traceback" not in res.output
    _enospc_on_second_shard(monkeypatch)
    res = CliRunner().invoke(app, ["--verbose", *args])
    assert res.exit_code == 1 and "Traceback" in res.output, res.output
    from dcesynth.cli import errors as cli_errors

    cli_errors.VERBOSE["on"] = False


# --- two processes on one folder ----------------------------------------------------------------


def test_a_second_ingest_is_refused_and_touches_nothing(
    phantom_source: Path, tmp_path: Path, held_by_other
) -> None:
    out = tmp_path / "ds"
    holder = held_by_other(out, "ingest")
    work = tmp_path / ".tmp-ds-0a1b2c3d"  # the first ingest's folder in progress
    work.mkdir()
    with pytest.raises(FolderLocked, match=rf"PID {holder.pid} .*started"):
        ingest(phantom_source / "nifti" / "images", out, CFG, progress=False)
    assert work.is_dir() and not out.exists()


# --- every case failed ------------------------------------------------------------------------


def test_all_cases_failed_lists_every_reason_and_writes_a_report(
    ray_session, phantom_source: Path, tmp_path: Path
) -> None:
    src = tmp_path / "images"
    shutil.copytree(phantom_source / "nifti" / "images", src)
    keys = sorted(p.name for p in src.iterdir())
    for k in keys:  # every case loses its pre-contrast image
        (src / k / f"{k}_0000.nii.gz").unlink()
    out = tmp_path / "ds"
    with pytest.raises(DatasetError) as e:
        ingest(src, out, CFG, progress=False)
    for k in keys:
        assert f"{k}: " in str(e.value) and "missing phase" in str(e.value)
    report = json.loads((out / "ingest_report.json").read_text())
    assert sorted(s["source"] for s in report["skipped"]) == keys
    shutil.rmtree(src)
    shutil.copytree(phantom_source / "nifti" / "images", src)  # fixed: the same --out works
    assert ingest(src, out, CFG, progress=False).cases


# --- hostile PatientIDs -----------------------------------------------------------------------


def _set_patient_id(folder: Path, pid: str) -> None:
    for f in folder.rglob("*.dcm"):
        ds = pydicom.dcmread(f)
        ds.PatientID = pid
        ds.save_as(f)


@pytest.mark.filterwarnings("ignore:The value length")  # a long hostile PatientID
def test_patient_ids_never_read_a_mask_outside_masks(ray_session, source_copy: Path) -> None:
    """``../../evil`` and an absolute PatientID: the files they spell outside ``--masks`` are
    never opened (they are not NIfTI: reading one would fail the case); the mask under the
    key's safe name inside ``--masks`` is used."""
    dicom = source_copy / "dicom"
    folders = sorted(p for p in dicom.iterdir() if p.is_dir())
    for extra in folders[2:]:
        shutil.rmtree(extra)
    outside = source_copy / "outside"
    masks = outside / "a" / "masks"
    masks.mkdir(parents=True)
    absolute = str(outside / "abs_evil")
    keys = {"../../evil": folders[0], absolute: folders[1]}
    for key, folder in keys.items():
        real_mask = source_copy / "nifti" / "masks" / f"{folder.name}.nii.gz"
        _set_patient_id(folder, key)
        if key == absolute:  # its own mask, under its safe name inside --masks
            shutil.copy(real_mask, masks / f"{safe_name(key)}.nii.gz")
    bait = [outside / "evil.nii.gz", Path(absolute + ".nii.gz")]
    for b in bait:
        b.write_bytes(b"not a mask: reading this fails the case")
    cfg = IngestConfig(image_size=32, phases=(1, 2), masks=masks, split={"ratios": {"train": 1}})
    out = source_copy / "ds"
    res = ingest(dicom, out, cfg, progress=False)
    assert not res.skipped, res.skipped
    import pyarrow.parquet as pq

    rows = {r["case_id"]: r for r in pq.read_table(out / "cases.parquet").to_pylist()}
    assert not rows[pseudonym("../../evil", cfg.salt)]["has_mask"]
    assert rows[pseudonym(absolute, cfg.salt)]["has_mask"]
    report = json.loads((out / "ingest_report.json").read_text())
    assert report["names"] == {k: safe_name(k) for k in keys}
    assert all(b.read_bytes().startswith(b"not a mask") for b in bait)
    assert sorted(p.name for p in outside.iterdir()) == ["a", "abs_evil.nii.gz", "evil.nii.gz"]


# --- modality ---------------------------------------------------------------------------------


def _ct(ds: pydicom.Dataset) -> pydicom.Dataset:
    ds.Modality, ds.SOPClassUID = "CT", CTImageStorage
    return ds


def test_a_ct_series_is_left_out_naming_file_and_modality(ray_session, dcm, tmp_path) -> None:
    src, study = tmp_path / "src", generate_uid()
    dcm.write_phases(src / "mr", "P1", dcm.truth(3, 4, 16, 16), TIMES, study=study)
    ct = _ct(dcm.mr_slice("P1", study, generate_uid(), "ax dyn pre", 0, np.ones((16, 16))))
    ct_file = dcm.save(ct, src / "ct" / "CT0001")
    cfg = IngestConfig(image_size=16, phases=(1, 2), split={"ratios": {"train": 1.0}})
    res = ingest(src, tmp_path / "ds", cfg, progress=False)
    assert res.cases == {"train": 1} and not res.skipped  # not "2 series look pre-contrast"
    report = json.loads((tmp_path / "ds" / "ingest_report.json").read_text())
    hit = [i for i in report["ignored"] if i.get("file") == str(ct_file.relative_to(src))]
    assert (
        len(hit) == 1
        and "modality CT" in hit[0]["reason"]
        and "CT Image Storage" in hit[0]["reason"]
    )


def test_a_ct_file_inside_the_mr_pre_series_refuses_the_case(ray_session, dcm, tmp_path) -> None:
    src, study = tmp_path / "src", generate_uid()
    files = dcm.write_phases(src / "mr", "P1", dcm.truth(3, 4, 16, 16), TIMES, study=study)
    pre_uid = pydicom.dcmread(files[0]).SeriesInstanceUID
    ct = _ct(dcm.mr_slice("P1", study, pre_uid, "ax dyn pre", 4, np.ones((16, 16))))
    ct_file = dcm.save(ct, src / "mr" / "CT_IN_PRE")
    cfg = IngestConfig(image_size=16, phases=(1, 2), split={"ratios": {"train": 1.0}})
    with pytest.raises(DatasetError) as e:
        ingest(src, tmp_path / "ds", cfg, progress=False)
    msg = str(e.value)
    assert str(ct_file.relative_to(src)) in msg and "modality CT" in msg
    assert "duplicate slice positions" not in msg
