"""Per-case preparation steps with known answers: normalisers, slice selection, the square
resize and its box mapping, pseudonyms and patient-level splits."""

from __future__ import annotations

import hashlib
import re
from collections import Counter

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from dcesynth.data.ingest.transforms import (
    NORMALISERS,
    SquareResize,
    assign_splits,
    minmax,
    normalise,
    normaliser,
    percentile,
    pseudonym,
    select_slices,
    unnormalise,
    zscore,
)

# --- normalisers ----------------------------------------------------------------------------


def test_registry() -> None:
    assert sorted(NORMALISERS) == ["minmax", "percentile", "zscore"]
    assert normaliser("minmax") is minmax
    assert normaliser("percentile") is percentile
    assert normaliser("zscore") is zscore


@pytest.mark.parametrize("name", ["histogram", "MinMax", "", "z-score"])
def test_unknown_normaliser_lists_valid_names(name: str) -> None:
    with pytest.raises(
        ValueError,
        match=re.escape(
            f"unknown normalisation {name!r}; valid: ['minmax', 'percentile', 'zscore']"
        ),
    ):
        normaliser(name)


@pytest.mark.parametrize("shift", [0.0, -1234.5, 1e5])
def test_minmax_known_answer(shift: float) -> None:
    v = np.array([[[-10.0, 0.0, 30.0], [10.0, 20.0, -10.0]]], np.float32) + shift
    out = minmax(v)
    assert out.dtype == np.uint8 and out.shape == v.shape
    # (v + 10) * 255 / 40: 0 → 63.75, 10 → 127.5 (rint: 128), 20 → 191.25
    np.testing.assert_array_equal(out, [[[0, 64, 255], [128, 191, 0]]])


@pytest.mark.parametrize("consume", [False, True])
@pytest.mark.parametrize("name", ["minmax", "percentile", "zscore"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.uint16])
def test_normalisers_are_the_plain_formula_bit_for_bit(dtype, name: str, consume: bool) -> None:
    """The in-place arithmetic gives the dataset bytes the textbook expression gives; without
    ``consume`` the input is left as it was."""
    v = (np.random.default_rng(1).gamma(2.0, 300.0, (5, 33, 31)) + 7).astype(dtype)
    keep = v.copy()
    if name == "minmax":
        lo, hi = float(v.min()), float(v.max())
    elif name == "percentile":
        lo, hi = (float(x) for x in np.percentile(v, (0.5, 99.5)))
    else:
        mu, sd = float(v.mean()), float(v.std())
        lo, hi = mu - 3.0 * sd, mu + 3.0 * sd
    ref = np.rint((np.clip(v, lo, hi) - lo) * (255.0 / (hi - lo))).astype(np.uint8)
    np.testing.assert_array_equal(normaliser(name)(v, consume=consume), ref)
    if not consume:
        np.testing.assert_array_equal(v, keep)


def test_minmax_maps_min_and_max_exactly() -> None:
    v = np.random.default_rng(0).gamma(2.0, 300.0, (6, 20, 20)).astype(np.float32)
    out = minmax(v)
    assert out[np.unravel_index(v.argmin(), v.shape)] == 0
    assert out[np.unravel_index(v.argmax(), v.shape)] == 255
    assert out.min() == 0 and out.max() == 255
    order = np.argsort(v, axis=None)  # monotone
    assert np.all(np.diff(out.ravel()[order].astype(int)) >= 0)


def test_percentile_clips() -> None:
    v = np.arange(101, dtype=np.float32).reshape(1, 1, 101)
    v[0, 0, 100] = 1e6  # a hot voxel: percentile 90 is 90 whatever its value
    out = percentile(v, percentiles=(10.0, 90.0))
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out[0, 0, :11], 0)  # at or below the low percentile
    np.testing.assert_array_equal(out[0, 0, 90:], 255)  # at or above the high one
    # (v − 10) · 255 / 80
    assert [int(out[0, 0, i]) for i in (30, 50, 70)] == [64, 128, 191]
    assert minmax(v)[0, 0, 90] == 0  # what the hot voxel does without clipping


def test_percentile_defaults_from_the_study() -> None:
    v = np.linspace(0, 1, 1001, dtype=np.float32).reshape(1, 1, 1001)
    lo, hi = np.percentile(v, (0.5, 99.5))
    out = normaliser("percentile")(v)
    np.testing.assert_array_equal(out[v <= lo], 0)
    np.testing.assert_array_equal(out[v >= hi], 255)
    assert 0 < out[0, 0, 500] < 255


@pytest.mark.parametrize(
    ("clip", "expected"),
    [(3.0, [0, 85, 128, 170, 255]), (1.0, [0, 0, 128, 255, 255]), (2.0, [0, 64, 128, 191, 255])],
)
def test_zscore_known_answer(clip: float, expected: list[int]) -> None:
    # mean 0, sd 1 (population): values −1 and +1, plus probes at −4, 0, +4 of weight ~0
    base = np.array([-1.0, 1.0] * 50_000, np.float64)
    v = np.concatenate([base, [-4.0, 0.0, 4.0]]).astype(np.float32).reshape(1, 1, -1)
    out = zscore(v, zscore_clip=clip)
    got = [int(out[0, 0, -3]), int(out[0, 0, 0]), int(out[0, 0, -2]), int(out[0, 0, 1])]
    got.append(int(out[0, 0, -1]))
    assert got == expected  # −4, −1, 0, +1, +4 sd → (z + clip) · 255 / (2 clip), clipped


@pytest.mark.parametrize("name", sorted(NORMALISERS))
@pytest.mark.parametrize("value", [0.0, 812.0])
def test_constant_volume_raises(name: str, value: float) -> None:
    with pytest.raises(ValueError, match=rf"constant volume \(min = max = {value}\)"):
        normaliser(name)(np.full((2, 3, 3), value, np.float32))


@pytest.mark.parametrize("name", sorted(NORMALISERS))
def test_normalisers_accept_all_options(name: str) -> None:
    """prepare.py passes both options to whichever normaliser is configured."""
    v = np.arange(27, dtype=np.float32).reshape(3, 3, 3)
    out = normaliser(name)(v, percentiles=(0.0, 100.0), zscore_clip=10.0)
    assert out.dtype == np.uint8 and out.shape == v.shape
    assert np.all(np.diff(out.ravel().astype(int)) >= 0)


@pytest.mark.parametrize(
    ("name", "window"),
    [("minmax", (-3.0, 96.0)), ("percentile", (-2.01, 95.01)), ("zscore", (-40.10, 133.10))],
)
def test_normalise_returns_the_window_that_undoes_it(name: str, window: tuple) -> None:
    """The window is the one the uint8 image was mapped from; inside it, unnormalise restores
    every voxel to within half a uint8 step (trust's kinetics compare phases with it)."""
    v = np.arange(100, dtype=np.float32).reshape(4, 5, 5) - 3.0  # −3 … 96: mean 46.5, sd 28.87
    u8, (lo, hi) = normalise(name, v.copy(), percentiles=(1.0, 99.0), zscore_clip=3.0)
    assert (lo, hi) == pytest.approx(window, abs=0.01)
    np.testing.assert_array_equal(u8, normaliser(name)(v.copy(), percentiles=(1.0, 99.0)))
    inside = (v >= lo) & (v <= hi)
    err = np.abs(unnormalise(u8, (lo, hi)) - v)[inside]
    assert err.max() <= (hi - lo) / 510 + 1e-9
    assert err.max() > 0  # uint8 loses something: the test would see a no-op unnormalise


def test_normalise_unknown_name_lists_valid_names() -> None:
    with pytest.raises(ValueError, match=r"unknown normalisation 'robust'.*'minmax'"):
        normalise("robust", np.ones(3, np.float32))


# --- slice selection ------------------------------------------------------------------------


def test_select_all() -> None:
    np.testing.assert_array_equal(select_slices(7, "all", None, 0.05), np.arange(7))
    np.testing.assert_array_equal(select_slices(7, "all", (2, 3), 0.05), np.arange(7))


@pytest.mark.parametrize(
    ("n", "z_range", "fraction", "expected"),
    [
        (100, (40, 59), 0.05, (39, 60)),  # extent 20 → margin ceil(1.0) = 1
        (100, (30, 69), 0.05, (28, 71)),  # extent 40 → 2
        (100, (30, 50), 0.05, (28, 52)),  # extent 21 → ceil(1.05) = 2
        (100, (50, 50), 0.05, (49, 51)),  # one slice → ceil(0.05) = 1
        (200, (20, 79), 0.05, (17, 82)),  # extent 60 → 3
        (200, (10, 129), 0.05, (4, 135)),  # extent 120 → 6
        (100, (40, 59), 0.0, (40, 59)),  # no margin
        (100, (40, 59), 0.25, (35, 64)),
        (100, (0, 19), 0.05, (0, 20)),  # clipped at the first slice
        (100, (80, 99), 0.05, (79, 99)),  # and at the last
        (16, (1, 14), 1.0, (0, 15)),  # the whole volume
        (100, (0, 99), 0.05, (0, 99)),
    ],
)
def test_select_tumour(n: int, z_range, fraction: float, expected) -> None:
    idx = select_slices(n, "tumour", z_range, fraction)
    np.testing.assert_array_equal(idx, np.arange(expected[0], expected[1] + 1))


def test_select_tumour_margin_is_exact_for_a_whole_number() -> None:
    idx = select_slices(300, "tumour", (100, 199), 0.07)
    np.testing.assert_array_equal(idx, np.arange(93, 207))


def test_select_tumour_needs_a_range() -> None:
    with pytest.raises(ValueError, match="selection 'tumour' needs a box or a mask"):
        select_slices(10, "tumour", None, 0.05)


def test_select_unknown_policy() -> None:
    with pytest.raises(ValueError, match=r"unknown selection 'middle'; valid: \['all', 'tumour'\]"):
        select_slices(10, "middle", (2, 3), 0.05)


# --- square resize --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        # ny, nx, dy, dx, size → scale_y, scale_x, out_h, out_w, pad_y, pad_x
        ((48, 48, 7.225, 7.225, 32), (2 / 3, 2 / 3, 32, 32, 0, 0)),
        ((48, 48, 0.7, 0.7, 64), (4 / 3, 4 / 3, 64, 64, 0, 0)),
        ((48, 48, 1.0, 0.5, 32), (2 / 3, 1 / 3, 32, 16, 0, 8)),
        ((48, 48, 0.5, 1.0, 32), (1 / 3, 2 / 3, 16, 32, 8, 0)),
        ((40, 60, 1.0, 1.0, 64), (43 / 40, 64 / 60, 43, 64, 10, 0)),
        ((60, 40, 1.0, 1.0, 32), (32 / 60, 21 / 40, 32, 21, 0, 5)),
    ],
)
def test_plan_known_answers(args, expected) -> None:
    rs = SquareResize.plan(*args)
    got = (rs.scale_y, rs.scale_x, rs.out_h, rs.out_w, rs.pad_y, rs.pad_x)
    assert got == pytest.approx(expected)
    assert (rs.ny, rs.nx, rs.size) == (args[0], args[1], args[4])


@pytest.mark.parametrize("size", [32, 64])
def test_square_in_is_a_plain_resize(size: int) -> None:
    stack = np.random.default_rng(1).integers(0, 256, (3, 2, 48, 48)).astype(np.uint8)
    rs = SquareResize.plan(48, 48, 0.8, 0.8, size)
    assert (rs.out_h, rs.out_w, rs.pad_y, rs.pad_x) == (size, size, 0, 0)
    out = rs.apply(stack)
    assert out.shape == (3, 2, size, size) and out.dtype == np.uint8
    ref = F.interpolate(
        torch.from_numpy(stack.astype(np.float32)),
        size=(size, size),
        mode="bilinear",
        align_corners=False,
        antialias=True,
    )
    np.testing.assert_array_equal(out, ref.round().clamp(0, 255).to(torch.uint8).numpy())


def test_same_size_is_the_identity() -> None:
    stack = np.random.default_rng(2).integers(0, 256, (20, 1, 32, 32)).astype(np.uint8)
    plan = SquareResize.plan(32, 32, 1.0, 1.0, 32)
    np.testing.assert_array_equal(plan.apply(stack), stack)
    mask = (stack > 200).astype(np.uint8)
    np.testing.assert_array_equal(plan.apply(mask, binary=True), mask)
    assert plan.apply(stack) is not stack  # a copy: the caller may reuse its buffer


SHAPES = [  # ny, nx, dy, dx
    (48, 48, 1.0, 0.5),
    (48, 48, 0.5, 1.0),
    (40, 60, 1.0, 1.0),
    (60, 40, 0.9, 0.9),
    (17, 50, 2.0, 0.6),
    (48, 48, 0.7, 0.7),
]


@pytest.mark.parametrize("size", [32, 64])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "{}x{}@{}x{}".format(*s))
def test_non_square_is_padded_with_aspect_kept(size: int, shape) -> None:
    ny, nx, dy, dx = shape
    rs = SquareResize.plan(ny, nx, dy, dx, size)
    assert max(rs.out_h, rs.out_w) == size
    # physical aspect kept to within a pixel of rounding
    assert rs.out_h / rs.out_w == pytest.approx(
        (ny * dy) / (nx * dx), rel=1.0 / min(rs.out_h, rs.out_w)
    )
    assert rs.pad_y == (size - rs.out_h) // 2 and rs.pad_x == (size - rs.out_w) // 2
    out = rs.apply(np.full((2, 3, ny, nx), 100, np.uint8))  # a constant stays constant
    content = np.zeros((size, size), bool)
    content[rs.pad_y : rs.pad_y + rs.out_h, rs.pad_x : rs.pad_x + rs.out_w] = True
    assert np.all(out[..., content] == 100)
    assert np.all(out[..., ~content] == 0)  # zero padding


@pytest.mark.parametrize("size", [32, 64])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "{}x{}@{}x{}".format(*s))
@pytest.mark.parametrize("obj", [(5, 12, 7, 20), (0, 3, 0, 0), (10, 16, 30, 39)])
def test_box_covers_the_resized_object(size: int, shape, obj) -> None:
    ny, nx, dy, dx = shape
    y0, y1, x0, x1 = (min(v, n - 1) for v, n in zip(obj, (ny, ny, nx, nx), strict=True))
    rs = SquareResize.plan(ny, nx, dy, dx, size)
    mask = np.zeros((1, 1, ny, nx), np.uint8)
    mask[..., y0 : y1 + 1, x0 : x1 + 1] = 1
    out = rs.apply(mask, binary=True)[0, 0]
    assert set(np.unique(out)) <= {0, 1}
    b0, b1, c0, c1 = rs.box(y0, y1, x0, x1)
    assert 0 <= b0 <= b1 < size and 0 <= c0 <= c1 < size
    ys, xs = np.nonzero(out)
    if len(ys):  # every resized object pixel lies in the box
        assert b0 <= ys.min() and ys.max() <= b1 and c0 <= xs.min() and xs.max() <= c1
    # and the box is the input box's footprint: edges map to edges
    assert b0 == rs.pad_y + int(np.floor(y0 * rs.scale_y))
    assert b1 == rs.pad_y + min(rs.out_h, int(np.ceil((y1 + 1) * rs.scale_y))) - 1
    # a whole-slice box is the whole content
    assert rs.box(0, ny - 1, 0, nx - 1) == (
        rs.pad_y,
        rs.pad_y + rs.out_h - 1,
        rs.pad_x,
        rs.pad_x + rs.out_w - 1,
    )


@pytest.mark.parametrize("size", [32, 64])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "{}x{}@{}x{}".format(*s))
def test_binary_masks_stay_binary(size: int, shape) -> None:
    ny, nx, dy, dx = shape
    rng = np.random.default_rng(size)
    yy, xx = np.mgrid[:ny, :nx]
    masks = np.stack(
        [
            ((yy - rng.uniform(0, ny)) ** 2 + (xx - rng.uniform(0, nx)) ** 2 < rng.uniform(9, 200))
            for _ in range(5)
        ]
    ).astype(np.uint8)[:, None]
    rs = SquareResize.plan(ny, nx, dy, dx, size)
    out = rs.apply(masks, binary=True)
    assert out.dtype == np.uint8 and out.shape == (5, 1, size, size)
    assert set(np.unique(out)) <= {0, 1}
    for m, o in zip(masks, out, strict=True):  # a blob neither vanishes nor fills the slice
        if m.sum() >= 4:
            assert 0 < o.sum() < size * size
    assert rs.apply(np.ones((1, 1, ny, nx), np.uint8), binary=True).sum() == rs.out_h * rs.out_w


# --- pseudonyms -----------------------------------------------------------------------------


def test_pseudonym_known_answer() -> None:
    expected = "c" + hashlib.sha256(b"secret:Breast_MRI_001").hexdigest()[:12]
    assert pseudonym("Breast_MRI_001", "secret") == expected


@pytest.mark.parametrize("key", ["Breast_MRI_001", "Phantom_MRI_003", "p", "ISPY2-100899"])
def test_pseudonym_stable_and_salted(key: str) -> None:
    a = pseudonym(key, "salt-one")
    assert re.fullmatch(r"c[0-9a-f]{12}", a)
    assert pseudonym(key, "salt-one") == a
    assert pseudonym(key, "salt-two") != a
    assert pseudonym(key + "x", "salt-one") != a
    assert key.lower() not in a.lower() or len(key) == 1


def test_pseudonyms_of_a_cohort_are_distinct_and_anonymous() -> None:
    keys = [f"Breast_MRI_{i:03d}" for i in range(1, 923)]
    ids = [pseudonym(k, "dcesynth") for k in keys]
    assert len(set(ids)) == len(keys)
    assert not any(k[-3:] in cid and k in cid for k, cid in zip(keys, ids, strict=True))
    assert not any("MRI" in cid or "Breast" in cid for cid in ids)


# --- splits ---------------------------------------------------------------------------------

DUKE = {"train": 0.8, "val": 0.1, "test": 0.1}


def keys(n: int) -> list[str]:
    return [f"Breast_MRI_{i:03d}" for i in range(1, n + 1)]


def test_splits_are_deterministic_for_a_seed() -> None:
    ks = keys(50)
    a = assign_splits(ks, DUKE, 7)
    assert assign_splits(ks, DUKE, 7) == a
    assert assign_splits(list(reversed(ks)), DUKE, 7) == a  # not the order given


def test_different_seeds_differ() -> None:
    ks = keys(50)
    splits = [assign_splits(ks, DUKE, s) for s in range(4)]
    assert all(a != b for i, a in enumerate(splits) for b in splits[i + 1 :])
    for s in splits:  # but all with the same counts
        assert Counter(s.values()) == {"train": 40, "val": 5, "test": 5}


@pytest.mark.parametrize(
    ("n", "ratios", "expected"),
    [
        (100, DUKE, {"train": 80, "val": 10, "test": 10}),
        (10, DUKE, {"train": 8, "val": 1, "test": 1}),
        (7, DUKE, {"train": 5, "val": 1, "test": 1}),  # largest remainders
        (4, DUKE, {"train": 2, "val": 1, "test": 1}),  # test borrows one from train
        (3, DUKE, {"train": 1, "val": 1, "test": 1}),  # every split non-empty when possible
        (2, DUKE, {"train": 2}),  # not possible: the largest split first
        (1, DUKE, {"train": 1}),
        (9, {"a": 2.0, "b": 1.0}, {"a": 6, "b": 3}),  # ratios need not sum to 1
        (5, {"train": 1.0, "val": 0.0}, {"train": 5}),  # a zero ratio stays empty
        (922, {"train": 0.7, "val": 0.15, "test": 0.15}, {"train": 646, "val": 138, "test": 138}),
    ],
)
@pytest.mark.parametrize("seed", [0, 3])
def test_split_counts(n: int, ratios: dict, expected: dict, seed: int) -> None:
    ks = keys(n)
    out = assign_splits(ks, ratios, seed)
    assert sorted(out) == ks  # every case exactly once
    assert dict(Counter(out.values())) == expected


@pytest.mark.parametrize("n", [3, 5, 6, 11, 20, 57])
@pytest.mark.parametrize(
    "ratios", [DUKE, {"a": 0.98, "b": 0.01, "c": 0.01}, {"a": 1, "b": 1, "c": 1, "d": 0.01}]
)
def test_splits_non_empty_and_near_ratios(n: int, ratios: dict) -> None:
    out = assign_splits(keys(n), ratios, 0)
    counts = Counter(out.values())
    assert sum(counts.values()) == n and set(counts) <= set(ratios)
    positive = [s for s, r in ratios.items() if r > 0]
    if n >= len(positive):
        assert all(counts[s] >= 1 for s in positive), counts
    total = sum(ratios.values())
    for s, r in ratios.items():  # within the rounding and the one case lent per empty split
        assert abs(counts[s] - n * r / total) <= 1 + len(positive)


@pytest.mark.parametrize(
    ("ny", "nx", "dy", "dx"), [(40, 40, 1.0, 1.0), (48, 30, 0.8, 1.2), (30, 64, 2.0, 1.0)]
)
def test_square_resize_invert_returns_to_the_slice_grid(
    ny: int, nx: int, dy: float, dx: float
) -> None:
    """Synthesis' way back: pad cropped, original grid, uint8; a smooth image survives."""
    rs = SquareResize.plan(ny, nx, dy, dx, 32)
    yy, xx = np.mgrid[:ny, :nx]
    img = (100 + 80 * np.sin(yy / ny * np.pi) * np.cos(xx / nx * np.pi)).astype(np.uint8)
    sq = rs.apply(img[None, None]).astype(np.float32)
    back = rs.invert(sq)
    assert back.shape == (1, 1, ny, nx) and back.dtype == np.uint8
    assert np.abs(back[0, 0].astype(int) - img).mean() < 3.0
    # values outside the content (the padding) never leak in: a padded frame of 255 is cropped
    sq[:, :, : rs.pad_y], sq[:, :, rs.pad_y + rs.out_h :] = 255, 255
    np.testing.assert_array_equal(rs.invert(sq), back)
