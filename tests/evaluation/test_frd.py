"""FRD (frd-score v1) in the platform's evaluation: known answers on hand-made slices, the
cached-feature path against ``frd_score.compute_frd``, and FRD inside SAMe (log scale, −inf)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from dcesynth.evaluation import frd as R
from dcesynth.evaluation import same as S
from dcesynth.evaluation.config import EvalConfig

N, SIZE = 8, 48


def slices(seed: int = 0, n: int = N, size: int = SIZE) -> np.ndarray:
    """Breast-like slices: a smooth background, one bright disc (the lesion) and mild noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.indices((size, size))
    out = []
    for _ in range(n):
        cy, cx = rng.integers(size // 3, 2 * size // 3, 2)
        r = rng.uniform(size / 8, size / 5)
        bg = 60 + 40 * np.outer(np.hanning(size), np.hanning(size))
        out.append(
            bg + 120 * ((yy - cy) ** 2 + (xx - cx) ** 2 < r * r) + rng.normal(0, 4, bg.shape)
        )
    return np.clip(np.array(out), 0, 255).astype(np.float32)


@pytest.fixture(scope="module")
def real() -> np.ndarray:
    return slices()


@pytest.fixture(scope="module")
def real_features(real: np.ndarray) -> np.ndarray:
    return R.features(real)


def noisy(real: np.ndarray, sigma: float) -> np.ndarray:
    return real + np.random.default_rng(1).normal(0, sigma, real.shape).astype(np.float32)


def test_frd_of_a_set_against_itself_is_its_floor_and_grows_with_distortion(
    real: np.ndarray, real_features: np.ndarray
) -> None:
    itself = R.frd(real, real.copy(), real_features=real_features)
    values = [R.frd(real, noisy(real, s), real_features=real_features) for s in (8, 30, 80)]
    assert itself == -math.inf  # log(d_F²) of identical sets: d_F² = 0
    assert values == sorted(values) and len(set(values)) == 3, values  # monotone, strictly
    assert all(math.isfinite(v) for v in values)


def test_features_are_bit_identical_run_to_run_and_itk_threads_restored(
    real: np.ndarray, real_features: np.ndarray
) -> None:
    """With ITK's default threads the same slices gave features differing in the last float32
    bit from run to run, which FRD's z-scoring turned into FRD 0.11–0.33 of a set against
    itself; extraction now runs ITK single-threaded and puts the setting back."""
    import SimpleITK as sitk

    before = sitk.ProcessObject.GetGlobalDefaultNumberOfThreads()
    for _ in range(2):
        np.testing.assert_array_equal(R.features(real.copy()), real_features)
    assert sitk.ProcessObject.GetGlobalDefaultNumberOfThreads() == before


def test_cached_features_give_frd_scores_own_number(
    real: np.ndarray, real_features: np.ndarray, tmp_path: Path
) -> None:
    """Our two halves (features once, post-processing per set) = compute_frd on the files."""
    import SimpleITK as sitk
    from frd_score import compute_frd

    fake = noisy(real, 30)
    files: dict[str, list[str]] = {"r": [], "f": []}
    for key, arr in (("r", real), ("f", fake)):
        for i, a in enumerate(arr):
            img = sitk.GetImageFromArray(a)
            img.SetSpacing((1.0, 1.0))
            files[key].append(str(tmp_path / f"{key}{i:02d}.mha"))
            sitk.WriteImage(img, files[key][-1])
    official = compute_frd([files["r"], files["f"]], frd_version="v1", num_workers=1)
    ours = R.frd(real, fake, real_features=real_features)
    # sqrtm of the singular covariances (8 images, ~400 features) differs run to run at ~1e-5
    assert ours == pytest.approx(float(official), rel=1e-3)


def test_frd_inside_masks_uses_the_region(real: np.ndarray) -> None:
    masks = np.zeros(real.shape, bool)
    masks[:, 12:36, 12:36] = True
    inside = R.features(real[:3], masks[:3])
    assert inside.shape[0] == 3 and np.isfinite(inside).any()
    with pytest.raises(ValueError, match="masks of shape"):
        R.features(real, masks[:, :10])


def test_frd_needs_two_images_per_set() -> None:
    with pytest.raises(ValueError, match="at least 2"):
        R.frd_from_features(np.ones((1, 5)), np.ones((3, 5)))
    with pytest.raises(ValueError, match="shapes"):
        R.frd_from_features(np.ones((3, 5)), np.ones((3, 4)))


def test_subset_is_seeded_and_bounded() -> None:
    assert R.subset(5, 10, 0).tolist() == [0, 1, 2, 3, 4]
    a, b = R.subset(100, 7, 3), R.subset(100, 7, 3)
    assert a.tolist() == b.tolist() == sorted(a.tolist()) and len(a) == 7


# --- the Scorer: frd, frd_box, the real set's features extracted once ----------------------


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The sizes of the image sets R.features extracts, in order (the real call still runs)."""
    seen: list[int] = []
    original = R.features

    def counting(images, masks=None, workers=1):
        seen.append(len(images))
        return original(images, masks, workers)

    monkeypatch.setattr(R, "features", counting)
    return seen


def test_scorer_computes_frd_and_frd_box_and_caches_the_real_features(
    real: np.ndarray, calls: list[int]
) -> None:
    from dcesynth.evaluation.scoring import Scorer

    cfg = EvalConfig(metrics=("mae", "frd", "frd_box"), same_metrics=("mae",), device="cpu")
    scorer = Scorer(cfg)
    box = np.zeros(real.shape, bool)
    box[:5, 10:30, 10:30] = True  # 5 of 8 slices have a tumour box
    fake = noisy(real, 30)
    first = scorer.score(real, fake, real_key=("val",), box=box)
    assert calls == [N, N, 5, 5]  # real, fake, real in box, fake in box
    assert math.isfinite(first["frd"]["mean"]) and first["frd"]["n"] == N
    assert math.isfinite(first["frd_box"]["mean"]) and first["frd_box"]["n"] == 5
    calls.clear()
    again = scorer.score(real, fake, real_key=("val",), box=box)
    assert calls == [N, 5]  # the real features come from the cache
    assert again["frd"]["mean"] == pytest.approx(first["frd"]["mean"], rel=1e-3)
    calls.clear()
    skipped = scorer.score(real, fake, real_key=("val",), box=box, skip=R.FRD_METRICS)
    assert calls == [] and "frd" not in skipped and "frd_box" not in skipped


def test_a_recurring_baseline_extracts_its_features_once(
    real: np.ndarray, calls: list[int]
) -> None:
    """The pre-contrast baseline of each phase: the same "fake" images against each phase's
    real post; with ``fake_key`` its features (whole slice and box) are extracted once, and the
    numbers equal the uncached path's."""
    from dcesynth.evaluation.scoring import Scorer

    cfg = EvalConfig(metrics=("mae", "frd", "frd_box"), same_metrics=("mae",), device="cpu")
    box = np.zeros(real.shape, bool)
    box[:5, 10:30, 10:30] = True
    pre = noisy(real, 30)
    posts = {1: real, 2: np.clip(real * 1.2, 0, 255)}
    cached, plain = Scorer(cfg), Scorer(cfg)
    for p, post in posts.items():
        calls.clear()
        a = cached.score(post, pre, real_key=("val", p), box=box, fake_key=("val", "pre"))
        # phase 1: post, pre, post in box, pre in box; phase 2: only its own post's features
        assert calls == ([N, N, 5, 5] if p == 1 else [N, 5])
        b = plain.score(post, pre, real_key=("val", p), box=box)
        for m in ("frd", "frd_box"):
            assert a[m]["mean"] == pytest.approx(b[m]["mean"], rel=1e-6), (p, m)


def test_frd_is_opt_in_and_validated() -> None:
    assert "frd" not in EvalConfig().metrics  # the study's metric set is unchanged
    cfg = EvalConfig(metrics=("mae", "frd"), same_metrics=("frd", "mae"))
    assert cfg.same_metrics == ("frd", "mae") and cfg.left_out[-1] == "fid_rad"
    with pytest.raises(ValueError, match="are not computed"):
        EvalConfig(metrics=("mae",), same_metrics=("frd",))


# --- SAMe with FRD: log(d_F²), negative values and −inf ------------------------------------


def test_same_takes_frd_back_to_the_squared_distance() -> None:
    assert S.linear("frd", -math.inf) == 0.0
    assert S.linear("frd", math.log(4.0)) == pytest.approx(4.0)
    assert S.linear("frd_box", -1.0) == pytest.approx(math.exp(-1.0))
    assert math.isnan(S.linear("frd", math.nan))
    assert S.linear("mae", -2.0) == -2.0  # other metrics untouched


def test_same_ranks_the_checkpoint_with_better_frd_ahead_when_all_else_is_equal() -> None:
    same_rest = {"ssim": 0.8, "mae": 10.0, "mse": 150.0}
    table = {
        "a": {**same_rest, "frd": 6.0},
        "b": {**same_rest, "frd": 4.5},  # better
        "c": {**same_rest, "frd": -0.5},  # better still: negative values are fine
    }
    same = S.population_same(table, ("frd", "ssim", "mae", "mse"))
    assert same["c"] < same["b"] < same["a"]
    assert S.select(same) == "c"


def test_same_of_a_perfect_frd_is_finite_and_best() -> None:
    """−inf (a set identical to the real one) is the ideal d_F² = 0, not a disqualifying NaN."""
    table = {"a": {"frd": 3.0, "mae": 5.0}, "b": {"frd": -math.inf, "mae": 5.0}}
    same = S.population_same(table, ("frd", "mae"))
    assert same == {"a": pytest.approx(0.5), "b": 0.0}
    assert S.select(same) == "b"


def test_anchored_same_scales_frd_as_a_ratio_of_squared_distances() -> None:
    base = {"frd": 5.0, "mae": 20.0}
    got = S.anchored_same({"frd": 4.0, "mae": 10.0}, base, ("frd", "mae"))
    assert got == pytest.approx((math.exp(4.0 - 5.0) + 0.5) / 2)
    assert S.anchored_same({"frd": -math.inf}, base, ("frd",)) == 0.0  # perfect
    assert S.anchored_same({"frd": 5.0}, base, ("frd",)) == pytest.approx(1.0)  # = the input
    with pytest.raises(ValueError, match="equals its ideal"):
        S.anchored_same({"frd": 1.0}, {"frd": -math.inf}, ("frd",))


def test_forked_feature_workers_end_quietly_on_sigterm() -> None:
    """frd-score's pool workers are forked and ended with SIGTERM: they must not inherit this
    process's handler (Ray's prints a stack trace per worker); this process keeps its own."""
    import os
    import signal

    def mine(*_: object) -> None: ...

    before = signal.signal(signal.SIGTERM, mine)
    try:
        R.quiet_forked_children()
        R.quiet_forked_children()  # once per process, whatever the calls
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child reports its SIGTERM disposition and leaves at once
            os.write(w, b"default" if signal.getsignal(signal.SIGTERM) == signal.SIG_DFL else b"x")
            os._exit(0)
        os.close(w)
        assert os.read(r, 16) == b"default"
        os.waitpid(pid, 0)
        assert signal.getsignal(signal.SIGTERM) is mine
    finally:
        signal.signal(signal.SIGTERM, before)
