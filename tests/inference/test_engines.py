"""The two engines behind ``translate``: the same bytes out, each volume read once, the choice
``auto`` makes, and no Ray on the local path."""

from __future__ import annotations

import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest

from dcesynth.data.ingest.transforms import SquareResize
from dcesynth.inference.engine import GeneratorSpec, choose_engine, translate
from dcesynth.inference.predict import predict

# values that differ between any two runs by design (new UIDs, creation time)
VOLATILE = {"SeriesInstanceUID", "SOPInstanceUID", "MediaStorageSOPInstanceUID", "SeriesDate",
            "SeriesTime", "ContentDate", "ContentTime", "InstanceCreationDate",
            "InstanceCreationTime"}  # fmt: skip


def _dicom_facts(path: Path) -> tuple:
    ds = pydicom.dcmread(path)
    els = [(el.tag, str(el.value)) for el in ds.iterall() if el.keyword not in VOLATILE]
    return ds.PixelData, tuple(els)


def assert_same_outputs(a: Path, b: Path) -> None:
    """Every output file of ``a`` in ``b`` with the same content (NIfTI: header and voxel
    bytes; DICOM: pixel bytes and every element but its new UIDs and times)."""
    files = sorted(f.relative_to(a) for f in a.rglob("*") if f.is_file())
    assert files == sorted(f.relative_to(b) for f in b.rglob("*") if f.is_file())
    assert any(f.suffix == ".dcm" for f in files)
    for rel in files:
        if rel.name.endswith(".nii.gz"):
            x, y = nib.load(a / rel), nib.load(b / rel)
            assert x.header.binaryblock == y.header.binaryblock, rel
            assert np.asarray(x.dataobj).tobytes() == np.asarray(y.dataobj).tobytes(), rel
        elif rel.suffix == ".dcm":
            assert _dicom_facts(a / rel) == _dicom_facts(b / rel), rel


def test_local_and_ray_engines_write_the_same_bytes(
    ray_session, model_file: Path, phantom_source: Path, tmp_path: Path
) -> None:
    src = tmp_path / "in"
    for p in ("Phantom_MRI_001", "Phantom_MRI_002", "Phantom_MRI_004"):
        shutil.copytree(phantom_source / "dicom" / p, src / p)
    res = {}
    for engine in ("local", "ray"):
        res[engine] = predict(model_file, src, tmp_path / engine, engine=engine, progress=False)
        assert res[engine].engine == engine and not res[engine].failed
    assert list(res["local"].done) == list(res["ray"].done) and len(res["ray"].done) == 3
    assert res["local"].compute_s > 0
    for patient in res["ray"].done:
        assert_same_outputs(tmp_path / "local" / patient, tmp_path / "ray" / patient)


@dataclass(frozen=True)
class CountingSource:
    """Two small volumes; every ``load`` leaves a file in ``marks``; ``finish`` needs the
    context ``load`` gave (a second read would show as a second mark)."""

    marks: str
    size: int = 16

    def count(self) -> int:
        return 2

    def load(self, i: int):
        n = len(list(Path(self.marks).iterdir()))
        (Path(self.marks) / f"{i}-{n}").touch()
        vol = np.full((3, 16, 16), 40 * (i + 1), np.uint8)
        return vol, SquareResize.plan(16, 16, 1.0, 1.0, self.size), {"volume": i}

    def finish(self, i: int, fake: np.ndarray, context) -> tuple:
        assert context == {"volume": i}, context
        return fake.shape


@pytest.mark.parametrize("engine", ["local", "ray"])
def test_each_volume_is_read_once(ray_session, tmp_path: Path, engine: str) -> None:
    import torch

    from dcesynth.inference.bench import BENCH_MODEL
    from dcesynth.training.config import TrainConfig
    from dcesynth.training.loop import build_generator

    cfg = TrainConfig(phases=(1,), model={**BENCH_MODEL, "n_downsample": 2})
    torch.manual_seed(0)
    weights = {k: v.numpy() for k, v in build_generator(cfg).state_dict().items()}
    spec = GeneratorSpec(cfg.model_dump(mode="json"), weights)
    ray_session.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers: no tests/
    tmp_path.joinpath("marks").mkdir()
    res = translate(spec, CountingSource(str(tmp_path / "marks")), engine=engine, progress=False)
    assert res.failed == {} and res.done == {0: (1, 3, 16, 16), 1: (1, 3, 16, 16)}
    assert sorted(p.name[0] for p in (tmp_path / "marks").iterdir()) == ["0", "1"]


def test_auto_runs_small_inputs_in_process(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    assert choose_engine("auto", None, 1, 1) == "local"
    assert choose_engine("auto", None, 6, 1) == "ray"  # a folder: reading overlaps the generator
    assert choose_engine("auto", "10.0.0.1:6379", 1, 1) == "ray"  # a cluster was named
    assert choose_engine("auto", None, 1, 2) == "ray"  # several actors asked for
    monkeypatch.setenv("RAY_ADDRESS", "10.0.0.1:6379")  # inside a Ray job
    assert choose_engine("auto", None, 1, 1) == "ray"
    assert choose_engine("local", None, 9, 1) == "local"
    with pytest.raises(ValueError, match="one of auto, ray, local"):
        choose_engine("fast", None, 1, 1)
    with pytest.raises(ValueError, match="cannot use --address"):
        choose_engine("local", "10.0.0.1:6379", 1, 1)


def test_the_local_path_imports_no_ray(model_file: Path, phantom_source: Path, tmp_path: Path):
    """One patient through `dcectl predict` (auto) in a fresh process: neither ray nor mlflow
    is imported (their imports alone cost seconds)."""
    patient = phantom_source / "dicom" / "Phantom_MRI_004"
    code = (
        "import sys\nfrom dcesynth.cli.app import app\n"
        f"try:\n    app([{'predict'!r}, {str(model_file)!r}, {str(patient)!r}, '--out', "
        f"{str(tmp_path / 'out')!r}, '--device', 'cpu'])\n"
        "except SystemExit as e:\n    assert not e.code, e.code\n"
        "heavy = [m for m in ('ray', 'mlflow') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    env = {k: v for k, v in __import__("os").environ.items() if k != "RAY_ADDRESS"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert (tmp_path / "out" / "Phantom_MRI_004" / "post_0001.nii.gz").is_file()
