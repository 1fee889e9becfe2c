"""`dcectl bench ingest`'s race against a plain script: the fixed-cost arithmetic, and that the
script normalises the way ingest does (so the race compares like with like)."""

from __future__ import annotations

import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from dcesynth.data.ingest import IngestConfig, ingest
from dcesynth.data.ingest.bench import SIMPLE_SCRIPT, ScriptRace, race_the_script, run_timed
from dcesynth.data.ingest.transforms import pseudonym
from dcesynth.data.phantom import PhantomConfig, generate_cohort


def test_fixed_cost_is_the_intercept() -> None:
    # issue 22's figures: 2 cases 23.7 s vs 2.1 s, 4 cases 25.0 s vs 5.1 s
    race = ScriptRace([2, 4], [640, 1280], [23.7, 25.0], [2.1, 5.1])
    ours, script = race.fixed_s()
    assert ours == pytest.approx(22.4) and script == pytest.approx(-0.9)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("race") / "cohort"
    cfg = PhantomConfig(cases=2, matrix=32, slices=6, seed=3, formats=("dicom", "nifti"))
    generate_cohort(cfg, root, workers=1, progress=False)
    return root


def test_the_script_normalises_as_ingest_does(tiny: Path, tmp_path: Path) -> None:
    run_timed([sys.executable, "-c", SIMPLE_SCRIPT, str(tiny / "dicom"), str(tmp_path / "s")])
    cases = sorted((tmp_path / "s").iterdir())
    assert len(cases) == 2
    phases = sorted(int(p.name) for p in cases[0].iterdir())
    assert phases == [0, 1, 2, 3, 4]  # pre + 4 posts, every slice
    pre = np.stack([np.load(f) for f in sorted((cases[0] / "0").glob("*.npy"))])
    assert pre.shape == (6, 32, 32) and pre.dtype == np.uint8
    assert pre.min() == 0 and pre.max() == 255  # min-max over the volume
    # the same voxels as ingest's normalised pre volume of that patient (orientation aside)
    out = tmp_path / "dataset"
    ingest(tiny / "dicom", out, IngestConfig(image_size=32, phases=(1, 2, 3, 4), selection="all"),
           progress=False, engine="local")  # fmt: skip
    vol = np.asarray(
        nib.load(out / "volumes" / f"{pseudonym(cases[0].name, 'dcesynth')}_0000.nii.gz").dataobj
    )
    np.testing.assert_array_equal(np.sort(pre, axis=None), np.sort(vol, axis=None))


def test_race_times_both_in_fresh_processes(tiny: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("RAY_ADDRESS", "10.255.255.1:1")  # must not reach the race's processes
    race = race_the_script([tiny], tmp_path, image_size=32, phases=[1, 2, 3, 4], repeats=1)
    assert race.cases == [2] and race.images == [2 * 6 * 5]
    assert all(w > 0 for w in race.ours_s + race.script_s)
    assert not (tmp_path / "ingest").exists() and not (tmp_path / "script").exists()
