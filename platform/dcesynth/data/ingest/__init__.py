"""Ingest: a DICOM or NIfTI cohort → a prepared dataset of Arrow slice shards (see pipeline.py)."""

from dcesynth.data.ingest.config import IngestConfig, SplitConfig
from dcesynth.data.ingest.pipeline import DatasetError, IngestResult, ingest

__all__ = ["DatasetError", "IngestConfig", "IngestResult", "SplitConfig", "ingest"]
