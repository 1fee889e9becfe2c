"""One phantom case: protocol, anatomy, kinetics, signal, noise — and its ground truth.

``generate_case(cfg, i)`` depends only on ``(cfg.seed, i)`` and the image-shaping parts of the
config, so cases can be generated in any order, in parallel, and a cohort can grow.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy.ndimage import shift as nd_shift

from dcesynth.data.geometry import Geometry
from dcesynth.data.phantom import tissues as T
from dcesynth.data.phantom.anatomy import (
    LESION_BASE,
    MAX_LESIONS,
    Anatomy,
    Tissue,
    build_anatomy,
    lesion_label,
    smooth_field,
)
from dcesynth.data.phantom.config import MAX_POST_PHASES, PhantomConfig
from dcesynth.data.phantom.kinetics import (
    AGENT_TRADE_NAMES,
    CURVE_TYPES,
    ParkerAIF,
    r1_of,
    relaxivity,
    robust_curve_type,
    spgr_signal,
    tofts,
)
from dcesynth.data.phantom.lesions import draw_case_lesions, pick

AIF = ParkerAIF()
SCANNERS = (  # (manufacturer, model, field strength)
    ("GE MEDICAL SYSTEMS", "SIGNA HDxt", 1.5),
    ("GE MEDICAL SYSTEMS", "Optima MR450w", 1.5),
    ("GE MEDICAL SYSTEMS", "DISCOVERY MR750", 3.0),
    ("SIEMENS", "Avanto", 1.5),
    ("SIEMENS", "Skyra", 3.0),
    ("SIEMENS", "TrioTim", 3.0),
)
ORDINALS = ("1st", "2nd", "3rd", "4th")
FIRST_NAMES = ("JANE", "MARY", "ANNA", "LINDA", "SUSAN", "KAREN", "NANCY", "LISA", "EMMA", "RUTH")
LAST_NAMES = ("DOE", "SMITH", "JONES", "BROWN", "MILLER", "DAVIS", "GARCIA", "WILSON", "MOORE")


def case_id(index: int) -> str:
    return f"Phantom_MRI_{index + 1:03d}"


def case_rng(seed: int, index: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, index]))


@dataclass
class Protocol:
    """Scanner and acquisition facts of one case (what a DICOM header would tell)."""

    manufacturer: str
    model: str
    field_t: float
    tr_ms: float
    te_ms: float
    flip_deg: float
    agent: str
    r1: float
    matrix: int
    slices: int
    fov_mm: float
    coverage_mm: float
    post_phases: int
    phase_gap_s: float
    injection_s: float  # injection start, seconds after the pre-contrast acquisition time
    bolus_delay_min: float
    hct: float
    naming: str  # series naming scheme
    multiphase_series: bool
    typo: bool
    instance_order: int  # +1: InstanceNumber grows with z; −1: it falls
    study_year: int
    start_clock_s: float  # time of day of the pre-contrast acquisition

    @property
    def acquisition_s(self) -> np.ndarray:
        """Acquisition time of pre + all (written) post phases, seconds after the pre phase."""
        return np.arange(self.post_phases + 1) * self.phase_gap_s

    def geometry(self) -> Geometry:
        """Centred axial grid whose numbers have 4 decimals, as DICOM headers would carry them."""
        dx = round(self.fov_mm / self.matrix, 4)
        dz = round(self.coverage_mm / self.slices, 4)
        half = lambda n, d: round(-(n - 1) / 2 * d, 4)  # noqa: E731 - centred grid
        return Geometry(
            shape=(self.slices, self.matrix, self.matrix),
            spacing=(dx, dx, dz),
            origin=(half(self.matrix, dx), half(self.matrix, dx), half(self.slices, dz)),
        )


def sample_protocol(rng: np.random.Generator, cfg: PhantomConfig) -> Protocol:
    field_t = 3.0 if rng.random() < cfg.fraction_3t else 1.5
    options = [s for s in SCANNERS if s[2] == field_t]
    manufacturer, model, _ = options[rng.integers(len(options))]
    agent = cfg.agent or str(rng.choice(sorted(T_AGENTS)))
    matrix = cfg.matrix or int(rng.choice(cfg.matrix_choices))
    slices = cfg.slices or int(rng.integers(cfg.slices_range[0], cfg.slices_range[1] + 1))
    gap = float(
        np.clip(
            rng.normal(cfg.phase_gap_s, 0.08 * cfg.phase_gap_s),
            0.7 * cfg.phase_gap_s,
            1.3 * cfg.phase_gap_s,
        )
    )
    naming = "dyn" if manufacturer.startswith("GE") else "3d dyn"
    return Protocol(
        manufacturer=manufacturer,
        model=model,
        field_t=field_t,
        tr_ms=cfg.tr or float(np.round(rng.uniform(*cfg.tr_range), 2)),
        te_ms=float(np.round(rng.uniform(1.8, 2.6), 2)),
        flip_deg=cfg.flip_angle or float(np.round(rng.uniform(*cfg.flip_angle_range), 1)),
        agent=agent,
        r1=relaxivity(agent, field_t),
        matrix=matrix,
        slices=slices,
        fov_mm=float(np.round(rng.uniform(*cfg.fov_mm), 1)),
        coverage_mm=float(np.round(rng.uniform(*cfg.coverage_mm), 1)),
        post_phases=cfg.post_phases,
        phase_gap_s=float(np.round(gap, 1)),
        injection_s=float(np.round(rng.uniform(0.2, 0.45) * gap, 1)),
        bolus_delay_min=float(rng.uniform(0.1, 0.25)),
        hct=float(rng.uniform(*cfg.hct_range)),
        naming=naming,
        multiphase_series=bool(rng.random() < cfg.multiphase_series_fraction),
        typo=bool(rng.random() < cfg.typo_fraction),
        instance_order=int(rng.choice([1, -1])),
        study_year=int(rng.integers(2000, 2015)),
        start_clock_s=float(rng.integers(7 * 3600, 18 * 3600)),
    )


T_AGENTS = tuple(AGENT_TRADE_NAMES)


def _fine_time(proto: Protocol) -> tuple[np.ndarray, np.ndarray]:
    """A 0.5 s grid (minutes after injection) covering all four Duke phases, and Cp on it."""
    t_end = (MAX_POST_PHASES * proto.phase_gap_s - proto.injection_s) / 60 + 0.5
    t = np.arange(0.0, t_end, 0.5 / 60)
    return t, AIF.plasma(t, proto.hct, proto.bolus_delay_min)


def phase_times_min(proto: Protocol, phases: int) -> np.ndarray:
    """Acquisition times of pre + ``phases`` post phases in minutes after injection (pre < 0)."""
    return (np.arange(phases + 1) * proto.phase_gap_s - proto.injection_s) / 60


def concentration_at(
    proto: Protocol, ktrans: float, ve: float, vp: float, phases: int
) -> np.ndarray:
    """Tissue concentration (mM) at the acquisition times of pre + ``phases`` post phases."""
    t, cp = _fine_time(proto)
    ct = tofts(t, cp, ktrans, ve, vp)
    return np.interp(phase_times_min(proto, phases), t, ct, left=0.0)


def lesion_signal(proto: Protocol, conc: np.ndarray, t1_ms: float, pd: float) -> np.ndarray:
    """Noise-free SPGR signal of lesion tissue (T1 ``t1_ms``, proton density ``pd`` × FGT's)."""
    m0 = pd * T.M0[Tissue.FGT]
    return spgr_signal(m0, r1_of(t1_ms, conc, proto.r1), proto.tr_ms, proto.flip_deg)


def sample_lesion_kinetics(
    rng: np.random.Generator, proto: Protocol, curve_type: str, t1_ms: float, pd: float = 1.0
) -> dict:
    """(Ktrans, ve, vp) whose simulated curve robustly has ``curve_type``.

    The type is judged on the noise-free SPGR signal at the case's own schedule extended to the
    full four post phases (Kuhl's classification needs the late phases even if fewer are kept).
    """
    ranges = T.LESION_TOFTS_RANGES[curve_type]
    for _ in range(500):
        kt, ve, vp = (float(rng.uniform(*r)) for r in ranges)
        s = lesion_signal(proto, concentration_at(proto, kt, ve, vp, MAX_POST_PHASES), t1_ms, pd)
        if robust_curve_type(s[1:] - s[0]) == curve_type:
            return {"ktrans": kt, "ve": ve, "vp": vp, "kep": kt / ve}
    raise RuntimeError(f"could not draw kinetics of type {curve_type} for {asdict(proto)}")


@dataclass
class PhantomCase:
    case_id: str
    index: int
    geometry: Geometry
    images: np.ndarray  # uint16 (phases, z, y, x): pre then post phases
    labels: np.ndarray  # uint8 (z, y, x) tissue labels (see anatomy.Tissue, lesion_label)
    mask: np.ndarray  # uint8 (z, y, x), 1 inside any lesion (necrotic core included)
    protocol: Protocol
    ground_truth: dict
    identity: dict

    @property
    def box(self) -> tuple[int, int, int, int, int, int] | None:
        """Index (largest) lesion box, array order (z0, z1, y0, y1, x0, x1), 0-based inclusive."""
        return self.ground_truth["box_zyx"]


def generate_case(cfg: PhantomConfig, index: int) -> PhantomCase:
    """Generate case ``index`` of the cohort described by ``cfg`` (pure function of both)."""
    rng = case_rng(cfg.seed, index)
    proto = sample_protocol(rng, cfg)
    geom = proto.geometry()
    n_les = int(rng.integers(2, MAX_LESIONS + 1)) if rng.random() < cfg.multifocal_fraction else 1
    # Smaller lesions would vanish between voxels: 3 in-plane voxels, 1.5 slices.
    min_d = max(3.0 * max(geom.spacing[:2]), 1.5 * geom.spacing[2])
    draws = draw_case_lesions(rng, cfg, proto.field_t, n_les, min_d)
    facts = {
        "density": pick(rng, cfg.density_weights),
        "draws": draws,
        "mass_effect": cfg.mass_effect,
    }
    anat = build_anatomy(rng, geom, facts)
    bpe = pick(rng, {k: v[1] for k, v in T.BPE_LEVELS.items()})
    lesion_kin = [
        {
            "curve_type": les.draw.curve_type,
            **sample_lesion_kinetics(rng, proto, les.draw.curve_type, les.draw.t1_ms, les.draw.pd),
        }
        for les in anat.lesions
    ]
    lut, conc = _signal_lut(cfg, proto, anat, bpe, lesion_kin)
    images, noise_sigma, gain = _synthesize(rng, cfg, proto, geom, anat, lut)
    gt = _ground_truth(cfg, index, proto, geom, anat, bpe, lesion_kin, lut, conc, noise_sigma, gain)
    identity = {
        "Patient ID": case_id(index),
        "PatientName": f"{rng.choice(LAST_NAMES)}^{rng.choice(FIRST_NAMES)}",
        "PatientBirthDate": (
            f"{rng.integers(1935, 1990)}{rng.integers(1, 13):02d}{rng.integers(1, 29):02d}"
        ),
        "AccessionNumber": f"A{rng.integers(10**7, 10**8)}",
        "OtherPatientIDs": f"MRN{rng.integers(10**6, 10**7)}",
    }
    return PhantomCase(
        case_id(index), index, geom, images, anat.labels, anat.mask, proto, gt, identity
    )


def _signal_lut(cfg, proto, anat, bpe, lesion_kin) -> tuple[np.ndarray, dict[int, np.ndarray]]:
    """Noise-free signal per label and phase (phases × 256) and the concentration curves."""
    n_ph = proto.post_phases
    conc: dict[int, np.ndarray] = {}
    for label, (kt, ve, vp) in T.TOFTS.items():
        scale = T.BPE_LEVELS[bpe][0] if label == Tissue.FGT else 1.0
        conc[label] = concentration_at(proto, kt * scale, ve, vp, n_ph)
    # Blood-pool voxels hold whole blood: Cb = (1 − Hct)·Cp follows the plasma curve.
    # (AIF.blood is zero before arrival, so the pre-contrast phase gets none.)
    conc[Tissue.BLOOD] = AIF.blood(phase_times_min(proto, n_ph), proto.bolus_delay_min)
    lut = np.zeros((n_ph + 1, 256), np.float32)
    for label in T.T1_MS:
        c = conc.get(label, np.zeros(n_ph + 1))
        m0 = T.M0[label] * (cfg.fat_residual if label == Tissue.FAT else 1.0)
        lut[:, label] = spgr_signal(
            m0,
            r1_of(T.t1_for(T.T1_MS[label], proto.field_t), c, proto.r1),
            proto.tr_ms,
            proto.flip_deg,
        )
    for les, kin in zip(anat.lesions, lesion_kin, strict=True):
        c = concentration_at(proto, kin["ktrans"], kin["ve"], kin["vp"], n_ph)
        conc[lesion_label(les.index)] = c
        lut[:, lesion_label(les.index)] = lesion_signal(proto, c, les.draw.t1_ms, les.draw.pd)
        t10n = T.t1_for(T.NECROSIS_T1_MS, proto.field_t)
        lut[:, lesion_label(les.index, True)] = spgr_signal(
            T.NECROSIS_M0, r1_of(t10n, 0.0, proto.r1), proto.tr_ms, proto.flip_deg
        )
    return lut, conc


def _synthesize(rng, cfg, proto, geom, anat: Anatomy, lut: np.ndarray):
    """uint16 images (phases, z, y, x) with texture, bias field, drift, noise and motion."""
    field = smooth_field(rng, geom, corr_mm=3.0, grid_mm=1.5)
    lesion = anat.labels >= LESION_BASE
    # Lesions are heterogeneous inside (cellularity, fibrosis): the same smooth field as the
    # tissue texture, with the lesion model's larger amplitude. It scales M0, so all phases.
    lesion_texture = 1.0 + cfg.lesion_heterogeneity * field[lesion]
    texture = np.multiply(field, 0.04, out=field)
    texture += 1.0
    texture[lesion] = lesion_texture
    del lesion, lesion_texture
    bias = np.exp(cfg.bias_field * smooth_field(rng, geom, corr_mm=90.0, grid_mm=10.0))
    weight = texture * bias  # multiplicative, shared by all phases
    del texture
    drift = np.concatenate([[1.0], 1.0 + cfg.drift * rng.standard_normal(proto.post_phases)])
    fgt = anat.labels == Tissue.FGT
    # Noise is set from the pre-contrast FGT signal (with bias), so SNR means the same everywhere.
    pre_fgt = float(np.mean(lut[0, Tissue.FGT] * bias[fgt])) if fgt.any() else float(lut[0].max())
    sigma = pre_fgt / cfg.snr
    del bias
    # One gain for all phases keeps the enhancement ratios; peak at a scanner-like 1500–3500.
    gain = float(rng.uniform(1500, 3500)) / float(
        lut.max() * weight.max() * drift.max() + 3 * sigma
    )
    # parenchyma not taken by a lesion mixes FGT and fat signal by the soft FGT share
    mix_idx = np.flatnonzero(anat.breast & (anat.labels <= Tissue.FGT))
    share = anat.fgt_share.ravel()[mix_idx]
    images = np.empty((proto.post_phases + 1, *geom.shape), np.uint16)
    shifts = (
        rng.normal(0, cfg.motion_mm, (proto.post_phases + 1, 3)) / np.asarray(geom.spacing)[::-1]
    )
    noise = np.empty(geom.shape, np.float32)
    for p in range(proto.post_phases + 1):
        # In-place arithmetic: at 512²×160 each temporary is 170 MB and costs ~50 ms.
        s = lut[p][anat.labels]
        s.ravel()[mix_idx] = share * (lut[p, Tissue.FGT] - lut[p, Tissue.FAT]) + lut[p, Tissue.FAT]
        s *= weight
        s *= drift[p]
        rng.standard_normal(geom.shape, dtype=np.float32, out=noise)
        noise *= sigma
        s += noise
        np.square(s, out=s)
        rng.standard_normal(geom.shape, dtype=np.float32, out=noise)
        noise *= sigma
        np.square(noise, out=noise)
        s += noise
        np.sqrt(s, out=s)  # Rician magnitude |S + n1 + i·n2|
        if cfg.motion_mm > 0 and p > 0:
            s = nd_shift(s, shifts[p], order=1, mode="nearest")
        s *= gain
        np.rint(s, out=s)
        np.clip(s, 0, 65535, out=s)
        images[p] = s
    return images, sigma * gain, gain


def _ground_truth(
    cfg, index, proto, geom, anat, bpe, lesion_kin, lut, conc, noise_sigma, gain
) -> dict:
    lesions = []
    for les, kin in zip(anat.lesions, lesion_kin, strict=True):
        s = lut[:, lesion_label(les.index)] * gain
        lesions.append(
            {
                "index": les.index,
                "side": les.side,
                "center_mm_lps": list(les.center_mm),
                "diameter_mm": les.diameter_mm,
                "semi_axes_mm": list(les.semi_axes_mm),
                **{k: v for k, v in les.draw.to_dict().items() if k != "diameter_mm"},
                "spiculated": les.spiculated,
                "surround_fgt": les.surround_fgt,
                "at_interface_measured": les.at_interface,
                "voxels": les.voxels,
                "box_zyx": list(les.bbox) if les.bbox else None,
                **kin,
                "concentration_mM": conc[lesion_label(les.index)].tolist(),
                "signal_noise_free": s.tolist(),
                "relative_enhancement": ((s[1:] - s[0]) / s[0]).tolist(),
            }
        )
    index_lesion = max(lesions, key=lambda d: d["voxels"]) if lesions else None
    return {
        "case_id": case_id(index),
        "index": index,
        "seed": cfg.seed,
        "fingerprint": cfg.fingerprint(),
        "protocol": asdict(proto),
        "geometry": geom.to_dict(),
        "acquisition_s": proto.acquisition_s.tolist(),
        "acquisition_min_after_injection": phase_times_min(proto, proto.post_phases).tolist(),
        "density": anat.density,
        "fgt_fraction": anat.fgt_fraction,
        "bpe": bpe,
        "lesion_count": len(lesions),
        "multifocal": len(lesions) > 1,
        "index_lesion": index_lesion["index"] if index_lesion else None,
        "box_zyx": index_lesion["box_zyx"] if index_lesion else None,
        "lesions": lesions,
        "noise_sigma": noise_sigma,
        "gain": gain,
        "tissue_signal_noise_free": {
            Tissue(k).name.lower(): (lut[:, k] * gain).tolist() for k in T.T1_MS
        },
        "anatomy": anat.facts,
    }


__all__ = ["CURVE_TYPES", "PhantomCase", "Protocol", "case_id", "generate_case"]
