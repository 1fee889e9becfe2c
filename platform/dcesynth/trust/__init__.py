"""Trustworthy synthetic contrast: privacy, fairness, diversity, uncertainty, kinetic maps."""
