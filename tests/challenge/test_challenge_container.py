"""The submission contract without Docker: the entry point turns an /input-style folder into an
/output-style one that passes the official submission checks, and `dcectl challenge container`
writes a build context whose own sources run it and whose requirements cover what it imports."""

from __future__ import annotations

import importlib.metadata as md
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from typer.testing import CliRunner

from dcesynth.challenge import entrypoint as E
from dcesynth.challenge.container import REQUIREMENTS
from dcesynth.cli.app import app

# imported here only because they are installed: pydicom and pyarrow try them and go on without
OPTIONAL = {"requests", "tqdm", "pillow", "cloudpickle", "certifi", "charset-normalizer", "idna",
            "urllib3", "pysocks", "setuptools", "cuda-bindings", "cuda-pathfinder"}  # fmt: skip
SPACING, ORIGIN, DIRECTION = (0.7, 0.9), (3.0, -4.0), (0.0, -1.0, 1.0, 0.0)


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory, tiny_training: dict) -> Path:
    """An untrained tiny generator of phases 1 and 2 at 32², exported as a model file."""
    import torch

    from dcesynth.config import build_config
    from dcesynth.inference.artifact import FORMAT, FORMAT_VERSION, save_artifact
    from dcesynth.training.config import TrainConfig
    from dcesynth.training.loop import build_generator

    cfg = build_config(TrainConfig, None, {**tiny_training, "name": "tiny", "phases": (1, 2)})
    torch.manual_seed(0)
    weights = {k: v.numpy() for k, v in build_generator(cfg).state_dict().items()}
    desc = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "platform_version": "test",
        "run": {"name": "tiny", "epoch": 1},
        "phases": [1, 2],
        "train_config": cfg.model_dump(mode="json"),
        "input": {
            "image_size": 32,
            "normalisation": {"method": "minmax", "percentiles": [0.5, 99.5], "zscore_clip": 3.0},
        },
    }
    out = tmp_path_factory.mktemp("model") / "tiny.dcem"
    save_artifact(out, desc, weights)
    return out


def make_input(root: Path, shape: tuple[int, int] = (40, 56), name: str = "case.mha") -> Path:
    """An /input folder with one z-scored 2D slice carrying non-trivial geometry."""
    rng = np.random.default_rng(0)
    img = sitk.GetImageFromArray(rng.normal(0, 1, shape).astype(np.float32))
    img.SetSpacing(SPACING)
    img.SetOrigin(ORIGIN)
    img.SetDirection(DIRECTION)
    path = root / "images" / E.INPUT_SLUG / name
    path.parent.mkdir(parents=True)
    sitk.WriteImage(img, str(path))
    return path


def check_submission(output: Path, source: Path) -> np.ndarray:
    """The official checks (exists, 2D, same size) plus dtype and copied geometry."""
    path = output / "images" / E.OUTPUT_SLUG / "output.mha"
    assert path.is_file()
    out, ref = sitk.ReadImage(str(path)), sitk.ReadImage(str(source))
    assert out.GetDimension() == 2 and out.GetSize() == ref.GetSize()
    assert out.GetPixelID() == sitk.sitkFloat32
    assert out.GetSpacing() == pytest.approx(ref.GetSpacing())
    assert out.GetOrigin() == pytest.approx(ref.GetOrigin())
    assert out.GetDirection() == pytest.approx(ref.GetDirection())
    assert b"CompressedData = True" in path.read_bytes()[:400]  # as the official baseline
    arr = sitk.GetArrayFromImage(out)
    assert np.isfinite(arr).all()
    return arr


def test_entry_point_writes_a_valid_submission(tiny_model: Path, tmp_path: Path) -> None:
    src = make_input(tmp_path / "input")
    assert E.main(["--input", str(tmp_path / "input"), "--output", str(tmp_path / "output"),
                   "--model", str(tiny_model), "--device", "cpu"]) == 0  # fmt: skip
    arr = check_submission(tmp_path / "output", src)
    pre = sitk.GetArrayFromImage(sitk.ReadImage(str(src)))
    # on the input's z-score scale: inside its range (the generator's [0, 255] mapped back)
    assert pre.min() - 1e-5 <= arr.min() and arr.max() <= pre.max() + 1e-5


def test_entry_point_reads_its_folders_from_the_environment(
    tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = make_input(tmp_path / "in", shape=(33, 33), name="b.nii.gz")
    make_input_dir = src.parent
    sitk.WriteImage(sitk.ReadImage(str(src)), str(make_input_dir / "a.mha"))  # .mha comes first
    monkeypatch.setenv("MAMA_INPUT_DIR", str(tmp_path / "in"))
    monkeypatch.setenv("MAMA_OUTPUT_DIR", str(tmp_path / "out"))
    monkeypatch.setenv("DCESYNTH_MODEL", str(tiny_model))
    assert E.main(["--device", "cpu", "--phase", "2", "--rot90", "1"]) == 0
    check_submission(tmp_path / "out", make_input_dir / "a.mha")


def test_entry_point_failures_are_stated(tiny_model: Path, tmp_path: Path, caplog) -> None:
    (tmp_path / "input" / "images" / E.INPUT_SLUG).mkdir(parents=True)
    assert E.main(["--input", str(tmp_path / "input"), "--output", str(tmp_path / "o"),
                   "--model", str(tiny_model)]) == 1  # fmt: skip
    assert "no .mha/.nii.gz/.nii image" in caplog.text
    make_input(tmp_path / "in2")
    assert E.main(["--input", str(tmp_path / "in2"), "--output", str(tmp_path / "o"),
                   "--model", str(tiny_model), "--phase", "3"]) == 1  # fmt: skip
    assert "generates phases [1, 2], not 3" in caplog.text


def test_intensity_mapping_round_trips() -> None:
    z = np.linspace(-1.5, 4.0, 101)
    lo, hi = E.intensity_range(z, {"method": "minmax"})
    back = E.from_model_scale(E.to_model_scale(z, lo, hi), lo, hi)
    assert np.abs(back - z).max() <= (hi - lo) / 510 + 1e-6
    assert E.intensity_range(z, {"method": "zscore", "zscore_clip": 2.0}) == pytest.approx(
        (z.mean() - 2 * z.std(), z.mean() + 2 * z.std())
    )
    with pytest.raises(ValueError, match="minmax, percentile, zscore or window"):
        E.intensity_range(z, {"method": "other"})


def _closure(names: list[str]) -> set[str]:
    """The distributions ``names`` install, transitively (pip's view, extras left out)."""
    seen: set[str] = set()
    todo = list(names)
    while todo:
        n = re.sub(r"[-_.]+", "-", todo.pop()).lower()
        if n in seen:
            continue
        seen.add(n)
        try:
            reqs = md.requires(n) or []
        except md.PackageNotFoundError:
            continue
        todo += [re.split(r"[ ;<>=!\[(~]", r, maxsplit=1)[0] for r in reqs if "extra ==" not in r]
    return seen


def test_container_context_runs_the_entry_point_from_its_own_sources(
    tiny_model: Path, tmp_path: Path
) -> None:
    ctx = tmp_path / "ctx"
    res = CliRunner().invoke(app, ["challenge", "container", str(tiny_model), "--out", str(ctx)])
    assert res.exit_code == 0, res.output
    docker = (ctx / "Dockerfile").read_text()
    assert "FROM --platform=linux/amd64 python:3.11-slim" in docker
    assert "USER user" in docker and '"dcesynth.challenge.entrypoint"' in docker
    assert (ctx / "model.dcem").read_bytes() == tiny_model.read_bytes()
    reqs = (ctx / "requirements.txt").read_text().split()
    assert all("==" in r for r in reqs) and reqs[0].startswith("torch==")
    res = CliRunner().invoke(app, ["challenge", "container", str(tiny_model), "--out", str(ctx)])
    assert res.exit_code == 2 and "not an empty folder" in res.output

    src = make_input(tmp_path / "input")
    probe = (
        "import json, runpy, sys\n"
        "sys.argv = ['entrypoint', *sys.argv[1:]]\n"
        "try:\n    runpy.run_module('dcesynth.challenge.entrypoint', run_name='__main__')\n"
        "except SystemExit as e:\n    rc = e.code\n"
        "import dcesynth\n"
        "print('PROBE', json.dumps([dcesynth.__file__, sorted({m.split('.')[0] for m in "
        "sys.modules})]))\nsys.exit(rc)\n"
    )
    env = {
        **os.environ,
        "PYTHONPATH": str(ctx / "src"),
        "MAMA_INPUT_DIR": str(tmp_path / "input"),
        "MAMA_OUTPUT_DIR": str(tmp_path / "output"),
        "DCESYNTH_MODEL": str(ctx / "model.dcem"),
    }
    run = subprocess.run([sys.executable, "-c", probe, "--device", "cpu"], env=env,
                         capture_output=True, text=True, timeout=300)  # fmt: skip
    assert run.returncode == 0, run.stderr[-2000:]
    check_submission(tmp_path / "output", src)
    where, modules = json.loads(run.stdout.split("PROBE ", 1)[1])
    assert Path(where).is_relative_to(ctx / "src")  # the context's copy, not the checkout
    dists = md.packages_distributions()
    needed = {re.sub(r"[-_.]+", "-", d).lower() for m in modules for d in dists.get(m, [])}
    covered = _closure(["torch", *REQUIREMENTS])
    left = (
        needed
        - covered
        - {"dcesynth"}
        - {
            re.sub(r"[-_.]+", "-", d).lower()
            for m in sys.stdlib_module_names
            for d in dists.get(m, [])
        }
    )
    assert left <= OPTIONAL, f"imports not covered by requirements.txt: {left - OPTIONAL}"
