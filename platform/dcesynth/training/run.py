"""Launch, or resume, one training run with Ray Train (``TorchTrainer``).

Run directory ``<runs_dir>/<name>/``: ``config.yaml`` (resolved), ``checkpoints/epoch_NNN/``,
``metrics.jsonl``, ``samples/``, ``loss_curve.png``. Every input is checked before Ray starts.

One process at a time trains in a run folder (:func:`dcesynth.locks.folder_lock`; a sweep's
trials are covered by the sweep's own lock). A checkpoint that does not load (cut short by a
full disk, copied half-way) is never resumed from: it is set aside as ``checkpoints/broken-
epoch_NNN`` with a warning, the previous one is used, and metrics.jsonl is cut back to it —
both after a failed run and when resuming (:mod:`dcesynth.training.resume`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import yaml

from dcesynth.config import ConfigError, atomic_write_text, to_yaml
from dcesynth.durable import (
    MACHINE_ERRNOS,
    MachineError,
    complete_lines,
    describe_os_error,
    os_error_of,
)
from dcesynth.locks import folder_lock
from dcesynth.training.config import TrainConfig
from dcesynth.training.families import family
from dcesynth.training.resume import checkpoint_dirs, prepare_resume, set_aside_broken

log = logging.getLogger(__name__)


class TrainingError(RuntimeError):
    """A run that stopped without finishing (e.g. a NaN loss)."""


@dataclass
class TrainResult:
    run_dir: Path
    epochs_done: int
    metrics: list[dict]
    checkpoints: list[Path]


def check(cfg: TrainConfig) -> dict:
    """Everything that can fail before Ray starts; returns the dataset manifest.

    Raises:
        ConfigError: naming the key and what is allowed.
    """
    from dcesynth.data.dataset import load_manifest
    from dcesynth.weights import VGG19_IMAGENET, WeightsError, resolve

    if cfg.dataset is None:
        raise ConfigError("`dataset`: required (a prepared dataset from `dcectl ingest`)")
    try:
        manifest = load_manifest(cfg.dataset)
    except FileNotFoundError as e:
        raise ConfigError(f"`dataset`: {e}") from None
    stored = manifest["phases"][1:]
    if missing := [p for p in cfg.phases if p not in stored]:
        raise ConfigError(f"`phases`: {missing} not in the dataset; it has post phases {stored}")
    size = manifest["image_size"]
    if size % cfg.model.divisor:
        raise ConfigError(
            f"`{cfg.model.divisor_key}`: image size {size} is not divisible by "
            f"{cfg.model.divisor}; use fewer downsamplings or another size"
        )
    for split in ("train", "val"):
        if split not in manifest["counts"]["slices"]:
            raise ConfigError(f"`dataset`: no {split!r} split in {cfg.dataset}")
    if family(cfg).needs_vgg(cfg):
        try:
            resolve(VGG19_IMAGENET, cfg.loss.weights_dir)
        except WeightsError as e:
            raise ConfigError(
                f"`loss.perceptual_network`: {e}; or set loss.lambda_per=0 or "
                "loss.perceptual_network=vgg19_random (not the study's loss)"
            ) from None
    return manifest


def load_run_config(run_dir: Path) -> TrainConfig:
    """The saved config of the run in ``run_dir``, pointed at ``run_dir`` itself: a run that
    was copied or moved resumes where it now is, never into the folder it came from.

    Raises:
        ConfigError: no config.yaml there, or the folder's name is not a valid run `name`.
    """
    run_dir = Path(run_dir).resolve()
    path = run_dir / "config.yaml"
    if not path.is_file():
        raise ConfigError(f"--resume {run_dir}: no config.yaml, not a run directory")
    data = yaml.safe_load(path.read_text())
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: not a run config (a {type(data).__name__})")
    # the saved runs_dir/name say where the run was made; the folder says where it is
    data = {**data, "runs_dir": str(run_dir.parent), "name": run_dir.name}
    try:
        return TrainConfig.model_validate(data)
    except ValueError as e:
        raise ConfigError(f"--resume {run_dir}: {path} does not validate: {e}") from None


def val_subset(cfg: TrainConfig, manifest: dict) -> dict:
    """The first ``val_slices`` validation slices, read on the driver (no Ray Data start-up)."""
    from dcesynth.data.dataset import read_slices

    b, _ = read_slices(cfg.dataset, "val", cfg.val_slices)
    idx = [manifest["phases"][1:].index(p) for p in cfg.phases]
    return {"pre": b["pre"].copy(), "post": b["post"][:, idx].copy()}


# A training split this small (parquet bytes) is read once on the driver and handed to Ray as
# one in-memory block: no read tasks to start (seconds each epoch on a small machine, longer
# than a phantom epoch's training), and each epoch re-streams it without re-reading. Larger
# splits stream from parquet every epoch.
IN_MEMORY_BYTES = 512 * 2**20


def train_arrays(cfg: TrainConfig, manifest: dict) -> dict:
    """The whole training split in memory, as the loop's batches hold it: uint8 ``pre``
    (N, 1, S, S), ``post`` (N, P, S, S) of the run's phases, ``mask``, ``slice_index``."""
    from dcesynth.data.dataset import TrainTransform, read_slices

    slices, _ = read_slices(cfg.dataset, "train")
    transform = TrainTransform(list(cfg.phases), manifest["phases"][1:], rotate_p=0.0)
    batch = transform(slices, scale=False)
    del batch["rotated"]
    return oversample_tumour(batch, cfg.tumour_oversampling)


def oversample_tumour(batch: dict, times: int) -> dict:
    """Each slice with lesion pixels ``times`` times (in place of once), order kept."""
    import numpy as np

    if times == 1:
        return batch
    tumour = batch["mask"].reshape(len(batch["mask"]), -1).max(1) > 0
    idx = np.repeat(np.arange(len(tumour)), np.where(tumour, times, 1))
    return {k: v[idx] for k, v in batch.items()}


def train_split(cfg: TrainConfig, manifest: dict):
    """The training split as Ray Data, uint8, phases selected (rotation is the loop's)."""
    import ray.data
    from ray.data.block import BlockAccessor

    from dcesynth.data.dataset import read_split

    files = (Path(cfg.dataset) / "slices" / "train").glob("*.parquet")
    if sum(f.stat().st_size for f in files) > IN_MEMORY_BYTES:
        ds = read_split(cfg.dataset, "train", phases=list(cfg.phases), rotate_p=0.0, scale=False)
        if cfg.tumour_oversampling > 1:
            ds = ds.map_batches(
                oversample_tumour,
                fn_kwargs={"times": cfg.tumour_oversampling},
                batch_format="numpy",
            )
        return ds
    return ray.data.from_blocks([BlockAccessor.batch_to_block(train_arrays(cfg, manifest))])


def train(
    cfg: TrainConfig,
    resume: bool = False,
    address: str | None = None,
    fault: dict | None = None,
    metrics_hook: Callable[[dict, dict], dict] | None = None,
    report_to_tune: bool = False,
    on_epoch: Callable[[dict], None] | None = None,
) -> TrainResult:
    """Train (or resume) ``cfg.runs_dir / cfg.name`` with ``cfg.workers`` Ray Train workers.

    Args:
        cfg: the run's config (on resume: the saved one, see ``load_run_config``).
        resume: continue from the latest checkpoint of an existing run.
        address: a Ray cluster to join (default: the running or a new local instance).
        fault: fault injection for tests (``crash_at_epoch`` + ``marker``, ``nan_at``;
            ``always_crash``: every attempt fails as it starts that epoch).
        metrics_hook: ``hook(metrics, val) → dict`` merged into each epoch's metrics on rank 0
            (must pickle: it travels to the workers).
        report_to_tune: inside a Ray Tune trial, forward every report (and checkpoint) to Tune.
        on_epoch: called on the driver with each finished epoch's metrics.jsonl line (MLflow
            tracking: the driver logs, never a worker); not with ``report_to_tune``.

    Raises:
        ConfigError: before Ray starts, for any unusable input.
        TrainingError: when the run stopped early (NaN loss), naming epoch, step and checkpoint.
        FolderLocked: another process trains in this run folder.
        MachineError: the machine stopped the run (a full disk…), in one line; no checkpoint
            that does not load is left behind, and ``--resume`` continues from the last good one.
    """
    manifest = check(cfg)
    run_dir = (Path(cfg.runs_dir) / cfg.name).resolve()
    # a sweep's trial is covered by the sweep's lock (and may be retried on another node)
    lock = folder_lock(run_dir, "train") if not report_to_tune else contextlib.nullcontext()
    with lock:  # a second training in this run folder is refused, naming this one
        return _train(
            cfg, run_dir, manifest, resume, address, fault, metrics_hook, report_to_tune, on_epoch
        )


def _train(
    cfg: TrainConfig,
    run_dir: Path,
    manifest: dict,
    resume: bool,
    address: str | None,
    fault: dict | None,
    metrics_hook: Callable[[dict, dict], dict] | None,
    report_to_tune: bool,
    on_epoch: Callable[[dict], None] | None = None,
) -> TrainResult:
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer
    from ray.tune.integration.ray_train import TuneReportCallback

    from dcesynth.cluster import init_ray
    from dcesynth.training.loop import train_loop_per_worker
    from dcesynth.weights import VGG19_IMAGENET, resolve

    if resume and not run_dir.is_dir():
        raise ConfigError(f"--resume: no run at {run_dir}")
    if not resume and run_dir.exists() and any(run_dir.iterdir()):
        raise ConfigError(f"run {run_dir} exists: resume it with --resume or choose another `name`")
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(run_dir / "config.yaml", to_yaml(cfg))
    # A local instance gets logical CPUs for the Train workers *and* for Ray Data's read
    # and transform tasks; with only as many as workers the data pipeline never starts.
    init_ray(address, num_cpus=max(os.cpu_count() or 1, cfg.workers) + 2)
    vgg = None
    if family(cfg).needs_vgg(cfg):
        vgg = str(resolve(VGG19_IMAGENET, cfg.loss.weights_dir))
    latest = prepare_resume(run_dir) if resume else None
    trainer = TorchTrainer(
        train_loop_per_worker,
        train_loop_config={
            "cfg": cfg.model_dump(mode="json"),
            "run_dir": str(run_dir),
            "val": val_subset(cfg, manifest),
            "vgg_weights": vgg,
            "fault": fault,
            "metrics_hook": metrics_hook,
            # Train V2 resumes through the loop's config (resume_from_checkpoint is
            # deprecated); Ray's own get_checkpoint() wins after a worker retry
            "resume_dir": str(latest) if latest else None,
        },
        scaling_config=ScalingConfig(num_workers=cfg.workers, use_gpu=cfg.use_gpu),
        run_config=RunConfig(
            # the run's (or sweep trial's) own name: Ray's Train state and logs show it; Train
            # keeps its files in the run folder and the checkpoints under checkpoints/
            name=run_dir.name,
            storage_path=str(run_dir.parent),
            failure_config=FailureConfig(max_failures=cfg.max_failures),
            checkpoint_config=CheckpointConfig(num_to_keep=None),
            callbacks=[TuneReportCallback()] if report_to_tune else None,
        ),
        # rotation happens in the loop (seeded per epoch); uint8 crosses the object store
        datasets={"train": train_split(cfg, manifest)},
    )
    # Ray Train installs its own SIGINT handler in fit() and leaves it behind: a later stage in
    # the same process (dcectl study's segmentation) would then ignore Ctrl-C. Put ours back.
    sigint = signal.getsignal(signal.SIGINT)
    try:
        if report_to_tune:  # a sweep's trial: the sweep logs each epoch on its driver
            trainer.fit()
        else:
            with _EpochLog(run_dir / "metrics.jsonl", cfg.name, cfg.epochs, on_epoch):
                trainer.fit()
    except Exception as e:
        good = set_aside_broken(run_dir)  # nothing that does not load stays a checkpoint
        oe = os_error_of(e)
        if oe is not None and oe.errno in MACHINE_ERRNOS:
            raise MachineError(
                oe.errno,
                f"training {run_dir} stopped: {describe_os_error(oe, run_dir)}; last good "
                f"checkpoint: {good or 'none'}; fix that, then `dcectl train --resume {run_dir}`",
                str(oe.filename) if oe.filename else None,
            ) from e
        raise
    finally:
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, sigint)
    metrics = [json.loads(ln) for ln in complete_lines(run_dir / "metrics.jsonl")]
    plot_losses(metrics, run_dir / "loss_curve.png")
    done = max((m["epoch"] for m in metrics if "loss_g" in m), default=0)
    stopped = [m for m in metrics if m.get("stopped")]
    ckpts = checkpoint_dirs(run_dir)
    if stopped:
        s = stopped[-1]
        raise TrainingError(
            f"{run_dir}: NaN loss at epoch {s['epoch']}, step {s['nan_step']}; "
            f"last good checkpoint: {ckpts[-1] if ckpts else 'none'}"
        )
    return TrainResult(run_dir, done, metrics, ckpts)


class _EpochLog:
    """One log line per finished epoch, read from the run's metrics.jsonl while Ray Train
    runs (the workers' own output stays in Ray's logs): a CI or `nohup` log shows progress."""

    def __init__(
        self,
        path: Path,
        name: str,
        epochs: int,
        on_epoch: Callable[[dict], None] | None = None,
        every: float = 2.0,
    ) -> None:
        import threading

        self.path, self.name, self.epochs, self.every = path, name, epochs, every
        self.on_epoch = on_epoch
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.seen = len(path.read_text().splitlines()) if path.is_file() else 0

    def _poll(self) -> None:
        if not self.path.is_file():
            return
        lines = [ln for ln in self.path.read_text().splitlines() if ln.strip()]
        for ln in lines[self.seen :]:
            try:
                m = json.loads(ln)
            except json.JSONDecodeError:  # a line being written: read it next time
                return
            self.seen += 1
            if self.on_epoch is not None:
                self.on_epoch(m)
            vals = ", ".join(f"{k} {m[k]:.4g}" for k in ("loss_g", "val_mae", "val_ssim") if k in m)
            log.info(
                "train %s: epoch %s/%d: %s",
                self.name,
                m.get("epoch"),
                self.epochs,
                vals or m.get("stopped", ""),
            )

    def _run(self) -> None:
        while not self.stop.wait(self.every):
            self._poll()

    def __enter__(self) -> _EpochLog:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join()
        self._poll()  # the last epoch


def plot_losses(metrics: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [m for m in metrics if "loss_g" in m]
    if not rows:
        return
    ep = [m["epoch"] for m in rows]
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.5), constrained_layout=True)
    for k in ("loss_d", "loss_g", "loss_adv", "loss_fm", "loss_per", "loss_l1"):
        if any(m.get(k, 0) > 0 for m in rows):  # a weight of 0: no curve
            a.plot(ep, [m.get(k, float("nan")) for m in rows], label=k)
    a.set_xlabel("epoch")
    a.set_yscale("log")
    a.legend(fontsize=8)
    for k in ("train_l1", "val_mae"):
        b.plot(ep, [m.get(k, float("nan")) for m in rows], label=k)
    b.set_xlabel("epoch")
    b.legend(fontsize=8)
    fig.savefig(path, dpi=80)
    plt.close(fig)
