"""Cohort runs: a re-run does no work, a foreign --out is refused before any work, and an
interrupted run leaves only whole artifacts and resumes with exactly the missing case."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from dcesynth.data.phantom import cohort as cohort_mod
from dcesynth.data.phantom import writers
from dcesynth.data.phantom.cohort import PhantomError, generate_cohort
from dcesynth.data.phantom.config import PhantomConfig


def _counting(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Wrap cohort._make_case (in-process runs) to record which case indices are generated."""
    calls: list[int] = []
    real = cohort_mod._make_case

    def spy(cfg: PhantomConfig, index: int, out: str) -> str:
        calls.append(index)
        return real(cfg, index, out)

    monkeypatch.setattr(cohort_mod, "_make_case", spy)
    return calls


@pytest.fixture
def cohort_copy(cohort, tmp_path: Path) -> Path:
    """A private copy of the session cohort that a test may modify."""
    return Path(shutil.copytree(cohort.out, tmp_path / "copy"))


# --- re-runs and refusals -----------------------------------------------------------------------


def test_rerun_does_no_work_and_resumes_a_missing_case(
    cohort, cohort_copy: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A complete cohort is left alone; a case without its ground truth is regenerated alone."""
    calls = _counting(monkeypatch)
    boxes = (cohort_copy / "Annotation_Boxes.csv").read_text()
    tables = sorted(cohort_copy.rglob("*.csv"))
    mtimes = [f.stat().st_mtime_ns for f in tables]
    records = generate_cohort(cohort.cfg, cohort_copy, workers=2, progress=False)
    assert calls == [] and records == cohort.records
    assert (cohort_copy / "Annotation_Boxes.csv").read_text() == boxes
    # untouched, mtimes included: ingest's source fingerprint must still say "up to date"
    assert tables and [f.stat().st_mtime_ns for f in tables] == mtimes
    (cohort_copy / "ground_truth" / "Phantom_MRI_002.json").unlink()
    assert generate_cohort(cohort.cfg, cohort_copy, workers=2, progress=False) == cohort.records
    assert calls == [1]


@pytest.mark.parametrize(
    ("change", "option"),
    [({"seed": 1}, "seed"), ({"snr": 20.0}, "snr"), ({"matrix": 64}, "matrix")],
)
def test_different_cohort_in_out_dir_is_refused(
    cohort, cohort_copy: Path, monkeypatch: pytest.MonkeyPatch, change: dict, option: str
) -> None:
    """Another cohort in --out is refused before any work, naming --out and the option."""
    calls = _counting(monkeypatch)
    manifest = (cohort_copy / "phantom.json").read_text()
    other = PhantomConfig(**{**cohort.cfg.model_dump(), **change})
    with pytest.raises(PhantomError) as exc:
        generate_cohort(other, cohort_copy, workers=1, progress=False)
    msg = str(exc.value)
    assert "--out" in msg and str(cohort_copy) in msg and option in msg
    assert calls == [] and (cohort_copy / "phantom.json").read_text() == manifest


def test_non_empty_foreign_dir_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A non-empty --out without phantom.json is refused and left untouched."""
    calls = _counting(monkeypatch)
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(PhantomError, match="--out") as exc:
        generate_cohort(PhantomConfig(cases=1, matrix=48, slices=16), tmp_path, progress=False)
    assert "phantom.json" in str(exc.value)
    assert calls == [] and sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


# --- interrupted runs ---------------------------------------------------------------------------

SMALL = PhantomConfig(cases=1, matrix=48, slices=16, seed=3)
VICTIM = "Phantom_MRI_002"


def _fail_nib_save(name_ends: str) -> Callable[[Callable], Callable]:
    """A nibabel.save that fails for the file whose name ends with ``name_ends``."""

    def make(real: Callable) -> Callable:
        def save(img: object, filename: object, *a: object, **kw: object) -> None:
            if Path(str(filename)).name.endswith(name_ends):
                raise OSError("disk full (simulated)")
            return real(img, filename, *a, **kw)

        return save

    return make


def _fail_dcmwrite(real: Callable) -> Callable:
    """A pydicom.dcmwrite that fails on the victim case's 23rd file (inside its 2nd series)."""
    seen: list[str] = []

    def write(filename: object, *a: object, **kw: object) -> None:
        if VICTIM in str(filename):
            seen.append(str(filename))
            if len(seen) == 23:  # in the middle of the second series
                raise OSError("disk full (simulated)")
        return real(filename, *a, **kw)

    return write


@pytest.mark.parametrize(
    ("target", "attr", "make_failing", "absent"),
    [
        pytest.param(
            writers.nib,
            "save",
            _fail_nib_save(f"{VICTIM}_0002.nii.gz"),
            [f"nifti/images/{VICTIM}"],
            id="nifti-image",
        ),
        pytest.param(
            writers.nib,
            "save",
            _fail_nib_save(f"-{VICTIM}.nii.gz"),
            [f"nifti/masks/{VICTIM}.nii.gz"],
            id="nifti-mask",
        ),
        pytest.param(
            writers.nib,
            "save",
            _fail_nib_save(f"-{VICTIM}_labels.nii.gz"),
            [f"nifti/labels/{VICTIM}_labels.nii.gz"],
            id="nifti-labels",
        ),
        pytest.param(
            writers.pydicom,
            "dcmwrite",
            _fail_dcmwrite,
            [f"dicom/{VICTIM}", f"nifti/images/{VICTIM}"],
            id="dicom",
        ),
    ],
)
def test_interrupted_run_leaves_no_partial_case(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    target: object,
    attr: str,
    make_failing: Callable[[Callable], Callable],
    absent: list[str],
) -> None:
    """A write failing mid-case leaves no ground truth, no partial artifact (each is absent or
    whole), no ``.tmp-*`` files and no cohort.json; leftovers of a killed run are removed and
    the next run generates exactly the missing case."""
    out = tmp_path / "out"
    generate_cohort(SMALL, out, progress=False)
    assert (out / "cohort.json").is_file()
    grown = PhantomConfig(**{**SMALL.model_dump(), "cases": 2})
    with monkeypatch.context() as m:
        calls = _counting(m)
        m.setattr(target, attr, make_failing(getattr(target, attr)))
        with pytest.raises(OSError, match="simulated"):
            generate_cohort(grown, out, progress=False)
        assert calls == [1]
    assert not (out / "ground_truth" / f"{VICTIM}.json").exists()
    assert (out / "ground_truth" / "Phantom_MRI_001.json").is_file()
    assert not (out / "cohort.json").exists()
    assert not list(out.rglob(".tmp-*"))
    for rel in absent:
        assert not (out / rel).exists(), rel
    images = out / "nifti" / "images" / VICTIM
    assert not images.exists() or len(list(images.glob("*.nii.gz"))) == 5  # all phases or none
    # leftovers of a run killed without cleanup
    planted = [
        out / "dicom" / f".tmp-{VICTIM}-deadbeef" / "x" / "1-001.dcm",
        out / "nifti" / "images" / f".tmp-{VICTIM}-cafebabe" / f"{VICTIM}_0000.nii.gz",
        out / "nifti" / "masks" / f".tmp-0badf00d-{VICTIM}.nii.gz",
    ]
    for p in planted:
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"partial")
    calls = _counting(monkeypatch)
    records = generate_cohort(grown, out, progress=False)
    assert calls == [1] and [r["case_id"] for r in records] == ["Phantom_MRI_001", VICTIM]
    assert not list(out.rglob(".tmp-*"))
    assert json.loads((out / "cohort.json").read_text())["cases"] == ["Phantom_MRI_001", VICTIM]
    assert len(list((out / "nifti" / "images" / VICTIM).glob("*.nii.gz"))) == 5
    assert (out / "nifti" / "labels" / f"{VICTIM}_labels.nii.gz").is_file()
    assert len(list((out / "dicom" / VICTIM).rglob("*.dcm"))) == 5 * 16
