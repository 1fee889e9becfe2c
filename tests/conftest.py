"""Shared fixtures: one local Ray instance per test session (a start costs ~8 s here), and a
small phantom cohort in both layouts for the ingest, dataset and CLI tests.

Seed 12 gives, among 4 cases: one stored as a single multiphase series, one with a typo in a
series description, and both InstanceNumber directions — what the DICOM reader must cope with.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from dcesynth.data.phantom import PhantomConfig, generate_cohort
from dcesynth.data.phantom.case import PhantomCase, generate_case


@pytest.fixture(scope="session")
def ray_session():
    import ray

    from dcesynth.cluster import init_ray

    # 4 logical CPUs on 2 cores: two Ray Train workers leave room for Ray Data tasks; the
    # dashboard stays on (Train's placement-group cleaner asks its State API)
    init_ray(num_cpus=4, log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="session")
def tiny_training() -> dict:
    """Training settings shared by the end-to-end tests: the smallest pix2pixHD that still runs
    every stage (seconds per epoch on 32² phantom slices). Tests add dataset, epochs, workers."""
    return {
        "batch_size": 4,
        "checkpoint_every": 1,
        "val_slices": 8,
        "max_failures": 0,
        "model": {"ngf": 8, "n_downsample": 2, "n_blocks": 1, "ndf": 8},
        "loss": {"perceptual_network": "vgg19_random"},
    }


SOURCE_CFG = PhantomConfig(
    cases=4,
    matrix=48,
    slices=16,
    seed=12,
    multiphase_series_fraction=0.4,
    typo_fraction=0.4,
    multifocal_fraction=0.0,
)


@pytest.fixture(scope="session")
def phantom_source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("ingest_src") / "cohort"
    records = generate_cohort(SOURCE_CFG, out, workers=2, progress=False)
    protos = [r["protocol"] for r in records]
    assert sum(p["multiphase_series"] for p in protos) == 1
    assert any(p["typo"] for p in protos) and {p["instance_order"] for p in protos} == {1, -1}
    return out


@pytest.fixture(scope="session")
def phantom_cases() -> dict[str, PhantomCase]:
    cases = [generate_case(SOURCE_CFG, i) for i in range(SOURCE_CFG.cases)]
    return {c.case_id: c for c in cases}


@pytest.fixture
def source_copy(phantom_source: Path, tmp_path: Path) -> Path:
    """A private copy of the cohort that a test may damage."""
    dst = tmp_path / "cohort"
    shutil.copytree(phantom_source, dst)
    return dst
