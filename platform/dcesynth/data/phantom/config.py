"""PhantomConfig: every knob of the digital DCE breast phantom, with literature defaults.

Defaults describe a realistic Duke-like cohort (PHANTOM.md). Fields left ``None`` are drawn per
case from the ranges beside them, which is how scanner diversity enters the cohort; setting a
field fixes it for every case (``matrix=64, slices=24`` gives the small cohorts of the tests).
"""

from __future__ import annotations

import hashlib
import json
from typing import Literal

from pydantic import Field, field_validator

from dcesynth.config import StrictModel

Agent = Literal["gadopentetate", "gadobenate", "gadobutrol", "gadoterate"]
Density = Literal["a", "b", "c", "d"]
OutputFormat = Literal["dicom", "nifti"]

#: The Duke protocol: one pre-contrast and at most four post-contrast phases.
MAX_POST_PHASES = 4
GENERATOR_VERSION = 4  # bump when the same config would give different images


class PhantomConfig(StrictModel):
    """Digital phantom cohort. Ranges are ``(low, high)``; fractions are in [0, 1]."""

    # --- cohort -------------------------------------------------------------------------
    cases: int = Field(24, ge=1, le=100_000, description="number of cases")
    seed: int = Field(0, ge=0, description="cohort seed; case i depends only on (seed, i)")
    formats: tuple[OutputFormat, ...] = Field(("dicom", "nifti"), min_length=1)
    # --- acquisition ----------------------------------------------------------------------
    matrix: int | None = Field(
        None, ge=16, le=1024, description="in-plane matrix (px); None: drawn"
    )
    matrix_choices: tuple[int, ...] = Field((320, 448, 512), min_length=1)
    slices: int | None = Field(None, ge=4, le=512, description="slices per volume; None: drawn")
    slices_range: tuple[int, int] = (144, 176)
    coverage_mm: tuple[float, float] = Field((150.0, 176.0), description="superior-inferior extent")
    fov_mm: tuple[float, float] = Field((320.0, 360.0), description="in-plane field of view")
    post_phases: int = Field(MAX_POST_PHASES, ge=1, le=MAX_POST_PHASES)
    fraction_3t: float = Field(0.5, ge=0.0, le=1.0, description="share of 3 T cases (rest 1.5 T)")
    agent: Agent | None = Field(None, description="contrast agent; None: drawn per case")
    flip_angle: float | None = Field(None, gt=0.0, lt=90.0, description="degrees; None: drawn")
    flip_angle_range: tuple[float, float] = (10.0, 15.0)
    tr: float | None = Field(None, gt=0.0, le=50.0, description="repetition time, ms; None: drawn")
    tr_range: tuple[float, float] = (4.0, 6.0)
    phase_gap_s: float = Field(131.0, gt=0.0, description="median time between DCE phases (Duke)")
    snr: float = Field(40.0, gt=0.0, description="pre-contrast FGT signal / Rician noise sigma")
    bias_field: float = Field(0.15, ge=0.0, le=0.8, description="coil-sensitivity amplitude")
    drift: float = Field(0.01, ge=0.0, le=0.2, description="sd of per-phase intensity drift")
    motion_mm: float = Field(0.0, ge=0.0, le=10.0, description="sd of per-phase rigid shift")
    fat_residual: float = Field(0.08, ge=0.0, le=1.0, description="fat signal left by fat-sat")
    # --- anatomy and lesions ------------------------------------------------------------------
    density_weights: dict[Density, float] = Field(
        default_factory=lambda: {"a": 0.1, "b": 0.4, "c": 0.4, "d": 0.1}
    )
    multifocal_fraction: float = Field(0.1, ge=0.0, le=1.0)
    # --- the lesion model: one joint draw per lesion (docs/phantom.md cites every default) ----
    benign_fraction: float = Field(
        0.0, ge=0.0, le=1.0, description="share of benign distractor lesions (Duke: invasive only)"
    )
    interface_fraction: float = Field(
        0.99,
        ge=0.0,
        le=1.0,
        description="lesions at the FGT-fat interface (291/294 invasive cancers, Zhu et al. 2017); "
        "the rest are embedded in FGT",
    )
    lesion_diameter_mm: tuple[float, float] = Field(
        (8.0, 48.0), description="diameter range (invasive cancers at MRI, Song et al. 2019)"
    )
    lesion_diameter_median_mm: float = Field(
        16.5, gt=0.0, description="log-normal median: mean 18 mm with sigma 0.4 (Song et al. 2019)"
    )
    lesion_diameter_sigma: float = Field(0.4, ge=0.0, le=2.0, description="log-normal sigma")
    curve_type_weights: dict[Literal["I", "II", "III"], float] = Field(
        default_factory=lambda: {"I": 0.089, "II": 0.336, "III": 0.574},
        description="Kuhl curve types among cancers (Kuhl et al., Radiology 1999)",
    )
    benign_curve_type_weights: dict[Literal["I", "II", "III"], float] = Field(
        default_factory=lambda: {"I": 0.830, "II": 0.115, "III": 0.055},
        description="Kuhl curve types among benign lesions (Kuhl et al., Radiology 1999)",
    )
    necrotic_fraction: float = Field(
        0.2, ge=0.0, le=1.0, description="necrotic core in cancers >= 15 mm (not round wash-out)"
    )
    necrotic_fraction_round_washout: float = Field(
        0.5, ge=0.0, le=1.0, description="round wash-out cancers: the triple-negative phenotype"
    )
    tumour_t1_3t_ms: tuple[float, float] = Field(
        (1612.0, 216.0), description="invasive cancer T1 at 3 T, mean and sd (Meng et al. 2020)"
    )
    tumour_pd: float = Field(
        1.3,
        gt=0.0,
        le=3.0,
        description="tumour proton density over FGT's (fat-suppressed); conspicuity, calibrated "
        "by `dcectl calibrate` against the study's real-data Dice ratios (docs/phantom.md)",
    )
    tumour_pd_sd: float = Field(0.05, ge=0.0, le=1.0, description="per-lesion spread of tumour_pd")
    lesion_heterogeneity: float = Field(
        0.08, ge=0.0, le=0.5, description="sd of the smooth internal M0 variation of a lesion"
    )
    mass_effect: float = Field(
        0.5,
        ge=0.0,
        le=1.0,
        description="share of a lesion's volume pushed aside (0: painted over, 1: all displaced)",
    )
    hct_range: tuple[float, float] = (0.42, 0.45)
    # --- DICOM realism (what readers must cope with) -----------------------------------------
    multiphase_series_fraction: float = Field(
        0.0, ge=0.0, le=1.0, description="cases stored as one 'Ax Vibrant MultiPhase' series"
    )
    typo_fraction: float = Field(0.0, ge=0.0, le=1.0, description="series descriptions with typos")

    @field_validator("matrix_choices")
    @classmethod
    def _matrices(cls, v: tuple[int, ...]) -> tuple[int, ...]:
        if any(m < 16 or m > 1024 for m in v):
            raise ValueError(f"every matrix choice must be in [16, 1024], got {v}")
        return v

    @field_validator(
        "slices_range",
        "coverage_mm",
        "fov_mm",
        "flip_angle_range",
        "tr_range",
        "lesion_diameter_mm",
        "hct_range",
    )
    @classmethod
    def _range(cls, v: tuple[float, float]) -> tuple[float, float]:
        if not 0 < v[0] <= v[1]:
            raise ValueError(f"a range must be (low, high) with 0 < low <= high, got {v}")
        return v

    @field_validator("density_weights", "curve_type_weights", "benign_curve_type_weights")
    @classmethod
    def _weights(cls, v: dict[str, float]) -> dict[str, float]:
        if any(w < 0 for w in v.values()) or sum(v.values()) <= 0:
            raise ValueError(f"weights must be >= 0 and not all 0, got {v}")
        return v

    @field_validator("tumour_t1_3t_ms")
    @classmethod
    def _mean_sd(cls, v: tuple[float, float]) -> tuple[float, float]:
        if not (v[0] > 0 and 0 <= v[1] < v[0] / 2):
            raise ValueError(f"a (mean, sd) pair needs mean > 0 and 0 <= sd < mean/2, got {v}")
        return v

    @field_validator("hct_range")
    @classmethod
    def _hct(cls, v: tuple[float, float]) -> tuple[float, float]:
        if v[1] >= 1:
            raise ValueError(f"haematocrit must lie below 1, got {v}")
        return v

    @field_validator("flip_angle_range")
    @classmethod
    def _flip(cls, v: tuple[float, float]) -> tuple[float, float]:
        if v[1] >= 90:
            raise ValueError(f"flip angles must lie in (0, 90) degrees, got {v}")
        return v

    @field_validator("formats")
    @classmethod
    def _formats(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        if len(set(v)) != len(v):
            raise ValueError(f"formats has duplicates: {v}")
        return v

    def fingerprint(self) -> str:
        """Hash of everything that changes the images (not ``cases``: a cohort can grow)."""
        payload = self.model_dump(mode="json", exclude={"cases", "formats"})
        payload["generator_version"] = GENERATOR_VERSION
        blob = json.dumps(payload, sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]
