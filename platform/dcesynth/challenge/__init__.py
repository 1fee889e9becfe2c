"""The MAMA-SYNTH challenge at the edge of the platform: its 2D task, its metrics, its contract.

``prepare`` turns a MAMA-MIA-style folder (or the phantom's ``nifti/`` folder) into the
challenge's task — one z-scored axial slice per case, pre-contrast input and peak-enhancement
target, as ``.mha`` — and ``metrics`` scores predictions the way the official evaluator
(``mama-research/mama-synth``, branch ``gc_upload``) does, listing what it could not compute.
Nothing in the platform imports this package but the CLI.
"""
