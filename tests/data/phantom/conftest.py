"""Shared, session-scoped phantom data: one small case and one small cohort on disk.

Generating is the slow part of these tests, so each artifact is made once per session and
treated as read-only by the tests that use it (tests that modify a cohort copy it first).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from dcesynth.data.phantom.case import PhantomCase, generate_case
from dcesynth.data.phantom.cohort import generate_cohort
from dcesynth.data.phantom.config import PhantomConfig

#: One case for the anatomy tests (the size the phantom docs name for tests).
SMALL_CASE_CFG = PhantomConfig(matrix=64, slices=24)
#: A 3-case cohort; with seed 0 it holds multiphase and per-phase DICOM series and both
#: InstanceNumber orders (checked in the fixture so a changed generator cannot hide it).
COHORT_CFG = PhantomConfig(
    cases=3, matrix=48, slices=16, multiphase_series_fraction=0.5, typo_fraction=0.5
)


@dataclass(frozen=True)
class Cohort:
    """A generated cohort directory and the records ``generate_cohort`` returned."""

    out: Path
    cfg: PhantomConfig
    records: list[dict]

    def case_dir(self, kind: str, case_id: str) -> Path:
        return self.out / kind / case_id


@pytest.fixture(scope="session")
def small_case_cfg() -> PhantomConfig:
    return SMALL_CASE_CFG


@pytest.fixture(scope="session")
def small_case() -> PhantomCase:
    """Case 0 of a 64² × 24 cohort with default physics."""
    return generate_case(SMALL_CASE_CFG, 0)


@pytest.fixture(scope="session")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> Cohort:
    """The 3-case cohort generated with 2 worker processes (read-only for the tests)."""
    out = tmp_path_factory.mktemp("cohort") / "out"
    records = generate_cohort(COHORT_CFG, out, workers=2, progress=False)
    protocols = [r["protocol"] for r in records]
    assert any(p["multiphase_series"] for p in protocols), "fixture needs a multiphase case"
    assert not all(p["multiphase_series"] for p in protocols), "fixture needs per-phase series"
    assert {p["instance_order"] for p in protocols} == {1, -1}, "fixture needs both orders"
    return Cohort(out, COHORT_CFG, records)


@pytest.fixture(scope="session")
def cohort_cases() -> dict[str, PhantomCase]:
    """The cohort's cases regenerated in this process (the in-memory ground truth)."""
    cases = (generate_case(COHORT_CFG, i) for i in range(COHORT_CFG.cases))
    return {c.case_id: c for c in cases}
