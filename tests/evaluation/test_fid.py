"""Fréchet distance and FID (dcesynth.evaluation.fid): closed-form answers, agreement with
pytorch-fid, singular covariances, input checks and the by-patient split."""

from __future__ import annotations

import numpy as np
import pytest
from pytorch_fid.fid_score import calculate_frechet_distance

from dcesynth.evaluation import fid as F

# pytorch-fid 0.3 passes scipy's deprecated `disp` to sqrtm; not our concern here
quiet_ref = pytest.mark.filterwarnings("ignore:The `disp` argument:DeprecationWarning")


def correlated(n: int, d: int, seed: int, shift: float = 0.0) -> np.ndarray:
    """(n, d) Gaussian features with a random, well-conditioned covariance."""
    rng = np.random.default_rng(seed)
    mix = np.eye(d) + 0.3 * rng.normal(size=(d, d)) / np.sqrt(d)
    return rng.normal(size=(n, d)) @ mix + shift + rng.normal(size=d)


@pytest.mark.parametrize("d", [1, 2, 16, 64])
def test_unit_shift_of_identity_gaussians_is_d(d: int) -> None:
    # ‖0 − 1‖² = d; the covariances are equal, so the trace terms cancel
    fd = F.frechet_distance(np.zeros(d), np.eye(d), np.ones(d), np.eye(d))
    assert fd == pytest.approx(d, abs=1e-8)


@pytest.mark.parametrize(
    ("m1", "s1", "m2", "s2"),
    [(0.0, 1.0, 0.0, 2.0), (1.0, 3.0, -2.0, 0.5), (5.0, 0.0, 5.0, 4.0), (2.0, 1.5, 2.0, 1.5)],
)
def test_one_dimensional_known_answer(m1: float, s1: float, m2: float, s2: float) -> None:
    # 1-D: FID = (m1 − m2)² + s1² + s2² − 2 s1 s2 = (m1 − m2)² + (s1 − s2)²  (s = std)
    expected = (m1 - m2) ** 2 + (s1 - s2) ** 2
    assert F.frechet_distance(m1, s1**2, m2, s2**2) == pytest.approx(expected, abs=1e-10)
    assert F.frechet_distance([m1], [[s1**2]], [m2], [[s2**2]]) == pytest.approx(
        expected, abs=1e-10
    )


@pytest.mark.parametrize("d", [3, 10])
def test_diagonal_covariances_sum_per_dimension(d: int) -> None:
    rng = np.random.default_rng(d)
    m1, m2 = rng.normal(size=d), rng.normal(size=d)
    s1, s2 = rng.uniform(0.1, 3, d), rng.uniform(0.1, 3, d)
    expected = ((m1 - m2) ** 2 + (s1 - s2) ** 2).sum()
    fd = F.frechet_distance(m1, np.diag(s1**2), m2, np.diag(s2**2))
    assert fd == pytest.approx(expected, rel=1e-10)


@quiet_ref
@pytest.mark.parametrize(("n", "d", "seed"), [(200, 4, 0), (400, 16, 1), (300, 64, 2)])
def test_agrees_with_pytorch_fid(n: int, d: int, seed: int) -> None:
    a = F.stats(correlated(n, d, seed))
    b = F.stats(correlated(n, d, seed + 100, shift=0.2))
    ours = F.frechet_distance(a.mu, a.sigma, b.mu, b.sigma)
    ref = calculate_frechet_distance(a.mu, a.sigma, b.mu, b.sigma)
    assert ours > 0.1
    assert ours == pytest.approx(ref, rel=1e-6)
    # and symmetric
    assert F.frechet_distance(b.mu, b.sigma, a.mu, a.sigma) == pytest.approx(ours, rel=1e-9)


@quiet_ref
def test_fid_of_feature_sets_matches_stats_route() -> None:
    x, y = correlated(100, 8, 3), correlated(120, 8, 4)
    a, b = F.stats(x), F.stats(y)
    assert F.fid(x, y) == pytest.approx(F.frechet_distance(a.mu, a.sigma, b.mu, b.sigma))
    assert F.fid(x, y) == pytest.approx(calculate_frechet_distance(a.mu, a.sigma, b.mu, b.sigma))


@pytest.mark.parametrize(
    ("n", "d", "scale"),
    [(200, 16, 1.0), (20, 64, 1.0), (20, 64, 50.0), (3, 256, 1.0), (2, 8, 1.0)],
)
def test_fid_of_a_set_with_itself_is_zero(n: int, d: int, scale: float) -> None:
    """Including rank-deficient covariances (N ≤ d), where sqrtm-based code can go complex."""
    x = correlated(n, d, n + d) * scale
    out = F.fid(x, x)
    assert np.isfinite(out) and out >= 0
    assert out == pytest.approx(0.0, abs=1e-6)


def test_rank_deficient_sets_give_finite_nonnegative_distance() -> None:
    a, b = correlated(20, 64, 5), correlated(20, 64, 6, shift=1.0)
    out = F.fid(a, b)
    assert np.isfinite(out) and out > 0
    sa, sb = F.stats(a), F.stats(b)
    # bounds: ‖Δμ‖² ≤ FID ≤ ‖Δμ‖² + tr Σa + tr Σb
    dmu = float(((sa.mu - sb.mu) ** 2).sum())
    assert dmu <= out <= dmu + np.trace(sa.sigma) + np.trace(sb.sigma)


def test_stats_are_mean_and_unbiased_covariance() -> None:
    x = np.array([[0.0, 1.0], [2.0, 1.0], [4.0, 4.0]])
    s = F.stats(x)
    np.testing.assert_allclose(s.mu, [2.0, 2.0])
    # unbiased (N − 1): var x0 = (4 + 0 + 4) / 2 = 4; var x1 = (1 + 1 + 4) / 2 = 3;
    # cov = (−2·−1 + 0·−1 + 2·2) / 2 = 3
    np.testing.assert_allclose(s.sigma, [[4.0, 3.0], [3.0, 3.0]])
    assert s.n == 3


@pytest.mark.parametrize(
    "feats",
    [np.zeros((1, 8)), np.zeros((0, 8)), np.zeros(8), np.zeros((4, 2, 2)), np.float64(1.0)],
    ids=["one-vector", "no-vectors", "1d", "3d", "scalar"],
)
def test_stats_rejects_bad_input(feats: np.ndarray) -> None:
    with pytest.raises(ValueError, match="feature vectors"):
        F.stats(feats)


@pytest.mark.parametrize(
    ("mu1", "s1", "mu2", "s2"),
    [
        (np.zeros(3), np.eye(3), np.zeros(4), np.eye(4)),
        (np.zeros(3), np.eye(3), np.zeros(3), np.eye(4)),
        (np.zeros(3), np.eye(4), np.zeros(3), np.eye(4)),
        (np.zeros(3), np.eye(3), np.zeros(4), np.eye(3)),
        (np.zeros(3), np.ones((3, 4)), np.zeros(3), np.ones((3, 4))),
    ],
    ids=["both", "sigma2", "sigma-vs-mu", "mu2", "non-square"],
)
def test_frechet_distance_rejects_mismatched_shapes(
    mu1: np.ndarray, s1: np.ndarray, mu2: np.ndarray, s2: np.ndarray
) -> None:
    with pytest.raises(ValueError, match="mismatched shapes"):
        F.frechet_distance(mu1, s1, mu2, s2)


CASES = [
    ["p0", "p0", "p1"],
    ["a", "b", "b", "c", "c", "c", "d"],
    [f"case{i % 7}" for i in range(40)],
    list(range(10)) * 3,
]


@pytest.mark.parametrize("ids", CASES, ids=["2-patients", "4-patients", "7-patients", "ints"])
@pytest.mark.parametrize("seed", [0, 1, 42])
def test_patient_halves_split_by_patient(ids: list, seed: int) -> None:
    a, b = F.patient_halves(ids, seed)
    ids = np.asarray(ids)
    assert a.dtype == bool and b.dtype == bool and a.shape == b.shape == ids.shape
    assert np.all(a ^ b)  # every row in exactly one half
    assert not set(ids[a].tolist()) & set(ids[b].tolist())
    n_cases = len(set(ids.tolist()))
    assert len(set(ids[a].tolist())) == n_cases // 2
    assert len(set(ids[b].tolist())) == n_cases - n_cases // 2


def test_patient_halves_is_deterministic_and_seed_dependent() -> None:
    ids = [f"c{i}" for i in range(20)]
    a1, _ = F.patient_halves(ids, 3)
    a2, _ = F.patient_halves(ids, 3)
    np.testing.assert_array_equal(a1, a2)
    assert any(not np.array_equal(a1, F.patient_halves(ids, s)[0]) for s in range(4, 8))


@pytest.mark.parametrize("ids", [[], ["p0"], ["p0"] * 5], ids=["empty", "one-row", "one-patient"])
def test_patient_halves_needs_two_patients(ids: list) -> None:
    with pytest.raises(ValueError, match="2 patients"):
        F.patient_halves(ids)


def test_by_patient_split_fid_is_deterministic_for_a_seed() -> None:
    rng = np.random.default_rng(0)
    ids = np.repeat([f"p{i}" for i in range(8)], 6)
    feats = rng.normal(size=(len(ids), 6)) + (np.arange(len(ids)) % 8)[:, None] * 0.1
    first = F.by_patient_split_fid(feats, ids, seed=5)
    assert first == F.by_patient_split_fid(feats, ids, seed=5)
    a, b = F.patient_halves(ids, 5)
    assert first == pytest.approx(F.fid(feats[a], feats[b]), rel=1e-12)
    assert np.isfinite(first) and first > 0
