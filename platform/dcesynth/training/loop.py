"""The training loop that every Ray Train worker runs (``train_loop_per_worker``), for every
generator family: the family builds its networks and its step (training/families/), the loop
does the rest the same way for all.

Distributed steps, in order: Ray Train picks the device and wraps each network (pix2pixHD's G
and D, the flow's UNet) in DDP (``prepare_model``); each worker streams its shard of the
training split (``get_dataset_shard``); gradients are averaged by DDP in ``backward``; losses
are averaged over workers with ``all_reduce``; every epoch all workers call
``ray.train.report`` and rank 0 attaches a checkpoint every ``checkpoint_every`` epochs. After
a worker failure Ray restarts the group and ``get_checkpoint`` hands back the last checkpoint.
"""

from __future__ import annotations

import json
import math
import tempfile
from pathlib import Path

import torch
import torch.distributed as dist

from dcesynth.data.dataset import model_range_collate
from dcesynth.durable import append_line
from dcesynth.training.checkpoints import load_state, save_state
from dcesynth.training.config import TrainConfig, learning_rate
from dcesynth.training.families import family
from dcesynth.training.families.pix2pixhd import build_discriminator, model_io
from dcesynth.training.step import channels_last
from dcesynth.training.validation import validation_metrics, write_samples


def build_generator(cfg: TrainConfig) -> torch.nn.Module:
    """A freshly initialised generator of the config's family."""
    return family(cfg).generator(cfg)


def rotate(batch: dict, p: float, gen: torch.Generator) -> None:
    """The study's augmentation: 90° rotation with probability p, one draw per slice.

    Done here rather than in the Ray Data pipeline so that the draws depend on (seed, epoch,
    rank, step) and a resumed run repeats them exactly.
    """
    rot = torch.rand(batch["pre"].shape[0], generator=gen) < p
    if rot.any():
        for k in ("pre", "post", "mask"):
            batch[k][rot.to(batch[k].device)] = torch.rot90(
                batch[k][rot.to(batch[k].device)], 1, (2, 3)
            )


def random_crop(batch: dict, size: int | None, gen: torch.Generator) -> None:
    """Replace each slice of ``batch`` ("pre", "post", "mask") by a random ``size``² window.

    A slice with lesion pixels gets a window drawn uniformly among the positions that contain
    the pixel of its lesion centroid: tumour oversampling only helps if the lesion stays in
    view. Other slices get a window drawn uniformly over the slice. An axis no longer than
    ``size`` is kept whole. Draws come from ``gen`` (two per slice, lesion or not), the
    generator :func:`rotate` uses, so a resumed run repeats them exactly.

    Args:
        batch: tensors "pre" (N, 1, H, W), "post" (N, P, H, W), "mask" (N, 1, H, W), all on
            one device; replaced in place (other entries are left alone).
        size: the window's side in pixels; None leaves the batch whole (no draws).
        gen: a CPU ``torch.Generator``.
    """
    if size is None:
        return
    n, _, h, w = batch["pre"].shape
    if h <= size and w <= size:
        return
    lesion = batch["mask"][:, 0] > 0  # (N, H, W)
    count = lesion.sum((1, 2)).cpu()
    u = torch.rand(n, 2, generator=gen, dtype=torch.float64)
    starts = []
    for axis, (extent, reduce_over) in enumerate(((h, 2), (w, 1))):
        side = min(size, extent)
        profile = lesion.sum(reduce_over).cpu().double()  # lesion pixels per row / column
        coords = torch.arange(extent, dtype=torch.float64)
        # the pixel holding the centroid (0 on slices without lesion pixels; not used there)
        centre = torch.floor((profile * coords).sum(1) / count.clamp(min=1) + 0.5).long()
        lo = torch.where(count > 0, (centre - side + 1).clamp(min=0), 0)
        hi = torch.where(count > 0, centre.clamp(max=extent - side), extent - side)
        pick = lo + torch.floor(u[:, axis] * (hi - lo + 1)).long()
        starts.append(torch.minimum(pick, hi).tolist())  # u < 1, but guard the float edge
    sh, sw = min(size, h), min(size, w)
    for k in ("pre", "post", "mask"):
        batch[k] = torch.stack(
            [
                batch[k][i, :, y : y + sh, x : x + sw]
                for i, (y, x) in enumerate(zip(*starts, strict=True))
            ]
        )


def train_loop_per_worker(config: dict) -> None:
    import ray.train
    import ray.train.torch

    cfg = TrainConfig.model_validate(config["cfg"])
    run_dir = Path(config["run_dir"])
    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    device = ray.train.torch.get_device()
    torch.manual_seed(cfg.seed)  # identical initial weights on every worker

    # --- models, wrapped in DDP by Ray Train ----------------------------------------------
    fam = family(cfg)
    nets = {k: ray.train.torch.prepare_model(net) for k, net in fam.networks(cfg).items()}
    if channels_last(cfg, device):
        nets = {k: net.to(memory_format=torch.channels_last) for k, net in nets.items()}
    if cfg.compile:  # after DDP, as PyTorch recommends; _unwrap peels both wrappers
        nets = {k: torch.compile(net) for k, net in nets.items()}
    # vgg_weights: verified by the driver; None: vgg19_random
    step = fam.step(nets, cfg, device, config.get("vgg_weights"))
    G = nets["G"]

    # --- resume: Ray hands back the last reported checkpoint after a failure or --resume ----
    start = 0
    ckpt = ray.train.get_checkpoint()
    if ckpt is None and config.get("resume_dir"):  # dcectl train --resume
        ckpt = ray.train.Checkpoint.from_directory(config["resume_dir"])
    if ckpt is not None:
        with ckpt.as_directory() as d:
            state = load_state(Path(d) / "state.pt", map_location=device)
        for k, net in nets.items():
            _unwrap(net).load_state_dict(state[k])
        for k, opt in step.optimizers.items():
            opt.load_state_dict(state[k])
        start = state["epoch"]
    if rank == 0:
        _truncate_metrics(run_dir / "metrics.jsonl", start)
    val = config["val"]  # a fixed validation subset (uint8), the same every epoch
    fault = config.get("fault") or {}
    # metrics_hook(metrics, val) → extra metrics, run on rank 0 after validation. Callers above
    # training (sweeps) hand in their objective this way; training never imports them.
    hook = config.get("metrics_hook")

    shard = ray.train.get_dataset_shard("train")
    for epoch in range(start, cfg.epochs):
        if epoch + 1 >= fault.get("always_crash", math.inf):  # fault injection: every attempt
            raise RuntimeError(f"injected persistent failure in epoch {epoch + 1}")
        lr = learning_rate(epoch, cfg)
        for opt in step.optimizers.values():
            for group in opt.param_groups:
                group["lr"] = lr
        gen = torch.Generator().manual_seed(hash((cfg.seed, epoch, rank)) % 2**31)
        n_loss = len(step.loss_names)
        sums = torch.zeros(n_loss + 1, device=device)  # the losses (sample-weighted), samples
        G.train()
        batches = shard.iter_torch_batches(
            batch_size=cfg.batch_size, collate_fn=model_range_collate(str(device))
        )
        for step_i, batch in enumerate(batches):
            rotate(batch, cfg.rotate_p, gen)
            random_crop(batch, cfg.crop_size, gen)  # None: no draws, as before crops existed
            n = batch["pre"].shape[0]
            # DDP all-reduces gradients in backward; gen: the family's own draws (flow noise)
            vals = step(batch["pre"], batch["post"], batch["mask"], gen)
            if fault.get("nan_at") == [epoch, step_i]:
                vals[1] = float("nan")  # fault injection (tests): a diverged step
            bad = torch.tensor([0.0 if torch.isfinite(vals).all() else 1.0], device=device)
            if world > 1:
                dist.all_reduce(bad)  # every worker stops together, or DDP would hang
            if bad.item():
                stop = {"epoch": epoch + 1, "nan_step": step_i, "stopped": "nan"}
                if hook is not None and rank == 0:
                    stop.update(hook(stop, val))  # a sweep needs its objective in every report
                if rank == 0:
                    append_line(run_dir / "metrics.jsonl", json.dumps(stop))
                ray.train.report(stop)
                return  # the last good checkpoint stays the latest one
            sums[:n_loss] += vals * n
            sums[n_loss] += n
        if world > 1:
            dist.all_reduce(sums)  # losses averaged over all workers' samples
        count = max(float(sums[n_loss]), 1.0)
        metrics = {
            "epoch": epoch + 1,
            "lr": lr,
            **{k: float(v) / count for k, v in zip(step.loss_names, sums[:n_loss], strict=True)},
        }
        if rank == 0:
            metrics.update(validation_metrics(_unwrap(G), val, cfg, device))
            metrics.update(fam.epoch_facts(cfg))
            if hook is not None:  # e.g. a sweep's objective, computed from the metrics above
                metrics.update(hook(metrics, val))
        _report(metrics, nets, step.optimizers, cfg, epoch, rank, run_dir, val, device)
        if fault.get("crash_at_epoch") == epoch + 1 and not Path(fault["marker"]).exists():
            Path(fault["marker"]).touch()  # fault injection (tests): a worker dies once
            raise RuntimeError(f"injected failure after epoch {epoch + 1}")


def _report(metrics, nets, optimizers, cfg, epoch, rank, run_dir, val, device) -> None:
    import ray.train

    save = (epoch + 1) % cfg.checkpoint_every == 0 or epoch + 1 == cfg.epochs
    # a path below the Train run's folder (the run directory): checkpoints/epoch_NNN
    name = f"checkpoints/epoch_{epoch + 1:03d}" if save else None
    if rank == 0:  # rank 0 alone writes the run directory and the checkpoint
        append_line(run_dir / "metrics.jsonl", json.dumps(metrics))  # fsynced, never half
    if rank != 0 or not save:
        ray.train.report(metrics, checkpoint_dir_name=name)
        return
    G = _unwrap(nets["G"])
    write_samples(G, val, cfg, device, run_dir / "samples" / f"{Path(name).name}.png")
    with tempfile.TemporaryDirectory() as tmp:
        state = {
            **{k: _unwrap(net).state_dict() for k, net in nets.items()},  # G (and D)
            **{k: opt.state_dict() for k, opt in optimizers.items()},  # opt_g (and opt_d)
            "epoch": epoch + 1,
            "config": cfg.model_dump(mode="json"),
        }
        save_state(state, Path(tmp) / "state.pt")  # temp sibling, fsync, rename
        ray.train.report(
            metrics, checkpoint=ray.train.Checkpoint.from_directory(tmp), checkpoint_dir_name=name
        )


def _unwrap(m: torch.nn.Module) -> torch.nn.Module:
    """The plain module inside torch.compile's and DDP's wrappers."""
    while True:
        inner = getattr(m, "_orig_mod", None) or getattr(m, "module", None)
        if not isinstance(inner, torch.nn.Module):
            return m
        m = inner


def _truncate_metrics(path: Path, epochs_done: int) -> None:
    """After a restart: keep the lines of epochs the checkpoint covers (no duplicates)."""
    if not path.is_file():
        return
    lines = [ln for ln in path.read_text().splitlines() if ln.strip()]
    keep = [ln for ln in lines if json.loads(ln).get("epoch", math.inf) <= epochs_done]
    path.write_text("".join(ln + "\n" for ln in keep))


__all__ = [
    "build_discriminator",
    "build_generator",
    "model_io",
    "random_crop",
    "rotate",
    "train_loop_per_worker",
]
