"""A small prepared dataset with masks, and a stand-in synthesis run, for segmentation tests.

The "synthetic" volumes of the stand-in run are the real post-contrast phase 1 volumes, copied:
the study's wiring does not care what the generator learnt, and no GAN has to train here.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from dcesynth.data.ingest import IngestConfig, ingest
from dcesynth.data.phantom import PhantomConfig, generate_cohort

SEG_COHORT = PhantomConfig(
    cases=10, matrix=48, slices=16, seed=5, multifocal_fraction=0.15, formats=("nifti",)
)


@pytest.fixture(scope="session")
def seg_dataset(ray_session, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("seg")
    generate_cohort(SEG_COHORT, root / "cohort", workers=2, progress=False)
    cfg = IngestConfig(
        image_size=48, phases=(1, 2), split={"ratios": {"train": 0.5, "val": 0.2, "test": 0.3}}
    )
    ingest(root / "cohort" / "nifti" / "images", root / "dataset", cfg, progress=False)
    return root / "dataset"


def fake_synthesis(dataset: Path, run: Path, splits: tuple[str, ...] = ("train", "val", "test")):
    """``run/synthetic/<split>/`` as ``dcectl synthesize`` writes it, from real phase 1."""
    rows = pq.read_table(dataset / "cases.parquet").to_pylist()
    for split in splits:
        out = run / "synthetic" / split
        out.mkdir(parents=True, exist_ok=True)
        files = {}
        for r in rows:
            if r["split"] != split:
                continue
            cid = r["case_id"]
            shutil.copy(dataset / "volumes" / f"{cid}_0001.nii.gz", out / f"{cid}_0001.nii.gz")
            files[cid] = [f"{cid}_0001.nii.gz"]
        meta = {"split": split, "phases": [1], "files": files}
        (out / "synthesis.json").write_text(json.dumps(meta))
    return run


@pytest.fixture(scope="session")
def seg_run(seg_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return fake_synthesis(seg_dataset, tmp_path_factory.mktemp("segrun") / "run")
