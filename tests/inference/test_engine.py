"""The engine's pieces that need no Ray: the resize plan survives its trip through Ray Data's
rows, and the way back to the input's orientation inverts the way in for every axis order."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from dcesynth.data.geometry import Geometry, Reorientation
from dcesynth.data.ingest.transforms import SquareResize
from dcesynth.inference.engine import _plan, _plan_vector, read_volume


@pytest.mark.parametrize(
    "dims", [(48, 40, 0.7, 0.9, 32), (512, 448, 0.68, 0.68, 512), (7, 9, 2, 1, 8)]
)
def test_plan_round_trips_through_a_row(dims: tuple) -> None:
    rs = SquareResize.plan(*dims)
    assert _plan(_plan_vector(rs)) == rs


@pytest.mark.parametrize(
    ("perm", "signs"),
    list(itertools.product(itertools.permutations(range(3)), [(1, 1, 1), (-1, 1, -1), (1, -1, 1)])),
)
def test_to_source_inverts_the_canonical_order(perm: tuple, signs: tuple) -> None:
    d = np.zeros((3, 3))
    for a, (lps, s) in enumerate(zip(perm, signs, strict=True)):
        d[lps, a] = s  # storage axis a (x, y, z) points along LPS axis lps
    shape = (5, 6, 7)
    r = Reorientation.of(Geometry(shape, (1.0, 1.0, 2.0), (0.0, 0.0, 0.0), tuple(d.ravel())))
    a = np.arange(np.prod(shape)).reshape(shape)
    c = r.array(a)
    assert sorted(c.shape) == sorted(shape)
    np.testing.assert_array_equal(r.to_source(c), a)
    assert r.identity == (perm == (0, 1, 2) and signs == (1, 1, 1))


class _Broken:
    size = 8

    def squares(self, i: int):
        raise ValueError(f"volume {i}: unreadable")


def test_a_volume_that_cannot_be_read_becomes_one_error_row() -> None:
    row = read_volume({"case": np.array([3])}, _Broken())
    assert row["z"].tolist() == [-1] and row["error"].tolist() == ["volume 3: unreadable"]
    assert row["pre"].shape == (1, 8, 8)
