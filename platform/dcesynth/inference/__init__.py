"""Inference: model artefacts, the one Ray Data path that runs a generator over slices, and
prediction for new patients (DICOM or NIfTI in, synthetic DICOM and NIfTI out).

Sits between training (the generator, its config) and evaluation (``dcectl synthesize`` runs
through :func:`~dcesynth.inference.engine.translate` too).
"""
