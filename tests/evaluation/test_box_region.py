"""The tumour box the metrics use: widened to at least one SSIM window (EvalConfig.box_min_px),
with known coordinates in the middle, at the edges and on slices smaller than a window."""

from __future__ import annotations

import numpy as np
import pytest

from dcesynth.config import ConfigError, build_config
from dcesynth.evaluation.config import EvalConfig
from dcesynth.evaluation.metrics import WINDOW
from dcesynth.evaluation.scoring import Pairs, box_description, widen
from dcesynth.trust.config import TrustConfig


def _pairs(boxes: list, h: int = 64, w: int = 64) -> Pairs:
    n = len(boxes)
    return Pairs(
        pre=np.zeros((n, h, w), np.uint8),
        post=np.zeros((n, 1, h, w), np.uint8),
        mask=np.zeros((n, h, w), np.uint8),
        box=boxes,
        case_id=np.array(["c"] * n, dtype=object),
        slice_index=np.arange(n),
        phases=[1],
    )


def _region(h: int, w: int, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
    r = np.zeros((h, w), bool)
    r[y0 : y1 + 1, x0 : x1 + 1] = True
    return r


@pytest.mark.parametrize(
    ("shape", "box", "expected"),
    [
        # 3 × 3 in the middle: 4 pixels added on each side → 11 × 11 about the same centre
        ((64, 64), [10, 12, 20, 22], (6, 16, 16, 26)),
        # 4 rows (surplus 7: 3 above, 4 below) × 1 column (5 each side)
        ((64, 64), [10, 13, 20, 20], (7, 17, 15, 25)),
        # one axis already wide enough: only the other one is widened
        ((64, 64), [5, 30, 40, 41], (5, 30, 36, 46)),
        # top-left corner: shifted inward, 11 × 11 kept
        ((64, 64), [0, 2, 0, 0], (0, 10, 0, 10)),
        # right edge: columns 61..63 → 57..67 → shifted back to 53..63
        ((64, 64), [30, 32, 61, 63], (26, 36, 53, 63)),
        # a non-square slice: the bottom edge at row 39, the right edge at column 63
        ((40, 64), [38, 39, 60, 63], (29, 39, 53, 63)),
        ((40, 96), [0, 39, 90, 95], (0, 39, 85, 95)),
    ],
)
def test_small_boxes_widen_to_one_window(shape, box, expected) -> None:
    h, w = shape
    region = _pairs([box, None], h, w).box_region(WINDOW)
    np.testing.assert_array_equal(region[0], _region(h, w, *expected))
    assert not region[1].any()  # a slice without a box stays empty
    y0, y1, x0, x1 = expected
    assert min(y1 - y0, x1 - x0) + 1 >= WINDOW and y0 >= 0 and x0 >= 0 and y1 < h and x1 < w


@pytest.mark.parametrize("shape", [(64, 64), (48, 80)])
@pytest.mark.parametrize("box", [[5, 15, 5, 15], [0, 20, 30, 47], [3, 40, 0, 11]])
def test_boxes_of_a_window_or_more_are_unchanged(shape, box) -> None:
    region = _pairs([box], *shape).box_region(WINDOW)
    np.testing.assert_array_equal(region[0], _region(*shape, *box))


@pytest.mark.parametrize("shape", [(8, 8), (8, 32)])
def test_slices_smaller_than_a_window_give_their_whole_extent(shape) -> None:
    h, w = shape
    region = _pairs([[2, 3, 4, 4]], h, w).box_region(WINDOW)
    # rows: the whole 8; columns: all 8, or 11 from the left edge (4 - 5 → shifted to 0)
    exp = _region(h, w, 0, h - 1, 0, w - 1) if w < WINDOW else _region(h, w, 0, h - 1, 0, 10)
    np.testing.assert_array_equal(region[0], exp)


@pytest.mark.parametrize("shape", [(64, 64), (40, 72)])
def test_min_px_1_is_the_annotation_box(shape) -> None:
    """min_px = 1 (the default) reproduces the region as it was before widening existed."""
    h, w = shape
    rng = np.random.default_rng(0)
    boxes: list = []
    for _ in range(40):
        y0, x0 = int(rng.integers(0, h)), int(rng.integers(0, w))
        y1, x1 = int(rng.integers(y0, h)), int(rng.integers(x0, w))
        boxes.append([y0, y1, x0, x1] if rng.random() < 0.8 else None)
    old = np.zeros((len(boxes), h, w), bool)
    for i, b in enumerate(boxes):  # the former box_region, verbatim
        if b is not None:
            old[i, b[0] : b[1] + 1, b[2] : b[3] + 1] = True
    p = _pairs(boxes, h, w)
    np.testing.assert_array_equal(p.box_region(1), old)
    np.testing.assert_array_equal(p.box_region(), old)


@pytest.mark.parametrize("min_px", [2, 5, 11, 20])
def test_widen_keeps_size_inside_the_slice_everywhere(min_px: int) -> None:
    """Every range of a 32-px axis: the result holds the range, is max(its size, min_px) long,
    lies inside the axis, and is centred on it unless an edge is in the way."""
    extent = 32
    for lo in range(extent):
        for hi in range(lo, extent):
            a, b = widen(lo, hi, extent, min_px)
            assert 0 <= a <= lo and hi <= b < extent
            assert b - a + 1 == max(hi - lo + 1, min_px)
            if a > 0 and b < extent - 1:  # off the edges: symmetric, odd pixel on the high side
                assert (b - hi) - (lo - a) in (0, 1)


def test_bad_min_px() -> None:
    with pytest.raises(ValueError, match="min_px must be >= 1"):
        _pairs([[1, 2, 3, 4]]).box_region(0)


def test_configs_default_to_one_ssim_window_and_name_the_key() -> None:
    assert EvalConfig().box_min_px == TrustConfig().box_min_px == WINDOW == 11
    assert EvalConfig(box_min_px=1).box_min_px == 1
    for cls in (EvalConfig, TrustConfig):
        with pytest.raises(ConfigError, match=r"box[_-]min[_-]px"):  # key or flag
            build_config(cls, None, {"box_min_px": 0})


def test_the_report_line_says_which_box() -> None:
    assert box_description(11) == (
        "tumour box: the annotation box widened to at least 11 px (one SSIM window) per axis, "
        "about its centre and kept inside the slice"
    )
    assert "at least 15 px per axis" in box_description(15)
    assert box_description(1) == "tumour box: the annotation box, as annotated"
