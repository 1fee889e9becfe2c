"""Ingest and streaming benchmark: dcesynth's way next to the study's way, in one run.

The study's way: per slice, one PNG per image (pre, each post phase, mask) written with PIL,
read back by a PyTorch ``DataLoader``. Ours: ``ingest`` (Ray tasks → Arrow shards) and Ray Data
streaming into torch batches. Both start from the same DICOM cases, normalise the same way and
deliver the same float tensors in [-1, 1].
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np


class PeakMemory:
    """Samples the summed PSS of this process, its children and (optionally) Ray's workers."""

    def __init__(self, include_ray: bool, interval: float = 0.1) -> None:
        self.include_ray, self.interval = include_ray, interval
        self.peak, self._stop = 0, threading.Event()

    def _sample(self) -> int:
        import psutil

        me = psutil.Process()
        procs = [me, *me.children(recursive=True)]
        for p in psutil.process_iter(["cmdline"]) if self.include_ray else []:
            cmd = " ".join(p.info["cmdline"] or [])
            if "ray::" in cmd or "default_worker.py" in cmd:
                procs.append(p)
        total = 0
        for p in {p.pid: p for p in procs}.values():
            try:  # PSS: shared pages (Ray's object store) shared out, not counted per process
                total += p.memory_full_info().pss
            except Exception:  # a process that ended between listing and reading
                continue
        return total

    def __enter__(self) -> PeakMemory:
        self.base = self._sample()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._sample())
            time.sleep(self.interval)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._t.join()

    @property
    def peak_mib(self) -> float:
        return self.peak / 2**20


@dataclass
class Timing:
    wall_s: float
    items: int
    peak_mib: float = float("nan")

    @property
    def rate(self) -> float:
        return self.items / self.wall_s


def study_write_pngs(dicom_root: Path, keys: list[str], out: Path, phases: list[int]) -> Timing:
    """The study's preparation: read, min-max per volume, one PNG per slice and image."""
    from PIL import Image

    from dcesynth.data.ingest.transforms import minmax
    from dcesynth.data.readers import dicom
    from dcesynth.data.readers.nifti import load_nifti

    n = 0
    with PeakMemory(include_ray=False) as mem:
        t0 = time.perf_counter()
        for key in keys:
            raw = dicom.read_case(dicom_root, key)
            mvol, _ = load_nifti(dicom_root.parent / "nifti" / "masks" / f"{key}.nii.gz")
            vols = {"pre": minmax(raw.phases[0]), "mask": (mvol > 0.5).astype(np.uint8) * 255}
            vols.update({f"post{p}": minmax(raw.phases[p]) for p in phases})
            for name, vol in vols.items():
                (out / key / name).mkdir(parents=True, exist_ok=True)
                for z in range(vol.shape[0]):
                    Image.fromarray(vol[z]).save(out / key / name / f"{z:04d}.png")
            n += raw.geometry.shape[0]
        wall = time.perf_counter() - t0
    return Timing(wall, n, mem.peak_mib)


def study_read_pngs(root: Path, phases: list[int], batch_size: int, workers: int) -> Timing:
    """The study's loading: a map-style Dataset of PNG paths behind a PyTorch DataLoader."""
    import torch
    from PIL import Image
    from torch.utils.data import DataLoader, Dataset

    items = sorted((d, f.name) for d in root.iterdir() for f in (d / "pre").iterdir())

    class PngSlices(Dataset):
        def __len__(self) -> int:
            return len(items)

        def __getitem__(self, i: int) -> dict:
            d, name = items[i]
            load = lambda sub: np.asarray(Image.open(d / sub / name), np.float32)  # noqa: E731
            pre = load("pre")[None] / 127.5 - 1
            post = np.stack([load(f"post{p}") for p in phases]) / 127.5 - 1
            return {
                "pre": torch.from_numpy(pre),
                "post": torch.from_numpy(post),
                "mask": torch.from_numpy(load("mask")[None] / 255),
            }

    return _timed(lambda: DataLoader(PngSlices(), batch_size=batch_size, num_workers=workers))


def ours_stream(dataset: Path, phases: list[int], batch_size: int, scale: bool) -> Timing:
    """Ray Data: float32 from map_batches (scale) or uint8 + collate_fn=model_range_collate()."""
    from dcesynth.data.dataset import model_range_collate, read_split

    def batches():
        ds = read_split(dataset, "train", phases=phases, rotate_p=0.0, scale=scale)
        if scale:
            return ds.iter_torch_batches(batch_size=batch_size)
        return ds.iter_torch_batches(batch_size=batch_size, collate_fn=model_range_collate())

    return _timed(batches)


def _timed(make_batches) -> Timing:
    """One pass over a fresh iterator: pipeline or worker start-up included."""
    t0 = time.perf_counter()
    n = sum(b["pre"].shape[0] for b in make_batches())
    return Timing(time.perf_counter() - t0, n)


# What a researcher writes first (issue 22's reference): pydicom, min-max per volume, uint8
# slices with numpy. Run as its own interpreter, like `dcectl ingest`, so both walls include
# the start-up a user pays. It assumes what ingest checks (one series per phase, no gaps).
SIMPLE_SCRIPT = """
import sys, pathlib, collections, numpy as np, pydicom
root, out = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
for case in sorted(p for p in root.iterdir() if p.is_dir()):
    phases = collections.defaultdict(list)
    for f in case.rglob("*.dcm"):  # a phase: a series, or a temporal position of one
        d = pydicom.dcmread(f)
        k = (int(d.SeriesNumber), int(d.get("TemporalPositionIdentifier") or 0))
        phases[k].append((int(d.InstanceNumber), d.pixel_array))
    for i, k in enumerate(sorted(phases)):
        v = np.stack([a for _, a in sorted(phases[k], key=lambda t: t[0])]).astype(np.float32)
        u8 = ((v - v.min()) / max(float(v.max() - v.min()), 1e-6) * 255).round().astype(np.uint8)
        (out / case.name / str(i)).mkdir(parents=True, exist_ok=True)
        for z, s in enumerate(u8):
            np.save(out / case.name / str(i) / f"{z:04d}.npy", s)
"""


def run_timed(cmd: list[str], env: dict | None = None) -> float:
    """Wall seconds of a command in a fresh process (raises with its output if it fails)."""
    import subprocess

    t0 = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t0
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:4])} … failed ({r.returncode}):\n{r.stderr[-3000:]}")
    return wall


@dataclass
class ScriptRace:
    """Wall seconds of a fresh ``dcectl ingest`` and of :data:`SIMPLE_SCRIPT` per cohort."""

    cases: list[int]
    images: list[int]
    ours_s: list[float]
    script_s: list[float]

    def fixed_s(self) -> tuple[float, float]:
        """Start-up paid whatever the cohort: the intercept of wall time against cases (two
        cohorts: the line through both), ours and the script's."""
        (c0, c1), fit = self.cases, lambda w: w[0] - (w[1] - w[0]) / (c1 - c0) * c0
        return fit(self.ours_s), fit(self.script_s)


def race_the_script(
    cohorts: list[Path], scratch: Path, image_size: int, phases: list[int], repeats: int = 2
) -> ScriptRace:
    """``dcectl ingest`` (no cluster named: engine auto) and the plain script on each cohort's
    DICOM folder, each in its own interpreter, alternating; the faster of ``repeats`` runs each
    (the first pays a cold page cache for whichever goes first).

    Args:
        cohorts: phantom output folders (``<cohort>/dicom``), smallest first.
        scratch: where both write (emptied before each run).
        image_size: ingest's slice size (the cohort's matrix: the script does not resize).
        phases: post-contrast phases to keep (all the cohort has: the script keeps them all).
    """
    import json
    import os
    import shutil
    import sys

    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}  # no cluster here
    race = ScriptRace([], [], [], [])
    for cohort in cohorts:
        dicom = cohort / "dicom"
        ours, script = [], []
        for _ in range(repeats):
            for target in ("ingest", "script"):
                shutil.rmtree(scratch / target, ignore_errors=True)
            script.append(run_timed([sys.executable, "-c", SIMPLE_SCRIPT, str(dicom),
                                     str(scratch / "script")], env))  # fmt: skip
            ours.append(run_timed([sys.executable, "-m", "dcesynth.cli.app", "ingest", str(dicom),
                                   "--out", str(scratch / "ingest"), "--image-size",
                                   str(image_size), "--phases", ",".join(map(str, phases))],
                                  env))  # fmt: skip
        race.cases.append(int(json.loads((cohort / "phantom.json").read_text())["config"]["cases"]))
        race.images.append(sum(1 for _ in dicom.rglob("*.dcm")))
        race.ours_s.append(min(ours))
        race.script_s.append(min(script))
    for target in ("ingest", "script"):
        shutil.rmtree(scratch / target, ignore_errors=True)
    return race
