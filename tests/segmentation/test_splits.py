"""Leakage-free splits: one fold map, no patient twice, test patients nowhere, real-only
validation — for every training set and crop rule; and the checker catches each leak."""

from __future__ import annotations

import copy

import pytest

from dcesynth.segmentation.config import TRAINING_SETS
from dcesynth.segmentation.splits import (
    PARTS,
    LeakageError,
    check_splits,
    fold_map,
    identifier,
    parse_identifier,
    set_splits,
)

PATIENTS = [f"c{i:012x}" for i in range(23)]
TESTS = {f"c{i:012x}" for i in range(100, 106)}


@pytest.mark.parametrize(("n", "folds"), [(23, 5), (10, 5), (5, 5), (7, 2)])
def test_fold_map_is_balanced_seeded_and_complete(n: int, folds: int) -> None:
    fm = fold_map(PATIENTS[:n], folds, seed=3)
    assert set(fm) == set(PATIENTS[:n])
    sizes = [list(fm.values()).count(f) for f in range(folds)]
    assert max(sizes) - min(sizes) <= 1 and min(sizes) >= 1
    assert fold_map(list(reversed(PATIENTS[:n])), folds, seed=3) == fm  # order-free
    if n > folds:
        assert fold_map(PATIENTS[:n], folds, seed=4) != fm


@pytest.mark.parametrize(
    ("patients", "message"), [(PATIENTS[:3], "cannot fill 5"), (PATIENTS[:3] * 2, "repeated")]
)
def test_fold_map_refuses(patients: list[str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        fold_map(patients, 5, 0)


@pytest.mark.parametrize("crop", sorted(PARTS))
@pytest.mark.parametrize("training_set", sorted(TRAINING_SETS))
def test_every_set_is_leakage_free(training_set: str, crop: str) -> None:
    fm = fold_map(PATIENTS, 5, seed=0)
    splits = set_splits(training_set, fm, PARTS[crop], 5)
    check_splits(training_set, splits, fm, TESTS)  # the code's own invariant check
    versions = TRAINING_SETS[training_set]
    validated = []
    for f, s in enumerate(splits):
        tr = {parse_identifier(i)[0] for i in s["train"]}
        va = {parse_identifier(i)[0] for i in s["val"]}
        assert not tr & va and not (tr | va) & TESTS
        assert va == {p for p, k in fm.items() if k == f}  # one fold map for every set
        vv = {parse_identifier(i)[2] for i in s["val"]}
        assert vv == ({"syn"} if versions == ("syn",) else set(versions) - {"syn"})
        # every version of every part of a training patient is a separate case
        assert len(s["train"]) == len(tr) * len(versions) * len(PARTS[crop])
        validated += sorted(va)
    assert sorted(validated) == sorted(PATIENTS)  # each patient validated exactly once


def test_identifiers_round_trip() -> None:
    assert parse_identifier(identifier("c0123456789ab", "L", "syn")) == (
        "c0123456789ab",
        "L",
        "syn",
    )


def _leak(kind: str, splits: list[dict], fm: dict) -> None:
    f0 = splits[0]
    if kind == "patient in train and val":
        f0["train"].append(f0["val"][0])
    elif kind == "test patient":
        f0["train"].append(identifier(sorted(TESTS)[0], "T", "pre"))
    elif kind == "synthetic validation":
        p = parse_identifier(f0["val"][0])[0]
        f0["val"].append(identifier(p, "T", "syn"))
    elif kind == "other fold map":
        moved = f0["val"].pop()
        splits[1]["val"].append(moved)
    elif kind == "foreign version":
        f0["train"].append(identifier(parse_identifier(f0["train"][0])[0], "T", "post"))


@pytest.mark.parametrize(
    "kind",
    [
        "patient in train and val",
        "test patient",
        "synthetic validation",
        "other fold map",
        "foreign version",
    ],
)
def test_check_splits_catches_each_leak(kind: str) -> None:
    fm = fold_map(PATIENTS, 5, seed=0)
    splits = set_splits("B", fm, PARTS["tumour_side"], 5)
    bad = copy.deepcopy(splits)
    _leak(kind, bad, fm)
    with pytest.raises(LeakageError, match="set B fold"):
        check_splits("B", bad, fm, TESTS)
