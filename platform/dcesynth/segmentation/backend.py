"""Segmentation backends: nnU-Net v2 through its Python API, and a threshold for dry runs.

A backend does three things for one training set (:class:`SetSpec`): ``plan`` (write the raw
dataset, plan and preprocess, then write ``splits_final.json``), ``train`` one fold, and
``predict`` test volumes with the ensemble of the set's folds. The study runs each as a Ray
task; nnU-Net finds its folders through ``nnUNet_raw`` / ``nnUNet_preprocessed`` /
``nnUNet_results``, which the study passes to every task in its runtime environment.

nnU-Net is used as shipped: the plain ``nnUNetTrainer``, with epochs and iterations set on the
instance (no trainer subclass per setting), nnU-Net's default planner and preprocessor, no
post-processing. We write ``splits_final.json`` ourselves, once, before any fold of the set
starts: nnU-Net writes it when a fold starts and finds none, and folds starting together race.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dcesynth.config import atomic_write_text
from dcesynth.segmentation.config import SegmentConfig

NNUNET_ENV = ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results")
TRAINER, PLANS = "nnUNetTrainer", "nnUNetPlans"


@dataclass(frozen=True)
class SetSpec:
    """One training set of a study, as its tasks need it.

    Args:
        name: A–G.
        dataset_id: nnU-Net dataset id (3 digits).
        study: the study folder.
        cases: training case identifier → (image, label) files.
        splits: the folds' train/val identifiers (nnU-Net's ``splits_final.json``).
        cfg: the study's config.
    """

    name: str
    dataset_id: int
    study: str
    cases: dict[str, tuple[str, str]]
    splits: list[dict[str, list[str]]]
    cfg: SegmentConfig

    @property
    def dataset_name(self) -> str:
        return f"Dataset{self.dataset_id:03d}_set{self.name}"

    def folder(self, kind: str) -> Path:
        """``raw``, ``preprocessed`` or ``results`` folder of this set's nnU-Net dataset."""
        return nnunet_dirs(Path(self.study))[f"nnUNet_{kind}"] / self.dataset_name

    @property
    def model_dir(self) -> Path:
        return self.folder("results") / f"{TRAINER}__{PLANS}__{self.cfg.configuration}"

    def fingerprint(self) -> dict:
        return {
            "cases": sorted(self.cases),
            "splits": self.splits,
            "max_batch_size": self.cfg.max_batch_size,  # written into the plans
            "unet_base_features": self.cfg.unet_base_features,  # so is this
        }


def nnunet_dirs(study: Path) -> dict[str, Path]:
    """nnU-Net's three folders inside a study (the values of its environment variables)."""
    root = Path(study).resolve() / "nnunet"
    return {k: root / k.split("_")[1] for k in NNUNET_ENV}


def check_env(spec: SetSpec) -> None:
    """A task must see this study's nnU-Net folders (passed through Ray's runtime_env)."""
    for k, v in nnunet_dirs(Path(spec.study)).items():
        if os.environ.get(k) != str(v):
            raise RuntimeError(f"{k}={os.environ.get(k)!r} in this task; the study needs {v}")


def device_for(gpus: float) -> str:
    """``cuda`` when the task holds a GPU that torch can use, else ``cpu``."""
    import torch

    return "cuda" if gpus > 0 and torch.cuda.is_available() else "cpu"


@contextlib.contextmanager
def logged(path: Path):
    """nnU-Net prints a great deal: send a task's stdout and stderr to its log file.

    Also: nnU-Net lists a dataset's files through ``multiprocessing.Pool(12)`` with Python's
    default start method, which is *fork* on Linux. A Ray worker runs dozens of threads, and a
    forked copy of a process with threads can inherit a held lock and hang for ever (we saw a
    plan task stop at its first line). Spawning 12 fresh interpreters instead tripled the
    plan's time, so that pool forks from a single-threaded fork server that has nnU-Net
    imported already. (nnU-Net's other pools use spawn themselves.)
    """
    import multiprocessing

    multiprocessing.set_start_method("forkserver", force=True)  # this worker process only
    multiprocessing.set_forkserver_preload(["nnunetv2.utilities.utils"])
    path.parent.mkdir(parents=True, exist_ok=True)
    with (
        path.open("a", buffering=1) as f,
        contextlib.redirect_stdout(f),
        contextlib.redirect_stderr(f),
    ):
        yield


def write_raw_dataset(spec: SetSpec) -> Path:
    """nnU-Net's raw layout for the set (links to the prepared volumes) and ``dataset.json``."""
    raw = spec.folder("raw")
    shutil.rmtree(raw, ignore_errors=True)
    (raw / "imagesTr").mkdir(parents=True)
    (raw / "labelsTr").mkdir()
    for ident, (image, label) in sorted(spec.cases.items()):
        os.symlink(Path(image).resolve(), raw / "imagesTr" / f"{ident}_0000.nii.gz")
        os.symlink(Path(label).resolve(), raw / "labelsTr" / f"{ident}.nii.gz")
    meta = {
        "channel_names": {"0": "MRI"},  # MRI: nnU-Net z-scores each case
        "labels": {"background": 0, "tumour": 1},
        "numTraining": len(spec.cases),
        "file_ending": ".nii.gz",
        "name": spec.dataset_name,
        "description": f"dcesynth segmentation study, training set {spec.name}",
    }
    atomic_write_text(raw / "dataset.json", json.dumps(meta, indent=1))
    return raw


def write_splits(spec: SetSpec) -> Path:
    path = spec.folder("preprocessed") / "splits_final.json"
    atomic_write_text(path, json.dumps(spec.splits, indent=1))
    return path


def _plans(spec: SetSpec, configuration: str) -> tuple[Path, dict, dict]:
    """The set's nnU-Net plans file, its contents and ``configuration``'s entry (edited in place
    by the caller, which writes ``plans`` back)."""
    path = spec.folder("preprocessed") / f"{PLANS}.json"
    plans = json.loads(path.read_text())
    conf = plans["configurations"].get(configuration)
    if conf is None:
        raise ValueError(
            f"{path}: no configuration {configuration!r}; has {sorted(plans['configurations'])}"
        )
    return path, plans, conf


def cap_batch_size(spec: SetSpec, configuration: str, cap: int) -> None:
    """Lower the planned batch size of ``configuration`` to ``cap`` in nnU-Net's plans file.

    Editing the plans is how nnU-Net expects its plans to be changed; the trainer reads the
    batch size from them. Preprocessing does not depend on it.
    """
    path, plans, conf = _plans(spec, configuration)
    if conf["batch_size"] > cap:
        conf["batch_size"] = cap
        atomic_write_text(path, json.dumps(plans, indent=1))


def scale_unet_width(spec: SetSpec, configuration: str, base: int) -> list[int]:
    """Scale every stage of ``configuration``'s planned U-Net so the first has ``base``
    features (the planner: 32, doubling to a cap); returns the new features per stage.

    Halving the width makes an iteration ~3× cheaper on a CPU (measured: 0.55 against 1.9 s for
    a batch of 8 at 160 × 80), so a fixed CPU budget buys ~3× the iterations; nnU-Net's
    architecture otherwise stays the planner's. Written into the plans, as nnU-Net expects.
    """
    path, plans, conf = _plans(spec, configuration)
    arch = conf["architecture"]["arch_kwargs"]
    planned = list(arch["features_per_stage"])
    arch["features_per_stage"] = [max(1, round(f * base / planned[0])) for f in planned]
    atomic_write_text(path, json.dumps(plans, indent=1))
    return arch["features_per_stage"]


class NnUNetBackend:
    """nnU-Net v2: default planner and preprocessor, plain ``nnUNetTrainer``, fold ensemble."""

    name = "nnunet"

    def plan(self, spec: SetSpec, log: Path) -> dict:
        from nnunetv2.experiment_planning.plan_and_preprocess_api import (
            extract_fingerprint_dataset,
            plan_experiment_dataset,
            preprocess_dataset,
        )

        cfg = spec.cfg
        write_raw_dataset(spec)
        with logged(log):
            extract_fingerprint_dataset(
                spec.dataset_id,
                num_processes=cfg.preprocess_workers,
                check_dataset_integrity=True,
                verbose=False,
                show_progress_bar=False,
            )
            plan_experiment_dataset(spec.dataset_id)
            if cfg.max_batch_size is not None:
                cap_batch_size(spec, cfg.configuration, cfg.max_batch_size)
            if cfg.unet_base_features is not None:
                scale_unet_width(spec, cfg.configuration, cfg.unet_base_features)
            preprocess_dataset(
                spec.dataset_id,
                PLANS,
                [cfg.configuration],
                [cfg.preprocess_workers],
                show_progress_bar=False,
            )
        plans = json.loads((spec.folder("preprocessed") / f"{PLANS}.json").read_text())
        conf = plans["configurations"][cfg.configuration]
        return {
            "patch_size": conf["patch_size"],
            "batch_size": conf["batch_size"],
            "spacing": conf["spacing"],
            "features_per_stage": conf["architecture"]["arch_kwargs"]["features_per_stage"],
        }

    def _trainer(self, spec: SetSpec, fold: int, device: str, resume: bool):
        """The plain trainer with the study's settings, set before it builds its optimiser."""
        import torch
        from nnunetv2.run.run_training import get_trainer_from_args

        cfg = spec.cfg
        trainer = get_trainer_from_args(
            str(spec.dataset_id),
            cfg.configuration,
            fold,
            TRAINER,
            PLANS,
            continue_training=resume,
            device=torch.device(device),
        )
        trainer.num_epochs = cfg.epochs
        trainer.num_iterations_per_epoch = cfg.iterations_per_epoch
        trainer.num_val_iterations_per_epoch = cfg.val_iterations_per_epoch
        trainer.save_every = cfg.save_every
        if cfg.foreground_oversampling is not None:  # read when the data loaders are built
            trainer.oversample_foreground_percent = cfg.foreground_oversampling
        return trainer

    def train(self, spec: SetSpec, fold: int, device: str, log: Path) -> dict:
        from nnunetv2.run.run_training import maybe_load_checkpoint

        out = spec.model_dir / f"fold_{fold}"
        final, latest = out / "checkpoint_final.pth", out / "checkpoint_latest.pth"
        if final.is_file():  # trained, then killed before our marker: nothing to redo
            return {"resumed_from_epoch": spec.cfg.epochs, "epochs": spec.cfg.epochs}
        resume = latest.is_file()
        with logged(log):
            trainer = self._trainer(spec, fold, device, resume)
            try:
                maybe_load_checkpoint(trainer, resume, False)
            except Exception as e:  # killed while nnU-Net was writing it: start the fold anew
                if not resume:
                    raise
                print(f"dcesynth: {latest} unreadable ({e}); training fold {fold} from epoch 0")
                latest.unlink()
                resume = False
                trainer = self._trainer(spec, fold, device, resume)
            start = trainer.current_epoch
            trainer.run_training()
            if spec.cfg.validate_folds:
                trainer.perform_actual_validation(False)
        if not final.is_file():
            raise RuntimeError(f"set {spec.name} fold {fold}: nnU-Net wrote no checkpoint_final")
        return {
            "resumed_from_epoch": start if resume else None,
            "epochs": spec.cfg.epochs,
            "ema_pseudo_dice": _last_ema(trainer),
        }

    def predict(
        self, spec: SetSpec, images: dict[str, str], out: Path, device: str, log: Path
    ) -> dict[str, str]:
        import torch
        from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor

        out.mkdir(parents=True, exist_ok=True)
        names = sorted(images)
        with logged(log):
            predictor = nnUNetPredictor(
                tile_step_size=0.5,
                use_gaussian=True,
                use_mirroring=spec.cfg.mirroring,
                perform_everything_on_device=device == "cuda",
                device=torch.device(device),
                verbose=False,
                allow_tqdm=False,
            )
            predictor.initialize_from_trained_model_folder(
                str(spec.model_dir),
                use_folds=tuple(range(spec.cfg.folds)),
                checkpoint_name="checkpoint_final.pth",
            )
            # sequential: no process pools inside a Ray task that already has its CPUs
            predictor.predict_from_files_sequential(
                [[images[n]] for n in names], [str(out / n) for n in names], False, True
            )
        return {n: str(out / f"{n}.nii.gz") for n in names}


def _last_ema(trainer) -> float | None:
    """The fold's last EMA pseudo-Dice on its validation patches (nnU-Net's own progress)."""
    try:
        values = trainer.logger.get_value("ema_fg_dice", None)
        return float(values[-1])
    except (AttributeError, KeyError, IndexError, TypeError, ValueError):
        return None


class ThresholdBackend:
    """A one-parameter segmenter for dry runs of a study's wiring: seconds, not a result.

    Each fold picks the z-scored intensity threshold that maximises Dice over its training
    cases; prediction thresholds at the mean of the folds' thresholds.
    """

    name = "threshold"

    def plan(self, spec: SetSpec, log: Path) -> dict:
        write_raw_dataset(spec)
        return {"patch_size": None}

    def train(self, spec: SetSpec, fold: int, device: str, log: Path) -> dict:
        import nibabel as nib

        xs, ys = [], []
        for ident in spec.splits[fold]["train"]:
            image, label = spec.cases[ident]
            xs.append(_zscore(np.asarray(nib.load(image).dataobj, np.float32)).ravel())
            ys.append(np.asarray(nib.load(label).dataobj).ravel() > 0)
        x, y = np.concatenate(xs), np.concatenate(ys)
        grid = np.quantile(x, np.linspace(0.5, 0.999, 200))
        dice = [2 * (y & (x > t)).sum() / max(1, y.sum() + (x > t).sum()) for t in grid]
        best = int(np.argmax(dice))
        model = {"threshold": float(grid[best]), "train_dice": float(dice[best])}
        path = spec.folder("results") / f"threshold_fold_{fold}.json"
        atomic_write_text(path, json.dumps(model))
        return model

    def predict(
        self, spec: SetSpec, images: dict[str, str], out: Path, device: str, log: Path
    ) -> dict[str, str]:
        import nibabel as nib

        res = spec.folder("results")
        t = np.mean(
            [
                json.loads((res / f"threshold_fold_{f}.json").read_text())["threshold"]
                for f in range(spec.cfg.folds)
            ]
        )
        out.mkdir(parents=True, exist_ok=True)
        done = {}
        for n, path in sorted(images.items()):
            img = nib.load(path)
            seg = (_zscore(np.asarray(img.dataobj, np.float32)) > t).astype(np.uint8)
            nib.save(nib.Nifti1Image(seg, img.affine), out / f"{n}.nii.gz")
            done[n] = str(out / f"{n}.nii.gz")
        return done


def _zscore(x: np.ndarray) -> np.ndarray:
    return (x - x.mean()) / max(float(x.std()), 1e-6)


BACKENDS = {"nnunet": NnUNetBackend, "threshold": ThresholdBackend}


def get_backend(name: str):
    """The backend registered under ``name``; a clear error lists the others."""
    if name not in BACKENDS:
        raise ValueError(f"unknown segmentation backend {name!r}; allowed: {sorted(BACKENDS)}")
    return BACKENDS[name]()
