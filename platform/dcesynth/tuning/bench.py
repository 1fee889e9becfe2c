"""``dcectl bench sweep``: what Ray Tune and Ray Train add to a sweep's wall time.

The same N trainings, side by side in one process:

- through the platform: :func:`dcesynth.tuning.sweep.sweep` (a Tune trial per setting, each a
  ``TorchTrainer`` with one worker streaming the split through Ray Data, the per-epoch anchored
  SAMe, a checkpoint per epoch), then the population-SAMe ranking, timed apart;
- one after another without Ray: the same :class:`~dcesynth.training.step.GanStep` on the same
  slices (``train_arrays``, the trials' in-memory split), the same per-epoch validation and
  objective, the same checkpoint and sample image per epoch, on as many torch threads as a
  trial's worker has.

The trials differ only in the learning rate (a grid), so both sides do identical work.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch

from dcesynth.tuning.space import SearchSpace


def bench_space(space: SearchSpace, dataset: Path, out: Path, trials: int, epochs: int):
    """The bench's space: ``space``'s base on ``dataset``, a grid of ``trials`` learning rates,
    no early stopping, one trial at a time, the cheap metrics for the ranking. Validated here,
    as every trial validates it again: a space the bench cannot reduce this way (one that
    searches the generator family) is refused before Ray starts.

    Raises:
        ValueError: (pydantic's ValidationError) naming what the reduced space lacks.
    """
    from dcesynth.tuning.space import Parameter

    lrs = [float(space.base.lr) * (0.8**i) for i in range(trials)]
    base = space.base.model_copy(
        update={"dataset": dataset, "epochs": epochs, "checkpoint_every": 1, "use_gpu": False}
    )
    cheap = ["mae", "mse", "ssim"]  # SAMe over what is computed: the space's may add FRD
    same = [m for m in space.evaluation.same_metrics if m in cheap] or cheap
    evaluation = space.evaluation.model_copy(update={"metrics": cheap, "same_metrics": same})
    reduced = space.model_copy(
        update={
            "name": "bench",
            "storage_path": out / "sweeps",
            "base": base,
            "parameters": {"lr": Parameter(distribution="grid", values=lrs)},
            "searcher": space.searcher.model_copy(update={"type": "grid"}),
            "scheduler": space.scheduler.model_copy(update={"type": "none"}),
            "num_samples": 1,
            "max_concurrent_trials": 1,
            "evaluation": evaluation,
        }
    )
    return SearchSpace.model_validate(reduced.model_dump())


def plain_training(cfg, hook, run_dir: Path) -> None:
    """One trial's training without Ray (see the module docstring)."""
    from dcesynth.data.dataset import load_manifest, to_model_range
    from dcesynth.training.config import learning_rate
    from dcesynth.training.loop import (
        build_discriminator,
        build_generator,
        model_io,
        random_crop,
        rotate,
    )
    from dcesynth.training.run import train_arrays, val_subset
    from dcesynth.training.step import GanStep
    from dcesynth.training.validation import validation_metrics, write_samples

    device = torch.device("cpu")
    torch.manual_seed(cfg.seed)
    manifest = load_manifest(cfg.dataset)
    train, val = train_arrays(cfg, manifest), val_subset(cfg, manifest)
    G, D = build_generator(cfg), build_discriminator(cfg)
    step = GanStep(G, D, cfg, device)
    run_dir.mkdir(parents=True, exist_ok=True)
    for epoch in range(cfg.epochs):
        for opt in (step.opt_g, step.opt_d):
            for group in opt.param_groups:
                group["lr"] = learning_rate(epoch, cfg)
        gen = torch.Generator().manual_seed(hash((cfg.seed, epoch, 0)) % 2**31)
        G.train()
        for i in range(0, len(train["pre"]), cfg.batch_size):
            batch = to_model_range({k: v[i : i + cfg.batch_size] for k, v in train.items()})
            rotate(batch, cfg.rotate_p, gen)
            random_crop(batch, cfg.crop_size, gen)  # as the platform's trials do
            step(*model_io(batch["pre"], batch["post"], cfg), batch["mask"])
        metrics = validation_metrics(G, val, cfg, device)
        metrics.update(hook(metrics, val))
        write_samples(G, val, cfg, device, run_dir / f"epoch_{epoch + 1:03d}.png")
        state = {"G": G.state_dict(), "D": D.state_dict(), "epoch": epoch + 1}
        state |= {"opt_g": step.opt_g.state_dict(), "opt_d": step.opt_d.state_dict()}
        torch.save(state, run_dir / f"epoch_{epoch + 1:03d}.pt")


def bench_sweep(space: SearchSpace, dataset: Path, out: Path, trials: int, epochs: int) -> dict:
    """Time the same trials through the platform and without Ray (seconds)."""
    from dcesynth.tuning.sweep import AnchoredSameHook, ensure_ray, sweep

    space = bench_space(space, dataset, out, trials, epochs)
    sweep_dir = Path(space.storage_path) / space.name
    if sweep_dir.exists():
        import shutil

        shutil.rmtree(sweep_dir)
    # without Ray: one trial's worker has base.workers × 1 CPU (Ray sets its torch threads)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    plain = []
    try:
        for i, lr in enumerate(space.parameters["lr"].values):
            cfg = space.trial_config({"lr": lr}, f"plain_{i}", out / "plain")
            t0 = time.perf_counter()
            plain_training(cfg, AnchoredSameHook(space.objective.metrics), out / "plain" / cfg.name)
            plain.append(time.perf_counter() - t0)
    finally:
        torch.set_num_threads(threads)
    ensure_ray(space)
    result = sweep(space, verbose=0)
    return {
        "trials": trials,
        "epochs": epochs,
        "plain": plain,
        "tune": result.seconds["trials"],
        "ranking": result.seconds["ranking"],
        "completed": sum(t["error"] is None and t["epochs"] >= epochs for t in result.trials),
    }
