"""``dcectl predict MODEL INPUT``: synthetic DCE phases for new patients, on their own grids.

Per patient (found by :mod:`~dcesynth.inference.inputs`) the pre-contrast volume is read and
checked (:mod:`dcesynth.data.readers.pre`), normalised to uint8 exactly as the model's training
data were (method and parameters from the model file), brought into canonical orientation and
resized slice by slice as ingest did; the slices run through the one engine interface
(:func:`~dcesynth.inference.engine.translate`: Ray Data for many patients or a cluster, this
process for one or two; the same bytes either way); each volume is resized back, turned back into
the input's own orientation and written to ``OUT/<patient>/``:

* ``post_000p.nii.gz`` / ``sub_000p.nii.gz`` — synthetic post-contrast phase p and synthetic
  subtraction (synthetic post − normalised pre, negatives 0), uint8 on the input's grid (a
  NIfTI input's own affine; a DICOM input's slice positions);
* ``dicom/post_000p/``, ``dicom/sub_000p/`` — the same as DICOM series in the input's frame
  of reference (DICOM inputs; :mod:`~dcesynth.inference.dicom_out`).

``OUT/predict.json`` lists what was written and every patient that failed, with why. Each
patient's folder is built under a temporary name, fsynced and renamed when complete;
predict.json is written the same way. One process at a time writes OUT
(:func:`dcesynth.locks.folder_lock`).

Patient folders are named by :func:`dcesynth.names.safe_name` of the PatientID (or by the
pseudonym with ``--deidentify``): a PatientID such as ``x/y`` or ``../../evil`` never names a
path outside OUT, and ``x/y`` and ``x_y`` get two folders (predict.json maps each patient to
its folder).
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dcesynth.config import atomic_write_text
from dcesynth.data.readers.common import CaseError
from dcesynth.durable import TMP_PREFIX, replace_dir
from dcesynth.inference.artifact import ModelArtifact, ModelError, load_artifact
from dcesynth.inference.inputs import PatientInput, find_patients
from dcesynth.locks import folder_lock
from dcesynth.names import safe_name, unique_names, within


@dataclass
class PredictResult:
    out: Path
    done: dict[str, str] = field(default_factory=dict)  # patient → its output folder
    failed: dict[str, str] = field(default_factory=dict)  # patient → why
    ignored: list[dict] = field(default_factory=list)
    slices: int = 0
    wall_s: float = 0.0
    engine: str = ""  # the engine that ran: ray or local
    compute_s: float = 0.0  # in the generator (local engine only)


def check_model(model: ModelArtifact, phases: tuple[int, ...] | None) -> tuple[int, ...]:
    """The phases to write; refuses a request the model cannot meet.

    Raises:
        ModelError: a phase the model does not generate, or a model that takes input channels
            other than one pre-contrast volume (replicated to 3 when it was trained so).
    """
    have = model.phases
    if phases and (missing := [p for p in phases if p not in have]):
        raise ModelError(
            f"{model.path}: generates post phase(s) {have}; phase(s) {missing} asked for "
            f"(--phases): use a subset of {have}"
        )
    if model.normalisation.get("method") == "window":
        raise ModelError(
            f"{model.path}: trained on MAMA-SYNTH challenge slices (z-scores in a fixed "
            "window), not on scanner volumes: use `dcectl challenge predict` or its container"
        )
    gen = model.description.get("generator", {})
    # the generator's own record first (every family writes it); older files: the config's
    tcfg_model = model.description["train_config"]["model"]
    replicate = bool(gen.get("replicate_input", tcfg_model.get("replicate_input", True)))
    want = 3 if replicate else 1
    got = int(gen.get("in_channels", want))
    if got != want:
        raise ModelError(
            f"{model.path}: its generator takes {got} input channels; predict gives it one "
            f"pre-contrast volume ({want} channel(s){', replicated' if replicate else ''}): "
            "this model needs inputs predict cannot make"
        )
    return tuple(phases) if phases else tuple(have)


def folder_name(key: str) -> str:
    """A patient key as a folder name inside OUT: :func:`dcesynth.names.safe_name` (a plain
    key as it is; any other key readable plus a hash, so ``x/y`` and ``x_y`` stay apart)."""
    return safe_name(key)


@dataclass(frozen=True)
class PatientSource:
    """New patients as a ``SliceSource``: read, check, normalise, resize; write on finish."""

    patients: tuple[PatientInput, ...]
    size: int
    normalisation: dict
    phases: tuple[int, ...]  # to write
    model_phases: tuple[int, ...]  # what the generator makes, in its order
    description: dict
    out: str
    deidentify: bool = False
    salt: str = "dcesynth"
    dicom: bool = True

    def count(self) -> int:
        return len(self.patients)

    def name(self, i: int) -> str:
        from dcesynth.data.ingest.transforms import pseudonym

        key = self.patients[i].key
        return pseudonym(key, self.salt) if self.deidentify else folder_name(key)

    def read(self, i: int):
        """Patient ``i``'s checked pre volume and its uint8 normalisation (canonical)."""
        from dcesynth.data.ingest.transforms import normaliser
        from dcesynth.data.readers.pre import read_pre_dicom, read_pre_nifti

        p = self.patients[i]
        try:
            if p.kind == "dicom":
                pre = read_pre_dicom(Path(p.root), p.key, list(p.files))
            else:
                pre = read_pre_nifti(Path(p.root), p.key)
        except CaseError as e:  # name the file as the user can find it, not relative to INPUT
            where = os.path.normpath(Path(p.root) / (e.file or p.where))
            raise CaseError(e.case, e.message, where) from None
        norm = self.normalisation
        try:
            u8 = normaliser(norm["method"])(
                pre.volume,
                percentiles=tuple(norm.get("percentiles", (0.5, 99.5))),
                zscore_clip=float(norm.get("zscore_clip", 3.0)),
            )
        except ValueError as e:
            raise CaseError(p.key, f"cannot normalise: {e}", pre.source) from None
        return pre, u8

    def load(self, i: int):
        """Slices, resize plan and the context ``finish`` needs: the checked volume (its
        float voxels dropped: only its geometry and headers are written from) and its uint8
        normalisation — read once, in the reading task, never again on the driver."""
        from dcesynth.data.ingest.transforms import SquareResize

        pre, u8 = self.read(i)
        g = pre.geometry.as_float32()  # as ingest planned the training slices
        rs = SquareResize.plan(g.shape[1], g.shape[2], g.spacing[1], g.spacing[0], self.size)
        light = dataclasses.replace(pre, volume=np.empty((0, 0, 0), np.float32))
        return rs.apply(u8[:, None])[:, 0], rs, (light, u8)

    def finish(self, i: int, fake: np.ndarray, context=None) -> str:
        """Write patient ``i``'s outputs; ``context`` is what :meth:`load` read (read again
        when None)."""
        pre, u8 = context if context is not None else self.read(i)
        name = self.name(i)
        final = within(self.out, name)  # a safe name already; checked to stay inside OUT
        tmp = final.with_name(f"{TMP_PREFIX}{final.name}")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        try:
            self._write(tmp, pre, u8, fake, name)
            replace_dir(tmp, final)  # a full disk leaves the previous output as it was
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return name

    def _write(self, tmp: Path, pre, u8: np.ndarray, fake: np.ndarray, name: str) -> None:
        import nibabel as nib

        from dcesynth.inference.dicom_out import series_base, write_series

        header = None
        if pre.nifti is not None:
            src = nib.load(str(pre.nifti))
            affine = src.affine
            if not self.deidentify:  # its free-text fields (descrip, db_name…) may name people
                header = src.header.copy()
                header.set_data_dtype(np.uint8)
        else:
            affine = pre.stored_geometry.affine_ras
        pre_src = pre.reorientation.to_source(u8)
        number = 9000
        for p in self.phases:
            k = self.model_phases.index(p)
            post = pre.reorientation.to_source(fake[k])
            sub = np.clip(post.astype(np.int16) - pre_src, 0, 255).astype(np.uint8)
            for kind, vol in (("post", post), ("sub", sub)):
                img = nib.Nifti1Image(np.ascontiguousarray(vol.transpose(2, 1, 0)), affine, header)
                img.header.set_slope_inter(1.0, 0.0)
                img.header["descrip"] = f"dcesynth {kind} ph{p}: synthetic - not acquired".encode()
                nib.save(img, tmp / f"{kind}_{p:04d}.nii.gz")
                if self.dicom and pre.headers:
                    number += 1
                    base = series_base(
                        pre,
                        kind=kind,
                        phase=p,
                        number=number,
                        model=self.description,
                        deidentify=self.deidentify,
                        pseudonym=name,
                        salt=self.salt,
                    )
                    write_series(tmp / "dicom" / f"{kind}_{p:04d}", vol, pre, base, self.deidentify)


def predict(
    model: Path,
    source: Path,
    out: Path,
    *,
    phases: tuple[int, ...] | None = None,
    deidentify: bool = False,
    salt: str = "dcesynth",
    dicom: bool = True,
    device: str = "cpu",
    batch: int = 16,
    actors: int = 1,
    address: str | None = None,
    progress: bool | None = None,
    engine: str = "auto",
) -> PredictResult:
    """Synthetic post-contrast and subtraction volumes for every patient in ``source``.

    Args:
        model: a model artefact (``dcectl export``).
        source: a pre-contrast DICOM series or folder, a NIfTI file, or a folder of patients.
        out: output folder (one sub-folder per patient, ``predict.json``).
        phases: the post phases to write (default: all the model generates).
        deidentify: DICOM outputs without the input's identifying values; patient folders
            named by pseudonym (``salt``).
        dicom: also write DICOM series (DICOM inputs only).
        device, batch, actors, address, engine: as
            :func:`~dcesynth.inference.engine.translate`; ``auto`` runs one patient (up to
            :data:`~dcesynth.inference.engine.LOCAL_MAX_VOLUMES`) in this process without Ray
            when no cluster is named, and many through Ray Data.

    Raises:
        ModelError: a damaged or altered model, or one the request cannot meet.
        ValueError: no input found. Patients that cannot be used are in ``failed`` instead.
    """
    out = Path(out)
    with folder_lock(out, "predict"):  # a second predict into OUT is refused, naming this one
        return _predict(
            model, source, out, phases, deidentify, salt, dicom, device, batch, actors, address,
            progress, engine,
        )  # fmt: skip


def _predict(
    model: Path,
    source: Path,
    out: Path,
    phases: tuple[int, ...] | None,
    deidentify: bool,
    salt: str,
    dicom: bool,
    device: str,
    batch: int,
    actors: int,
    address: str | None,
    progress: bool | None,
    engine: str = "auto",
) -> PredictResult:
    from dcesynth.cluster import check_engine
    from dcesynth.inference.engine import translate

    check_engine(engine, address)  # before any work
    art = load_artifact(model)
    todo = check_model(art, phases)
    patients, bad, ignored = find_patients(Path(source), address)
    # one folder per patient, distinct even where keys differ only in odd characters
    unique_names(p.key for p in patients)
    out.mkdir(parents=True, exist_ok=True)
    src = PatientSource(
        tuple(patients),
        art.image_size,
        art.normalisation,
        todo,
        tuple(art.phases),
        art.description,
        str(out),
        deidentify,
        salt,
        dicom,
    )
    res = PredictResult(out, ignored=ignored)
    res.failed = {b["patient"]: b["error"] for b in bad}
    if patients:
        bf16 = bool(art.description["train_config"].get("bf16", True))
        tr = translate(
            art.spec(),
            src,
            device=device,
            batch=batch,
            actors=actors,
            bf16=bf16,
            address=address,
            progress=progress,
            description="predict",
            engine=engine,
        )
        res.slices, res.wall_s = tr.slices, tr.wall_s
        res.engine, res.compute_s = tr.engine, tr.compute_s
        label = src.name if deidentify else (lambda i: patients[i].key)
        res.done = {label(i): str(out / name) for i, name in sorted(tr.done.items())}
        res.failed |= {label(i): why for i, why in sorted(tr.failed.items())}
    record = {
        "model": str(Path(model).resolve()),
        "weights_sha256": art.description["checksums"]["weights_sha256"],
        "phases": list(todo),
        "deidentified": deidentify,
        "done": res.done,
        # with --deidentify the reasons (they name patients and files) go to the console only
        "failed": res.failed if not deidentify else len(res.failed),
        "ignored": [] if deidentify else ignored,
        "slices": res.slices,
    }
    if not deidentify:
        record["input"] = str(Path(source).resolve())
    atomic_write_text(out / "predict.json", json.dumps(record, indent=1))
    return res
