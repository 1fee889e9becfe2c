"""``dcectl bench predict``: ``dcectl predict``'s two engines on a folder of phantom patients.

Both sides do all of ``dcectl predict``'s work on the same DICOM folder of several patients:
find the patients, read and check each pre-contrast series, normalise, resize, run the
generator in batches, resize back, write NIfTI and DICOM outputs. The Ray side is the Ray Data
engine (reading tasks and writing on the driver overlap the generator actor); the plain side
is the local engine, one process and one loop, patient after patient. Ray's own start is timed
apart (a running cluster does not pay it); Ray Data's set-up and generator construction are
inside both timings.

The one-patient latency is ``dcectl predict`` of one patient as a user runs it (a fresh
process, ``--engine auto``: the local engine), its wall time against the generator's compute.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# The default generator of the benchmark: small enough for a CPU at 512² (the study's is
# ngf 64, 4 downsamplings, 9 blocks); pass a model file for a real one.
BENCH_MODEL = {"ngf": 8, "n_downsample": 3, "n_blocks": 3, "ndf": 8}


def bench_spec(model: Path | None, size: int, arch: dict | None = None):
    """The generator to time: a model file's, or ``arch`` (default :data:`BENCH_MODEL`)
    with random weights.

    Returns:
        ``(GeneratorSpec, slice side, label)``.
    """
    import torch

    from dcesynth.inference.artifact import load_artifact
    from dcesynth.inference.engine import GeneratorSpec
    from dcesynth.training.config import TrainConfig
    from dcesynth.training.loop import build_generator

    if model is not None:
        art = load_artifact(model)
        gen = art.description.get("generator", {})
        return art.spec(), art.image_size, f"{model.name} ({gen.get('architecture', '?')})"
    arch = arch or BENCH_MODEL
    cfg = TrainConfig(phases=(1, 2, 3), model=arch)
    torch.manual_seed(0)
    G = build_generator(cfg)
    weights = {k: v.numpy() for k, v in G.state_dict().items()}
    label = ", ".join(f"{k} {v}" for k, v in arch.items() if k != "ndf")
    return GeneratorSpec(cfg.model_dump(mode="json"), weights), size, f"pix2pixHD ({label})"


def bench_artifact(
    path: Path, model: Path | None, size: int, arch: dict | None = None
) -> tuple[Path, str, int]:
    """A model file to predict with: ``model`` itself, or ``arch`` (default
    :data:`BENCH_MODEL`; random weights, min-max normalisation, ``size``²) written to
    ``path``. Returns the file, its label and its slice side."""
    import dcesynth
    from dcesynth.inference.artifact import FORMAT, FORMAT_VERSION, save_artifact
    from dcesynth.training.config import TrainConfig
    from dcesynth.training.families import family

    spec, size, label = bench_spec(model, size, arch)
    if model is not None:
        return model, label, size
    cfg = TrainConfig.model_validate(spec.config)
    desc = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "platform_version": dcesynth.__version__,
        "phases": list(cfg.phases),
        "train_config": spec.config,
        "generator": {"family": cfg.family, **family(cfg).describe(cfg)},
        "input": {
            "image_size": size,
            "normalisation": {"method": "minmax", "percentiles": [0.5, 99.5], "zscore_clip": 3.0},
        },
    }
    save_artifact(path, desc, spec.weights)
    return path, label, size


def phantom_patients(root: Path, patients: int, matrix: int, slices: int) -> Path:
    """A DICOM folder of ``patients`` phantom patients (pre and post series each)."""
    from dcesynth.data.phantom import PhantomConfig, generate_cohort

    cfg = PhantomConfig(cases=patients, matrix=matrix, slices=slices, formats=("dicom",))
    generate_cohort(cfg, root, workers=min(2, patients), progress=False)
    return root / "dicom"


def _predict(model: Path, src: Path, out: Path, device: str, batch: int, engine: str) -> dict:
    from dcesynth.inference.predict import predict

    t0 = time.perf_counter()
    res = predict(model, src, out, device=device, batch=batch, engine=engine, progress=False)
    wall = time.perf_counter() - t0
    if res.failed or res.engine != engine:
        raise ValueError(f"bench predict: the {engine} engine failed: {res.failed}")
    return {"s": wall, "slices": res.slices, "patients": len(res.done), "compute": res.compute_s}


def cli_latency(model: Path, patient: Path, out: Path, device: str, batch: int) -> dict:
    """``dcectl predict MODEL PATIENT`` in a fresh process (``--engine auto``): its wall
    seconds, interpreter start and imports included, as a user waits for it, and the seconds
    its generator took (from the local engine's log line, so both come from the same run).

    Raises:
        ValueError: the command failed, or ran another engine than the local one.
    """
    code = "from dcesynth.cli.app import main; main()"  # main: logging as dcectl sets it up
    args = [sys.executable, "-c", code, "predict", str(model), str(patient), "--out", str(out)]
    args += ["--device", device, "--batch", str(batch), "--engine", "auto"]
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}  # no cluster: auto → local
    t0 = time.perf_counter()
    done = subprocess.run(args, capture_output=True, text=True, env=env, check=False)
    wall = time.perf_counter() - t0
    if done.returncode != 0:
        raise ValueError(f"bench predict: dcectl predict failed: {done.stderr[-2000:]}")
    m = re.search(r"\(generator ([0-9.]+) s\)", done.stderr + done.stdout)
    if m is None:
        raise ValueError("bench predict: `dcectl predict` of one patient did not run locally")
    return {"cli_s": wall, "cli_compute_s": float(m.group(1))}


def bench_predict(
    patients: int,
    matrix: int,
    slices: int,
    model: Path | None,
    devices: list[str],
    batch: int,
    latency: bool = True,
) -> dict:
    """Seconds for a folder of ``patients`` phantom patients ``matrix² × slices`` on each
    device, through the Ray Data engine and the plain loop; one patient's latency.

    Returns:
        ``{"generator", "size", "ray_start", "rows": [{device, ray_s, plain_s, slices,
        patients}], "latency": {cli_s, cli_compute_s, wall_s, compute_s} | None}``
        (``cli_*``: the fresh process; the others: the same patient in this process).

    Raises:
        ValueError: an engine failed.
    """
    from dcesynth.cluster import init_ray

    rows, lat = [], None
    with tempfile.TemporaryDirectory(prefix="dcesynth-bench-") as tmp:
        root = Path(tmp)
        src = phantom_patients(root / "cohort", patients, matrix, slices)
        art, label, size = bench_artifact(root / "model.dcem", model, matrix)
        if latency:  # before Ray starts here: the machine as a user's one-patient run finds it
            one = sorted(src.iterdir())[0]
            local = _predict(art, one, root / "one", devices[0], batch, "local")
            lat = cli_latency(art, one, root / "one_cli", devices[0], batch)
            lat |= {"device": devices[0], "wall_s": local["s"], "compute_s": local["compute"]}
            lat["slices"] = local["slices"]
        t0 = time.perf_counter()
        init_ray(None, log_to_driver=False)
        ray_start = time.perf_counter() - t0
        for dev in devices:
            ray = _predict(art, src, root / f"ray_{dev}", dev, batch, "ray")
            plain = _predict(art, src, root / f"plain_{dev}", dev, batch, "local")
            rows.append(
                {
                    "device": dev,
                    "ray_s": ray["s"],
                    "plain_s": plain["s"],
                    "compute_s": plain["compute"],
                    "slices": ray["slices"],
                    "patients": ray["patients"],
                }
            )
    return {"generator": label, "size": size, "ray_start": ray_start, "rows": rows, "latency": lat}
