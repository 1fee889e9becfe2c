"""Dynamic acquisitions stored as ONE series (classic or enhanced multi-frame MR): time points
ordered by the vendor's temporal tags, frames chosen by index or time, and the errors that
name the option when a choice is needed or cannot be met.

The DICOM is written with pydicom (tests/data/ingest/conftest.py); readers are called
directly, and the pipeline and CLI on a two-patient cohort.
"""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from dcesynth.cli.app import app
from dcesynth.config import ConfigError, build_config
from dcesynth.data.ingest import IngestConfig, ingest
from dcesynth.data.ingest.transforms import minmax, pseudonym
from dcesynth.data.readers import CaseError, dicom
from dcesynth.data.readers.frames import MAX_TIME_POINTS

TIMES = [0.0, 60.0, 120.0, 180.0, 240.0]
TIMES_61 = [5.0 * i for i in range(61)]  # a 1-slice perfusion series: one frame every 5 s


def assert_phases(raw, vols: np.ndarray, times: list[float]) -> None:
    assert len(raw.phases) == len(vols)
    for t, vol in enumerate(raw.phases):
        np.testing.assert_array_equal(vol, vols[t].astype(np.float32), err_msg=f"phase {t}")
    np.testing.assert_allclose(raw.acquisition_s, np.asarray(times) - times[0], atol=1e-3)
    assert raw.geometry.spacing == pytest.approx((1.2, 0.8, 3.0))


@pytest.mark.parametrize("vendor", ["ge", "siemens", "siemens-content", "philips"])
def test_one_series_vendor_tags_order_the_phases(dcm, tmp_path: Path, vendor: str) -> None:
    vols = dcm.truth(5, 4)
    dcm.write_dynamic(tmp_path / "P1" / "series", "P1", vols, TIMES, vendor)
    raw = dicom.read_case(tmp_path, "P1")
    assert_phases(raw, vols, TIMES)
    assert raw.facts["agent"] == "GADAVIST" and not raw.ignored
    # slice numbers: InstanceNumber ranks of the pre time point (1..4 along z here)
    np.testing.assert_array_equal(raw.slice_numbers, [1, 2, 3, 4])


def test_enhanced_multiframe_mr(dcm, tmp_path: Path) -> None:
    vols = dcm.truth(5, 4)
    dcm.write_enhanced(tmp_path / "P1" / "enhanced.dcm", "P1", vols, TIMES)
    raw = dicom.read_case(tmp_path, "P1")
    assert_phases(raw, vols, TIMES)  # FrameAcquisitionDateTime gives the times
    assert raw.sources == ["P1"] * 5


def test_enhanced_single_slice_61_frames_with_frame_times(dcm, tmp_path: Path) -> None:
    vols = dcm.truth(61, 1)
    dcm.write_enhanced(tmp_path / "P1" / "perfusion.dcm", "P1", vols, TIMES_61)
    raw = dicom.read_case(tmp_path, "P1", frame_times_s=(0, 60, 120, 180))
    assert_phases(raw, vols[[0, 12, 24, 36]], [0, 60, 120, 180])


def test_a_multiphase_series_beside_per_phase_series_is_left_out(dcm, tmp_path: Path) -> None:
    """Per-phase series and a 1-slice reference series of the same study: the per-phase
    series are the DCE phases; the reference is reported as left out."""
    vols = dcm.truth(3, 4)
    study = "1.2.3.4"
    dcm.write_phases(tmp_path / "P1" / "phases", "P1", vols, TIMES, study=study)
    dcm.write_dynamic(
        tmp_path / "P1" / "ref", "P1", dcm.truth(61, 1), TIMES_61, "ge", "ax dyn ref", study
    )
    raw = dicom.read_case(tmp_path, "P1")
    assert_phases(raw, vols, TIMES[:3])
    (left,) = raw.ignored
    assert left["source"] == "P1/ref" and "holds 61 time points" in left["reason"]


# --- choosing frames ------------------------------------------------------------------------


@pytest.fixture
def perfusion(dcm, tmp_path: Path) -> tuple[Path, np.ndarray]:
    """P1: one slice, 61 frames 5 s apart (GE-like TriggerTime)."""
    vols = dcm.truth(61, 1)
    dcm.write_dynamic(tmp_path / "P1" / "s", "P1", vols, TIMES_61, "ge", "ax dyn perfusion")
    return tmp_path, vols


def test_61_frames_need_a_choice(perfusion) -> None:
    root, _ = perfusion
    with pytest.raises(CaseError) as e:
        dicom.read_case(root, "P1")
    msg = str(e.value)
    assert msg.startswith("P1: P1/s: series 'ax dyn perfusion' holds 61 time points")
    assert f"more than the {MAX_TIME_POINTS} phases" in msg
    assert "`frames` (--frames" in msg and "`frame_times_s` (--frame-times-s" in msg
    assert "0: 0, 1: 5, 2: 10," in msg and "60: 300" in msg  # every frame's time


@pytest.mark.parametrize(
    ("choice", "picked"),
    [
        ({"frames": (0, 5, 10, 15)}, [0, 5, 10, 15]),
        ({"frame_times_s": (0, 60, 120, 180)}, [0, 12, 24, 36]),
        ({"frame_times_s": (2, 58.0, 122.4)}, [0, 12, 24]),  # nearest frame
        ({"frames": (3, 40)}, [3, 40]),  # the pre phase need not be frame 0
    ],
)
def test_61_frames_chosen(perfusion, choice: dict, picked: list[int]) -> None:
    root, vols = perfusion
    raw = dicom.read_case(root, "P1", **choice)
    assert_phases(raw, vols[picked], [TIMES_61[i] for i in picked])


@pytest.mark.parametrize(
    ("choice", "words"),
    [
        ({"frames": (0, 5, 61)}, ["`frames` [61] out of range", "frames 0..60", "60: 300"]),
        ({"frame_times_s": (0, 400)}, ["no frame near 400 s", "`frame_times_s`", "60: 300"]),
        ({"frame_times_s": (0, 1, 2)}, ["pick frames [0, 0, 0], one twice"]),
    ],
)
def test_impossible_choices_list_the_frames(perfusion, choice: dict, words: list[str]) -> None:
    root, _ = perfusion
    with pytest.raises(CaseError) as e:
        dicom.read_case(root, "P1", **choice)
    for w in words:
        assert w in str(e.value), str(e.value)


def test_a_choice_also_applies_to_a_short_series(dcm, tmp_path: Path) -> None:
    """A 5-time-point series is read one phase per time point, unless frames are chosen."""
    vols = dcm.truth(5, 3)
    dcm.write_dynamic(tmp_path / "P1", "P1", vols, TIMES, "philips")
    assert_phases(dicom.read_case(tmp_path, "P1", frames=(0, 2, 4)), vols[[0, 2, 4]], TIMES[::2])
    with pytest.raises(CaseError, match=r"`frames` \[5, 10\] out of range"):
        dicom.read_case(tmp_path, "P1", frames=(0, 5, 10))
    by_time = dicom.read_case(tmp_path, "P1", frame_times_s=(0, 120))
    assert by_time.acquisition_s == [0.0, 120.0]


def test_a_choice_leaves_one_series_per_phase_alone(dcm, tmp_path: Path) -> None:
    vols = dcm.truth(3, 4)
    dcm.write_phases(tmp_path / "P1", "P1", vols, TIMES)
    assert_phases(dicom.read_case(tmp_path, "P1", frames=(0, 5, 10, 15)), vols, TIMES[:3])


# --- broken series --------------------------------------------------------------------------


def test_gap_in_temporal_positions(dcm, tmp_path: Path) -> None:
    files = dcm.write_dynamic(tmp_path / "P1" / "s", "P1", dcm.truth(5, 3), TIMES, "philips")
    for f in files[6:9]:  # every slice of temporal position 3
        f.unlink()
    with pytest.raises(CaseError, match=r"missing phase: temporal positions \[1, 2, 4, 5\]"):
        dicom.read_case(tmp_path, "P1")


def test_a_missing_frame_is_named(dcm, tmp_path: Path) -> None:
    files = dcm.write_dynamic(tmp_path / "P1" / "s", "P1", dcm.truth(5, 3), TIMES, "ge")
    files[7].unlink()
    with pytest.raises(CaseError, match=r"P1/s: series 'ax dyn': 14 frames at 3 slice positions"):
        dicom.read_case(tmp_path, "P1")


def test_frames_no_tag_tells_apart_are_duplicates(dcm, tmp_path: Path) -> None:
    """Same position, same times: not time points but duplicate slices (the old error)."""
    vols = dcm.truth(2, 3)
    dcm.write_dynamic(
        tmp_path / "P1" / "s", "P1", vols, [0.0, 0.0], "siemens-content", "ax dyn pre"
    )
    with pytest.raises(CaseError, match="P1/s: duplicate slice positions in one series"):
        dicom.read_case(tmp_path, "P1")


# --- options --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "match"),
    [
        ({"frames": [0]}, "at least 2 increasing"),
        ({"frames": [0, 5, 5, 9]}, "at least 2 increasing"),
        ({"frames": [-1, 5, 9, 12]}, ">= 0"),
        ({"frame_times_s": [0, 120, 60, 180]}, "increasing"),
        ({"frames": [0, 5, 10, 15], "frame_times_s": [0, 60, 120, 180]}, "not both"),
        ({"frames": [0, 5], "phases": [1, 2]}, "selects 2 time points .* post phase 2"),
    ],
)
def test_frame_options_are_validated(values: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        IngestConfig(**values)


def test_frame_times_in_a_config_file(tmp_path: Path) -> None:
    f = tmp_path / "ingest.yaml"
    f.write_text("phases: [1, 2, 3]\nframe_times_s: [0, 60, 120, 180]\n")
    assert build_config(IngestConfig, f).frame_times_s == (0.0, 60.0, 120.0, 180.0)
    f.write_text("phases: [1, 2, 3]\nframe_times_s: [0, 60, 120]\n")
    with pytest.raises(ConfigError, match=r"ingest.yaml: `frame_times_s`: .*post phase 3"):
        build_config(IngestConfig, f)


# --- the pipeline and the CLI ---------------------------------------------------------------


@pytest.fixture
def two_patients(dcm, tmp_path: Path) -> tuple[Path, dict[str, np.ndarray]]:
    """A PACS-like folder: P1's 61-frame single-slice series, P2's 5-phase enhanced MR."""
    src = tmp_path / "export"
    vols = {"P1": dcm.truth(61, 1, 16, 16, seed=1), "P2": dcm.truth(5, 4, 16, 16, seed=2)}
    dcm.write_dynamic(src, "P1", vols["P1"], TIMES_61, "ge", "ax dyn perfusion")
    dcm.write_enhanced(src / "IM0002", "P2", vols["P2"], TIMES)
    return src, vols


CFG = {"image_size": 16, "phases": (1, 2, 3), "split": {"ratios": {"train": 1.0}}}


def test_ingest_skips_the_case_that_needs_a_choice(ray_session, two_patients, tmp_path) -> None:
    src, _ = two_patients
    res = ingest(src, tmp_path / "ds", IngestConfig(**CFG), progress=False)
    (skip,) = res.skipped
    assert skip["source"] == "P1" and "holds 61 time points" in skip["error"]
    assert "--frames" in skip["error"] and "60: 300" in skip["error"]
    assert res.cases == {"train": 1}


def test_ingest_with_frame_times(ray_session, two_patients, tmp_path) -> None:
    """frame_times_s picks frames 0, 12, 24, 36 of P1 and the first 4 time points of P2."""
    src, vols = two_patients
    cfg = IngestConfig(**CFG, frame_times_s=(0, 60, 120, 180))
    res = ingest(src, tmp_path / "ds", cfg, progress=False)
    assert not res.skipped and res.cases == {"train": 2}
    rows = {r["case_id"]: r for r in pq.read_table(tmp_path / "ds/cases.parquet").to_pylist()}
    for key, picked in (("P1", [0, 12, 24, 36]), ("P2", [0, 1, 2, 3])):
        cid = pseudonym(key, cfg.salt)
        assert rows[cid]["acquisition_s"] == [0.0, 60.0, 120.0, 180.0]
        for p, t in enumerate(picked):
            img = nib.load(tmp_path / "ds" / "volumes" / f"{cid}_{p:04d}.nii.gz")
            got = np.asarray(img.dataobj).transpose(2, 1, 0)
            np.testing.assert_array_equal(got, minmax(vols[key][t].astype(np.float32)))


def test_cli_frames_flag(ray_session, two_patients, tmp_path: Path) -> None:
    """--frames 0,5,10,15 ingests P1; P2 (5 time points, 0..4) is skipped."""
    src, _ = two_patients
    out = tmp_path / "ds"
    args = ["ingest", str(src), "--out", str(out), "--image-size", "16", "--phases", "1,2,3"]
    res = CliRunner().invoke(app, [*args, "--frames", "0,5,10,15"])
    assert res.exit_code == 0, res.output
    assert (
        "1 cases" in res.output
        and "P2: " in res.output
        and "`frames` [5, 10, 15] out of range" in res.output
    )
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["options"]["frames"] == [0, 5, 10, 15]
    bad = CliRunner().invoke(app, [*args, "--frames", "0,five"])
    assert bad.exit_code == 2 and "`--frames`: comma-separated integers" in bad.output
    short = CliRunner().invoke(app, [*args, "--frame-times-s", "0,60"])
    assert short.exit_code == 2 and "--frame-times-s" in short.output
    assert "post phase 3" in short.output
