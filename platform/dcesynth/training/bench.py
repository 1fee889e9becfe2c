"""``dcectl bench train``: our pix2pixHD step against upstream's, side by side in one run.

For each setting (architecture, image size, batch) both steps train the same networks on the
same random batches: :class:`~dcesynth.training.step.GanStep` (ours) and
:class:`~dcesynth.training.step.ReferenceStep` (upstream pix2pixHD's three discriminator
passes, G's loss back-propagated into D). Each runs in a fresh process, so that its peak
memory is its own; a process the system kills for memory is reported as such. FLOPs of one
step are counted with ``torch.utils.flop_counter`` on each side (the reference does more).

"ours" is the step as a run uses it on this device (bf16 autocast where it pays); "ours fp32"
the same step in fp32, the reference's precision. On a GPU the ours side also runs without
channels-last and with ``torch.compile``; achieved FLOP/s are given against the device's peak
when it is known.
"""

from __future__ import annotations

import multiprocessing as mp
import time
from dataclasses import dataclass

SMALL = {"ngf": 16, "n_downsample": 3, "n_blocks": 3, "ndf": 16}
STUDY = {"ngf": 64, "n_downsample": 4, "n_blocks": 9, "ndf": 64}
# dense bf16 peak FLOP/s by device name fragment (vendor data sheets), for "achieved / peak"
PEAK_BF16 = {"H200": 989e12, "H100": 989e12, "A100": 312e12, "L40S": 362e12, "A10": 125e12}


@dataclass(frozen=True)
class Setting:
    name: str  # "small" or "study"
    size: int
    batch: int
    variant: str = "ours"  # ours | reference | ours fp32 | ours no channels-last | ours compiled

    @property
    def model(self) -> dict:
        return SMALL if self.name == "small" else STUDY


def default_settings(device: str) -> list[Setting]:
    out = [Setting("small", 64, 4)]
    out += [Setting("study", s, b) for s in (256, 512) for b in (1, 8)]
    rows = []
    for s in out:
        rows += [s, Setting(s.name, s.size, s.batch, "reference")]
        variants = (
            ["ours fp32"]
            if device == "cpu"
            else ["ours fp32", "ours no channels-last", "ours compiled"]
        )
        rows += [Setting(s.name, s.size, s.batch, v) for v in variants]
    return rows


def _config(s: Setting, device: str):
    from dcesynth.training.config import TrainConfig

    return TrainConfig(
        phases=(1,),
        model=s.model,
        loss={"perceptual_network": "vgg19_random"},  # same FLOPs as ImageNet VGG19
        bf16=s.variant != "ours fp32",
        channels_last=False if s.variant == "ours no channels-last" else None,
        compile=s.variant == "ours compiled",
        use_gpu=device == "cuda",
    )


def _measure(s: Setting, device: str, steps: int, threads: int, queue) -> None:
    """Child process: build, warm up, time ``steps`` steps; report figures."""
    import resource

    import torch

    from dcesynth.training.loop import build_discriminator, build_generator
    from dcesynth.training.step import GanStep, ReferenceStep, channels_last

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    dev = torch.device(device)
    cfg = _config(s, device)
    G, D = build_generator(cfg).to(dev), build_discriminator(cfg).to(dev)
    if s.variant != "reference" and channels_last(cfg, dev):
        G, D = G.to(memory_format=torch.channels_last), D.to(memory_format=torch.channels_last)
    if cfg.compile:
        G, D = torch.compile(G), torch.compile(D)
    cls = ReferenceStep if s.variant == "reference" else GanStep
    step = cls(G, D, cfg, dev)
    x = torch.rand(s.batch, 3, s.size, s.size, device=dev) * 2 - 1
    y = torch.rand(s.batch, 3, s.size, s.size, device=dev) * 2 - 1
    flops = None
    if not cfg.compile:  # the counter traces eager ops; a compiled step counts as ours does
        from torch.utils.flop_counter import FlopCounterMode

        with FlopCounterMode(display=False) as fc:
            step(x, y)
        flops = fc.get_total_flops()
    step(x, y)  # warm-up (and compilation)
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    for _ in range(steps):
        step(x, y)
    if device == "cuda":
        torch.cuda.synchronize()
    sec = (time.perf_counter() - t0) / steps
    mem = (
        torch.cuda.max_memory_allocated() / 2**20
        if device == "cuda"
        else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    )
    queue.put({"s_per_step": sec, "images_s": s.batch / sec, "peak_mib": mem, "flops": flops})


def run(setting: Setting, device: str, steps: int, threads: int, timeout: float) -> dict:
    """One setting in a fresh process; ``{"error": …}`` when it dies or runs out of time."""
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_measure, args=(setting, device, steps, threads, queue))
    proc.start()
    proc.join(timeout)
    if proc.is_alive():
        proc.kill()
        proc.join()
        return {"error": f"over {timeout:.0f} s"}
    if proc.exitcode != 0:
        why = "killed (out of memory?)" if proc.exitcode == -9 else f"exit code {proc.exitcode}"
        return {"error": why}
    return queue.get()


def peak_flops(device: str) -> float | None:
    if device != "cuda":
        return None
    import torch

    name = torch.cuda.get_device_name()
    return next((v for k, v in PEAK_BF16.items() if k in name), None)
