"""Known answers for the phantom's contrast kinetics and MR signal model (PHANTOM.md)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from dcesynth.data.phantom import case
from dcesynth.data.phantom.config import MAX_POST_PHASES, PhantomConfig
from dcesynth.data.phantom.kinetics import (
    ParkerAIF,
    classify_curve,
    relaxivity,
    robust_curve_type,
    spgr_signal,
    tofts,
)
from dcesynth.data.phantom.tissues import LESION_TOFTS_RANGES

AIF = ParkerAIF()
AGENTS = ("gadopentetate", "gadobenate", "gadobutrol", "gadoterate")


# --- Parker AIF -------------------------------------------------------------------------------


def test_parker_peak_and_late_value() -> None:
    """The population AIF peaks at 6.07 mM at 0.17 min and is 0.887 mM at 1 min (Parker 2006)."""
    t = np.linspace(0.0, 1.0, 200_001)
    cb = AIF.blood(t)
    assert cb[np.argmax(cb)] == pytest.approx(6.0732, abs=1e-2)
    assert t[np.argmax(cb)] == pytest.approx(0.1726, abs=0.005)
    assert float(AIF.blood(1.0)) == pytest.approx(0.88719, abs=1e-3)


def test_parker_delay_shifts_and_zeroes_before_arrival() -> None:
    """Before the bolus arrives the blood is unenhanced; afterwards the curve is a pure shift."""
    delay = 0.3
    t = np.linspace(0.0, 2.0, 401)
    shifted = AIF.blood(t, delay_min=delay)
    assert np.all(shifted[t < delay] == 0.0)
    np.testing.assert_allclose(AIF.blood(t + delay, delay_min=delay), AIF.blood(t), atol=1e-12)
    assert float(AIF.blood(delay, delay_min=delay)) > 0.0  # Parker's fit is ~0.06 mM at arrival


@pytest.mark.parametrize("hct", [0.0, 0.42, 0.45])
def test_plasma_is_blood_over_one_minus_hct(hct: float) -> None:
    """Cp = Cb / (1 − Hct)."""
    t = np.linspace(0.0, 5.0, 301)
    np.testing.assert_allclose(AIF.plasma(t, hct, 0.1), AIF.blood(t, 0.1) / (1 - hct), rtol=1e-14)


@pytest.mark.parametrize("hct", [-0.1, 1.0, 1.5])
def test_plasma_rejects_invalid_hct(hct: float) -> None:
    with pytest.raises(ValueError, match="haematocrit"):
        AIF.plasma(np.linspace(0, 1, 5), hct)


# --- extended Tofts ---------------------------------------------------------------------------


def _pulse(rng: np.random.Generator, t0: float, t1: float, t_end: float, c0: float):
    """A rectangular input C0 on [t0, t1) on an irregular grid, jumps as repeated times."""
    seg = [np.sort(rng.uniform(a, b, n)) for a, b, n in ((0, t0, 5), (t0, t1, 9), (t1, t_end, 11))]
    t = np.concatenate([[0.0], seg[0], [t0, t0], seg[1], [t1, t1], seg[2], [t_end]])
    cp = np.concatenate(
        [np.zeros(seg[0].size + 2), np.full(seg[1].size + 2, c0), np.zeros(seg[2].size + 2)]
    )
    return t, cp


def _pulse_convolution(t: np.ndarray, t0: float, t1: float, c0: float, kep: float) -> np.ndarray:
    """Exact ∫ Cp(u)·e^{−kep(t−u)} du for the rectangular pulse (continuous in t)."""

    def g(tau: np.ndarray) -> np.ndarray:  # ∫_0^tau e^{-kep s} ds
        return tau if kep == 0 else -np.expm1(-kep * tau) / kep

    inside = c0 * g(np.clip(t - t0, 0, None))
    after = c0 * np.exp(-kep * np.clip(t - t1, 0, None)) * g(np.asarray(t1 - t0))
    return np.where(t <= t0, 0.0, np.where(t < t1, inside, after))


@pytest.mark.parametrize(
    ("ktrans", "ve", "vp"),
    [
        (0.0, 0.3, 0.05),  # no exchange: Ct = vp·Cp
        (0.25, 0.5, 0.02),
        (1.2, 0.1, 0.08),  # fast wash-out (kep 12 /min)
        (0.05, 1.0, 0.0),
        (2e-4, 1.0, 0.01),  # kep·dt around the series/closed-form switch
        (1e-7, 0.9, 0.0),  # very small kep: series branch
        (0.4, 0.25, 1.0),
    ],
)
def test_tofts_exact_for_piecewise_constant_input(ktrans: float, ve: float, vp: float) -> None:
    """A piecewise-constant input (jumps as repeated times) is integrated exactly."""
    rng = np.random.default_rng(7)
    t0, t1, c0 = 0.8, 2.3, 4.0
    t, cp = _pulse(rng, t0, t1, 6.0, c0)
    expected = vp * cp + ktrans * _pulse_convolution(t, t0, t1, c0, ktrans / ve)
    ct = tofts(t, cp, ktrans, ve, vp)
    assert ct.shape == t.shape
    np.testing.assert_allclose(ct, expected, rtol=0, atol=1e-9)


@pytest.mark.parametrize(
    ("ktrans", "ve", "vp"), [(0.5, 0.3, 0.05), (1.2, 0.1, 0.08), (0.03, 0.3, 0.01)]
)
def test_tofts_converges_at_second_order(ktrans: float, ve: float, vp: float) -> None:
    """Halving the step of a smooth (Parker) input changes Ct 4× less each time (2nd order),
    and at 0.25 s vs 0.125 s the solutions agree to < 1e-4 of the peak."""
    sols = []
    for dt_s in (1.0, 0.5, 0.25, 0.125):
        t = np.arange(0.0, 4.0 + 1e-9, dt_s / 60)
        ct = tofts(t, AIF.plasma(t, 0.42), ktrans, ve, vp)
        sols.append(ct[:: round(1.0 / dt_s)])  # values on the common 1 s grid
    diffs = [np.abs(a - b).max() / np.abs(b).max() for a, b in itertools.pairwise(sols)]
    assert diffs[-1] < 1e-4
    for coarse, fine in itertools.pairwise(diffs):
        assert 3.5 < coarse / fine < 4.5


def test_tofts_vectorised_equals_scalar_calls() -> None:
    """P parameter sets at once give the P scalar results, shape (P, T); scalars broadcast."""
    t = np.arange(0.0, 6.0, 1.0 / 60)
    cp = AIF.plasma(t, 0.43, 0.2)
    kt = np.array([0.0, 0.05, 0.3, 1.1])
    ve = np.array([0.2, 0.9, 0.4, 0.15])
    vp = np.array([0.01, 0.0, 0.05, 0.08])
    ct = tofts(t, cp, kt, ve, vp)
    assert ct.shape == (4, t.size)
    for i in range(4):
        np.testing.assert_allclose(ct[i], tofts(t, cp, kt[i], ve[i], vp[i]), rtol=0, atol=1e-13)
    same_ve = tofts(t, cp, kt, 0.3)
    assert same_ve.shape == (4, t.size)
    np.testing.assert_allclose(same_ve[2], tofts(t, cp, 0.3, 0.3), rtol=0, atol=1e-13)


_T = np.linspace(0.0, 5.0, 11)
_CP = AIF.plasma(_T, 0.42)


@pytest.mark.parametrize(
    ("t", "cp", "params"),
    [
        (_T, _CP, {"ktrans": 0.1, "ve": 0.0}),
        (_T, _CP, {"ktrans": 0.1, "ve": 1.2}),
        (_T, _CP, {"ktrans": -0.1, "ve": 0.3}),
        (_T, _CP, {"ktrans": 0.1, "ve": 0.3, "vp": -0.01}),
        (_T, _CP, {"ktrans": 0.1, "ve": 0.3, "vp": 1.5}),
        (_T, _CP, {"ktrans": np.array([0.1, -0.2]), "ve": 0.3}),
        (_T[::-1], _CP, {"ktrans": 0.1, "ve": 0.3}),  # decreasing times
        (_T, _CP[:-1], {"ktrans": 0.1, "ve": 0.3}),  # mismatched lengths
        (_T.reshape(1, -1), _CP.reshape(1, -1), {"ktrans": 0.1, "ve": 0.3}),  # not 1-D
        (_T, _CP, {"ktrans": np.array([0.1, 0.2]), "ve": np.array([0.3, 0.4, 0.5])}),
    ],
)
def test_tofts_rejects_invalid_input(t: np.ndarray, cp: np.ndarray, params: dict) -> None:
    with pytest.raises(ValueError):
        tofts(t, cp, **params)


# --- SPGR signal and relaxivity -------------------------------------------------------------


@pytest.mark.parametrize(
    ("m0", "r1", "tr", "flip", "expected"),
    [
        (1.0, 1000 / 1266, 5.0, 12.0, 0.03187798719442483),  # FGT at 1.5 T
        (2.5, 1000 / 1600 + 4.1 * 0.8, 4.5, 15.0, 0.22143427877226915),  # tumour + 0.8 mM
    ],
)
def test_spgr_known_values(m0: float, r1: float, tr: float, flip: float, expected: float) -> None:
    assert float(spgr_signal(m0, r1, tr, flip)) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize(("r1", "tr"), [(1000 / 296, 5.0), (1000 / 1266, 4.0), (1.5, 6.0)])
def test_spgr_maximal_at_ernst_angle(r1: float, tr: float) -> None:
    """The signal over flip angles peaks at the Ernst angle acos(E1)."""
    flips = np.arange(0.5, 60.0, 0.01)
    s = np.array([float(spgr_signal(1.0, r1, tr, f)) for f in flips])
    ernst = math.degrees(math.acos(math.exp(-tr / 1000 * r1)))
    assert flips[np.argmax(s)] == pytest.approx(ernst, abs=0.01)


@pytest.mark.parametrize(("tr", "flip"), [(0.0, 12.0), (-5.0, 12.0), (5.0, 0.0), (5.0, -10.0)])
def test_spgr_rejects_invalid_protocol(tr: float, flip: float) -> None:
    with pytest.raises(ValueError, match="TR"):
        spgr_signal(1.0, 1.0, tr, flip)


@pytest.mark.parametrize(
    ("agent", "field_t", "r1"),
    [
        ("gadopentetate", 1.5, 4.1),
        ("gadopentetate", 3.0, 3.7),
        ("gadobenate", 1.5, 6.3),
        ("gadobenate", 3.0, 5.5),
        ("gadobutrol", 1.5, 5.2),
        ("gadobutrol", 3.0, 5.0),
        ("gadoterate", 1.5, 3.6),
        ("gadoterate", 3.0, 3.5),
    ],
)
def test_relaxivity_table(agent: str, field_t: float, r1: float) -> None:
    """r1 in plasma as tabulated in PHANTOM.md."""
    assert relaxivity(agent, field_t) == r1


def test_relaxivity_unknown_agent_lists_agents() -> None:
    with pytest.raises(ValueError, match="gadolinium") as exc:
        relaxivity("gadolinium", 1.5)
    assert all(a in str(exc.value) for a in AGENTS)


@pytest.mark.parametrize("field_t", [1.0, 7.0])
def test_relaxivity_unknown_field_lists_fields(field_t: float) -> None:
    with pytest.raises(ValueError) as exc:
        relaxivity("gadobutrol", field_t)
    assert "1.5" in str(exc.value) and "3.0" in str(exc.value)


# --- curve types ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("curve", "tol", "expected"),
    [
        ([1.0, 1.5, 2.0, 2.5], 0.10, "I"),
        ([1.0, 1.2], 0.10, "I"),
        ([1.0, 1.05], 0.10, "II"),  # rising, but by less than 10 %
        ([1.0, 1.05], 0.02, "I"),  # ... which is a rise at a 2 % threshold
        ([2.0, 2.1, 2.05, 2.0], 0.10, "II"),
        ([1.0, 1.0, 1.0, 1.0], 0.10, "II"),
        ([1.0, 0.91], 0.10, "II"),
        ([1.0, 0.89], 0.10, "III"),
        ([3.0, 2.5, 2.2, 2.0], 0.10, "III"),
        ([1.0, 3.0, 2.0, 2.9], 0.10, "II"),  # dip and recovery: last within 10 % of peak
    ],
)
def test_classify_curve(curve: list[float], tol: float, expected: str) -> None:
    assert classify_curve(np.array(curve), tol) == expected


@pytest.mark.parametrize("curve", [[], [1.0], [[1.0, 2.0], [3.0, 4.0]]])
def test_classify_curve_needs_two_phases(curve: list) -> None:
    with pytest.raises(ValueError, match="2 post-contrast phases"):
        classify_curve(np.array(curve))


@pytest.mark.parametrize(
    ("curve", "expected"),
    [
        ([1.0, 1.5, 2.0, 2.5], "I"),
        ([3.0, 2.0, 1.5], "III"),
        ([2.0, 2.0, 2.0], "II"),
        ([1.0, 0.88], None),
        ([1.0, 1.12], None),
    ],  # within the ±5 % margin of the threshold
)
def test_robust_curve_type(curve: list[float], expected: str | None) -> None:
    assert robust_curve_type(np.array(curve)) == expected


def _assert_shape(e: np.ndarray, curve_type: str) -> None:
    """Kuhl's definitions, with the ±5 % robustness margin the phantom promises."""
    peak, first, last = e.max(), e[0], e[-1]
    assert np.all(e > 0), f"lesion does not enhance: {e}"
    if curve_type == "I":
        assert last == peak and last > 1.15 * first, e
    elif curve_type == "II":
        assert last >= 0.95 * peak and not (last == peak and last > 1.05 * first), e
    else:
        assert last < 0.85 * peak, e


@pytest.mark.parametrize("curve_type", ["I", "II", "III"])
def test_sampled_lesion_kinetics_have_their_curve_type(curve_type: str) -> None:
    """20 draws per type over both field strengths and all agents: the simulated noise-free
    lesion signal has the defining shape, and the parameters lie in the type's ranges."""
    rng = np.random.default_rng(2024)
    ranges = LESION_TOFTS_RANGES[curve_type]
    for j in range(20):
        cfg = PhantomConfig(agent=AGENTS[j % 4], fraction_3t=float((j // 4) % 2))
        proto = case.sample_protocol(rng, cfg)
        assert proto.field_t == (3.0 if (j // 4) % 2 else 1.5) and proto.agent == AGENTS[j % 4]
        t1 = float(rng.uniform(1200.0, 2000.0))  # the lesion model's T1s at 1.5 and 3 T
        kin = case.sample_lesion_kinetics(rng, proto, curve_type, t1)
        for key, (lo, hi) in zip(("ktrans", "ve", "vp"), ranges, strict=True):
            assert lo <= kin[key] <= hi
        assert kin["kep"] == pytest.approx(kin["ktrans"] / kin["ve"])
        conc = case.concentration_at(proto, kin["ktrans"], kin["ve"], kin["vp"], MAX_POST_PHASES)
        assert conc.shape == (MAX_POST_PHASES + 1,) and conc[0] == 0.0  # pre-contrast
        s = case.lesion_signal(proto, conc, t1, 1.0)
        _assert_shape(s[1:] - s[0], curve_type)
