"""Random training crops (TrainConfig.crop_size): known answers for shapes, lesion placement,
coverage, reproducibility and the config check."""

from __future__ import annotations

import pytest
import torch

from dcesynth.config import ConfigError, build_config
from dcesynth.training.config import TrainConfig
from dcesynth.training.loop import build_discriminator, build_generator, random_crop, rotate
from dcesynth.training.step import GanStep

SHAPES = [(64, 64, 32), (96, 80, 48)]  # (H, W, crop size)


def _batch(n: int, h: int, w: int, phases: int = 2, lesions: dict | None = None) -> dict:
    """Slices whose pixel values encode their position (pre: y·W + x; post: + 10⁵·channel) and
    whose masks hold ``lesions`` {sample: (y0, y1, x0, x1) inclusive}."""
    pos = torch.arange(h * w, dtype=torch.float32).reshape(1, 1, h, w)
    mask = torch.zeros(n, 1, h, w)
    for i, (y0, y1, x0, x1) in (lesions or {}).items():
        mask[i, 0, y0 : y1 + 1, x0 : x1 + 1] = 1.0
    post = pos + 1e5 * torch.arange(1, phases + 1, dtype=torch.float32).reshape(1, -1, 1, 1)
    return {
        "pre": pos.repeat(n, 1, 1, 1),
        "post": post.repeat(n, 1, 1, 1),
        "mask": mask,
        "slice_index": torch.arange(n),
    }


def _origin(batch: dict, w: int) -> list[tuple[int, int]]:
    """Each crop's top-left corner in the slice, read back from the position-coded pre."""
    corner = batch["pre"][:, 0, 0, 0].long()
    return [(int(c) // w, int(c) % w) for c in corner]


@pytest.mark.parametrize(("h", "w", "size"), SHAPES)
def test_crops_are_windows_of_the_same_place_in_every_tensor(h: int, w: int, size: int) -> None:
    b = _batch(6, h, w, lesions={1: (10, 14, 20, 22)})
    full = {k: v.clone() for k, v in b.items()}
    random_crop(b, size, torch.Generator().manual_seed(0))
    assert b["pre"].shape == (6, 1, size, size)
    assert b["post"].shape == (6, 2, size, size)
    assert b["mask"].shape == (6, 1, size, size)
    assert torch.equal(b["slice_index"], full["slice_index"])  # other entries left alone
    for i, (y, x) in enumerate(_origin(b, w)):
        window = (i, slice(None), slice(y, y + size), slice(x, x + size))
        for k in ("pre", "post", "mask"):  # one window per slice, the same in each tensor
            assert torch.equal(b[k][i], full[k][window])


@pytest.mark.parametrize(("h", "w", "size"), SHAPES)
@pytest.mark.parametrize("where", ["middle", "top-left corner", "bottom-right corner"])
def test_the_lesion_centroid_is_always_in_the_crop(h: int, w: int, size: int, where: str) -> None:
    # an L-shaped lesion of 22 pixels: centroid row 315/22 = 14.3, column 246/22 = 11.2 (before
    # the offset), not its box's centre (13.5, 12)
    dy, dx = {"middle": (20, 20), "top-left corner": (-10, -8)}.get(where, (h - 18, w - 15))
    mask = torch.zeros(h, w)
    mask[10 + dy : 18 + dy, 10 + dx : 12 + dx] = 1  # 8 × 2 bar
    mask[16 + dy : 18 + dy, 12 + dx : 15 + dx] = 1  # 2 × 3 foot
    cy, cx = 14 + dy, 11 + dx
    gen = torch.Generator().manual_seed(1)
    seen = set()
    for _ in range(100):
        b = _batch(8, h, w)
        b["mask"][:] = mask
        random_crop(b, size, gen)
        for y, x in _origin(b, w):
            assert y <= cy < y + size and x <= cx < x + size
            seen.add((y, x))
    # drawn among all windows that hold the centroid pixel, not one fixed window
    ny = min(cy, h - size) - max(0, cy - size + 1) + 1
    nx = min(cx, w - size) - max(0, cx - size + 1) + 1
    assert len({y for y, _ in seen}) == ny and len({x for _, x in seen}) == nx


@pytest.mark.parametrize(("h", "w", "size"), SHAPES)
def test_slices_without_lesion_get_windows_all_over_the_slice(h: int, w: int, size: int) -> None:
    gen = torch.Generator().manual_seed(2)
    ys, xs = [], []
    for _ in range(200):
        b = _batch(8, h, w)
        random_crop(b, size, gen)
        for y, x in _origin(b, w):
            ys.append(y)
            xs.append(x)
    # every offset 0..H-size occurs (1600 draws over ≤ 49 values), each about equally often
    assert set(ys) == set(range(h - size + 1)) and set(xs) == set(range(w - size + 1))
    counts = torch.bincount(torch.tensor(ys)).double()
    assert counts.max() / counts.min() < 3
    assert abs(sum(ys) / len(ys) - (h - size) / 2) < 1.5


def test_same_seed_same_crops_after_rotation() -> None:
    """The loop's order (rotate, then crop) on one generator: a resumed run repeats it."""

    def draws(seed: int) -> list[torch.Tensor]:
        gen = torch.Generator().manual_seed(seed)
        out = []
        for _ in range(5):
            b = _batch(4, 64, 64, lesions={0: (40, 50, 5, 9), 3: (3, 3, 60, 60)})
            rotate(b, 0.5, gen)
            random_crop(b, 32, gen)
            out.append(b["post"])
        return out

    a, b, c = draws(7), draws(7), draws(8)
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    assert not all(torch.equal(x, y) for x, y in zip(a, c, strict=True))


@pytest.mark.parametrize(("h", "w", "size"), [(32, 32, 32), (32, 32, 64), (48, 40, 64)])
def test_slices_no_larger_than_the_crop_stay_whole(h: int, w: int, size: int) -> None:
    b = _batch(3, h, w, lesions={0: (1, 2, 1, 2)})
    full = {k: v.clone() for k, v in b.items()}
    gen = torch.Generator().manual_seed(0)
    state = gen.get_state()
    random_crop(b, size, gen)
    assert all(torch.equal(b[k], full[k]) for k in full)
    assert torch.equal(gen.get_state(), state)  # nothing drawn: later draws unchanged


def test_one_axis_longer_than_the_crop_is_cut_along_that_axis_only() -> None:
    b = _batch(2, 80, 32, lesions={0: (70, 75, 3, 5)})
    random_crop(b, 48, torch.Generator().manual_seed(0))
    assert b["pre"].shape == (2, 1, 48, 32)
    (y0, x0), _ = _origin(b, 32)
    assert x0 == 0 and y0 <= 73 < y0 + 48  # the lesion's centroid row 72.5 → pixel 73


def test_none_is_the_whole_slice_and_no_draws() -> None:
    b = _batch(2, 64, 64)
    full = {k: v.clone() for k, v in b.items()}
    gen = torch.Generator().manual_seed(0)
    state = gen.get_state()
    random_crop(b, None, gen)
    assert all(torch.equal(b[k], full[k]) for k in full)
    assert torch.equal(gen.get_state(), state)


@pytest.mark.parametrize(
    ("crop_size", "model", "divisor"),
    [
        (40, {}, 16),  # the study's model: 2**4
        (48, {"generator": "local", "n_downsample": 4}, 32),
        (8, {"n_downsample": 1}, 2),  # a multiple of the divisor, but under 16
    ],
)
def test_bad_crop_size_names_the_key_and_the_divisor(
    crop_size: int, model: dict, divisor: int
) -> None:
    with pytest.raises(ValueError, match=rf"crop_size: {crop_size} .* divisor {divisor}\b"):
        TrainConfig(crop_size=crop_size, model=model)
    with pytest.raises(ConfigError, match="crop_size"):  # as `dcectl train` reports it
        build_config(TrainConfig, None, {"crop_size": crop_size, "model": model})


@pytest.mark.parametrize(
    ("crop_size", "model"),
    [(None, {}), (16, {}), (256, {}), (32, {"generator": "local"}), (18, {"n_downsample": 1})],
)
def test_good_crop_sizes(crop_size: int | None, model: dict) -> None:
    assert TrainConfig(crop_size=crop_size, model=model).crop_size == crop_size


def test_a_step_trains_on_the_smallest_crop() -> None:
    """A 16 px window passes through G, both discriminator scales and the perceptual loss."""
    cfg = TrainConfig(
        crop_size=16,
        bf16=False,
        model={"ngf": 4, "n_downsample": 2, "n_blocks": 1, "ndf": 4},
        loss={"perceptual_network": "vgg19_random"},
    )
    torch.manual_seed(0)
    step = GanStep(build_generator(cfg), build_discriminator(cfg), cfg, torch.device("cpu"))
    b = _batch(2, 64, 64, phases=1, lesions={1: (30, 33, 30, 33)})
    b["pre"] = b["pre"] / 2048 - 1  # position codes → [-1, 1]
    b["post"] = b["pre"].flip(3)
    random_crop(b, cfg.crop_size, torch.Generator().manual_seed(0))
    x, y = b["pre"].expand(-1, 3, -1, -1), b["post"].expand(-1, 3, -1, -1)
    vals = step(x, y, b["mask"])
    assert torch.isfinite(vals).all()
