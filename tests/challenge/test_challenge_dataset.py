"""Training data in the challenge's contract (`dcectl challenge dataset`) and predictions for a
prepared task (`dcectl challenge predict`, `evaluate --task --split`): the fixed z-score window
set by the training split only, values recovered to within its quantisation step, masks and
boxes, the split counts, refusals naming the file or key, and a window model's predictions
written for exactly the asked split, on the challenge's scale."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from typer.testing import CliRunner

from dcesynth.challenge import dataset as D
from dcesynth.challenge import entrypoint as E
from dcesynth.cli.app import app
from dcesynth.data.dataset import describe, load_manifest, read_slices

SPLITS = {"c0": "train", "c1": "train", "c2": "val", "c3": "test", "c4": "test"}


def _write(a: np.ndarray, path: Path, dtype=np.float32) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(sitk.GetImageFromArray(a.astype(dtype)), str(path))


def make_task(root: Path, shape: tuple[int, int] = (24, 30)) -> dict[str, tuple]:
    """A prepared-task folder by hand: case i's pre is a ramp in [-0.5, 1 + i/10], its target
    the pre plus 3 inside a square tumour; val/test cases reach further (to -2 and 9) than the
    training ones, so a window taken from them would show."""
    rng = np.random.default_rng(0)
    cases, arrays = [], {}
    for i, (cid, split) in enumerate(SPLITS.items()):
        pre = np.linspace(-0.5, 1 + i / 10, shape[0] * shape[1]).reshape(shape)
        pre += rng.normal(0, 0.01, shape)
        mask = np.zeros(shape, np.int16)
        mask[5 + i : 11 + i, 8:15] = 1
        post = pre + 3.0 * mask
        if split != "train":
            pre[0, 0], post[0, 1] = -2.0, 9.0
        files = {k: f"mha/{k}/{cid}.mha" for k in ("input", "ground_truth", "mask")}
        _write(pre, root / files["input"])
        _write(post, root / files["ground_truth"])
        _write(mask, root / files["mask"], np.int16)
        cases.append({"patient_id": cid, "pre_phase": 0, "target_phase": 2,
                      "slice_index": 7, "shape": list(shape), "files": files})  # fmt: skip
        arrays[cid] = (pre.astype(np.float32), post.astype(np.float32), mask)
    manifest = {"format": "dcesynth.challenge.prepare/1", "source": "hand-made",
                "zscore": {"mean": 0.0, "std": 1.0, "source": "test"}, "cases": cases,
                "skipped": [], "splits": SPLITS}  # fmt: skip
    (root / "manifest.json").write_text(json.dumps(manifest))
    return arrays


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict]:
    root = tmp_path_factory.mktemp("chds")
    arrays = make_task(root / "task")
    D.build(root / "task", root / "ds", image_size=32)
    return root / "task", root / "ds", arrays


def test_window_mapping_and_box_known_answers() -> None:
    z = np.array([-1.0, 0.0, 1.0, 3.0, 5.0])
    assert E.to_model_scale(z, 0.0, 3.0).tolist() == [0, 0, 85, 255, 255]  # clipped outside
    m = np.zeros((6, 7))
    m[2:4, 1:6] = 1
    assert D.box_of(m) == [2, 3, 1, 5]
    assert D.box_of(np.zeros((3, 3))) is None
    assert D.default_size([(24, 30), (17, 9)]) == 32
    assert D.default_size([(160, 160)]) == 160


def test_window_comes_from_the_training_split_only(built) -> None:
    _, ds, arrays = built
    lo, hi = load_manifest(ds)["options"]["window"]
    train = [arrays[c] for c, s in SPLITS.items() if s == "train"]
    assert lo == pytest.approx(min(min(p.min(), q.min()) for p, q, _ in train))
    assert hi == pytest.approx(max(max(p.max(), q.max()) for p, q, _ in train))
    assert lo > -1.0 and hi < 9.0  # the val/test extremes did not set it


def test_slices_hold_the_z_scores_to_within_one_step(tmp_path: Path) -> None:
    arrays = make_task(tmp_path / "task")
    shape = next(iter(arrays.values()))[0].shape
    D.build(tmp_path / "task", tmp_path / "ds", image_size=shape[1], window=(-2.0, 9.0))
    # 24 × 30 into 30²: no resampling, 3 rows of padding above and below
    b, _ = read_slices(tmp_path / "ds", "test")
    step = 11.0 / 255
    for k, cid in enumerate(b["case_id"]):
        pre, post, mask = arrays[cid]
        got_pre = -2.0 + b["pre"][k, 3:27].astype(float) * step
        got_post = -2.0 + b["post"][k, 0, 3:27].astype(float) * step
        assert np.abs(got_pre - pre).max() <= step / 2 + 1e-6
        assert np.abs(got_post - post).max() <= step / 2 + 1e-6
        assert np.array_equal(b["mask"][k, 3:27] > 0, mask > 0)
        assert (b["pre"][k, :3] == 0).all()  # padding is the window's floor


def test_dataset_layout_counts_and_manifest(built) -> None:
    _, ds, _ = built
    m = load_manifest(ds)
    assert m["phases"] == [0, 1] and m["image_size"] == 32
    assert m["options"]["normalisation"] == "window"
    assert m["counts"]["cases"] == {"train": 2, "val": 1, "test": 2}
    d = describe(ds)
    assert d["splits"]["test"] == {"cases": 2, "slices": 1 * 2, "tumour_slices": 2}
    b, table = read_slices(ds, "train")
    assert b["post"].shape == (2, 1, 32, 32)
    rows = table.to_pylist()
    assert all(r["tumour"] and r["box"] is not None for r in rows)
    assert not list(ds.parent.glob(".tmp-*"))


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda t: (t / "mha/input/c1.mha").unlink(), "c1.mha: listed in the challenge manifest"),
        (lambda t: _set_split(t, "c0", "holdout"), "case c0 has split 'holdout'"),
        (lambda t: _write(np.zeros((2, 3, 4)), t / "mha/mask/c2.mha"), "expected a 2D slice"),
        (lambda t: (t / "manifest.json").write_text('{"format": "x"}'), "format 'x'"),
    ],
)
def test_bad_task_folders_are_refused_naming_what(tmp_path: Path, edit, message: str) -> None:
    make_task(tmp_path / "task")
    edit(tmp_path / "task")
    with pytest.raises((ValueError, FileNotFoundError), match=message):
        D.build(tmp_path / "task", tmp_path / "ds")
    assert not (tmp_path / "ds").exists()


def _set_split(task: Path, cid: str, split: str) -> None:
    m = json.loads((task / "manifest.json").read_text())
    m["splits"][cid] = split
    (task / "manifest.json").write_text(json.dumps(m))


def test_a_window_without_width_is_refused(tmp_path: Path) -> None:
    make_task(tmp_path / "task")
    with pytest.raises(ValueError, match="hi"):
        D.build(tmp_path / "task", tmp_path / "ds", window=(2.0, 2.0))


def test_window_models_map_with_their_fixed_window() -> None:
    norm = {"method": "window", "window": [-0.5, 8.0]}
    assert E.intensity_range(np.array([[0.0, 1.0]]), norm) == (-0.5, 8.0)
    assert E.intensity_range(np.array([[3.0, 30.0]]), norm) == (-0.5, 8.0)
    with pytest.raises(ValueError, match="window"):
        E.intensity_range(np.zeros((2, 2)), {"method": "other"})


@pytest.fixture(scope="module")
def window_model(tmp_path_factory: pytest.TempPathFactory, tiny_training: dict) -> Path:
    """An untrained tiny phase-1 generator at 32² whose model file says window [-1, 4]."""
    import torch

    from dcesynth.config import build_config
    from dcesynth.inference.artifact import FORMAT, FORMAT_VERSION, save_artifact
    from dcesynth.training.config import TrainConfig
    from dcesynth.training.loop import build_generator

    cfg = build_config(TrainConfig, None, {**tiny_training, "name": "tiny", "phases": (1,)})
    torch.manual_seed(0)
    weights = {k: v.numpy() for k, v in build_generator(cfg).state_dict().items()}
    norm = {"method": "window", "window": [-1.0, 4.0], "percentiles": [0.5, 99.5],
            "zscore_clip": 3.0}  # fmt: skip
    desc = {"format": FORMAT, "format_version": FORMAT_VERSION, "platform_version": "test",
            "run": {"name": "tiny", "epoch": 1}, "phases": [1],
            "train_config": cfg.model_dump(mode="json"),
            "input": {"image_size": 32, "normalisation": norm}}  # fmt: skip
    out = tmp_path_factory.mktemp("wmodel") / "tiny.dcem"
    save_artifact(out, desc, weights)
    return out


def test_predict_and_evaluate_a_split_of_a_task(built, window_model: Path, tmp_path) -> None:
    task, _, arrays = built
    runner = CliRunner()
    preds = tmp_path / "preds"
    args = ["--task", str(task), "--split", "test", "--out", str(preds), "--device", "cpu"]
    res = runner.invoke(app, ["challenge", "predict", str(window_model), *args])
    assert res.exit_code == 0, res.output
    assert sorted(p.stem for p in preds.glob("*.mha")) == ["c3", "c4"]
    for p in preds.glob("*.mha"):
        out = sitk.GetArrayFromImage(sitk.ReadImage(str(p)))
        assert out.shape == arrays[p.stem][0].shape and out.dtype == np.float32
        assert out.min() >= -1.0 - 1e-5 and out.max() <= 4.0 + 1e-5  # the model's window
    res = runner.invoke(app, ["challenge", "evaluate", "--predictions", str(preds), "--task",
                              str(task), "--split", "test", "--out", str(tmp_path / "m.json"),
                              "--lpips-weights", "none"])  # fmt: skip
    assert res.exit_code == 0, res.output
    doc = json.loads((tmp_path / "m.json").read_text())
    assert sorted(doc["case"]) == ["c3", "c4"] and doc["n_errors"] == 0


def test_predict_needs_one_source_and_a_known_split(built, window_model: Path, tmp_path) -> None:
    task, _, _ = built
    runner = CliRunner()
    res = runner.invoke(app, ["challenge", "predict", str(window_model), "--out", str(tmp_path)])
    assert res.exit_code == 2 and "exactly one of --task" in res.output
    res = runner.invoke(app, ["challenge", "predict", str(window_model), "--task", str(task),
                              "--split", "holdout", "--out", str(tmp_path)])  # fmt: skip
    assert res.exit_code == 2 and "'holdout'" in res.output and "test" in res.output


def test_scanner_predict_refuses_a_challenge_model(window_model: Path) -> None:
    from dcesynth.inference.artifact import ModelError, load_artifact
    from dcesynth.inference.predict import check_model

    with pytest.raises(ModelError, match="challenge predict"):
        check_model(load_artifact(window_model), None)
