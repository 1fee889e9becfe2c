"""IngestConfig: how a cohort on disk becomes a prepared dataset. Defaults follow the study."""

from __future__ import annotations

import hashlib
import itertools
import json
from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationInfo, field_validator

from dcesynth.config import StrictModel
from dcesynth.data.readers.dicom import SeriesRules

DATASET_VERSION = 1


class SplitConfig(StrictModel):
    """Patient-level splits: seeded ratios, or a file that names each case's split."""

    ratios: dict[str, float] = Field(
        default_factory=lambda: {"train": 0.8, "val": 0.1, "test": 0.1}
    )
    seed: int = Field(0, ge=0)
    file: Path | None = Field(None, description="CSV (case,split) or JSON {case: split}")

    @field_validator("ratios")
    @classmethod
    def _ratios(cls, v: dict[str, float]) -> dict[str, float]:
        if not v or any(r < 0 for r in v.values()) or sum(v.values()) <= 0:
            raise ValueError(f"ratios must be >= 0 with a positive sum, got {v}")
        if any(not k.isidentifier() for k in v):
            raise ValueError(f"split names must be simple identifiers, got {list(v)}")
        return v


class IngestConfig(StrictModel):
    """Everything that shapes a prepared dataset (paths default to the phantom's layout)."""

    format: Literal["auto", "dicom", "nifti"] = Field(
        "auto",
        description="auto: DICOM files found by their headers anywhere below SOURCE, else a "
        "NIfTI tree <case>/<case>_000k.nii.gz; a folder holding both is read as DICOM",
    )
    boxes: Path | None = Field(
        None, description="Annotation_Boxes .csv/.xlsx; default: found beside"
    )
    masks: Path | None = Field(
        None, description="folder of <case>.nii.gz masks; default: found beside"
    )
    box_slices: Literal["auto", "instance", "array"] = Field(
        "auto", description="box slice numbering: DICOM InstanceNumber order (Duke) or array k"
    )
    series_rules: SeriesRules = Field(default_factory=SeriesRules)
    normalisation: Literal["minmax", "percentile", "zscore"] = Field(
        "minmax", description="per volume and phase, to [0, 255] (the study: minmax)"
    )
    percentiles: tuple[float, float] = (0.5, 99.5)
    zscore_clip: float = Field(3.0, gt=0)
    image_size: int = Field(512, ge=16, le=2048, description="square slice size (study: 512)")
    phases: tuple[int, ...] = Field((1, 2, 3), min_length=1, description="post phases to keep")
    frames: tuple[int, ...] | None = Field(
        None,
        description="dynamic acquisitions stored as ONE series: the time points (0-based frame "
        "indices, increasing) that become the pre phase and post phases 1, 2, …, e.g. "
        "[0, 5, 10, 15]. Needed when such a series holds more than 10 time points; cases with "
        "one series per phase ignore it. Exclusive with frame_times_s",
    )
    frame_times_s: tuple[float, ...] | None = Field(
        None,
        description="like `frames`, by time: seconds after the series' first frame, increasing, "
        "e.g. [0, 60, 120, 180]; each takes the nearest frame (within half a frame interval)",
    )
    selection: Literal["all", "tumour"] = Field(
        "all", description="all slices, or tumour slices ± margin (the study's multi-phase runs)"
    )
    margin_fraction: float = Field(0.05, ge=0, le=1, description="of the tumour's slice extent")
    split: SplitConfig = Field(default_factory=SplitConfig)
    salt: str = Field("dcesynth", min_length=1, description="pseudonym salt; keep it secret")
    target_shard_mb: int = Field(256, ge=1, le=4096)

    @field_validator("phases")
    @classmethod
    def _phases(cls, v: tuple[int, ...]) -> tuple[int, ...]:
        if any(p < 1 or p > 9 for p in v) or len(set(v)) != len(v) or list(v) != sorted(v):
            raise ValueError(f"phases are distinct increasing post-phase numbers 1..9, got {v}")
        return v

    @field_validator("frames", "frame_times_s")
    @classmethod
    def _time_points(cls, v: tuple | None, info: ValidationInfo) -> tuple | None:
        if v is None:
            return v
        name = info.field_name
        if len(v) < 2 or min(v) < 0 or any(b <= a for a, b in itertools.pairwise(v)):
            raise ValueError(
                f"{name}: at least 2 increasing values >= 0 (pre, then posts), got {list(v)}"
            )
        if name == "frame_times_s" and info.data.get("frames") is not None:
            raise ValueError("give `frames` or `frame_times_s`, not both")
        phases = info.data.get("phases")
        if phases and len(v) < 1 + max(phases):
            raise ValueError(
                f"{name} selects {len(v)} time points (pre + {len(v) - 1} post), but `phases` "
                f"asks for post phase {max(phases)}; give {1 + max(phases)} or more"
            )
        return v

    @field_validator("percentiles")
    @classmethod
    def _pct(cls, v: tuple[float, float]) -> tuple[float, float]:
        if not 0 <= v[0] < v[1] <= 100:
            raise ValueError(f"percentiles must satisfy 0 <= low < high <= 100, got {v}")
        return v

    def fingerprint(self, source_fingerprint: str) -> str:
        """What decides the dataset's content: options and the source files."""
        payload = self.model_dump(mode="json", exclude={"salt"})
        payload["salt_sha256"] = hashlib.sha256(self.salt.encode()).hexdigest()
        payload["source"] = source_fingerprint
        payload["version"] = DATASET_VERSION
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]

    def public_dump(self) -> dict:
        """The config as written to the manifest: the salt itself never is."""
        d = self.model_dump(mode="json", exclude={"salt"})
        d["salt_sha256"] = hashlib.sha256(self.salt.encode()).hexdigest()[:16]
        return d
