"""``predict`` on the phantom's DICOM series: the same voxels as ``synthesize`` on the prepared
test split, written on the input's exact grid, as NIfTI and as synthetic DICOM series."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pyarrow.parquet as pq
import pydicom
import pytest
import SimpleITK as sitk

from dcesynth.data.ingest.transforms import pseudonym
from dcesynth.data.readers.nifti import load_nifti
from dcesynth.data.readers.pre import read_pre_dicom
from dcesynth.evaluation.synthesize import synthesize
from dcesynth.inference.predict import predict

PHASES = (1, 2, 3)


def _test_case(dataset: Path, cohort: Path) -> tuple[str, str]:
    """The (case_id, patient) of the test split's first case, found by pseudonym."""
    rows = [r for r in pq.read_table(dataset / "cases.parquet").to_pylist() if r["split"] == "test"]
    patients = {pseudonym(p.name, "dcesynth"): p.name for p in (cohort / "dicom").iterdir()}
    return rows[0]["case_id"], patients[rows[0]["case_id"]]


def _pre_series(cohort: Path, patient: str) -> Path:
    """The patient's pre-contrast series folder (or the multiphase series holding it)."""
    series = sorted((cohort / "dicom" / patient).glob("*/*"))
    pre = [s for s in series if "pre" in s.name.lower()]
    return pre[0] if pre else series[0]


def read_series(series: Path, patient: str):
    return read_pre_dicom(series, patient, sorted(f.name for f in series.iterdir()))


def assert_same_voxels(a: np.ndarray, b: np.ndarray) -> None:
    """Equal after the uint8 rounding both share: float noise may move a value across a
    rounding boundary (one level, in very few voxels)."""
    d = np.abs(a.astype(np.int16) - b.astype(np.int16))
    assert d.max() <= 1 and (d > 0).mean() < 1e-3, (d.max(), (d > 0).mean())


def round_trip(run: Path, model: Path, dataset: Path, cohort: Path, out: Path) -> None:
    """predict from the DICOM series ≡ synthesize from the prepared dataset, on the input grid."""
    case, patient = _test_case(dataset, cohort)
    syn = synthesize(run, "best", "test", progress=False)
    series = _pre_series(cohort, patient)
    res = predict(model, series, out, progress=False)
    assert res.failed == {} and list(res.done) == [patient], res
    folder = out / patient
    pre = read_series(series, patient)  # canonical
    for p in PHASES:
        for kind, syn_name in (("post", f"{case}_{p:04d}"), ("sub", f"{case}_sub{p:04d}")):
            ours, geom = load_nifti(folder / f"{kind}_{p:04d}.nii.gz")  # stored (input) order
            ref = np.asarray(nib.load(syn.out / f"{syn_name}.nii.gz").dataobj).transpose(2, 1, 0)
            assert ours.shape == pre.stored_geometry.shape
            assert geom.allclose(pre.stored_geometry)
            assert_same_voxels(pre.reorientation.array(ours), ref)  # ref is canonical
            assert kind == "sub" or ref.std() > 1  # the generator's images vary: a real check
    assert json.loads((out / "predict.json").read_text())["done"] == {patient: str(folder)}


def test_predict_from_dicom_matches_synthesize(
    hand_run: Path, model_file: Path, prepared: Path, phantom_source: Path, tmp_path: Path
) -> None:
    round_trip(hand_run, model_file, prepared, phantom_source, tmp_path / "out")


def test_flow_model_round_trips(
    flow_model_file: Path, prepared: Path, phantom_source: Path, tmp_path: Path
) -> None:
    """The second family's artefact describes itself and its sampling cost, and predict from
    DICOM gives synthesize's voxels: the flow's noise follows each slice's content, not the
    volume or the batch it comes in."""
    from dcesynth.inference.artifact import load_artifact, summary

    art = load_artifact(flow_model_file)
    gen = art.description["generator"]
    assert gen["family"] == "rectified_flow" and gen["evaluations_per_slice"] == 4
    assert (gen["in_channels"], gen["out_channels"], gen["replicate_input"]) == (1, 3, False)
    assert ("sampling cost", "4 network evaluation(s) / slice") in summary(art.description)
    run = Path(art.description["train_config"]["runs_dir"]) / "hand"
    round_trip(run, flow_model_file, prepared, phantom_source, tmp_path / "out")


def test_dicom_output_reads_back_on_the_input_geometry(
    model_file: Path, prepared: Path, phantom_source: Path, tmp_path: Path
) -> None:
    _, patient = _test_case(prepared, phantom_source)
    series = _pre_series(phantom_source, patient)
    predict(model_file, series, tmp_path, phases=(2,), progress=False)
    src_files = sorted(series.glob("*.dcm"))
    src = [pydicom.dcmread(f, stop_before_pixels=True) for f in src_files]
    pre = read_series(series, patient)
    written = sorted(p.name for p in (tmp_path / patient / "dicom").iterdir())
    assert written == ["post_0002", "sub_0002"]
    uids: set[str] = set()
    for name in written:
        files = sorted((tmp_path / patient / "dicom" / name).glob("*.dcm"))
        out = [pydicom.dcmread(f) for f in files]
        assert len(out) == pre.stored_geometry.shape[0]
        for ds in out:
            assert ds.ImageType[:2] == ["DERIVED", "SECONDARY"] and "SYNTHETIC" in ds.ImageType
            assert "SYNTHETIC" in ds.SeriesDescription and "not acquired" in ds.SeriesDescription
            assert "NOT ACQUIRED" in ds.ImageComments
            assert "not acquired" in ds.DerivationDescription
            # the input's patient and study: a viewer files the series into the same study
            assert ds.PatientID == src[0].PatientID and ds.PatientName == src[0].PatientName
            assert ds.StudyInstanceUID == src[0].StudyInstanceUID
            assert ds.FrameOfReferenceUID == src[0].FrameOfReferenceUID
        assert len({ds.SeriesInstanceUID for ds in out}) == 1
        uids |= {out[0].SeriesInstanceUID, *(ds.SOPInstanceUID for ds in out)}
        # slice order: each output image sits at an input image's position, none twice
        pos_in = {tuple(np.round(np.asarray(s.ImagePositionPatient, float), 4)) for s in src}
        pos_out = [tuple(np.round(np.asarray(d.ImagePositionPatient, float), 4)) for d in out]
        assert set(pos_out) == pos_in and len(set(pos_out)) == len(pos_out)
        # SimpleITK sees the input's grid: origin, spacing, direction
        reader = sitk.ImageSeriesReader()
        reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(files[0].parent)))
        img = reader.Execute()
        ref = sitk.ReadImage(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(series)))
        assert img.GetSize() == ref.GetSize()
        np.testing.assert_allclose(img.GetOrigin(), ref.GetOrigin(), atol=1e-4)
        np.testing.assert_allclose(img.GetSpacing(), ref.GetSpacing(), atol=1e-4)
        np.testing.assert_allclose(img.GetDirection(), ref.GetDirection(), atol=1e-6)
        # pixels as written in the NIfTI output (the same volume, the same order)
        vol, _ = load_nifti(tmp_path / patient / f"{name}.nii.gz")
        np.testing.assert_array_equal(sitk.GetArrayFromImage(img), vol)
    src_uids = {s.SOPInstanceUID for s in src} | {src[0].SeriesInstanceUID}
    assert uids.isdisjoint(src_uids) and len(uids) == 2 * (len(src) + 1)


def test_deidentify_leaves_no_identifying_value(
    model_file: Path, prepared: Path, phantom_source: Path, tmp_path: Path
) -> None:
    _, patient = _test_case(prepared, phantom_source)
    series = _pre_series(phantom_source, patient)
    src = pydicom.dcmread(next(series.glob("*.dcm")), stop_before_pixels=True)
    identity = {
        str(src.PatientName),
        str(src.PatientID),
        src.PatientBirthDate,
        src.AccessionNumber,
        str(src.OtherPatientIDs),
        src.StudyInstanceUID,
        src.FrameOfReferenceUID,
        src.StudyDate,
    }
    res = predict(model_file, series, tmp_path, phases=(1,), deidentify=True, progress=False)
    name = pseudonym(patient, "dcesynth")
    assert list(res.done) == [name] and res.failed == {}
    files = [f for f in tmp_path.rglob("*") if f.is_file()]
    assert any(f.suffix == ".dcm" for f in files)
    for f in files:
        assert not any(v in str(f.relative_to(tmp_path)) for v in identity), f
        if f.suffix == ".dcm":
            ds = pydicom.dcmread(f)
            assert ds.PatientIdentityRemoved == "YES" and ds.PatientID == name
            assert "SourceImageSequence" not in ds
            values = " ".join(str(el.value) for el in ds.iterall() if el.tag != (0x7FE0, 0x0010))
            assert not [v for v in identity if v and v in values], f
    report = (tmp_path / "predict.json").read_text()
    assert not [v for v in identity if v and v in report]


@pytest.mark.parametrize("layout", ["file", "folder"])
def test_nifti_input_keeps_its_affine(
    model_file: Path, phantom_source: Path, tmp_path: Path, layout: str
) -> None:
    case_dir = sorted((phantom_source / "nifti" / "images").iterdir())[0]
    f = case_dir / f"{case_dir.name}_0000.nii.gz"
    res = predict(model_file, f if layout == "file" else case_dir, tmp_path, progress=False)
    assert list(res.done) == [case_dir.name] and res.failed == {}
    src = nib.load(f)
    for p in PHASES:
        out = nib.load(tmp_path / case_dir.name / f"sub_{p:04d}.nii.gz")
        assert out.shape == src.shape and out.get_data_dtype() == np.uint8
        assert b"synthetic - not acquired" in out.header["descrip"].tobytes()
        np.testing.assert_allclose(out.affine, src.affine, atol=1e-5)
    assert not (tmp_path / case_dir.name / "dicom").exists()  # no DICOM frame to write into


@pytest.mark.slow
def test_trained_run_round_trip(
    ray_session, prepared: Path, phantom_source: Path, tmp_path: Path, tiny_training: dict
) -> None:
    """The Done-when round trip on a trained run's best checkpoint (by `select`)."""
    from dcesynth.config import build_config
    from dcesynth.evaluation.config import NO_WEIGHTS, EvalConfig
    from dcesynth.evaluation.export import export_run
    from dcesynth.evaluation.select import select_checkpoint
    from dcesynth.training.config import TrainConfig
    from dcesynth.training.run import train

    cfg = build_config(
        TrainConfig,
        None,
        {
            **tiny_training,
            "dataset": str(prepared),
            "runs_dir": str(tmp_path / "runs"),
            "name": "trained",
            "phases": PHASES,
            "epochs": 2,
            "workers": 1,
        },
    )
    run = train(cfg).run_dir
    sel = select_checkpoint(run, build_config(EvalConfig, None, {**NO_WEIGHTS, "device": "cpu"}))
    model = tmp_path / "model.dcem"
    desc = export_run(run, model)
    row = desc["selection"]["table1_row"]
    assert desc["run"]["epoch"] == sel.selected_epoch
    assert row["checkpoint"] == f"epoch {sel.selected_epoch} (selected)"
    assert float(row["mae_mean"]) == pytest.approx(desc["selection"]["metrics"]["mae"])
    round_trip(run, model, prepared, phantom_source, tmp_path / "out")
