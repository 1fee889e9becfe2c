"""The digital DCE breast phantom cohort (see docs/phantom.md and the README).

Usage: ``generate_cohort(PhantomConfig(cases=4, matrix=64, slices=24), Path("cohort"))``.
"""

from dcesynth.data.phantom.case import PhantomCase, generate_case
from dcesynth.data.phantom.cohort import PhantomError, duke_box, generate_cohort
from dcesynth.data.phantom.config import PhantomConfig
from dcesynth.data.phantom.preview import kinetics_plot, montage, write_previews

__all__ = [
    "PhantomCase",
    "PhantomConfig",
    "PhantomError",
    "duke_box",
    "generate_case",
    "generate_cohort",
    "kinetics_plot",
    "montage",
    "write_previews",
]
