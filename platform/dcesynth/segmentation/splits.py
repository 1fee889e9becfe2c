"""Leakage-free cross-validation, decided once before anything runs.

One seeded patient → fold map serves every training set, so that the sets' models are compared
on the same validation patients; held-out test patients are in no fold. A training case is one
*version* (real pre, real post, synthetic post) of one *part* (a breast half, or the whole
volume) of one patient, named ``<case>_<part>_<version>``. Validation folds hold real versions
only (synthetic images are training material, not evidence), except in a set that has no real
version (C), which validates on its synthetic ones. :func:`check_splits` enforces all of this
and is called on every ``splits_final.json`` before it is written.
"""

from __future__ import annotations

import numpy as np

from dcesynth.segmentation.config import TRAINING_SETS

REAL = ("pre", "post")
# the parts a patient is cut into, per crop rule: whole, the tumour's half, both halves
PARTS = {"none": ("W",), "tumour_side": ("T",), "both_halves": ("L", "R")}


class LeakageError(RuntimeError):
    """A split that would let a patient's data into both training and evaluation."""


def identifier(case_id: str, part: str, version: str) -> str:
    return f"{case_id}_{part}_{version}"


def parse_identifier(ident: str) -> tuple[str, str, str]:
    """``<case>_<part>_<version>`` → (case, part, version)."""
    case_id, part, version = ident.rsplit("_", 2)
    return case_id, part, version


def fold_map(patients: list[str], folds: int, seed: int) -> dict[str, int]:
    """Seeded, balanced patient → fold (sizes differ by at most one).

    Raises:
        ValueError: fewer patients than folds, or a repeated patient.
    """
    if len(set(patients)) != len(patients):
        raise ValueError("fold_map: repeated patient ids")
    if len(patients) < folds:
        raise ValueError(f"fold_map: {len(patients)} patients cannot fill {folds} folds")
    order = sorted(patients)
    np.random.default_rng(seed).shuffle(order)
    return {p: i % folds for i, p in enumerate(order)}


def set_splits(
    training_set: str, folds_of: dict[str, int], parts: tuple[str, ...], folds: int
) -> list[dict[str, list[str]]]:
    """nnU-Net's ``splits_final.json`` content for one training set.

    Args:
        training_set: A–G.
        folds_of: the study's patient → fold map (fold patients only).
        parts: each patient's parts (see :data:`PARTS`).
        folds: number of folds.
    """
    versions = TRAINING_SETS[training_set]
    val_versions = [v for v in versions if v in REAL] or list(versions)
    out = []
    for f in range(folds):
        train = [
            identifier(p, part, v)
            for p in sorted(folds_of)
            if folds_of[p] != f
            for part in parts
            for v in versions
        ]
        val = [
            identifier(p, part, v)
            for p in sorted(folds_of)
            if folds_of[p] == f
            for part in parts
            for v in val_versions
        ]
        out.append({"train": train, "val": val})
    return out


def check_splits(
    training_set: str,
    splits: list[dict[str, list[str]]],
    folds_of: dict[str, int],
    test_patients: set[str],
) -> None:
    """Raise :class:`LeakageError` unless the splits keep every invariant of the study.

    * no patient in a fold's training and validation cases;
    * no test patient anywhere;
    * each fold validates exactly the patients the study's fold map puts there;
    * validation holds real versions only, unless the set has none;
    * training cases are versions of the set only.
    """
    versions = set(TRAINING_SETS[training_set])
    real_only = bool(versions & set(REAL))
    if len(splits) != len(set(folds_of.values())):
        raise LeakageError(f"set {training_set}: {len(splits)} splits for the fold map's folds")
    for f, s in enumerate(splits):
        tr = {parse_identifier(i)[0] for i in s["train"]}
        va = {parse_identifier(i)[0] for i in s["val"]}
        if both := tr & va:
            raise LeakageError(f"set {training_set} fold {f}: {sorted(both)} in train and val")
        if leaked := (tr | va) & test_patients:
            raise LeakageError(f"set {training_set} fold {f}: test patients {sorted(leaked)}")
        expected = {p for p, k in folds_of.items() if k == f}
        if va != expected:
            raise LeakageError(
                f"set {training_set} fold {f}: validates {sorted(va)}, the fold map says "
                f"{sorted(expected)}"
            )
        if tr != set(folds_of) - expected:
            raise LeakageError(f"set {training_set} fold {f}: trains on the wrong patients")
        for i in s["val"]:
            v = parse_identifier(i)[2]
            if real_only and v not in REAL:
                raise LeakageError(f"set {training_set} fold {f}: synthetic {i} in validation")
        for i in s["train"]:
            if parse_identifier(i)[2] not in versions:
                raise LeakageError(f"set {training_set} fold {f}: {i} is not a version of the set")
