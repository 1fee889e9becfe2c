"""Known answers for the trust measures: the copy detector, strata, PRDC, ensemble spread,
kinetic maps (the phantom's noise-free signal gives each lesion its true curve type) and the
agreement statistics; per-phase normalisation and the windows that undo it."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from dcesynth.data.ingest.transforms import normalise, pseudonym
from dcesynth.data.phantom import PhantomConfig
from dcesynth.data.phantom.anatomy import lesion_label
from dcesynth.data.phantom.case import generate_case
from dcesynth.data.phantom.kinetics import classify_curve
from dcesynth.evaluation.kinetics import truth_index_lesions
from dcesynth.trust import biomarkers as B
from dcesynth.trust import kinetic as K
from dcesynth.trust import measures as M


def test_copy_detector_flags_copies_and_not_fresh_images() -> None:
    rng = np.random.default_rng(0)
    training = rng.normal(size=(200, 16))
    heldout = rng.normal(size=(40, 16))
    copies = M.memorisation(training[rng.integers(0, 200, 40)], heldout, training)
    assert copies["fraction_closer"] == 1.0 and copies["flagged"]
    fresh = M.memorisation(rng.normal(size=(40, 16)), heldout, training)
    assert fresh["fraction_closer"] < 0.05 and not fresh["flagged"]
    assert fresh["bar"] == pytest.approx(min(fresh["heldout_nn"]))
    assert copies["fraction_copies"] == 1.0 and fresh["fraction_copies"] == 0.0
    with pytest.raises(ValueError, match="held-out"):
        M.memorisation(training[:3], heldout, training)


def test_one_stratum_equals_the_unstratified_figures() -> None:
    per_case = {"a": 0.5, "b": 0.7, "c": 0.9}
    (row,) = M.stratified(per_case, {c: "all" for c in per_case}, True, n_boot=500)
    assert row["n"] == 3 and row["mean"] == pytest.approx(0.7)
    assert row["ci"][0] <= 0.7 <= row["ci"][1] and row["diff_vs_rest"] is None
    assert not row["worse"]


def test_a_clearly_worse_stratum_is_flagged() -> None:
    per_case = {f"g{i}": 0.9 + 0.01 * i for i in range(8)} | {
        f"b{i}": 0.3 + 0.01 * i for i in range(8)
    }
    strata = {c: c[0] for c in per_case}
    rows = {r["stratum"]: r for r in M.stratified(per_case, strata, True, n_boot=1000)}
    assert rows["b"]["worse"] and not rows["g"]["worse"]
    # the same numbers as an error (lower is better): now "g" is the worse one
    rows = {r["stratum"]: r for r in M.stratified(per_case, strata, False, n_boot=1000)}
    assert rows["g"]["worse"] and not rows["b"]["worse"]


def test_a_one_case_stratum_is_never_flagged() -> None:
    # one case far below the others: its bootstrap has no spread, so no interval to trust
    per_case = {f"g{i}": 0.9 + 0.01 * i for i in range(8)} | {"b0": 0.1}
    strata = {c: c[0] for c in per_case}
    rows = {r["stratum"]: r for r in M.stratified(per_case, strata, True, n_boot=500)}
    assert rows["b"]["diff_vs_rest"] < -0.7 and not rows["b"]["worse"]
    assert not rows["g"]["worse"]


def test_prdc_hand_computed() -> None:
    # real points on a line 0, 1, 2, 3; k = 1: each real ball's radius is 1
    real = np.array([[0.0], [1.0], [2.0], [3.0]])
    fake = np.array([[0.5], [10.0], [2.9]])
    # fake radii (k=1): 0.5→2.9: 2.4, 10→2.9: 7.1, 2.9→0.5: 2.4
    got = M.prdc(real, fake, k=1)
    # precision: 0.5 and 2.9 lie in some real ball, 10 in none → 2/3
    # density: 0.5 in the balls of 0 and 1; 2.9 in those of 2 and 3 → 4 / (1 · 3)
    # coverage: real 0, 1 (0.5 within 1), 2, 3 (2.9 within 1) → 4/4
    # recall: real i within some fake ball: 0 (0.5, r 2.4), 1, 2, 3 (all within 2.4 of 0.5/2.9)
    assert got == pytest.approx(
        {"precision": 2 / 3, "recall": 1.0, "density": 4 / 3, "coverage": 1.0}
    )
    with pytest.raises(ValueError, match="needs more than"):
        M.prdc(real[:1], fake, k=1)


def test_copy_detector_known_distances() -> None:
    # training at 0; held-out at 2 and 3 (bar 2); synthetic at 0.5, 1.5, 2.5, 3 on a line
    got = M.memorisation(
        np.array([[0.5], [1.5], [2.5], [3.0]]),
        np.array([[2.0], [3.0], [3.0], [3.0]]),
        np.zeros((1, 1)),
    )
    assert got["bar"] == 2.0
    assert got["fraction_closer"] == 0.5 and got["fraction_copies"] == 0.25 and got["flagged"]


def test_ensemble_of_identical_members_has_zero_spread() -> None:
    x = np.random.default_rng(1).uniform(0, 255, (4, 2, 8, 8))
    # the mean of three equal floats can round by one ulp, so "zero" is to float precision
    assert np.abs(M.ensemble_spread(np.stack([x, x, x]))).max() < 1e-12
    assert M.ensemble_spread(np.stack([x, x + 2])).mean() == pytest.approx(1.0)
    with pytest.raises(ValueError, match="≥ 2 members"):
        M.ensemble_spread(x[None])


def test_vectorised_curve_types_match_the_phantoms_classifier() -> None:
    curves = np.random.default_rng(2).uniform(-1, 3, (4, 500))
    codes = K.curve_type_codes(curves)
    want = [{"I": 1, "II": 2, "III": 3}[classify_curve(curves[:, i])] for i in range(500)]
    assert codes.tolist() == want


def test_noise_free_phantom_maps_give_every_lesion_its_true_type() -> None:
    cfg = PhantomConfig(cases=1, matrix=96, slices=24, seed=9, multifocal_fraction=1.0)
    case = generate_case(cfg, 0)
    gt = case.ground_truth
    signal = np.zeros((len(gt["acquisition_s"]), *case.labels.shape))
    for name, curve in gt["tissue_signal_noise_free"].items():
        from dcesynth.data.phantom.anatomy import Tissue

        signal[:, case.labels == Tissue[name.upper()]] = np.asarray(curve)[:, None]
    checked = 0
    for les in gt["lesions"]:
        where = case.labels == lesion_label(les["index"])
        signal[:, where] = np.asarray(les["signal_noise_free"])[:, None]
        maps = K.kinetic_maps(signal[0], signal[1:], gt["acquisition_s"])
        assert K.majority_type(maps["curve_type"][where]) == les["curve_type"]
        assert np.all(maps["curve_type"][where] == {"I": 1, "II": 2, "III": 3}[les["curve_type"]])
        checked += 1
    assert checked >= 2  # a multifocal case: more than one lesion


def test_agreement_statistics_known_answers() -> None:
    a = np.array([1.0, 2.0, 3.0, 4.0])
    assert K.icc_2_1(a, a) == pytest.approx(1.0)
    ba = K.bland_altman(a, a + 0.5)
    assert ba["bias"] == pytest.approx(0.5) and ba["sd"] == pytest.approx(0.0)
    # Shrout & Fleiss ICC(2,1) by hand for ratings (1,2), (2,2), (3,5), (4,4)
    b = np.array([2.0, 2.0, 5.0, 4.0])
    x = np.stack([a, b], 1)
    n, k = x.shape
    g = x.mean()
    msr = k * ((x.mean(1) - g) ** 2).sum() / (n - 1)
    msc = n * ((x.mean(0) - g) ** 2).sum() / (k - 1)
    mse = (((x - g) ** 2).sum() - msr * (n - 1) - msc * (k - 1)) / ((n - 1) * (k - 1))
    assert K.icc_2_1(a, b) == pytest.approx((msr - mse) / (msr + mse + k * (msc - mse) / n))
    conf = K.confusion(["I", "III", "III"], ["I", "II", "III"])
    assert (
        conf["III"]["II"] == 1
        and conf["I"]["I"] == 1
        and sum(map(sum, (v.values() for v in conf.values()))) == 3
    )


def test_combined_spread_adds_the_members_own_sample_variance() -> None:
    ens = np.full((2, 1, 4, 4), 3.0)
    # two members, one drawing samples with SD 8 (variance 64 → 32 over both), one not
    total, samples = M.combined_spread(ens, [np.full_like(ens, 8.0), None])
    assert samples == pytest.approx(np.full_like(ens, np.sqrt(32.0)))
    assert total == pytest.approx(np.full_like(ens, np.sqrt(9.0 + 32.0)))
    # no member samples (pix2pixHD): the ensemble's spread is the uncertainty, unchanged
    total, samples = M.combined_spread(ens, [None, None])
    assert samples is None and np.array_equal(total, ens)
    with pytest.raises(ValueError, match="shapes"):
        M.combined_spread(ens, [np.zeros((2, 1, 3, 3))])
    with pytest.raises(ValueError, match="no members"):
        M.combined_spread(ens, [])


def _normalised_case() -> tuple[SimpleNamespace, np.ndarray, np.ndarray, np.ndarray]:
    """One slice of a blood pool, a wash-out lesion and air, over pre + 3 posts, each phase
    min-max normalised on its own (the study's choice), with the windows ingest records."""
    blood = [258.0, 1605.0, 1270.0, 995.0]  # the phantom's AIF-driven blood pool: peaks early
    lesion = [347.0, 1044.0, 827.0, 678.0]  # wash-out: −35 % from phase 1 to phase 3
    raw = np.zeros((4, 1, 4, 4))
    raw[:, 0, :2] = np.array(blood)[:, None, None]
    raw[:, 0, 2:, :2] = np.array(lesion)[:, None, None]
    u8, windows = zip(*(normalise("minmax", v.astype(np.float32)) for v in raw), strict=True)
    mask = np.zeros((1, 4, 4), np.uint8)
    mask[0, 2:, :2] = 1
    pairs = SimpleNamespace(pre=u8[0], mask=mask, case_id=np.array(["c"]))
    post = np.stack(u8[1:], 1)  # (N, P, S, S)
    return pairs, post, np.array(windows), raw


def test_per_phase_normalisation_bends_curves_and_the_window_undoes_it() -> None:
    """Known answer: normalised per phase, the wash-out lesion (type III in its raw signal)
    no longer enhances at all (each phase is divided by the blood pool's falling peak); with
    ingest's windows undone its type is III again, for real and synthetic alike."""
    pairs, post, windows, raw = _normalised_case()
    assert classify_curve(raw[1:, 0, 3, 0] - raw[0, 0, 3, 0]) == "III"
    times = {"c": [0.0, 90.0, 180.0, 270.0]}
    as_trained = B.lesion_biomarkers(pairs, post, post, times, 0.1)
    assert as_trained["c"]["real"]["curve_type"] == "none"
    undone = B.lesion_biomarkers(pairs, post, post, times, 0.1, windows={"c": windows})
    assert undone["c"]["real"]["curve_type"] == undone["c"]["synthetic"]["curve_type"] == "III"
    # the relative peak enhancement is the raw one to within the uint8 step
    assert undone["c"]["real"]["peak_enhancement"] == pytest.approx(
        (1044.0 - 347.0) / (347.0 + 1.0), rel=0.01
    )
    # a case without a window is left out rather than compared on the wrong scale
    assert B.lesion_biomarkers(pairs, post, post, times, 0.1, windows={}) == {}


def test_truth_type_is_classified_at_the_generated_phases(tmp_path: Path) -> None:
    """A plateau over the phantom's four post phases is persistent over the first three: the
    truth trust compares with is the type at the phases the run generates."""
    signal = [100.0, 200.0, 240.0, 260.0, 250.0]
    rec = {
        "case_id": "P1",
        "index_lesion": 0,
        "lesions": [
            {"index": 0, "curve_type": "II", "ktrans": 0.2, "kep": 0.5, "signal_noise_free": signal}
        ],
    }
    (tmp_path / "P1.json").write_text(json.dumps(rec))
    cid = pseudonym("P1", "s")
    assert truth_index_lesions(tmp_path, "s", [1, 2, 3, 4])[cid]["curve_type"] == "II"
    assert truth_index_lesions(tmp_path, "s", [1, 2, 3])[cid]["curve_type"] == "I"
    assert truth_index_lesions(tmp_path, "s", [1, 2, 3])[cid]["ktrans"] == 0.2
