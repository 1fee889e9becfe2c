"""`dcectl ingest` and `dcectl dataset describe` as a user calls them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dcesynth.cli.app import app

runner = CliRunner()


def test_ingest_then_rerun_then_describe(ray_session, phantom_source: Path, tmp_path: Path) -> None:
    out = tmp_path / "ds"
    args = [
        "ingest",
        str(phantom_source / "dicom"),
        "--out",
        str(out),
        "--image-size",
        "32",
        "--phases",
        "1,2",
        "--selection",
        "tumour",
    ]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    assert "4 cases" in res.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["phases"] == [0, 1, 2] and manifest["options"]["selection"] == "tumour"
    again = runner.invoke(app, args)
    assert again.exit_code == 0 and "up to date" in again.output
    desc = runner.invoke(app, ["dataset", "describe", str(out), "--json"])
    assert desc.exit_code == 0, desc.output
    info = json.loads(desc.output)
    assert sum(s["cases"] for s in info["splits"].values()) == 4 and info["image_size"] == 32
    table = runner.invoke(app, ["dataset", "describe", str(out)])
    assert table.exit_code == 0 and "tumour slices" in table.output


def test_ingest_the_phantom_output_folder(ray_session, phantom_source: Path, tmp_path) -> None:
    """The folder `dcectl phantom` wrote (dicom/ and nifti/ side by side): read as DICOM, said
    on the console and in the manifest; --format nifti reads its NIfTI tree."""
    for fmt, note in (
        (None, "reading the DICOM files (`--format nifti` reads the NIfTI tree)"),
        ("nifti", "reading the NIfTI tree nifti/images below SOURCE"),
    ):
        out = tmp_path / f"ds-{fmt}"
        extra = ["--format", fmt] if fmt else []
        args = ["ingest", str(phantom_source), "--out", str(out), "--image-size", "32", *extra]
        res = runner.invoke(app, args)
        assert res.exit_code == 0, res.output
        assert "4 cases" in res.output and note in res.output
        manifest = json.loads((out / "manifest.json").read_text())
        assert manifest["source_format"] == (fmt or "dicom") and note in manifest["source_note"]


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (["--phases", "1,x"], ["--phases", "comma-separated"]),
        (["--phases", "3,1"], ["--phases", "increasing"]),
        (["--selection", "some"], ["--selection", "'all' or 'tumour'"]),
        (["--normalisation", "max"], ["--normalisation", "minmax", "zscore"]),
        (["--image-size", "8"], ["--image-size", "greater than or equal to 16"]),
        (["--boxes", "/nonexistent/boxes.csv"], ["--boxes", "not found"]),
    ],
)
def test_ingest_rejects_bad_options(phantom_source: Path, tmp_path: Path, extra, expected) -> None:
    out = tmp_path / "never"
    res = runner.invoke(app, ["ingest", str(phantom_source / "dicom"), "--out", str(out), *extra])
    assert res.exit_code == 2, res.output
    for text in expected:
        assert text in res.output
    assert not out.exists()


def test_ingest_yaml_typo_names_file_and_key(phantom_source: Path, tmp_path: Path) -> None:
    cfg = tmp_path / "ingest.yaml"
    cfg.write_text("image_size: 32\nselecton: tumour\n")
    res = runner.invoke(
        app,
        [
            "ingest",
            str(phantom_source / "dicom"),
            "--out",
            str(tmp_path / "d"),
            "--config",
            str(cfg),
        ],
    )
    assert res.exit_code == 2 and str(cfg) in res.output and "selecton" in res.output


def test_describe_rejects_non_dataset(tmp_path: Path) -> None:
    res = runner.invoke(app, ["dataset", "describe", str(tmp_path)])
    assert res.exit_code == 2 and "not a prepared dataset" in res.output
