"""Readers of cohorts on disk: Duke-style DICOM trees, NIfTI trees, Annotation_Boxes tables.

Each reader turns one case folder into a :class:`RawCase` in canonical orientation, or raises
:class:`CaseError` naming the case and the file, so that the rest of a cohort still ingests.
"""

from dcesynth.data.readers.common import CaseError, RawCase

__all__ = ["CaseError", "RawCase"]
