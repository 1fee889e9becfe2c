"""dcesynth: virtual contrast enhancement (pre-contrast → DCE phases) for breast MRI on Ray."""

__version__ = "0.1.0"
